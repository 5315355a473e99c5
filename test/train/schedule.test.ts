// The learning-rate schedule against values worked out by hand (src/train/schedule.ts header).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { learningRate } from '../../src/train/schedule';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-15 + 1e-12 * Math.abs(b), `${what}: ${a} ≠ ${b}`);

test('linear warmup reaches lr at step W, then each decay', () => {
  const base = { lr: 1e-3, warmupSteps: 4, steps: 12 };
  for (const schedule of ['constant', 'inverse_sqrt', 'cosine'] as const) {
    const s = { ...base, schedule };
    close(learningRate(s, 1), 2.5e-4, `${schedule} t=1`);
    close(learningRate(s, 2), 5e-4, `${schedule} t=2`);
    close(learningRate(s, 4), 1e-3, `${schedule} t=4`);
  }
  // constant after the warmup
  close(learningRate({ ...base, schedule: 'constant' }, 9), 1e-3, 'constant t=9');
  // inverse_sqrt: lr·√(4 / t) — t = 5 → √0.8, t = 16 → 0.5
  close(learningRate({ ...base, schedule: 'inverse_sqrt' }, 5), 1e-3 * Math.sqrt(0.8), 'inv-sqrt t=5');
  close(learningRate({ ...base, schedule: 'inverse_sqrt' }, 16), 5e-4, 'inv-sqrt t=16');
  // cosine over steps − W = 8: t = 5 → lr (u−1 = 0), t = 9 → lr/2 (p = 1/2), t = 12 → lr·½(1 + cos(7π/8))
  close(learningRate({ ...base, schedule: 'cosine' }, 5), 1e-3, 'cosine t=5');
  close(learningRate({ ...base, schedule: 'cosine' }, 9), 5e-4, 'cosine t=9');
  close(learningRate({ ...base, schedule: 'cosine' }, 12), 1e-3 * 0.5 * (1 + Math.cos((7 * Math.PI) / 8)), 'cosine t=12');
  assert.ok(learningRate({ ...base, schedule: 'cosine' }, 12) > 0, 'the last step is not wasted at lr 0');
});

test('no warmup: inverse_sqrt is lr/√t, cosine starts at lr; bad steps throw', () => {
  const s = { lr: 2e-3, warmupSteps: 0, steps: 5 };
  close(learningRate({ ...s, schedule: 'inverse_sqrt' }, 1), 2e-3, 'inv-sqrt t=1');
  close(learningRate({ ...s, schedule: 'inverse_sqrt' }, 4), 1e-3, 'inv-sqrt t=4 (τ = 1: lr/√t)');
  close(learningRate({ ...s, schedule: 'cosine' }, 1), 2e-3, 'cosine t=1');
  close(learningRate({ ...s, schedule: 'constant' }, 3), 2e-3, 'constant');
  assert.throws(() => learningRate({ ...s, schedule: 'constant' }, 0), /step 0 must be an integer ≥ 1/);
});

/**
 * β as a live control (issue 17, item 3) on the real Whisper base (Dawn, gl-compat): one demo clip with a
 * shortened transcript, BLoRA r 2 on q, v of the last decoder layer, B = 1, 3 steps (as test/train/faults.test.ts).
 *   1. a run starts with betaSchedule [{1: 1e-4}]; after step 2 β is changed live (Trainer.setBeta(1), what the
 *      studio's worker does) → the entry {3: 1}; the records carry β 1e-4, 1e-4, 1 and loss = CE + β·KL;
 *   2. the checkpoint of step 2 (taken after the change, through its bytes) restored into a trainer built from
 *      the START config (no entry at 3: what the worker's rebuild passes) keeps the schedule: its step 3 uses
 *      β 1 and gives the same record and θ bits as the uninterrupted run;
 *   3. β reaches the GPU: step 3 again from the same checkpoint with β set back to 1e-4 — the summed gradients
 *      differ by exactly (1 − 1e-4)·∂KL/∂θ (float64 CPU reference src/engine/reference/kl.ts), nothing else;
 *   4. the PyTorch backend (tools/blora_train.py) runs an experiment.json with betaSchedule [{2: 1}] (2 steps, 1 clip):
 *      its records carry β 1e-4, 1, loss = CE + β·KL, the step-2 gradient norm is the KL's (≈ ‖∂KL‖ above), and
 *      its step-1 KL (same seed: the engine's init) equals the engine's.
 * Measured (2 cores, gl-compat, beside a full test run): see the log line at the end.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { klRef } from '../../src/engine/reference/kl';
import { betaAt, type TrainRecord } from '../../src/train/config';
import type { PreparedUtterance } from '../../src/train/data';
import { decodeCheckpoint, encodeCheckpoint, Trainer, type TrainerOptions } from '../../src/train/trainer';
import { DEMO_DIR, PYTHON, REPO } from '../support/env';
import { experiment, prepare, rowsOf, trainEnv, type TrainEnv } from './support';

const cfg = experiment({
  method: 'blora',
  adapter: {
    targets: ['self_attn.q_proj', 'self_attn.v_proj'],
    layers: [5],
    r: 2,
    alpha: 4,
    dropout: 0,
    estimator: 'flipout',
    beta: 1e-4,
    sigmaPrior: 0.01,
    bayesianAOnly: false,
    betaSchedule: [{ step: 1, beta: 1e-4 }],
  },
  optim: { lr: 1e-3, warmupSteps: 0, schedule: 'constant', steps: 3, batchSize: 1, gradAccum: 1, maxGradNorm: 1 },
  seed: 3,
  data: { train: DEMO_DIR, eval: [] },
});

const bitsEqual = (a: Float32Array, b: Float32Array) =>
  Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
let env: TrainEnv;
/** the engine's records and ‖∂KL/∂θ‖ at step 3 (test 1), for the torch comparison (test 2) */
let engineRecs: TrainRecord[] = [];
let klGradNorm = 0;
let utts: PreparedUtterance[];
const t0 = performance.now();
before(async () => {
  env = await trainEnv('train-beta');
  const r = await rowsOf(DEMO_DIR, ['es_02']);
  utts = await prepare(env, DEMO_DIR, [{ ...r[0], text: '¿Me puedes pasar la sal?' }]);
});
after(async () => {
  await env?.destroy();
  console.log(`  beta-live: ${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
});

const trainer = (records: TrainRecord[], opts: TrainerOptions = {}) =>
  Trainer.create(env, structuredClone(cfg), { train: utts, eval: [] }, { onRecord: (r) => r.kind === 'train' && records.push(r) }, opts);

test('β changed live at step 3: records, loss, the checkpoint keeps the schedule, the GPU uses it', async () => {
  const grads = new Map<string, Float32Array>();
  const recs: TrainRecord[] = [];
  const a = await trainer(recs, { inspectGrads: (g, s) => grads.set(`a${s}`, new Float32Array(g)) });
  await a.trainStep();
  await a.trainStep();
  const change = a.setBeta(1);
  assert.deepEqual(change.entry, { step: 3, beta: 1 });
  assert.deepEqual(a.config.adapter.betaSchedule, [
    { step: 1, beta: 1e-4 },
    { step: 3, beta: 1 },
  ]);
  assert.deepEqual(cfg.adapter.betaSchedule, [{ step: 1, beta: 1e-4 }], "the caller's config is not changed");
  const ckBytes = encodeCheckpoint(await a.checkpoint());
  const theta2 = new Float32Array(await a.readTheta());
  await a.trainStep();
  const thetaA = new Float32Array(await a.readTheta());
  a.destroy();
  assert.deepEqual(
    recs.map((r) => [r.step, r.beta]),
    [
      [1, 1e-4],
      [2, 1e-4],
      [3, 1],
    ],
  );
  for (const r of recs) {
    assert.equal(r.loss, r.ce + r.beta * r.kl, `step ${r.step}: loss = CE + β·KL`);
    assert.ok(r.kl > 0 && Number.isFinite(r.ce));
  }
  engineRecs = recs;
  console.log(
    `  records: ${recs.map((r) => `step ${r.step} β ${r.beta} ce ${r.ce.toFixed(4)} kl ${r.kl.toExponential(3)} loss ${r.loss.toFixed(4)}`).join('; ')}`,
  );

  // the checkpoint of step 2 into a trainer of the start config (no entry at step 3)
  const ck = decodeCheckpoint(ckBytes);
  assert.equal(ck.step, 2);
  assert.deepEqual(ck.config.adapter.betaSchedule, [
    { step: 1, beta: 1e-4 },
    { step: 3, beta: 1 },
  ]);
  const recsB: TrainRecord[] = [];
  const b = await trainer(recsB, { inspectGrads: (g, s) => grads.set(`b${s}-${recsB.length}`, new Float32Array(g)) });
  try {
    b.restore(ck);
    assert.deepEqual(b.config.adapter.betaSchedule, [
      { step: 1, beta: 1e-4 },
      { step: 3, beta: 1 },
    ]);
    assert.equal(betaAt(b.config, 3), 1);
    await b.trainStep();
    assert.deepEqual(
      recsB.map((r) => [r.step, r.beta]),
      [[3, 1]],
      'the resumed step 3 uses β 1',
    );
    assert.deepEqual({ ...recsB[0], tokensPerSec: 0, elapsedS: 0 }, { ...recs[2], tokensPerSec: 0, elapsedS: 0 });
    assert.ok(bitsEqual(await b.readTheta(), thetaA), 'the resumed run differs from the uninterrupted one');
    assert.ok(bitsEqual(grads.get('b3-0')!, grads.get('a3')!));

    // step 3 again from the same checkpoint, β set back to 1e-4: only the KL gradient changes, by (1 − 1e-4)·∂KL
    b.restore(ck);
    assert.deepEqual(b.setBeta(1e-4).entry, { step: 3, beta: 1e-4 });
    await b.trainStep();
    assert.equal(recsB[1].beta, 1e-4);
    assert.equal(recsB[1].ce, recs[2].ce, 'same noise and data: same CE');
    const g1 = grads.get('a3')!,
      g2 = grads.get('b3-1')!;
    const want = new Float64Array(g1.length); // (1 − 1e-4)·∂KL/∂θ at θ of step 2
    for (const f of b.plan.klFactors) {
      const r = klRef(theta2.subarray(f.muOff, f.muOff + f.n), theta2.subarray(f.rhoOff, f.rhoOff + f.n), cfg.adapter.sigmaPrior);
      for (let i = 0; i < f.n; i++) {
        want[f.muOff + i] += (1 - 1e-4) * r.dmu[i];
        want[f.rhoOff + i] += (1 - 1e-4) * r.drho[i];
      }
    }
    let num = 0,
      den = 0,
      maxG = 0;
    for (let i = 0; i < g1.length; i++) {
      num += (g1[i] - g2[i] - want[i]) ** 2;
      den += want[i] ** 2;
      maxG = Math.max(maxG, Math.abs(g1[i]));
    }
    const rel = Math.sqrt(num / den);
    klGradNorm = Math.sqrt(den) / (1 - 1e-4);
    console.log(
      `  grad(β 1) − grad(β 1e-4) vs (1 − 1e-4)·∂KL/∂θ: rel L2 ${rel.toExponential(2)} (‖∂KL‖ ${Math.sqrt(den).toExponential(2)}, max |g| ${maxG.toExponential(2)})`,
    );
    assert.ok(den > 0 && rel < 1e-3, `rel ${rel}`);
  } finally {
    b.destroy();
  }
});

test('the PyTorch backend follows the same schedule', { skip: !existsSync(PYTHON) && `no Python venv at ${PYTHON}` }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'blora-beta-torch-'));
  try {
    const exp = {
      ...cfg,
      name: 'beta-torch',
      data: { train: DEMO_DIR, trainLimit: 1, eval: [] },
      adapter: { ...cfg.adapter, betaSchedule: [{ step: 2, beta: 1 }] },
      optim: { ...cfg.optim, steps: 2 },
    };
    writeFileSync(join(dir, 'experiment.json'), JSON.stringify(exp));
    const t = performance.now();
    const r = spawnSync(
      PYTHON,
      [
        join(REPO, 'tools/blora_train.py'),
        '--config',
        join(dir, 'experiment.json'),
        '--out',
        join(dir, 'out'),
        '--threads',
        '1',
        '--no-eval-before',
      ],
      { encoding: 'utf8', timeout: 240_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const recs = readFileSync(join(dir, 'out/metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as TrainRecord)
      .filter((x) => x.kind === 'train');
    console.log(
      `  torch (${((performance.now() - t) / 1000).toFixed(1)} s): ${recs.map((x) => `step ${x.step} β ${x.beta} kl ${x.kl.toFixed(4)} |g| ${x.gradNorm.toFixed(4)}`).join('; ')}`,
    );
    assert.deepEqual(
      recs.map((x) => [x.step, x.beta]),
      [
        [1, 1e-4],
        [2, 1],
      ],
    );
    for (const x of recs)
      assert.ok(Math.abs(x.loss - (x.ce + x.beta * x.kl)) <= 1e-9 * Math.abs(x.loss), `step ${x.step}: loss = CE + β·KL`);
    if (engineRecs.length) {
      assert.ok(
        Math.abs(recs[0].kl - engineRecs[0].kl) <= 1e-4 * engineRecs[0].kl,
        `KL at step 1: torch ${recs[0].kl}, engine ${engineRecs[0].kl}`,
      );
      // with β 1 the step's gradient is mostly β·∂KL (the CE's is ~0.05 here)
      assert.ok(
        Math.abs(recs[1].gradNorm - klGradNorm) <= 0.05 * klGradNorm,
        `|g| at step 2: torch ${recs[1].gradNorm}, ‖∂KL‖ of the engine ${klGradNorm}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

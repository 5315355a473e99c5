// SNR pruning (src/export/prune.ts) on hand-set values: which μ go to 0, that ρ and deterministic factors
// are untouched, and that the input theta is not modified.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moduleTensors, planAdapters } from '../../src/engine/adapters';
import { pruneBySnr } from '../../src/export/prune';

const dims = { L: 1, C: 4, F: 8, H: 1, D: 4, V: 10, P: 8 } as never;
const softplusInv = (s: number) => Math.log(Math.expm1(s));

test('BLoRA: μ with |μ|/σ below the threshold become 0, the rest and every ρ stay', () => {
  const plan = planAdapters(dims, { kind: 'blora', r: 1, alpha: 1, dropout: 0, seed: 1, targets: ['self_attn.q_proj'] });
  const theta = new Float32Array(plan.size);
  const t = Object.fromEntries(moduleTensors(plan, plan.modules[0], theta).map((x) => [x.key, x.data]));
  // σ = 0.01 everywhere (ρ = softplus⁻¹(0.01)); μ_A SNRs 0.5, 1.5, 3, 0 (already 0); μ_B SNRs 0.9, 1.1, 10, 2
  t.rhoA.fill(softplusInv(0.01));
  t.rhoB.fill(softplusInv(0.01));
  t.muA.set([0.005, -0.015, 0.03, 0]);
  t.muB.set([-0.009, 0.011, 0.1, -0.02]);
  const before = theta.slice();
  const p = pruneBySnr(plan, theta, 1);
  assert.deepEqual(theta, before, 'input untouched');
  const q = Object.fromEntries(moduleTensors(plan, plan.modules[0], p.theta).map((x) => [x.key, x.data]));
  assert.deepEqual([...q.muA], [0, Math.fround(-0.015), Math.fround(0.03), 0]);
  assert.deepEqual([...q.muB], [0, Math.fround(0.011), Math.fround(0.1), Math.fround(-0.02)]);
  assert.deepEqual(q.rhoA, t.rhoA);
  assert.deepEqual(q.rhoB, t.rhoB);
  assert.equal(p.elements, 8);
  assert.equal(p.pruned, 2 / 8, 'the μ that was already 0 is not counted as pruned');
  assert.deepEqual(pruneBySnr(plan, theta, 0).theta, theta, 'threshold 0 prunes nothing');
});

test('deterministic factors have no σ and are kept (LoRA; B with bayesianAOnly)', () => {
  const lora = planAdapters(dims, { kind: 'lora', r: 1, alpha: 1, dropout: 0, seed: 1, targets: ['self_attn.q_proj'] });
  const th = new Float32Array(lora.size).fill(1e-6);
  assert.deepEqual(pruneBySnr(lora, th, 100).theta, th);
  const aOnly = planAdapters(dims, {
    kind: 'blora',
    r: 1,
    alpha: 1,
    dropout: 0,
    seed: 1,
    targets: ['self_attn.q_proj'],
    bayesianAOnly: true,
  });
  const th2 = new Float32Array(aOnly.size);
  const t = Object.fromEntries(moduleTensors(aOnly, aOnly.modules[0], th2).map((x) => [x.key, x.data]));
  t.rhoA.fill(softplusInv(1));
  t.muA.fill(0.5);
  t.B.fill(1e-9);
  const q = Object.fromEntries(moduleTensors(aOnly, aOnly.modules[0], pruneBySnr(aOnly, th2, 1).theta).map((x) => [x.key, x.data]));
  assert.ok(
    q.muA.every((v) => v === 0),
    'SNR 0.5 < 1',
  );
  assert.ok(
    q.B.every((v) => v === Math.fround(1e-9)),
    'deterministic B kept',
  );
});

test('very negative ρ: σ = exp(ρ), so a tiny μ can have a huge SNR', () => {
  const plan = planAdapters(dims, { kind: 'blora', r: 1, alpha: 1, dropout: 0, seed: 1, targets: ['self_attn.q_proj'] });
  const theta = new Float32Array(plan.size);
  const t = Object.fromEntries(moduleTensors(plan, plan.modules[0], theta).map((x) => [x.key, x.data]));
  t.rhoB.fill(-50); // σ_B = e⁻⁵⁰ ≈ 2e-22 (the init of B)
  t.muB.fill(1e-10);
  t.rhoA.fill(softplusInv(0.01));
  const q = Object.fromEntries(moduleTensors(plan, plan.modules[0], pruneBySnr(plan, theta, 1e6).theta).map((x) => [x.key, x.data]));
  assert.ok(q.muB.every((v) => v === Math.fround(1e-10)));
});

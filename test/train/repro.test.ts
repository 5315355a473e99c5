/**
 * Reproducibility of the training loop on the real Whisper base (src/train/trainer.ts):
 *   1. BLoRA flipout, 2 optimizer steps of gradAccum 2 (B = 1), twice with the same seed → identical
 *      theta bits (init by seed, data order by seed, Philox noise keyed by (seed, step)).
 *   2. checkpoint after step 1 → bytes → restore into another Trainer → step 2 → identical bits.
 *   3. LoRA without dropout: one step of gradAccum 2 at B = 1 vs one step at B = 2 on the same two
 *      utterances (equal token counts, so the mean of micro-batch means = the batch mean): the summed
 *      gradient agrees within f32 rounding — required ‖g₁ − g₂‖/‖g₂‖ ≤ 1e-5 (the two differ only in
 *      the order the token rows are summed into the adapter gradients) and theta after the step within
 *      1e-6 relative.
 * Two demo clips with shortened transcripts (tiny S), adapters on q, v of the last two decoder layers
 * (the backward stops there). gl-compat unless BLORA_WEBGPU_BACKEND is set. Budget ≤ 3 min — not met
 * here: measured 37 min at load average ~18 on the 2 cores (prepare 155 s, one step of 2 micro-batches 217–280 s).
 * Measured: accumulated vs big batch gradient rel 7.7e-8 (step 1), 1.2e-6 (step 2); theta rel 4.8e-7.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DEMO_DIR } from '../support/env';
import { decodeCheckpoint, encodeCheckpoint, Trainer } from '../../src/train/trainer';
import { initAdapterTheta } from '../../src/engine/adapters';
import { tokenizeRow, type PreparedUtterance } from '../../src/train/data';
import type { Utterance } from '../../src/data/manifest';
import { experiment, prepare, rowsOf, trainEnv, type TrainEnv } from './support';

let env: TrainEnv;
let utts: PreparedUtterance[];
const data = () => ({ train: utts, eval: [] });
const noop = { onRecord: () => {} };

const blora = experiment({
  method: 'blora',
  adapter: {
    targets: ['self_attn.q_proj', 'self_attn.v_proj'],
    layers: [4, 5],
    r: 4,
    alpha: 8,
    dropout: 0.05,
    estimator: 'flipout',
    beta: 1e-2,
    sigmaPrior: 0.01,
    bayesianAOnly: false,
  },
  optim: { lr: 1e-2, warmupSteps: 1, schedule: 'cosine', steps: 2, batchSize: 1, gradAccum: 2, maxGradNorm: 1 },
  seed: 7,
  data: { train: DEMO_DIR, eval: [] },
});

const bitsEqual = (a: Float32Array, b: Float32Array) =>
  Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

before(async () => {
  env = await trainEnv('train-repro');
  // Shortened transcripts of equal token length (tiny S; equal counts for check 3).
  const rows = await rowsOf(DEMO_DIR, ['es_03', 'es_04']);
  rows[0] = { ...rows[0], text: 'Mi madre cocina' };
  const len = (text: string, row: Utterance) => {
    const t = tokenizeRow({ ...row, text }, env.assets);
    return 'seq' in t ? t.seq.length : -1;
  };
  const words = rows[1].text.split(' ');
  const k = words.findIndex((_, i) => len(words.slice(0, i + 1).join(' '), rows[1]) === len(rows[0].text, rows[0]));
  assert.ok(k >= 0, 'no prefix of es_04 with the token count of the es_03 prefix');
  rows[1] = { ...rows[1], text: words.slice(0, k + 1).join(' ') };
  utts = await prepare(env, DEMO_DIR, rows);
  assert.equal(utts[0].seq.length, utts[1].seq.length, 'check 3 needs equal token counts');
});
after(() => env?.destroy());

test('same seed → identical theta bits; checkpoint + restore continues bit for bit', async () => {
  const t0 = performance.now();
  const run = async () => {
    const tr = await Trainer.create(env, blora, data(), noop);
    const t1 = performance.now();
    const recs = [await tr.trainStep()];
    console.log(`  step 1 (2 micro-batches B=1 S=${tr.S}) in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    const ck = await tr.checkpoint();
    recs.push(await tr.trainStep());
    const theta = new Float32Array(await tr.readTheta());
    tr.destroy();
    return { recs, ck, theta };
  };
  const a = await run();
  const b = await run();
  console.log(
    `run: ce ${a.recs.map((r) => r.ce.toFixed(6))} kl ${a.recs.map((r) => r.kl.toExponential(4))} |g| ${a.recs.map((r) => r.gradNorm.toFixed(5))} lr ${a.recs.map((r) => r.lr)}`,
  );
  assert.ok(
    a.recs.every((r) => r.tokens === 2 * (utts[0].seq.length - 1)),
    'tokens = both micro-batches',
  );
  assert.deepEqual(
    b.recs.map((r) => [r.ce, r.kl, r.gradNorm]),
    a.recs.map((r) => [r.ce, r.kl, r.gradNorm]),
  );
  assert.ok(bitsEqual(a.theta, b.theta), 'two runs with the same seed differ');
  assert.ok(!bitsEqual(a.ck.theta, a.theta), 'step 2 changed nothing?');

  // checkpoint → bytes → a fresh Trainer → step 2
  const ck = decodeCheckpoint(encodeCheckpoint(a.ck));
  assert.equal(ck.step, 1);
  const tr = await Trainer.create(env, blora, data(), noop);
  tr.restore(ck);
  const r2 = await tr.trainStep();
  const theta = await tr.readTheta();
  tr.destroy();
  assert.equal(r2.step, 2);
  assert.equal(r2.ce, a.recs[1].ce);
  assert.ok(bitsEqual(theta, a.theta), 'resumed run differs from the uninterrupted one');
  // another seed really is another run (its init already differs): the Trainer of seed 8 starts from the spec
  // init of seed 8, which differs from seed 7's (one Trainer instead of two: suite time)
  const tr3 = await Trainer.create(env, { ...blora, seed: 8 }, data(), noop);
  const theta3 = new Float32Array(await tr3.readTheta());
  const plan = tr3.plan;
  tr3.destroy();
  assert.ok(bitsEqual(theta3, initAdapterTheta(plan, 8)), 'the Trainer of seed 8 does not start from the init of seed 8');
  assert.ok(!bitsEqual(theta3, initAdapterTheta(plan, 7)), 'seed 8 initialised as seed 7');
  console.log(`repro checks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});

test('gradAccum 2 at B = 1 equals one step at B = 2 within f32 rounding', async () => {
  const lora = (batchSize: number, gradAccum: number) =>
    experiment({
      ...blora,
      method: 'lora',
      adapter: { ...blora.adapter, dropout: 0 },
      optim: { ...blora.optim, steps: 1, batchSize, gradAccum, warmupSteps: 0, weightDecay: 0 },
    });
  // LoRA's B starts at 0 (so dA = 0): take one step first on each, then compare the second step's gradient.
  const run = async (batchSize: number, gradAccum: number) => {
    const grads: Float32Array[] = [];
    const cfg = lora(batchSize, gradAccum);
    cfg.optim.steps = 2;
    const tr = await Trainer.create(env, cfg, data(), noop, { inspectGrads: (g) => grads.push(g) });
    const recs = [await tr.trainStep(), await tr.trainStep()];
    const theta = new Float32Array(await tr.readTheta());
    tr.destroy();
    return { grads, recs, theta };
  };
  const acc = await run(1, 2);
  const big = await run(2, 1);
  const rel = (x: Float32Array, y: Float32Array) => {
    let d = 0,
      n = 0;
    for (let i = 0; i < x.length; i++) ((d += (x[i] - y[i]) ** 2), (n += y[i] ** 2));
    return Math.sqrt(d / n);
  };
  const g1 = rel(acc.grads[0], big.grads[0]);
  const g2 = rel(acc.grads[1], big.grads[1]);
  const th = rel(acc.theta, big.theta);
  console.log(
    `accumulated vs big batch: grad rel step 1 ${g1.toExponential(2)}, step 2 ${g2.toExponential(2)}; theta rel ${th.toExponential(2)}; ce ${acc.recs.map((r) => r.ce)} vs ${big.recs.map((r) => r.ce)}`,
  );
  assert.ok(g1 <= 1e-5 && g2 <= 1e-5, `gradients differ by ${g1}, ${g2}`);
  assert.ok(th <= 1e-6, `theta differs by ${th}`);
  assert.ok(Math.abs(acc.recs[1].ce - big.recs[1].ce) <= 1e-6 * big.recs[1].ce);
});

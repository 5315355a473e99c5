/**
 * Faults during training (issue 16, item 3), Node side — the trainer and the recovery loop the CLI and the
 * studio's worker share (src/train/trainer.ts trainWithRecovery), the CLI's two checkpoint generations
 * (src/cli/checkpoints.ts):
 *   1. checkpoint bytes: a flipped byte (theta, the JSON state) or a truncated file is refused with
 *      CheckpointCorruptError, and the previous generation is used; a checkpoint from before the checksum still reads;
 *      a full disk (ENOSPC) while the CLI writes a checkpoint says what to free and damages neither generation.
 *   2. a NaN injected into the loss at step 2 (TrainerOptions.testFaults, off unless a test sets it): the run
 *      stops with TrainingDivergedError, and the newest checkpoint on disk is the good one of step 1.
 *   3. device loss mid-step (device.destroy() between backward and the loss read-back of step 2, real Whisper
 *      base on Dawn): the loop rebuilds on a new device, restores the checkpoint of step 1, and finishes with
 *      every record 1…3 once and the same theta bits as an uninterrupted run (last: it destroys the file's device).
 * One demo clip with a shortened transcript, BLoRA r 2 on q, v of the last decoder layer, B = 1, 3 steps.
 * Measured (2 cores, gl-compat, other test runs beside it, load ~10): 155 s — setup 17 s (checksums,
 * ENOSPC < 1 s), NaN 35 s, device loss 100 s (reference 3 steps 30 s, then the faulty run 70 s incl. a
 * second device, weights and encoding of 25 s).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RunFolderCheckpoints } from '../../src/cli/checkpoints';
import { writeSafetensors } from '../../src/model/safetensors';
import type { TrainRecord } from '../../src/train/config';
import type { PreparedUtterance } from '../../src/train/data';
import {
  type Checkpoint,
  CheckpointCorruptError,
  decodeCheckpoint,
  encodeCheckpoint,
  pickCheckpoint,
  Trainer,
  TrainingDivergedError,
  trainWithRecovery,
  type TrainerOptions,
} from '../../src/train/trainer';
import { DEMO_DIR } from '../support/env';
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
    beta: 1e-3,
    sigmaPrior: 0.01,
    bayesianAOnly: false,
  },
  optim: { lr: 1e-3, warmupSteps: 0, schedule: 'constant', steps: 3, batchSize: 1, gradAccum: 1, maxGradNorm: 1 },
  seed: 3,
  data: { train: DEMO_DIR, eval: [] },
});

const bitsEqual = (a: Float32Array, b: Float32Array) =>
  Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'blora-faults-'));
  dirs.push(d);
  return d;
};

function syntheticCheckpoint(step: number, n = 64): Checkpoint {
  const f = (k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + step));
  return {
    format: 'blora-studio-checkpoint',
    version: 1,
    step,
    theta: f(1),
    m: f(2),
    v: f(3).map(Math.abs),
    sampler: { epoch: 0, pos: step } as never,
    config: cfg,
    elapsedS: step,
  };
}

test('checkpoint checksum: a flipped byte or a truncated file is detected, the previous generation is used', async () => {
  const good = encodeCheckpoint(syntheticCheckpoint(1));
  assert.equal(decodeCheckpoint(good).step, 1);
  const flipped = good.slice();
  flipped[flipped.length - 10] ^= 0x40; // inside v (the last tensor)
  assert.throws(
    () => decodeCheckpoint(flipped, 'flipped'),
    (e) => e instanceof CheckpointCorruptError && /flipped: the checkpoint is damaged \(checksum/.test(e.message),
  );
  const json = good.slice();
  const at = Buffer.from(json).indexOf('"elapsedS":1');
  json[at + 11] = '7'.charCodeAt(0); // the JSON state, same length
  assert.throws(() => decodeCheckpoint(json), CheckpointCorruptError);
  assert.throws(
    () => decodeCheckpoint(good.subarray(0, good.length - 100), 'cut'),
    (e) => e instanceof CheckpointCorruptError && /cut: the checkpoint is damaged/.test(e.message),
  );
  assert.throws(() => decodeCheckpoint(good.subarray(0, 5)), CheckpointCorruptError);
  // a file written before the checksum (no "checksum" metadata) still reads
  const { theta, m, v, ...rest } = syntheticCheckpoint(4);
  const v1 = writeSafetensors(
    { theta: { shape: [64], data: theta }, m: { shape: [64], data: m }, v: { shape: [64], data: v } },
    { checkpoint: JSON.stringify(rest) },
  );
  assert.equal(decodeCheckpoint(v1).step, 4);
  // generations: the damaged newest is skipped with its reason
  const got = pickCheckpoint([
    { name: 'new', bytes: flipped },
    { name: 'old', bytes: good },
  ]);
  assert.equal(got?.name, 'old');
  assert.equal(got?.skipped.length, 1);
  assert.equal(
    pickCheckpoint([
      { name: 'new', bytes: flipped },
      { name: 'old', bytes: undefined },
    ]),
    null,
  );

  // the CLI's run folder: two generations, a torn newest falls back to the previous one
  const dir = tempDir();
  const logs: string[] = [];
  const store = new RunFolderCheckpoints(dir, (s) => logs.push(s));
  assert.equal(await store.load(), null);
  await store.save(syntheticCheckpoint(1));
  await store.save(syntheticCheckpoint(2));
  assert.equal((await store.load())?.step, 2);
  const bytes = readFileSync(store.newest);
  writeFileSync(store.newest, bytes.subarray(0, bytes.length >> 1)); // truncated
  assert.equal((await store.load())?.step, 1);
  assert.ok(
    logs.some((l) => /checkpoint\.safetensors: the checkpoint is damaged/.test(l)) &&
      logs.some((l) => /using the previous checkpoint .*step 1/.test(l)),
    logs.join('\n'),
  );

  // a full disk (the temporary file is a link to /dev/full: ENOSPC): the message says what to free, both
  // generations stay as they were
  await store.save(syntheticCheckpoint(2));
  await store.save(syntheticCheckpoint(3));
  symlinkSync('/dev/full', `${store.newest}.tmp`);
  await assert.rejects(
    store.save(syntheticCheckpoint(4)),
    /the disk is full writing the checkpoint of step 4 .*free space there .*the checkpoints already in .* are intact/,
  );
  assert.equal((await store.load())?.step, 3);
  assert.equal(decodeCheckpoint(readFileSync(store.previous)).step, 2);
});

let env: TrainEnv;
let utts: PreparedUtterance[];
const rows = async () => {
  const r = await rowsOf(DEMO_DIR, ['es_02']);
  return [{ ...r[0], text: '¿Me puedes pasar la sal?' }];
};
before(async () => {
  env = await trainEnv('train-faults');
  utts = await prepare(env, DEMO_DIR, await rows());
});
after(async () => {
  await env?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function trainer(e: TrainEnv, u: PreparedUtterance[], records: TrainRecord[], opts: TrainerOptions = {}): Promise<Trainer> {
  return Trainer.create(e, cfg, { train: u, eval: [] }, { onRecord: (r) => r.kind === 'train' && records.push(r) }, opts);
}

test('eval.select dev-ce: dev CE every step, the adapter of the lowest comes back (lr 3 drives the CE up)', async () => {
  // issue 14 item 2 (the authors' load_best_model_at_end on eval_loss): dev = the clip, posterior means
  const c = { ...cfg, optim: { ...cfg.optim, lr: 3 }, eval: { ...cfg.eval, devInterval: 1, select: 'dev-ce' as const } };
  const dev: { step: number; ce: number }[] = [];
  const t = await Trainer.create(env, c, { train: utts, eval: [], dev: utts }, { onRecord: (r) => r.kind === 'dev' && dev.push(r) });
  const theta0 = await t.readTheta();
  await t.devLoss();
  for (let i = 0; i < 3; i++) {
    await t.trainStep();
    await t.devLoss();
  }
  console.log(`dev CE by step: ${dev.map((d) => `${d.step}: ${d.ce.toFixed(4)}`).join(', ')}`);
  assert.deepEqual(
    dev.map((d) => d.step),
    [0, 1, 2, 3],
  );
  assert.ok(dev.every((d) => Number.isFinite(d.ce) && d.ce > 0));
  assert.ok(dev[3].ce > dev[0].ce, 'lr 3 should make the dev CE worse than at the start');
  const best = dev.reduce((b, d) => (d.ce < b.ce ? d : b));
  assert.equal(t.selectAdapter(), best.step);
  assert.ok(bitsEqual((await t.checkpoint()).theta, await t.readTheta()), 'the checkpoint (export, Try it) holds the selected adapter');
  if (best.step === 0) assert.ok(bitsEqual(await t.readTheta(), theta0), 'step 0 selected: the initial adapter back');
  // the engine holds the selected adapter: its dev CE again, bit for bit
  const again = await t.devLoss();
  assert.equal(again!.ce, best.ce);
  t.destroy();
});

test('NaN in the loss: the run stops, the last good checkpoint is kept', async () => {
  const dir = tempDir();
  const store = new RunFolderCheckpoints(dir);
  const recs: TrainRecord[] = [];
  const t = await trainer(env, utts, recs, { testFaults: { nanLossAtStep: 2 } });
  const step1: Float32Array[] = [];
  await assert.rejects(
    trainWithRecovery(t, cfg.optim.steps, {
      save: async (ck) => {
        step1.push(new Float32Array(ck.theta));
        await store.save(ck);
      },
      load: () => store.load(),
      rebuild: () => Promise.reject(new Error('no device loss expected')),
      log: () => {},
    }),
    (e) =>
      e instanceof TrainingDivergedError &&
      e.step === 2 &&
      e.lastGood.step === 1 &&
      /step 2: the cross-entropy is not finite/.test(e.message),
  );
  assert.deepEqual(
    recs.map((r) => r.step),
    [1],
    'no record of the diverged step',
  );
  assert.equal(t.step, 1, 'rolled back');
  const ck = await store.load();
  assert.equal(ck?.step, 1);
  assert.ok(bitsEqual(ck!.theta, step1[0]) && bitsEqual(ck!.theta, await t.readTheta()));
  assert.ok(ck!.theta.every(Number.isFinite));
  t.destroy();
});

test('device lost mid-step: resumes on a new device from the last checkpoint, every record once, same bits', async () => {
  const t0 = performance.now();
  // uninterrupted reference
  const refRecs: TrainRecord[] = [];
  const ref = await trainer(env, utts, refRecs);
  while (ref.step < cfg.optim.steps) await ref.trainStep();
  const refTheta = new Float32Array(await ref.readTheta());
  ref.destroy();
  console.log(`  reference: 3 steps in ${((performance.now() - t0) / 1000).toFixed(1)} s; ce ${refRecs.map((r) => r.ce.toFixed(5))}`);

  const dir = tempDir();
  const logs: string[] = [];
  const store = new RunFolderCheckpoints(dir, (s) => logs.push(s));
  const recs: TrainRecord[] = [];
  let destroyed = 0;
  const first = await trainer(env, utts, recs, {
    testFaults: { afterBackward: (step) => void (step === 2 && !destroyed++ && env.ctx.device.destroy()) },
  });
  let env2: TrainEnv | null = null;
  const t1 = performance.now();
  const { trainer: done, recoveries } = await trainWithRecovery(first, cfg.optim.steps, {
    save: (ck) => store.save(ck),
    load: () => store.load(),
    rebuild: async () => {
      // what the CLI does: a new device, the weights uploaded again, the data encoded into a new K/V cache
      env2 = await trainEnv('train-faults-2');
      return trainer(env2, await prepare(env2, DEMO_DIR, await rows()), recs);
    },
    onRecovered: (_t, r) => void recs.splice(0, recs.length, ...recs.filter((x) => x.step <= r.step)),
    log: (s) => logs.push(s),
  });
  try {
    console.log(`  with the device lost in step 2: ${((performance.now() - t1) / 1000).toFixed(1)} s; log:\n    ${logs.join('\n    ')}`);
    assert.equal(destroyed, 1);
    assert.equal(recoveries.length, 1);
    assert.equal(recoveries[0].step, 1, 'resumed from the checkpoint of step 1');
    assert.equal(recoveries[0].lostStep, 2);
    assert.match(
      recoveries[0].message,
      /GPU device was lost during step 2 \(destroyed.*resumed from the checkpoint at step 1 \(recovery 1 of at most 3\)/,
    );
    assert.deepEqual(
      recs.map((r) => r.step),
      [1, 2, 3],
      'every record once',
    );
    assert.deepEqual(
      recs.map((r) => r.ce),
      refRecs.map((r) => r.ce),
    );
    assert.ok(bitsEqual(await done.readTheta(), refTheta), 'the recovered run differs from the uninterrupted one');
    assert.equal((await store.load())?.step, 3);
  } finally {
    done.destroy();
    await (env2 as TrainEnv | null)?.destroy();
  }
});

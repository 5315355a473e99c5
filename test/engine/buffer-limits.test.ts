/**
 * No buffer over the limits (issue 13 item 3). WebGPU cannot request limits below the defaults, so the
 * runtime caps them itself (GpuRuntime.capBufferBytes): every buffer and binding is then planned as on a
 * device allowing 16 MiB (phones and integrated GPUs allow less than the 256 MiB default), and
 * GpuRuntime.upload/storage throw on a buffer over it, naming it. The one tensor over 16 MiB in a base
 * run at this batch is E (51,865 × 512 f32 = 106 MB), uploaded in row parts (vocab_tiles.ts uploadRowSplit).
 *  (a) kernels: embedding gather and logits + CE over a RowSplit E of small shapes, several parts and
 *      several tiles per part, against the same E in one buffer (embedding: bit-exact; CE: ≤ 1e-6 rel);
 *  (b) real Whisper base, capped at 16 MiB vs uncapped on the same device: E in 7 parts, no live buffer
 *      over 16 MiB, training-engine loss before/after one step (≤ 1e-6 relative) and greedy transcripts of
 *      two demo clips (token for token) unchanged; the memory plan at the cap says it fits.
 * Cost: ≈ 60 s alone (two copies of the base weights, 2 clips' cross K/V each, ~25 greedy steps twice).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { EncoderKvCache, WhisperDecoderEngine } from '../../src/engine/decoder';
import { WgslGreedyDecoder } from '../../src/engine/generate';
import type { AdapterConfig } from '../../src/engine/adapters';
import { planAdapters } from '../../src/engine/adapters';
import { prepareEmbedding } from '../../src/engine/kernels/embedding';
import { logitsCrossEntropy } from '../../src/engine/kernels/logits_ce';
import { uploadRowSplit } from '../../src/engine/kernels/vocab_tiles';
import { deviceLimits, formatPlan, planMemory } from '../../src/engine/memory-plan';
import type { DecoderWeights } from '../../src/engine/weights';
import { loadWhisperAssets, type WhisperAssets } from '../../src/model/whisperModel';
import { FsModelSource } from '../../src/model/source';
import { DEMO_DIR, MODEL_DIR } from '../support/env';
import { baselineOracle, readF32, type OracleClip } from '../support/oracle';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { loadDecoderWeights, lossAroundOneStep, tokenBatch, uniformTestTheta } from './decoder-parity-support';
import { randomF32 } from '../support/random';

const MiB = 2 ** 20;
const CAP = 16 * MiB;
const CLIPS = ['en_01', 'es_02'];
const ADAPTERS: AdapterConfig = { kind: 'lora', r: 4, alpha: 8, dropout: 0, seed: 3, targets: ['self_attn.q_proj', 'fc1'], layers: [0, 5] };

describe('no buffer over the limits: a 16 MiB cap', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;

  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('buffer-limits-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    rt?.capBufferBytes(null);
    await ctx?.destroy();
  });

  test('(a) embedding and logits + CE over E in row parts (several tiles per part) = one buffer', async () => {
    const V = 3001,
      C = 64,
      T = 5,
      NP = 8;
    const E = randomF32(V * C, 1),
      P = randomF32(NP * C, 2),
      H = randomF32(T * C, 3);
    const tokens = new Uint32Array([0, 255, 256, 2999, 3000]);
    const positions = new Uint32Array([0, 1, 2, 3, 7]);
    const targets = new Int32Array([3000, 7, 256, 1500, -100]);
    // one buffer, binding tiles of 100 rows
    const opts = { maxBindingBytes: 100 * C * 4 };
    const whole = rt.upload('limits-test:E whole', E);
    const tok = rt.upload('limits-test:tokens', tokens),
      pos = rt.upload('limits-test:positions', positions),
      p = rt.upload('limits-test:P', P);
    const x1 = rt.storage('limits-test:x1', T * C * 4),
      x2 = rt.storage('limits-test:x2', T * C * 4);
    // row parts of ≤ 1024 rows each (the cap), tiles of 100 rows inside them
    rt.capBufferBytes(1024 * C * 4);
    const split = uploadRowSplit(rt, 'limits-test:E split', E, V, C, 'f32');
    try {
      assert.deepEqual(
        split.parts.map((q) => [q.r0, q.rows]),
        [
          [0, 1024],
          [1024, 1024],
          [2048, 953],
        ],
      );
      const a = await prepareEmbedding(
        rt,
        { T, C, V, NP },
        { tokens: tok, positions: pos, E: whole, P: p, x: x1 },
        { ...opts, label: 'limits-test:embedding whole' },
      );
      const b = await prepareEmbedding(
        rt,
        { T, C, V, NP },
        { tokens: tok, positions: pos, E: split, P: p, x: x2 },
        { ...opts, label: 'limits-test:embedding split' },
      );
      assert.equal(b.tiles.length, 11 + 11 + 10);
      assert.ok(
        b.tiles.every((t) => split.parts.some((q) => q.buffer === t.buffer && t.v0 >= q.r0 && t.v0 + t.rows <= q.r0 + q.rows)),
        'a tile crosses a part',
      );
      a.run();
      b.run();
      assert.deepEqual(await rt.readF32(x2, T * C), await rt.readF32(x1, T * C), 'embedding: split vs whole');
      a.destroy();
      b.destroy();
      rt.capBufferBytes(null);
      const ce1 = await logitsCrossEntropy(rt, H, E, targets, { T, C, V }, { ...opts, withGrad: true, label: 'limits-test:ce whole' });
      rt.capBufferBytes(1024 * C * 4);
      const ce2 = await logitsCrossEntropy(
        rt,
        H,
        E,
        targets,
        { T, C, V },
        { ...opts, withGrad: true, rowParts: true, label: 'limits-test:ce split' },
      );
      console.log(`CE whole ${ce1.loss} (${ce1.tiles.length} tiles) vs split ${ce2.loss} (${ce2.tiles.length} tiles)`);
      assert.equal(ce2.tiles.length, 32);
      assert.ok(Math.abs(ce2.loss - ce1.loss) <= 1e-6 * Math.abs(ce1.loss), `CE: split ${ce2.loss} vs whole ${ce1.loss}`);
      assert.deepEqual(ce2.argmax, ce1.argmax);
      const dmax = ce1.dh!.reduce((m, v, i) => Math.max(m, Math.abs(v - ce2.dh![i])), 0);
      assert.ok(dmax <= 1e-6, `dH: max |split − whole| ${dmax}`);
      assert.throws(
        () => rt.storage('limits-test:too big', 1024 * C * 4 + 4),
        /limits-test:too big: a buffer of \d+ bytes is over this device's maxBufferSize/,
      );
    } finally {
      rt.capBufferBytes(null);
      for (const q of split.parts) q.buffer.destroy();
      for (const buf of [whole, tok, pos, p, x1, x2]) buf.destroy();
    }
  });

  describe('(b) real Whisper base under a 16 MiB cap', () => {
    let assets: WhisperAssets;
    let clips: OracleClip[];
    const model: Record<'capped' | 'whole', { weights: DecoderWeights; cache: EncoderKvCache }> = {} as never;

    before(async () => {
      const oracle = baselineOracle(join(DEMO_DIR, 'manifest.jsonl'));
      clips = CLIPS.map((id) => oracle.clips.find((x) => x.id === id) ?? assert.fail(`oracle cache has no clip ${id}`));
      assets = await loadWhisperAssets(new FsModelSource(MODEL_DIR));
      for (const k of ['whole', 'capped'] as const) {
        rt.capBufferBytes(k === 'capped' ? CAP : null);
        const weights = loadDecoderWeights(rt, MODEL_DIR, 'f32');
        const cache = new EncoderKvCache(rt, weights);
        for (const c of clips) await cache.add(c.id, readF32(join(oracle.dir, c.encoder.file)));
        model[k] = { weights, cache };
      }
      rt.capBufferBytes(null);
    });
    after(() => {
      rt.capBufferBytes(null);
      for (const m of Object.values(model)) {
        m.cache.destroy();
        m.weights.destroy();
      }
    });

    /** Run `fn` with the cap of `k` in force. */
    async function under<T>(k: 'capped' | 'whole', fn: () => Promise<T>): Promise<T> {
      rt.capBufferBytes(k === 'capped' ? CAP : null);
      try {
        return await fn();
      } finally {
        rt.capBufferBytes(null);
      }
    }

    test('E in row parts of ≤ 16 MiB; the plan at the cap fits', () => {
      const e = model.capped.weights.embedTokens;
      console.log(
        `E capped: ${e.parts.length} parts of ${e.parts.map((q) => q.rows).join(', ')} rows; uncapped: ${model.whole.weights.embedTokens.parts.length}`,
      );
      assert.equal(model.whole.weights.embedTokens.parts.length, 1);
      assert.equal(e.parts.length, Math.ceil(e.rows / Math.floor(CAP / (e.cols * 4))));
      assert.ok(e.parts.every((q) => q.buffer.size <= CAP));
      assert.equal(model.capped.weights.bytes, model.whole.weights.bytes);
      const batch = tokenBatch(clips);
      const plan = planMemory({
        dims: model.capped.weights.dims,
        adapters: ADAPTERS,
        batch: batch.B,
        tokens: batch.S,
        storage: 'f32',
        frames: model.capped.cache.frames,
        limits: { ...deviceLimits(rt.device, 64 * 2 ** 30, 'test adapter'), maxBufferSize: CAP, maxStorageBufferBindingSize: CAP },
        eval: { batch: 2, maxNewTokens: 48 },
      });
      console.log(formatPlan(plan));
      assert.ok(
        plan.largestBuffer.bytes <= CAP && plan.largestBinding.bytes <= CAP,
        `plan: ${plan.largestBuffer.label} ${plan.largestBuffer.bytes} B`,
      );
    });

    test('training-engine loss before and after one step: capped = uncapped; no live buffer over 16 MiB', async () => {
      const batch = tokenBatch(clips);
      const plan = planAdapters(model.whole.weights.dims, ADAPTERS);
      const theta = uniformTestTheta(plan, 77, { bScale: 0.05, rhoB: 'uniform' });
      const losses: Record<string, number[]> = {};
      for (const k of ['whole', 'capped'] as const) {
        losses[k] = await under(k, async () => {
          const { weights, cache } = model[k];
          const eng = await WhisperDecoderEngine.create(rt, weights, { B: batch.B, S: batch.S }, ADAPTERS, cache, {
            theta,
            label: `limits-engine[${k}]`,
          });
          try {
            const [l0, l1] = await lossAroundOneStep(eng, batch);
            if (k === 'capped') {
              const mem = rt.memory(400);
              const over = mem.top.filter(
                (b) => b.bytes > CAP && !b.label.startsWith(`${model.whole.weights.embedTokens.parts[0].buffer.label}`),
              );
              // the uncapped copy's E (one 106 MB buffer) is live too; nothing else may be over the cap
              assert.deepEqual(over, [], `buffers over 16 MiB: ${over.map((b) => `${b.label} ${b.bytes}`).join(', ')}`);
            }
            console.log(`${k}: CE ${l0.ce.toFixed(7)} → ${l1.ce.toFixed(7)} after one step`);
            return [l0.ce, l1.ce];
          } finally {
            eng.destroy();
          }
        });
      }
      for (const i of [0, 1]) {
        const rel = Math.abs(losses.capped[i] - losses.whole[i]) / Math.abs(losses.whole[i]);
        assert.ok(rel <= 1e-6, `loss ${i}: capped ${losses.capped[i]} vs uncapped ${losses.whole[i]} (rel ${rel})`);
      }
      assert.notEqual(losses.whole[1], losses.whole[0], 'the training step changed nothing');
    });

    test('greedy transcripts: capped = uncapped token for token', async () => {
      const out: Record<string, number[][]> = {};
      for (const k of ['whole', 'capped'] as const) {
        out[k] = await under(k, async () => {
          const dec = await WgslGreedyDecoder.create(rt, model[k].weights, model[k].cache, assets, {
            maxBatch: 2,
            label: `limits-greedy[${k}]`,
          });
          try {
            const res = await dec.generate(clips.map((c) => ({ utterance: c.id, language: c.language })));
            for (const [i, r] of res.entries()) console.log(`${k} ${clips[i].id}: ${JSON.stringify(r.text)}`);
            return res.map((r) => r.tokens);
          } finally {
            dec.destroy();
          }
        });
      }
      assert.deepEqual(out.capped, out.whole);
      assert.ok(
        out.whole.every((t) => t.length > 3),
        'empty transcripts',
      );
    });
  });
});

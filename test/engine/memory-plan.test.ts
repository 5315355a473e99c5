/**
 * Memory plan (src/engine/memory-plan.ts) vs what the engine really allocates: GpuRuntime's measured
 * peak of GPU-buffer bytes over weights upload → K/V cache of the batch → engine prepare → one training
 * step (forward, backward, AdamW) → loss and optimizer-state readback. REQUIRED: within 10 % per shape.
 *
 *   shape                  C     H   F     V       L (real)  E     B×S    adapters
 *   base (real weights)    512   8   2048  51865   6 (6)     1500  2×16   BLoRA flipout, self q, v
 *   small width            768   12  3072  51865   2 (12)    200   2×10   BLoRA flipout, self q, v + cross k, v (per-layer K/V path)
 *   large-v3-turbo width   1280  20  5120  51866   2 (4)     200   2×10   LoRA, self q, v, fc1
 *
 * Fewer layers / frames for the random shapes as in shape-parity.test.ts: layer COUNT and E enter the plan
 * linearly; the width and vocabulary are what matter for the biggest buffers. f32 storage is measured
 * here (this adapter has no shader-f16); the f16 plan vs measured peak is in f16-decoder.test.ts (base on
 * lavapipe-bpo), and the CPU table below checks what the f16 plan halves and what it keeps f32.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type AdapterConfig, mulberry32 } from '../../src/engine/adapters';
import { EncoderKvCache, prepareDecoder } from '../../src/engine/decoder';
import {
  decoderDimsFromConfig,
  deviceLimits,
  fmtBytes,
  formatPlan,
  kvCacheBytesPerUtterance,
  planMemory,
  WEBGPU_DEFAULT_LIMITS,
} from '../../src/engine/memory-plan';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { WHISPER_MODELS } from '../../src/model/hub';
import { requireModel, resultsDir } from '../support/env';
import { nodeTestGpu } from '../support/node-gpu';
import { loadDecoderWeights, type TinyWhisperDims, writeTinyWhisper } from './decoder-parity-support';

process.env.BLORA_WEBGPU_BACKEND ??= 'gl-compat';

interface Shape {
  name: string;
  /** null = the prepared real Whisper base */
  dims: TinyWhisperDims | null;
  frames: number;
  B: number;
  S: number;
  adapters: AdapterConfig;
}
const W = (C: number, H: number, F: number, V: number, L: number): TinyWhisperDims => ({
  d_model: C,
  heads: H,
  ffn: F,
  layers: L,
  vocab: V,
  positions: 448,
});
const ad = (kind: 'lora' | 'blora', targets: AdapterConfig['targets']): AdapterConfig => ({
  kind,
  estimator: 'flipout',
  r: 8,
  alpha: 16,
  dropout: 0.05,
  seed: 5,
  targets,
});
const SHAPES: Shape[] = [
  { name: 'base', dims: null, frames: 1500, B: 2, S: 16, adapters: ad('blora', ['self_attn.q_proj', 'self_attn.v_proj']) },
  {
    name: 'small-width',
    dims: W(768, 12, 3072, 51865, 2),
    frames: 200,
    B: 2,
    S: 10,
    adapters: ad('blora', ['self_attn.q_proj', 'self_attn.v_proj', 'encoder_attn.k_proj', 'encoder_attn.v_proj']),
  },
  {
    name: 'large-v3-turbo-width',
    dims: W(1280, 20, 5120, 51866, 2),
    frames: 200,
    B: 2,
    S: 10,
    adapters: ad('lora', ['self_attn.q_proj', 'self_attn.v_proj', 'fc1']),
  },
];
const TOL = 0.1;

describe('memory plan vs GpuRuntime peak', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('memory-plan-test'));
  });
  after(async () => {
    await ctx?.destroy();
  });

  for (const shape of SHAPES) {
    test(shape.name, async () => {
      const t0 = performance.now();
      let dir = shape.dims ? join(resultsDir('memory-plan'), shape.name) : requireModel();
      if (shape.dims) writeTinyWhisper(dir, shape.dims, 77, { embedScale: 3.5 / Math.sqrt(shape.dims.d_model) });
      await rt.sync();
      const base = rt.memory().liveBytes;
      rt.resetPeak();
      const weights = loadDecoderWeights(rt, dir);
      const { C, V } = weights.dims;
      const { B, S, frames: E } = shape;
      const cache = new EncoderKvCache(rt, weights, { frames: E });
      const rnd = mulberry32(3);
      const utts = Array.from({ length: B }, (_, b) => `u${b}`);
      for (const u of utts)
        await cache.add(
          u,
          Float32Array.from({ length: E * C }, () => Math.sqrt(3) * (2 * rnd() - 1)),
        );
      const engine = await prepareDecoder(rt, weights, { B, S }, shape.adapters, cache, { label: `mem-${shape.name}` });
      const ids = Array.from({ length: B * S }, () => Math.floor(rnd() * V));
      engine.setBatch({ inputIds: ids, labels: ids.map((_, i) => (i % S === S - 1 ? -100 : ids[(i + 1) % ids.length])), utterances: utts });
      engine.forward(1);
      engine.backward(1);
      engine.optimizerStep(1);
      const loss = await engine.readLoss();
      await engine.readGradNorm();
      await engine.readState(); // a checkpoint's readback staging
      assert.ok(Number.isFinite(loss.loss), `loss ${loss.loss}`);
      const measured = rt.memory().peakBytes - base;
      const top = rt.memory(6).top;

      const plan = planMemory({
        dims: weights.dims,
        adapters: shape.adapters,
        batch: B,
        tokens: S,
        storage: 'f32',
        frames: E,
        limits: deviceLimits(rt.device, 64 * 2 ** 30, 'test adapter'),
        eval: null,
      });
      const rel = plan.totalBytes / measured - 1;
      const rest = `beyond the weights ${(100 * ((plan.totalBytes - plan.weightsBytes) / (measured - weights.bytes) - 1)).toFixed(2)} %`;
      console.log(
        `${shape.name}: plan ${fmtBytes(plan.totalBytes)} (${plan.totalBytes} B) vs measured peak ${fmtBytes(measured)} (${measured} B): ${(100 * rel).toFixed(2)} % (${rest})` +
          ` in ${((performance.now() - t0) / 1000).toFixed(1)} s\n  ${formatPlan(plan)}\n  largest live: ${top.map((t) => `${t.label} ${fmtBytes(t.bytes)}`).join(', ')}`,
      );
      assert.equal(plan.weightsBytes, weights.bytes, 'weights: plan = uploaded bytes');
      assert.equal(plan.kvBytesPerUtterance, cache.bytesPerUtterance);
      assert.ok(Math.abs(rel) <= TOL, `plan ${plan.totalBytes} vs measured ${measured}: ${(100 * rel).toFixed(1)} % > ${100 * TOL} %`);
      // the weights (exact, above) dominate: the rest — K/V, activations, tiles, state — within 10 % on its own
      const restRel = (plan.totalBytes - plan.weightsBytes) / (measured - weights.bytes) - 1;
      assert.ok(Math.abs(restRel) <= TOL, `beyond the weights: plan vs measured ${(100 * restRel).toFixed(1)} %`);

      engine.destroy();
      cache.destroy();
      weights.destroy();
      if (shape.dims) rmSync(dir, { recursive: true, force: true });
      dir = '';
      assert.deepEqual(ctx.errors, []);
    });
  }
});

test('plan table: per-size numbers, limits, fixes (no GPU)', () => {
  const dims = (name: string) => {
    const m = WHISPER_MODELS.find((x) => x.name === name)!;
    return decoderDimsFromConfig({
      d_model: m.dModel,
      decoder_layers: m.decoderLayers,
      decoder_attention_heads: m.heads,
      vocab_size: m.vocab,
    });
  };
  // the issue's K/V numbers: 39 MB base, ≈ 110 MB small (f32), 69 MB large-v3-turbo
  const cases: [string, number][] = [
    ['whisper-base', 39.9e6],
    ['whisper-small', 115.2e6],
    ['whisper-large-v3-turbo', 69.1e6],
  ];
  for (const [name, kv] of cases) {
    const d = dims(name);
    assert.ok(Math.abs(kvCacheBytesPerUtterance(d) - kv) < 0.1e6, `${name}: K/V ${kvCacheBytesPerUtterance(d)}`);
    const f32 = planMemory({ dims: d, adapters: { kind: 'blora', r: 8 }, batch: 8, tokens: 64, storage: 'f32' });
    const f16 = planMemory({ dims: d, adapters: { kind: 'blora', r: 8 }, batch: 8, tokens: 64, storage: 'f16' });
    // f16 halves the matrices; biases and layer norms (≈ 0.1–0.2 % of the weights) stay f32
    assert.ok(
      f16.weightsBytes > f32.weightsBytes / 2 && f16.weightsBytes < 0.502 * f32.weightsBytes,
      `${name}: f16 weights ${f16.weightsBytes} vs f32 ${f32.weightsBytes}`,
    );
    // K/V: 2L tensors halve, the encoder states (E, C) stay f32
    assert.equal(f16.kvBytesPerUtterance, (2 * d.L * 2 + 4) * 1500 * d.C);
    assert.equal(f16.adapterStateBytes, f32.adapterStateBytes, 'adapter state stays f32');
    assert.equal(f32.limits.source, WEBGPU_DEFAULT_LIMITS.source);
  }
  // base, batch 8 fits the WebGPU defaults
  const base = planMemory({ dims: dims('whisper-base'), adapters: { kind: 'blora', r: 8 }, batch: 8, tokens: 64, storage: 'f32' });
  assert.ok(base.fits, formatPlan(base));
  // large-v3 f32 with every target at batch 64: over a 4 GiB budget; the fix names a smaller batch and f16
  const big = planMemory({
    dims: dims('whisper-large-v3'),
    batch: 64,
    tokens: 128,
    storage: 'f32',
    utterances: 64,
    adapters: {
      kind: 'blora',
      r: 16,
      targets: ['self_attn.q_proj', 'self_attn.v_proj', 'encoder_attn.k_proj', 'encoder_attn.v_proj', 'fc1', 'fc2'],
    },
  });
  assert.equal(big.fits, false);
  assert.ok(big.problems.length >= 1, big.problems.join('; '));
  assert.ok(
    big.fixes.some((f) => /smaller batch|fewer targets|f16/.test(f)),
    big.fixes.join('; '),
  );
  console.log(formatPlan(big));
  // a binding over 128 MiB: the batch's cross K copy (32·1500, 1280) f32 = 246 MB → the largest batch under 128 MiB is 17
  const wide = planMemory({
    dims: dims('whisper-large-v3-turbo'),
    adapters: { kind: 'lora', r: 8, targets: ['self_attn.q_proj', 'self_attn.v_proj', 'encoder_attn.k_proj', 'encoder_attn.v_proj'] },
    batch: 32,
    tokens: 32,
    storage: 'f32',
    limits: { ...WEBGPU_DEFAULT_LIMITS, budgetBytes: 64 * 2 ** 30 },
  });
  assert.equal(wide.fits, false, formatPlan(wide));
  assert.ok(wide.fixes.includes('smaller batch: 17'), wide.fixes.join('; '));
  // these targets adapt encoder_attn k/v: those per-layer cross K/V batch buffers are f32 in f16 storage
  // too (the adapters add into them), so f16 alone is no fix here — fewer targets or a smaller batch are
  assert.ok(!wide.fixes.some((f) => f.startsWith('f16')), wide.fixes.join('; '));
});

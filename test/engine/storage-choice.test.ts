/**
 * Storage choice and the variant generator (issue 13 item 1), on the default test adapter (SwiftShader:
 * no shader-f16) — the f32 path is chosen and said so:
 *  - chooseStorage on this device → f32 'f32 — this adapter has no shader-f16' (the Compute panel's words,
 *    src/ui/components/BackendPanel.tsx uses chooseStorageFor); asking for f16 here is an error;
 *    uploadDecoderWeights of a tiny random Whisper defaults to f32 (nothing tagged f16), and the WGSL
 *    kernels run their f32 variant (the source as written) — a forward of that decoder is finite;
 *  - chooseStorageFor(true) → f16; BLORA_STORAGE parsing;
 *  - specializeWgsl: rewrites only the named aliases, puts `enable f16;` first, refuses a missing alias;
 *  - floatToHalf: every one of the 65,536 f16 bit patterns round-trips, and midpoints round to even.
 * < 10 s.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { bufferStorage, floatToHalf, halfBitsToFloat, specializeWgsl, wgslVariant } from '../../src/gpu/wgsl-variants';
import { EncoderKvCache, WhisperDecoderEngine } from '../../src/engine/decoder';
import { chooseStorage, chooseStorageFor, storageFromEnv } from '../../src/engine/weights';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { randomF32 } from '../support/random';
import { loadDecoderWeights, writeTinyWhisper } from './decoder-parity-support';

describe('storage choice (adapter without shader-f16)', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  let dir: string;
  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-storage-choice-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
    dir = mkdtempSync(join(tmpdir(), 'blora-storage-'));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await ctx?.destroy();
  });

  test('no shader-f16 → f32, reported; f16 refused; the decoder runs its f32 kernels', async (t) => {
    if (ctx.caps.hasF16) return t.skip(`this adapter (${ctx.caps.adapter.description}) has shader-f16: the test needs one without`);
    const c = chooseStorage(ctx.device);
    assert.deepEqual(c, { storage: 'f32', reason: 'f32 — this adapter has no shader-f16' });
    assert.throws(() => chooseStorage(ctx.device, 'f16'), /no 'shader-f16'/);
    writeTinyWhisper(dir, { d_model: 64, heads: 2, ffn: 128, layers: 1, vocab: 300, positions: 16 }, 5);
    const w = loadDecoderWeights(rt, dir, 'auto'); // the engine's default choice
    assert.equal(w.storage, 'f32');
    assert.equal(bufferStorage(w.embedTokens.parts[0].buffer), 'f32');
    assert.equal(bufferStorage(w.layers[0].fc1.w), 'f32');
    const cache = new EncoderKvCache(rt, w, { frames: 8 });
    await cache.add('u', randomF32(8 * 64, 3));
    assert.equal(bufferStorage(cache.get('u').k[0]), 'f32');
    const eng = await WhisperDecoderEngine.create(
      rt,
      w,
      { B: 1, S: 4 },
      { kind: 'lora', r: 2, alpha: 4, dropout: 0, seed: 1, targets: ['encoder_attn.v_proj'] },
      cache,
      { label: 'storage-choice' },
    );
    eng.setBatch({ inputIds: [1, 2, 3, 4], labels: [2, 3, 4, 5], utterances: ['u'] });
    eng.forward(0, { eval: true });
    const l = await eng.readLoss();
    console.log(`f32 storage tiny decoder: CE ${l.ce} over ${l.count}`);
    assert.ok(Number.isFinite(l.ce) && l.count === 4);
    eng.destroy();
    cache.destroy();
    w.destroy();
    assert.deepEqual(ctx.errors, []);
  });

  test('chooseStorageFor / BLORA_STORAGE', () => {
    assert.deepEqual(chooseStorageFor(true), { storage: 'f16', reason: 'f16 (shader-f16)' });
    assert.equal(chooseStorageFor(true, 'f32').storage, 'f32');
    assert.equal(chooseStorageFor(false, 'auto').storage, 'f32');
    assert.throws(() => chooseStorageFor(true, 'bf16' as never), /f16', 'f32' or 'auto'/);
    const saved = process.env.BLORA_STORAGE;
    try {
      process.env.BLORA_STORAGE = 'f16';
      assert.equal(storageFromEnv(), 'f16');
      process.env.BLORA_STORAGE = 'half';
      assert.throws(() => storageFromEnv(), /BLORA_STORAGE/);
    } finally {
      if (saved === undefined) delete process.env.BLORA_STORAGE;
      else process.env.BLORA_STORAGE = saved;
    }
  });

  test('specializeWgsl / wgslVariant', () => {
    const src = 'alias WStore = f32;\nalias YStore = f32;\nfn f() {}\n';
    assert.equal(specializeWgsl(src, { WStore: 'f32' }), src);
    assert.equal(specializeWgsl(src, { WStore: 'f16' }), 'enable f16;\nalias WStore = f16;\nalias YStore = f32;\nfn f() {}\n');
    assert.throws(() => specializeWgsl(src, { KStore: 'f16' }), /no 'alias KStore = f32;'/);
    const v = wgslVariant('matmul_bias', { WStore: 'f16', YStore: 'f32' });
    assert.ok(v.startsWith('enable f16;\n') && v.includes('alias WStore = f16;') && v.includes('alias YStore = f32;'));
    assert.equal(wgslVariant('matmul_bias', { WStore: 'f16', YStore: 'f32' }), v, 'cached');
  });

  test('floatToHalf: all 65,536 patterns round-trip; ties to even; overflow, underflow', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = halfBitsToFloat(h);
      if (Number.isNaN(x)) assert.ok(Number.isNaN(halfBitsToFloat(floatToHalf(x))));
      else assert.equal(floatToHalf(x), h, `pattern 0x${h.toString(16)}`);
    }
    assert.equal(floatToHalf(1 + 2 ** -11), floatToHalf(1)); // tie → even (1.0)
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), floatToHalf(1 + 2 ** -9)); // tie → even (up)
    assert.equal(floatToHalf(65520), 0x7c00); // ≥ 65520 rounds to inf
    assert.equal(floatToHalf(2 ** -26), 0); // below half the smallest subnormal
    assert.equal(halfBitsToFloat(floatToHalf(3 * 2 ** -26)), 2 ** -24); // rounds up to the smallest subnormal
  });
});

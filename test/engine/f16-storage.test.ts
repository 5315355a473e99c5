/**
 * f16 storage (issue 13 item 1) kernel by kernel on a shader-f16 adapter (Mesa lavapipe 25 from
 * bookworm-backports, scripts/setup.sh step 2b; test/support/node-gpu.ts nodeF16Gpu): every kernel that
 * reads frozen weights or the K/V cache, in its f16 variant (src/gpu/wgsl-variants.ts), against its
 * float64 CPU reference computed ON THE f16-ROUNDED INPUTS. The kernels widen each f16 element to f32
 * exactly and do the math in f32, so the bound is the SAME rigorous f32 bound as the f32 tests use
 * (γ_{K+1}·Σ|x·w| for the matmuls, bit-exact for the embedding, logitsCeBounds for the CE, the attention
 * test's ε·Σ|terms|) — f16 rounding enters only through the inputs, not through a looser tolerance.
 * The K/V cache store (matmul_bias with an f16 Y) is compared against the f16 rounding of the f64
 * result: |y − ref| ≤ f32 bound + half an f16 ulp of |ref| (2⁻¹¹·|ref|, round-to-nearest).
 * Shapes are small (software adapter); every variant (tiled and register-tiled *_rt) runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { prepareMatmulBias } from '../../src/gpu/kernels/matmul';
import { errorBoundF32, matmulBiasRef } from '../../src/gpu/reference/matmul';
import { bufferStorage, halfBitsToFloat, roundToHalf, tagStorage, uploadAs } from '../../src/gpu/wgsl-variants';
import { prepareAttention } from '../../src/engine/kernels/attention';
import { embeddingForward } from '../../src/engine/kernels/embedding';
import { prepareLinearBackward } from '../../src/engine/kernels/linear_backward';
import { prepareLinearRows } from '../../src/engine/kernels/linear_rows';
import { logitsCrossEntropy } from '../../src/engine/kernels/logits_ce';
import { attentionBackwardRef, attentionForwardRef } from '../../src/engine/reference/attention';
import { embeddingForwardRef } from '../../src/engine/reference/embedding';
import { linearBackwardRef } from '../../src/engine/reference/linear_backward';
import { logitsCeBackwardRef, logitsCeBounds, logitsCeForwardRef } from '../../src/engine/reference/logits_ce';
import { describeAdapter, nodeF16Gpu } from '../support/node-gpu';
import { randomF32 } from '../support/random';
import { compare, U32 } from './blora-check';

const gpu = await nodeF16Gpu('engine-f16-storage-test');
const skip = 'skip' in gpu ? gpu.skip : false;

describe('f16 storage kernels (shader-f16 adapter)', { skip }, () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  before(() => {
    if ('skip' in gpu) return;
    ({ ctx, rt } = gpu);
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  const readHalf = async (buf: GPUBuffer, n: number): Promise<Float32Array> => {
    const words = await rt.readF32(buf, Math.ceil(n / 2)); // raw bytes as f32 words → reinterpret
    const bits = new Uint16Array(words.buffer, words.byteOffset, n);
    return Float32Array.from(bits, halfBitsToFloat);
  };

  for (const [M, N, K] of [
    [37, 70, 48],
    [64, 64, 64],
    [5, 130, 36],
  ] as const) {
    for (const registerTiled of [false, true]) {
      test(`matmul_bias W f16 (and Y f16: the K/V cache) M=${M} N=${N} K=${K} ${registerTiled ? 'main_rt' : 'main'}`, async () => {
        const X = randomF32(M * K, 1 + M);
        const W = randomF32(N * K, 2 + N);
        const b = randomF32(N, 3);
        const Wh = roundToHalf(W);
        const ref = matmulBiasRef(X, Wh, b, M, N, K);
        const x = rt.upload('f16t:X', X);
        const w = uploadAs(rt, 'f16t:W', W, 'f16');
        assert.equal(bufferStorage(w), 'f16');
        const bb = rt.upload('f16t:b', b);
        const y = rt.storage('f16t:Y', M * N * 4);
        const yh = tagStorage(rt.storage('f16t:Yh', M * N * 2), 'f16');
        const c1 = await prepareMatmulBias(rt, { M, N, K }, { x, w, bias: bb, y }, 'f16t:mm', registerTiled);
        const c2 = await prepareMatmulBias(rt, { M, N, K }, { x, w, bias: bb, y: yh }, 'f16t:mm-kv', registerTiled);
        c1.run();
        c2.run();
        const got = await rt.readF32(y, M * N);
        const gotH = await readHalf(yh, M * N);
        [c1, c2].forEach((c) => c.destroy());
        [x, w, bb, y, yh].forEach((g) => g.destroy());
        const r1 = compare('Y (f32 out)', got, ref.y, (i) => errorBoundF32(K + 1, ref.absSum[i]));
        const r2 = compare(
          'Y (f16 out)',
          gotH,
          ref.y,
          (i) => errorBoundF32(K + 1, ref.absSum[i]) * (1 + 2 ** -11) + 2 ** -11 * Math.abs(ref.y[i]) + 2 ** -25,
        );
        console.log(`${r1.line}\n${r2.line}`);
        assert.ok(r1.ok, r1.line);
        assert.ok(r2.ok, r2.line);
      });
    }
  }

  for (const registerTiled of [false, true]) {
    test(`linear_backward dX = dY·W, W f16 ${registerTiled ? 'main_rt' : 'main'}`, async () => {
      const [M, N, K] = [33, 70, 90];
      const dY = randomF32(M * N, 5);
      const W = randomF32(N * K, 6);
      const ref = linearBackwardRef(dY, roundToHalf(W), M, N, K);
      const dy = rt.upload('f16t:dY', dY);
      const w = uploadAs(rt, 'f16t:W', W, 'f16');
      const dx = rt.storage('f16t:dX', M * K * 4);
      const call = await prepareLinearBackward(rt, { M, N, K }, { dy, w, dx }, { registerTiled });
      call.run();
      const got = await rt.readF32(dx, M * K);
      call.destroy();
      [dy, w, dx].forEach((g) => g.destroy());
      const r = compare('dX', got, ref.dx, (i) => errorBoundF32(N, ref.absSum[i]));
      console.log(r.line);
      assert.ok(r.ok, r.line);
    });
  }

  test('linear_rows (decoding) W f16, bound as a vocab-tile sub-range', async () => {
    const [M, N, K] = [3, 300, 64];
    const X = randomF32(M * K, 7);
    const W = randomF32((N + 8) * K, 8);
    const b = randomF32(N, 9);
    const Wh = roundToHalf(W);
    const off = 8 * K; // rows 8.. of W: offset 8·64·2 = 1024 B (aligned to 256)
    const ref = matmulBiasRef(X, Wh.subarray(off), b, M, N, K);
    const x = rt.upload('f16t:X', X);
    const w = uploadAs(rt, 'f16t:W', W, 'f16');
    const bb = rt.upload('f16t:b', b);
    const y = rt.storage('f16t:Y', M * N * 4);
    const call = await prepareLinearRows(rt, { M, N, K }, { x, w: { buffer: w, offset: off * 2, size: N * K * 2 }, bias: bb, y });
    call.run();
    const got = await rt.readF32(y, M * N);
    call.destroy();
    [x, w, bb, y].forEach((g) => g.destroy());
    const r = compare('Y', got, ref.y, (i) => errorBoundF32(K + 1, ref.absSum[i]));
    console.log(r.line);
    assert.ok(r.ok, r.line);
  });

  test('embedding gather E, P f16, several vocab tiles: bit-exact fl32(E + P) of the rounded tables', async () => {
    const [T, C, V, NP] = [9, 64, 1000, 30];
    const tokens = Uint32Array.from([0, 1, 999, 500, 257, 1000, 3, 640, 128]); // 1000 = out of range → 0
    const positions = Uint32Array.from([0, 1, 2, 3, 29, 5, 30, 7, 8]); // 30 = out of range → 0
    const E = randomF32(V * C, 10);
    const P = randomF32(NP * C, 11);
    const ref = embeddingForwardRef(tokens, positions, roundToHalf(E), roundToHalf(P), T, C, V, NP);
    const got = await embeddingForward(rt, tokens, positions, E, P, { T, C, V, NP }, { storage: 'f16', maxBindingBytes: 256 * C * 2 });
    console.log(`embedding f16: ${got.tiles.length} tiles`);
    assert.ok(got.tiles.length >= 4);
    for (let i = 0; i < T * C; i++) assert.equal(got.x[i], ref[i], `x[${i}]`);
  });

  for (const registerTiled of [false, true]) {
    test(`tied logits + CE, E f16, 3 vocab tiles, forward + dH ${registerTiled ? '*_rt' : 'tiled'}`, async () => {
      const [T, C, V] = [13, 64, 700];
      const H = randomF32(T * C, 12);
      const E = randomF32(V * C, 13, -0.5, 0.5);
      const targets = Int32Array.from({ length: T }, (_, t) => (t === 4 ? -100 : (t * 53) % V));
      const Eh = roundToHalf(E);
      const ref = logitsCeForwardRef(H, Eh, targets, T, C, V);
      const dhRef = logitsCeBackwardRef(H, Eh, targets, T, C, V, 1, ref);
      const got = await logitsCrossEntropy(
        rt,
        H,
        E,
        targets,
        { T, C, V },
        { withGrad: true, storage: 'f16', maxTileRows: 256, registerTiled },
      );
      const bnd = logitsCeBounds(Eh, targets, T, C, V, got.tiles.length, ref, 1);
      const lossErr = Math.abs(got.loss - ref.loss);
      console.log(
        `logits_ce f16: ${got.tiles.length} tiles, loss ${got.loss} ref ${ref.loss} |err| ${lossErr.toExponential(2)} bound ${bnd.loss.toExponential(2)}`,
      );
      assert.equal(got.tiles.length, 3);
      assert.equal(got.count, ref.count);
      assert.ok(lossErr <= bnd.loss, `loss ${got.loss} vs ${ref.loss}`);
      const r = compare('dH', got.dh!, dhRef, (i) => bnd.dh[i]);
      console.log(r.line);
      assert.ok(r.ok, r.line);
    });
  }

  for (const S of [1, 19]) {
    test(`cross-attention with K, V f16 (the K/V cache), S=${S}: forward + dQ`, async () => {
      const c = { B: 2, S, Skv: 67, H: 2, D: 64, causal: false };
      const nq = c.B * c.S * c.H * c.D;
      const nk = c.B * c.Skv * c.H * c.D;
      const q = randomF32(nq, 21, -1.5, 1.5);
      const K = randomF32(nk, 22, -1.5, 1.5);
      const Vv = randomF32(nk, 23);
      const dO = randomF32(nq, 24);
      const [kh, vh] = [roundToHalf(K), roundToHalf(Vv)];
      const b = {
        q: rt.upload('f16t:q', q),
        k: uploadAs(rt, 'f16t:k', K, 'f16'),
        v: uploadAs(rt, 'f16t:v', Vv, 'f16'),
        mask: null,
        o: rt.storage('f16t:o', nq * 4),
        stats: rt.storage('f16t:stats', c.B * c.H * c.S * 8),
        dO: rt.upload('f16t:dO', dO),
        dq: rt.storage('f16t:dq', nq * 4),
      };
      const call = await prepareAttention(rt, c, b);
      call.forward();
      call.backward({ computeDkv: false });
      const [o, dq] = await Promise.all([rt.readF32(b.o, nq), rt.readF32(b.dq, nq)]);
      call.destroy();
      for (const x of Object.values(b)) x?.destroy();
      const f = attentionForwardRef(q, kh, vh, null, c);
      const g = attentionBackwardRef(q, kh, vh, null, dO, c);
      const Dmax = Math.max(...f.scoreAbs) * (c.D + 1) * U32;
      const eps = 4 * Dmax + (2 * (c.D + c.Skv) + 64) * U32; // = test/engine/attention.test.ts
      const r1 = compare('O', o, f.o, (i) => eps * f.oAbs[i] + 2 * U32 * Math.abs(f.o[i]));
      const r2 = compare('dQ', dq, g.dq, (i) => eps * g.dqAbs[i]);
      console.log(`${r1.line}\n${r2.line}`);
      assert.ok(r1.ok, r1.line);
      if (S > 1) assert.ok(r2.ok, r2.line);
    });
  }
});

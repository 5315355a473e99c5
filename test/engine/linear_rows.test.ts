/**
 * Few-rows Linear forward Y = X·Wᵀ + b (engine_linear_rows.wgsl, the token-step linears and tied
 * logits of greedy decoding) against the float64 reference of matmul_bias (src/gpu/reference/matmul.ts)
 * with the rigorous f32 dot-product bound γ_{K+1}·(Σ|x·w| + |b|) (Higham §3.1, any order, FMA or not):
 * every MR specialisation (M = 1, 2, 3, 4, 5, 8, 11 → MR 1, 2, 4, 4, 8, 8, 8 with a second row group),
 * N below / across / far beyond the 128 column groups (grid-stride loop), sub-range bindings of W and Y
 * (vocab tiles), bias and no bias. Also prints the max difference to matmul_bias on the same data
 * (same fma sequence: 0 expected where the device's fma is consistent; not asserted).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { errorBoundF32, matmulBiasRef } from '../../src/gpu/reference/matmul';
import { matmulBias } from '../../src/gpu/kernels/matmul';
import { linearRows, prepareLinearRows } from '../../src/engine/kernels/linear_rows';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { randomF32 } from '../support/random';

// M × N × K
const SHAPES: [number, number, number][] = [
  [1, 1, 4],
  [2, 7, 12],
  [3, 65, 64],
  [4, 130, 260],
  [5, 512, 512],
  [8, 2048, 512], // Whisper base fc1 at B = 8
  [11, 9000, 36], // N > 128·64: threads loop over columns; M > 8: two row groups
  [1, 512, 2048], // fc2 at B = 1
];

function check(Y: Float32Array, X: Float32Array, W: Float32Array, b: Float32Array | null, M: number, N: number, K: number) {
  const ref = matmulBiasRef(X, W, b, M, N, K);
  let worst = 0;
  let maxErr = 0;
  for (let i = 0; i < M * N; i++) {
    const err = Math.abs(Y[i] - ref.y[i]);
    const bound = errorBoundF32(K + 1, ref.absSum[i]) + 1e-30;
    maxErr = Math.max(maxErr, err);
    worst = Math.max(worst, err / bound);
    if (!(err <= bound)) return { ok: false, line: `element ${i}: ${Y[i]} vs ${ref.y[i]} (err ${err}, bound ${bound})` };
  }
  return { ok: true, line: `max |err| ${maxErr.toExponential(2)}, worst err/bound ${worst.toFixed(3)}` };
}

describe('engine linear_rows (few-rows Linear forward)', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-linear-rows-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  for (const [M, N, K] of SHAPES) {
    for (const withBias of [true, false]) {
      test(`GPU vs float64 M=${M} N=${N} K=${K} ${withBias ? 'bias' : 'no bias'}`, async () => {
        const X = randomF32(M * K, 100 + M);
        const W = randomF32(N * K, 200 + N);
        const b = withBias ? randomF32(N, 300 + N) : null;
        const Y = await linearRows(rt, X, W, b, { M, N, K });
        const r = check(Y, X, W, b, M, N, K);
        let vsMatmul = '';
        if (N * K <= 2048 * 512) {
          const Ym = await matmulBias(rt, X, W, b, { M, N, K });
          let d = 0;
          for (let i = 0; i < Y.length; i++) d = Math.max(d, Math.abs(Y[i] - Ym[i]));
          vsMatmul = `; max |Y − matmul_bias| ${d.toExponential(2)}`;
        }
        console.log(`M=${M} N=${N} K=${K} ${withBias ? 'bias' : 'no bias'}: ${r.line}${vsMatmul}`);
        assert.ok(r.ok, r.line);
      });
    }
  }

  test('sub-range bindings of W and Y (vocab tiles of a tied embedding)', async () => {
    const [M, K, V, R] = [3, 64, 700, 256]; // tiles of 256 rows: offsets 256·64·4 (W), 3·256·4 (Y) — 256-B aligned
    const X = randomF32(M * K, 7);
    const E = randomF32(V * K, 8);
    const x = rt.upload('lr-test:X', X);
    const e = rt.upload('lr-test:E', E);
    const y = rt.storage('lr-test:Y tile-major', M * V * 4);
    const calls = [];
    for (let v0 = 0; v0 < V; v0 += R) {
      const rows = Math.min(R, V - v0);
      calls.push(
        await prepareLinearRows(
          rt,
          { M, N: rows, K },
          {
            x,
            w: { buffer: e, offset: v0 * K * 4, size: rows * K * 4 },
            bias: null,
            y: { buffer: y, offset: M * v0 * 4, size: M * rows * 4 },
          },
          `lr-test:tile ${v0}`,
        ),
      );
    }
    calls.forEach((c) => c.run());
    const out = await rt.readF32(y, M * V);
    calls.forEach((c) => c.destroy());
    [x, e, y].forEach((b) => b.destroy());
    // unpack (M, rows) per tile into (M, V)
    const Y = new Float32Array(M * V);
    for (let v0 = 0; v0 < V; v0 += R) {
      const rows = Math.min(R, V - v0);
      for (let m = 0; m < M; m++) Y.set(out.subarray(M * v0 + m * rows, M * v0 + (m + 1) * rows), m * V + v0);
    }
    const r = check(Y, X, E, null, M, V, K);
    console.log(`tiles of ${R} rows over V=${V}: ${r.line}`);
    assert.ok(r.ok, r.line);
  });

  test('K not a multiple of 4 is refused with a clear error', async () => {
    const x = rt.storage('lr-test:x', 4 * 6);
    const w = rt.storage('lr-test:w', 4 * 6);
    const y = rt.storage('lr-test:y', 4);
    await assert.rejects(prepareLinearRows(rt, { M: 1, N: 1, K: 6 }, { x, w, bias: null, y }, 'lr-test'), /K=6 must be a multiple of 4/);
    [x, w, y].forEach((b) => b.destroy());
  });

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

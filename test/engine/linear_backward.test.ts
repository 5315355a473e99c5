/**
 * Frozen Linear input gradient dX = dY·W (engine_linear_backward.wgsl):
 *  (1) float64 reference vs central differences of the float64 forward Y = X·Wᵀ + b (L = Σ G ⊙ Y);
 *  (2) GPU vs reference on odd / tile-edge / Whisper-like shapes, written and accumulated, with the
 *      rigorous f32 dot-product bound γ_{N(+1)}·(Σ|dY·W| + |dX₀|) (Higham §3.1, any order, FMA or not).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { errorBoundF32 } from '../../src/gpu/reference/matmul';
import { prepareLinearBackward } from '../../src/engine/kernels/linear_backward';
import { linearBackwardRef, linearForwardRef } from '../../src/engine/reference/linear_backward';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { randomF32 } from '../support/random';
import { compare, dot, fdCheck } from './blora-check';

// M × N × K  (dY: M×N, W: N×K, dX: M×K)
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 3],
  [17, 33, 65],
  [64, 64, 64],
  [129, 31, 257],
  [3, 512, 1],
  [65, 1, 130],
  [2, 384, 384], // Whisper-tiny d_model
  [33, 384, 1536], // Whisper-tiny fc2 (384 ← 1536): dX (T, 1536) = dY (T, 384) · W (384, 1536)
];

describe('engine linear_backward', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-linear-backward-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  test('FD check of the float64 reference (dX of Y = X·Wᵀ + b)', () => {
    const [M, N, K] = [3, 4, 5];
    const x = Float64Array.from(randomF32(M * K, 1));
    const W = Float64Array.from(randomF32(N * K, 2));
    const b = Float64Array.from(randomF32(N, 3));
    const G = Float64Array.from(randomF32(M * N, 4));
    const r = fdCheck('dX', x, linearBackwardRef(G, W, M, N, K).dx, () => dot(G, linearForwardRef(x, W, b, M, N, K)));
    console.log(r.line);
    assert.ok(r.rel < 1e-9, r.line);
  });

  for (const [M, N, K] of SHAPES) {
    for (const accumulate of [false, true]) {
      test(`GPU vs reference M=${M} N=${N} K=${K} ${accumulate ? 'accumulate' : 'write'}`, async () => {
        const dY = randomF32(M * N, 10 + M + N);
        const W = randomF32(N * K, 20 + K);
        const dx0 = accumulate ? randomF32(M * K, 30) : new Float32Array(M * K).fill(NaN);
        const ref = linearBackwardRef(dY, W, M, N, K);
        const want = accumulate ? ref.dx.map((v, i) => v + dx0[i]) : ref.dx;
        // Both kernel variants (main for GPUs, main_rt for software adapters): each against the
        // float64 bound, and bit-identical to each other (same summation order).
        const outs: Float32Array[] = [];
        for (const registerTiled of [false, true]) {
          const b = { dy: rt.upload('lb-test:dy', dY), w: rt.upload('lb-test:w', W), dx: rt.upload('lb-test:dx', dx0) };
          const call = await prepareLinearBackward(rt, { M, N, K }, b, { accumulate, registerTiled });
          call.run();
          const dx = await rt.readF32(b.dx, M * K);
          call.destroy();
          Object.values(b).forEach((x) => x.destroy());
          const c = compare(`dX M=${M} N=${N} K=${K}${accumulate ? ' +=' : ''} ${registerTiled ? 'main_rt' : 'main'}`, dx, want, (i) =>
            errorBoundF32(N + (accumulate ? 1 : 0), ref.absSum[i] + (accumulate ? Math.abs(dx0[i]) : 0)),
          );
          console.log(c.line);
          assert.ok(c.ok, c.line);
          outs.push(dx);
        }
        let diff = 0;
        for (let i = 0; i < M * K; i++) if (outs[0][i] !== outs[1][i] && !(Number.isNaN(outs[0][i]) && Number.isNaN(outs[1][i]))) diff++;
        assert.equal(diff, 0, `main vs main_rt: ${diff} elements differ`);
      });
    }
  }

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

/**
 * engine_layernorm: float64 reference backward checked by central differences of the float64
 * forward; GPU forward (Y, mean, rstd) and backward (dX, overwrite and accumulate) vs the reference
 * under the first-order f32 error bounds of src/engine/reference/layernorm.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { layernormBackward, layernormForward, prepareLayernormBackward, prepareLayernormForward } from '../../src/engine/kernels/layernorm';
import {
  layernormBackwardBounds,
  layernormBackwardRef,
  layernormForwardBounds,
  layernormForwardRef,
} from '../../src/engine/reference/layernorm';
import { randomF32 } from '../support/random';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { compareWithBound, dotLoss, fdGradCheck, fmtFd, fmtStats, randomF64 } from './decoder-pieces-support';

interface LnCase {
  T: number;
  C: number;
  /** X = offset + scale·U(−1, 1): an offset ≫ scale stresses the mean subtraction. */
  offset: number;
  scale: number;
  seed: number;
}

// degenerate C = 1 (var = 0 → Y = β), odd, > 128 threads, Whisper tiny/base widths, offset rows.
const CASES: LnCase[] = [
  { T: 1, C: 1, offset: 0.3, scale: 1, seed: 1 },
  { T: 5, C: 7, offset: 0, scale: 1, seed: 2 },
  { T: 33, C: 130, offset: 0, scale: 2, seed: 3 },
  { T: 4, C: 384, offset: 5, scale: 0.5, seed: 4 },
  { T: 3, C: 512, offset: 0, scale: 10, seed: 5 },
  { T: 2, C: 1000, offset: -1, scale: 1e-3, seed: 6 },
];

function caseData(c: LnCase) {
  const X = randomF32(c.T * c.C, c.seed * 7 + 1).map((v) => c.offset + c.scale * v);
  const gamma = randomF32(c.C, c.seed * 7 + 2, 0.5, 1.5);
  const beta = randomF32(c.C, c.seed * 7 + 3, -0.5, 0.5);
  const dY = randomF32(c.T * c.C, c.seed * 7 + 4);
  return { X, gamma, beta, dY };
}

const name = (c: LnCase): string => `T=${c.T} C=${c.C} x=${c.offset}±${c.scale}`;

describe('engine_layernorm', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;

  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-layernorm-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  test('reference backward = central differences of reference forward (L = Σ G ⊙ Y)', () => {
    for (const [T, C, seed] of [
      [3, 1, 1],
      [2, 2, 2],
      [4, 7, 3],
      [3, 33, 4],
    ]) {
      const X = randomF64(T * C, 100 + seed, -2, 2);
      const gamma = randomF64(C, 200 + seed, 0.5, 1.5);
      const beta = randomF64(C, 300 + seed);
      const G = randomF64(T * C, 400 + seed);
      const ref = layernormForwardRef(X, gamma, beta, T, C);
      const dX = layernormBackwardRef(G, X, gamma, ref.mean, ref.rstd, T, C);
      const r = fdGradCheck((x) => dotLoss(G, layernormForwardRef(x, gamma, beta, T, C).y), X, dX, { h: 1e-4 });
      console.log(`layernorm T=${T} C=${C}: ${fmtFd(r)}`);
      // h = 1e-4: O(h²) truncation and ε·|L|/h cancellation both ≲ 1e-7 relative (C = 2 has |dX| ~ 1e-4,
      // where a smaller h is cancellation-dominated); a wrong term in dX is O(1)
      assert.ok(r.maxRel < 1e-6, fmtFd(r));
    }
  });

  for (const c of CASES) {
    test(`GPU forward vs reference ${name(c)}`, async () => {
      const { X, gamma, beta } = caseData(c);
      const got = await layernormForward(rt, X, gamma, beta, c);
      const ref = layernormForwardRef(X, gamma, beta, c.T, c.C);
      const bnd = layernormForwardBounds(X, gamma, beta, ref, c.T, c.C);
      for (const k of ['y', 'mean', 'rstd'] as const) {
        const s = compareWithBound(got[k], ref[k], (i) => bnd[k][i]);
        console.log(`layernorm forward ${name(c)} ${k}: ${fmtStats(s)}`);
        assert.ok(s.firstBad < 0, `${k}[${s.firstBad}] gpu=${got[k][s.firstBad]} ref=${ref[k][s.firstBad]}`);
      }
    });

    test(`GPU backward vs reference ${name(c)} (overwrite and accumulate)`, async () => {
      const { X, gamma, beta, dY } = caseData(c);
      const ref = layernormForwardRef(X, gamma, beta, c.T, c.C);
      // the saved stats as the GPU would hold them: f32 — both sides use these same values
      const mean = Float32Array.from(ref.mean);
      const rstd = Float32Array.from(ref.rstd);
      const dxRef = layernormBackwardRef(dY, X, gamma, mean, rstd, c.T, c.C);
      const got = await layernormBackward(rt, dY, X, gamma, mean, rstd, c);
      const bnd = layernormBackwardBounds(dY, X, gamma, mean, rstd, dxRef, c.T, c.C);
      const s = compareWithBound(got, dxRef, (i) => bnd[i]);
      console.log(`layernorm backward ${name(c)}: ${fmtStats(s)}`);
      assert.ok(s.firstBad < 0, `dX[${s.firstBad}] gpu=${got[s.firstBad]} ref=${dxRef[s.firstBad]}`);

      const prev = randomF32(c.T * c.C, c.seed * 7 + 5);
      const gotAcc = await layernormBackward(rt, dY, X, gamma, mean, rstd, c, prev);
      const accRef = dxRef.map((v, i) => v + prev[i]);
      const bndAcc = layernormBackwardBounds(dY, X, gamma, mean, rstd, accRef, c.T, c.C, prev);
      const sa = compareWithBound(gotAcc, accRef, (i) => bndAcc[i]);
      console.log(`layernorm backward += ${name(c)}: ${fmtStats(sa)}`);
      assert.ok(sa.firstBad < 0, `dX+=[${sa.firstBad}] gpu=${gotAcc[sa.firstBad]} ref=${accRef[sa.firstBad]}`);
    });
  }

  test('chained GPU forward → backward (saved stats from the GPU) on T=300 rows, 2-D grid', async () => {
    const T = 300;
    const C = 64;
    const X = randomF32(T * C, 901, -3, 3);
    const gamma = randomF32(C, 902, 0.5, 1.5);
    const beta = randomF32(C, 903);
    const dY = randomF32(T * C, 904);
    const bufs = {
      x: rt.upload('ln2d:X', X),
      gamma: rt.upload('ln2d:gamma', gamma),
      beta: rt.upload('ln2d:beta', beta),
      y: rt.upload('ln2d:Y', new Float32Array(T * C + 64).fill(777)), // tail sentinel: no write past T·C
      mean: rt.storage('ln2d:mean', T * 4),
      rstd: rt.storage('ln2d:rstd', T * 4),
      dy: rt.upload('ln2d:dY', dY),
      dx: rt.upload('ln2d:dX', new Float32Array(T * C + 64).fill(777)),
    };
    const fwd = await prepareLayernormForward(rt, { T, C }, bufs, { maxWorkgroupsPerDim: 7, label: 'ln2d_fwd' });
    const bwd = await prepareLayernormBackward(rt, { T, C }, bufs, { maxWorkgroupsPerDim: 7, label: 'ln2d_bwd' });
    fwd.run();
    bwd.run();
    const y = await rt.readF32(bufs.y, T * C);
    const mean = await rt.readF32(bufs.mean, T);
    const rstd = await rt.readF32(bufs.rstd, T);
    const dx = await rt.readF32(bufs.dx, T * C);
    const tails = [await rt.readF32(bufs.y, T * C + 64), await rt.readF32(bufs.dx, T * C + 64)];
    for (const tail of tails)
      assert.ok(
        tail.subarray(T * C).every((v) => v === 777),
        'wrote past T·C',
      );
    fwd.destroy();
    bwd.destroy();
    for (const b of Object.values(bufs)) b.destroy();
    const ref = layernormForwardRef(X, gamma, beta, T, C);
    const fb = layernormForwardBounds(X, gamma, beta, ref, T, C);
    const sy = compareWithBound(y, ref.y, (i) => fb.y[i]);
    console.log(`layernorm chained forward T=${T} C=${C} (grid 7×43): ${fmtStats(sy)}`);
    assert.ok(sy.firstBad < 0);
    // backward against the reference evaluated on the GPU's saved stats (exactly what it consumed)
    const dxRef = layernormBackwardRef(dY, X, gamma, mean, rstd, T, C);
    const bb = layernormBackwardBounds(dY, X, gamma, mean, rstd, dxRef, T, C);
    const sd = compareWithBound(dx, dxRef, (i) => bb[i]);
    // and against the exact-stats gradient (the stats' own f32 error included): printed only
    const dxExact = layernormBackwardRef(dY, X, gamma, ref.mean, ref.rstd, T, C);
    const se = compareWithBound(dx, dxExact, () => 1);
    console.log(`layernorm chained backward: ${fmtStats(sd)}; vs exact-stats gradient max|err|=${se.maxAbs.toExponential(2)}`);
    assert.ok(sd.firstBad < 0);
  });

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

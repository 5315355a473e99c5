/**
 * engine_gelu (exact erf GELU): float64 reference checked by finite differences and against
 * CPython's math.erf; the WGSL erf measured on a dense grid; GPU forward/backward vs the reference
 * under the per-element tolerances of src/engine/reference/gelu.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { erfF32OnGpu, geluBackward, geluForward, prepareGeluForward } from '../../src/engine/kernels/gelu';
import {
  erf64,
  erfc64,
  gelu64,
  geluBackwardRef,
  geluBackwardTol,
  geluForwardRef,
  geluForwardTol,
  normalCdf64,
} from '../../src/engine/reference/gelu';
import { randomF32 } from '../support/random';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { compareWithBound, dotLoss, fdGradCheck, fmtFd, fmtStats, randomF64 } from './decoder-pieces-support';

// [x, math.erf(x), math.erfc(x)] from CPython 3 (correctly rounded libm values).
const CPYTHON_ERF: ReadonlyArray<readonly [number, number, number]> = [
  [0.0, 0.0, 1.0],
  [1e-8, 1.1283791670955126e-8, 0.9999999887162083],
  [0.1, 0.1124629160182849, 0.8875370839817152],
  [0.5, 0.5204998778130465, 0.4795001221869535],
  [0.85, 0.7706680576083526, 0.2293319423916475],
  [1.0, 0.8427007929497149, 0.15729920705028513],
  [1.5, 0.9661051464753108, 0.033894853524689274],
  [2.0, 0.9953222650189527, 0.004677734981047265],
  [2.9999, 0.9999778955735178, 2.210442648216091e-5],
  [3.0, 0.9999779095030014, 2.2090496998585438e-5],
  [3.5, 0.9999992569016276, 7.430983723414128e-7],
  [4.0, 0.9999999845827421, 1.541725790028002e-8],
  [5.0, 0.9999999999984626, 1.5374597944280351e-12],
  [6.0, 1.0, 2.1519736712498916e-17],
  [-0.3, -0.3286267594591274, 1.3286267594591274],
  [-2.5, -0.999593047982555, 1.999593047982555],
];

/** f32 grid of n points over [lo, hi] plus the specials. */
function gridF32(n: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + ((hi - lo) * i) / (n - 1);
  return out;
}

describe('engine_gelu (exact erf GELU)', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;

  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-gelu-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  test('float64 erf/erfc reference matches CPython math.erf/erfc', () => {
    let maxRelErf = 0;
    let maxRelErfc = 0;
    for (const [x, e, ec] of CPYTHON_ERF) {
      if (e !== 0) maxRelErf = Math.max(maxRelErf, Math.abs(erf64(x) - e) / Math.abs(e));
      else assert.equal(erf64(x), 0);
      maxRelErfc = Math.max(maxRelErfc, Math.abs(erfc64(x) - ec) / Math.abs(ec));
    }
    console.log(`erf64 vs CPython: max rel ${maxRelErf.toExponential(2)}; erfc64: max rel ${maxRelErfc.toExponential(2)}`);
    assert.ok(maxRelErf < 1e-14, `erf64 rel err ${maxRelErf}`);
    assert.ok(maxRelErfc < 1e-14, `erfc64 rel err ${maxRelErfc}`);
    // continuity at the switches (erf: |x| = 3, erfc: x = 1)
    for (const [f, at] of [
      [erf64, 3],
      [erfc64, 1],
    ] as const) {
      const below = f(at * (1 - 1e-15));
      const above = f(at);
      assert.ok(Math.abs(below - above) / above < 1e-13, `jump at ${at}: ${below} vs ${above}`);
    }
  });

  test('reference backward = central differences of reference forward (L = Σ G ⊙ gelu(X))', () => {
    const n = 300;
    const X = randomF64(n, 11, -6, 6);
    X.set([0, 1e-3, -1e-3, -1.2, 1.2, -5.5, 5.5, -0.75], 0);
    const G = randomF64(n, 12);
    const dX = geluBackwardRef(X, G);
    const r = fdGradCheck((x) => dotLoss(G, geluForwardRef(x)), X, dX, { h: 1e-5 });
    console.log(`gelu ${fmtFd(r)}`);
    assert.ok(r.maxRel < 1e-6, fmtFd(r)); // O(h²) truncation + ε·|L|/h cancellation ≈ 1e-8; a wrong formula is O(1)
  });

  test('WGSL erf_f32: max abs error < 2e-7 over [−6, 6] (measured on this device)', async () => {
    const n = 1 << 18;
    const X = gridF32(n, -6, 6);
    const got = await erfF32OnGpu(rt, X);
    let maxAbs = 0;
    let at = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.abs(got[i] - erf64(X[i]));
      if (!(e <= maxAbs)) {
        maxAbs = e;
        at = X[i];
      }
    }
    // also every f32 within ±64 ulp of the switch point |z| = 0.85
    const sw = new Float32Array(258);
    const bits = new Uint32Array(sw.buffer);
    const base = new Uint32Array(new Float32Array([0.85]).buffer)[0];
    for (let i = 0; i < 129; i++) {
      bits[i] = base - 64 + i;
      bits[129 + i] = (base - 64 + i) | 0x80000000;
    }
    const gotSw = await erfF32OnGpu(rt, sw);
    let maxSw = 0;
    for (let i = 0; i < sw.length; i++) maxSw = Math.max(maxSw, Math.abs(gotSw[i] - erf64(sw[i])));
    // erf(±large) and erf(NaN)
    const special = await erfF32OnGpu(rt, new Float32Array([10, -10, Infinity, -Infinity, NaN, 0]));
    console.log(
      `erf_f32 on ${n} points in [−6, 6]: max abs err ${maxAbs.toExponential(3)} at z=${at}; ` +
        `around the 0.85 switch: ${maxSw.toExponential(3)}; erf(±10, ±inf, NaN, 0) = ${Array.from(special).join(', ')}`,
    );
    assert.ok(maxAbs < 2e-7, `erf max abs error ${maxAbs} at ${at}`);
    assert.ok(maxSw < 2e-7, `erf error near switch ${maxSw}`);
    assert.deepEqual(Array.from(special.subarray(0, 4)), [1, -1, 1, -1]);
    assert.ok(Number.isNaN(special[4]));
    assert.equal(special[5], 0);
  });

  test('GPU forward vs reference: dense grid [−12, 12] and a random (T=7, C=37) tensor', async () => {
    const grid = gridF32(1 << 16, -12, 12);
    const rnd = randomF32(7 * 37, 21, -4, 4);
    const specials = new Float32Array([0, 1e-30, -1e-30, 1e-8, -1e-8, 3e4, -3e4, -12.5, 12.5]);
    for (const [name, X] of [
      ['grid [−12,12]', grid],
      ['random 7×37', rnd],
      ['specials', specials],
    ] as const) {
      const y = await geluForward(rt, X);
      const ref = geluForwardRef(X);
      const s = compareWithBound(y, ref, (i) => geluForwardTol(X[i], ref[i]));
      console.log(`gelu forward ${name}: ${fmtStats(s)}`);
      assert.ok(s.firstBad < 0, `${name}: x=${X[s.firstBad]} gpu=${y[s.firstBad]} ref=${ref[s.firstBad]}`);
    }
    // left tail keeps relative accuracy (not just absolute): x in [−12, −1.3]
    const tail = gridF32(4096, -12, -1.3);
    const yt = await geluForward(rt, tail);
    let maxRel = 0;
    for (let i = 0; i < tail.length; i++) {
      const r = gelu64(tail[i]);
      maxRel = Math.max(maxRel, Math.abs(yt[i] - r) / Math.abs(r));
    }
    console.log(
      `gelu forward left tail [−12, −1.3]: max rel err ${maxRel.toExponential(2)} (Φ down to ${normalCdf64(-12).toExponential(1)})`,
    );
    assert.ok(maxRel < 2e-5, `left-tail relative error ${maxRel}`);
  });

  test('GPU backward vs reference: dense grid and random (T=7, C=37)', async () => {
    for (const [name, X] of [
      ['grid [−12,12]', gridF32(1 << 16, -12, 12)],
      ['random 7×37', randomF32(7 * 37, 31, -4, 4)],
    ] as const) {
      const dY = randomF32(X.length, 32 + X.length);
      const dx = await geluBackward(rt, X, dY);
      const ref = geluBackwardRef(X, dY);
      const s = compareWithBound(dx, ref, (i) => geluBackwardTol(X[i], dY[i], ref[i]));
      console.log(`gelu backward ${name}: ${fmtStats(s)}`);
      assert.ok(s.firstBad < 0, `${name}: x=${X[s.firstBad]} gpu=${dx[s.firstBad]} ref=${ref[s.firstBad]}`);
    }
  });

  test('2-D grid path (forced 3 workgroups per dimension) and n not a multiple of 256', async () => {
    const n = 256 * 7 + 5; // 8 workgroups → grid 3×3
    const X = randomF32(n, 41, -5, 5);
    const x = rt.upload('gelu2d:X', X);
    const y = rt.storage('gelu2d:Y', (n + 64) * 4);
    rt.device.queue.writeBuffer(y, 0, new Float32Array(n + 64).fill(777));
    const call = await prepareGeluForward(rt, n, { x, y }, 'gelu_forward_2d', 3);
    call.run();
    const got = await rt.readF32(y, n + 64);
    call.destroy();
    x.destroy();
    y.destroy();
    const ref = geluForwardRef(X);
    const s = compareWithBound(got.subarray(0, n), ref, (i) => geluForwardTol(X[i], ref[i]));
    console.log(`gelu forward 2-D grid n=${n}: ${fmtStats(s)}`);
    assert.ok(s.firstBad < 0);
    assert.ok(
      got.subarray(n).every((v) => v === 777),
      'wrote past n',
    );
  });

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

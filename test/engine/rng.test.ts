/**
 * Engine RNG: Philox-4x32-10 known answers (Random123 tests/kat_vectors), GPU words bit-identical
 * to the CPU twin, normals/signs/dropout masks from the same words, and rough distribution checks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { rngDraw } from '../../src/engine/kernels/rng';
import { dropThreshold, normalFromBits, philox4x32, rngBits, RNG_STREAM, signFromBits } from '../../src/engine/reference/rng';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';

// Random123 tests/kat_vectors, the three "philox4x32 10" lines: ctr[4] key[2] → out[4].
const KAT: [number[], number[], number[]][] = [
  [
    [0, 0, 0, 0],
    [0, 0],
    [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
  ],
  [
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  ],
  [
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  ],
];

describe('engine rng (Philox-4x32-10)', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-rng-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  test('CPU Philox matches Random123 known-answer vectors', () => {
    for (const [ctr, key, want] of KAT) assert.deepEqual(philox4x32(ctr, key), want);
  });

  test('GPU words are bit-identical to the CPU twin (u32)', async () => {
    const seed = 0x1234_5678_9abcn; // hi word non-zero
    for (const [step, tensor, stream, n] of [
      [0, 0, 0, 300],
      [7, 3, RNG_STREAM.XI, 1000],
      [0xffffffff, 0xfffffffe, RNG_STREAM.SIGN_OUT, 257],
    ]) {
      const gpu = (await rngDraw(rt, 'bits', { n, seed, step, tensor, stream })) as Uint32Array;
      const key = { seed: [0x56789abc, 0x1234] as const, step, tensor };
      let mismatches = 0;
      for (let i = 0; i < n; i++) {
        const want = rngBits(key, stream, i);
        for (let w = 0; w < 4; w++) if (gpu[4 * i + w] !== want[w]) mismatches++;
      }
      console.log(`bits step=${step} tensor=${tensor} stream=${stream} n=${n}: ${mismatches} mismatching words of ${4 * n}`);
      assert.equal(mismatches, 0);
    }
  });

  test('GPU normals vs float64 Box–Muller of the same words; signs and dropout exact', async () => {
    const n = 20000;
    const args = { n, seed: 42, step: 3, tensor: 5, stream: RNG_STREAM.EPS };
    const key = { seed: [42, 0] as const, step: 3, tensor: 5 };
    const z = (await rngDraw(rt, 'normal', args)) as Float32Array;
    let maxAbs = 0;
    let maxRel = 0;
    let mean = 0;
    let m2 = 0;
    for (let i = 0; i < n; i++) {
      const ref = normalFromBits(rngBits(key, RNG_STREAM.EPS, i));
      const e = Math.abs(z[i] - ref);
      maxAbs = Math.max(maxAbs, e);
      maxRel = Math.max(maxRel, e / Math.max(1, Math.abs(ref)));
      mean += ref;
      m2 += ref * ref;
    }
    mean /= n;
    const variance = m2 / n - mean * mean;
    console.log(
      `normal n=${n}: max |gpu−f64| = ${maxAbs.toExponential(3)}, max rel (÷max(1,|z|)) = ${maxRel.toExponential(3)}; mean ${mean.toFixed(4)} var ${variance.toFixed(4)}`,
    );
    // Tolerance 1e-6·max(1,|z|) (≈ 16 f32 ulps): the WGSL computes ln and cos(π·) with its own
    // polynomials (+,−,×,÷, fma only; truncation < 2e-9), so the error is f32 rounding of ~15
    // operations plus sqrt (≤ 2.5 ulp) — measured ~2e-7. (With the driver's log/cos SwiftShader
    // was 2e-4 off, which the WGSL spec permits; that is why the library avoids them.)
    assert.ok(maxRel <= 1e-6, `normal error ${maxRel}`);
    assert.ok(Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.04, `moments ${mean} ${variance}`);

    const s = (await rngDraw(rt, 'sign', { ...args, stream: RNG_STREAM.SIGN_IN })) as Float32Array;
    let plus = 0;
    for (let i = 0; i < n; i++) {
      assert.equal(s[i], signFromBits(rngBits(key, RNG_STREAM.SIGN_IN, i)));
      if (s[i] > 0) plus++;
    }
    const thresh = dropThreshold(0.05);
    const k = (await rngDraw(rt, 'keep', { ...args, stream: RNG_STREAM.DROP, thresh })) as Float32Array;
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const want = rngBits(key, RNG_STREAM.DROP, i)[0] >>> 8 >= thresh ? 1 : 0;
      assert.equal(k[i], want);
      kept += k[i];
    }
    console.log(`sign +1 fraction ${(plus / n).toFixed(4)}; dropout p=0.05 keep fraction ${(kept / n).toFixed(4)}`);
    assert.ok(Math.abs(plus / n - 0.5) < 0.02);
    assert.ok(Math.abs(kept / n - 0.95) < 0.01);
  });

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

/**
 * engine_logits_ce: float64 reference dH checked by central differences of the float64 loss;
 * GPU loss / per-row loss / argmax / dH vs the reference under the first-order f32 bounds of
 * src/engine/reference/logits_ce.ts, on small odd shapes with forced vocab tiling, and once on
 * Whisper's V = 51,865 with a browser-like 128 MiB binding cap.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { logitsCrossEntropy, prepareLogitsCe } from '../../src/engine/kernels/logits_ce';
import { logitsCeBackwardRef, logitsCeBounds, logitsCeForwardRef } from '../../src/engine/reference/logits_ce';
import { randomF32 } from '../support/random';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { compareWithBound, fdGradCheck, fmtFd, fmtStats, randomF64, randomInts } from './decoder-pieces-support';

interface CeCase {
  name: string;
  T: number;
  C: number;
  V: number;
  /** rows whose target is padding (−1) or out of range (V) */
  pad: number[];
  maxTileRows?: number;
  maxBindingBytes?: number;
  lossScale: number;
  /** H scale: larger → peakier softmax */
  hScale: number;
  seed: number;
}

const CASES: CeCase[] = [
  { name: 'T=7 C=24 V=37, tiles of 8 rows', T: 7, C: 24, V: 37, pad: [2, 5], maxTileRows: 8, lossScale: 1, hScale: 1, seed: 1 },
  { name: 'T=70 C=70 V=300, tiles of 128', T: 70, C: 70, V: 300, pad: [0, 69], maxTileRows: 128, lossScale: 0.5, hScale: 3, seed: 2 },
  { name: 'T=3 C=5 V=9, one tile, all padding but one', T: 3, C: 5, V: 9, pad: [0, 2], lossScale: 1, hScale: 1, seed: 3 },
];

function caseData(c: CeCase) {
  const H = randomF32(c.T * c.C, c.seed * 11 + 1, -c.hScale, c.hScale);
  const E = randomF32(c.V * c.C, c.seed * 11 + 2);
  const targets = Int32Array.from(randomInts(c.T, c.V, c.seed * 11 + 3));
  c.pad.forEach((t, i) => (targets[t] = i % 2 === 0 ? -1 : c.V));
  return { H, E, targets };
}

describe('engine_logits_ce', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;

  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-logits-ce-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  test('reference dH = central differences of lossScale · loss(H) (padding rows → 0)', () => {
    const T = 6;
    const C = 11;
    const V = 37;
    const H = randomF64(T * C, 501, -2, 2);
    const E = randomF64(V * C, 502);
    const tgt = [3, -1, 36, 0, 37, 17]; // row 1 padding, row 4 out of range → excluded
    const s = 0.7;
    const dh = logitsCeBackwardRef(H, E, tgt, T, C, V, s);
    const r = fdGradCheck((h) => s * logitsCeForwardRef(h, E, tgt, T, C, V).loss, H, dh, { h: 1e-6 });
    console.log(`logits_ce ${fmtFd(r)}`);
    assert.ok(r.maxRel < 1e-6, fmtFd(r)); // O(h²) + ε|L|/h ≈ 1e-9; a wrong formula is O(1)
    for (const t of [1, 4]) for (let c = 0; c < C; c++) assert.equal(dh[t * C + c], 0);
    // logsumexp shift invariance: the max-shifted form equals a direct log Σ exp
    const f = logitsCeForwardRef(H, E, tgt, T, C, V);
    let direct = 0;
    for (let v = 0; v < V; v++) direct += Math.exp(f.logits[v]);
    assert.ok(Math.abs(Math.log(direct) - f.lse[0]) < 1e-12);
  });

  for (const c of CASES) {
    test(`GPU forward + backward vs reference: ${c.name}`, async () => {
      const { H, E, targets } = caseData(c);
      const ref = logitsCeForwardRef(H, E, targets, c.T, c.C, c.V);
      const dhRef = logitsCeBackwardRef(H, E, targets, c.T, c.C, c.V, c.lossScale, ref);
      // Both matmul variants (tiled for GPUs, register-tiled *_rt for software adapters): each vs
      // the reference, and bit-identical to each other (same summation order).
      const runs = [];
      for (const registerTiled of [false, true]) {
        const got = await logitsCrossEntropy(rt, H, E, targets, c, {
          withGrad: true,
          maxTileRows: c.maxTileRows,
          maxBindingBytes: c.maxBindingBytes,
          lossScale: c.lossScale,
          registerTiled,
        });
        const bnd = logitsCeBounds(E, targets, c.T, c.C, c.V, got.tiles.length, ref, c.lossScale);
        report(`${c.name} [${registerTiled ? '*_rt' : 'tiled'}]`, got, ref, dhRef, bnd, targets, c);
        runs.push(got);
      }
      assert.equal(runs[0].loss, runs[1].loss, 'loss: tiled vs *_rt');
      assert.deepEqual([...runs[0].argmax], [...runs[1].argmax], 'argmax: tiled vs *_rt');
      let diff = 0;
      for (let i = 0; i < runs[0].dh!.length; i++) if (runs[0].dh![i] !== runs[1].dh![i]) diff++;
      assert.equal(diff, 0, `dH: ${diff} elements differ between tiled and *_rt`);
    });
  }

  function report(
    name: string,
    got: Awaited<ReturnType<typeof logitsCrossEntropy>>,
    ref: ReturnType<typeof logitsCeForwardRef>,
    dhRef: Float64Array,
    bnd: ReturnType<typeof logitsCeBounds>,
    targets: Int32Array,
    c: { T: number; V: number },
  ): void {
    const lossErr = Math.abs(got.loss - ref.loss);
    console.log(
      `logits_ce ${name}: ${got.tiles.length} tile(s), dH split-K ${got.splits}; loss gpu=${got.loss.toFixed(7)} ref=${ref.loss.toFixed(7)} ` +
        `|err|=${lossErr.toExponential(2)} rel=${(lossErr / Math.abs(ref.loss || 1)).toExponential(2)} ` +
        `err/bound=${(lossErr / bnd.loss).toExponential(2)}; N=${got.count}`,
    );
    assert.equal(got.count, ref.count);
    assert.ok(lossErr <= bnd.loss, `loss ${got.loss} vs ${ref.loss} (bound ${bnd.loss})`);
    const sr = compareWithBound(got.rowLoss, ref.rowLoss, (i) => bnd.rowLoss[i]);
    console.log(`  row loss: ${fmtStats(sr)}`);
    assert.ok(sr.firstBad < 0, `rowLoss[${sr.firstBad}] gpu=${got.rowLoss[sr.firstBad]} ref=${ref.rowLoss[sr.firstBad]}`);
    // lse = M + log S per row (printed; enters dH through the bound)
    const lse = Float64Array.from({ length: c.T }, (_, t) => got.lse2[2 * t] + got.lse2[2 * t + 1]);
    const sl = compareWithBound(lse, ref.lse, () => 1);
    console.log(`  lse: max|err|=${sl.maxAbs.toExponential(2)} max rel=${sl.maxRel.toExponential(2)}`);
    // argmax: the GPU's pick must be a maximum up to the logits' rounding (exact unless near-tie)
    let argmaxExact = 0;
    for (let t = 0; t < c.T; t++) {
      const a = got.argmax[t];
      assert.ok(a < c.V, `argmax[${t}] = ${a}`);
      const gap = ref.logits[t * c.V + ref.argmax[t]] - ref.logits[t * c.V + a];
      assert.ok(gap <= 2 * bnd.logitErr[t], `argmax[${t}] = ${a}, ref ${ref.argmax[t]}, gap ${gap}`);
      if (a === ref.argmax[t]) argmaxExact++;
    }
    console.log(`  argmax: ${argmaxExact}/${c.T} rows identical to the reference`);
    const sd = compareWithBound(got.dh!, dhRef, (i) => bnd.dh[i]);
    console.log(`  dH: ${fmtStats(sd)}`);
    assert.ok(sd.firstBad < 0, `dH[${sd.firstBad}] gpu=${got.dh![sd.firstBad]} ref=${dhRef[sd.firstBad]}`);
    for (let t = 0; t < c.T; t++) {
      if (!(targets[t] >= 0 && targets[t] < c.V)) {
        assert.equal(got.rowLoss[t], 0);
        const C = got.dh!.length / c.T;
        for (let k = 0; k < C; k++) assert.equal(got.dh![t * C + k], 0, `padding row ${t} has gradient`);
      }
    }
  }

  test('tiling is invisible: 1 tile vs 5 tiles give the same loss/argmax and dH within bounds', async () => {
    const c = CASES[0];
    const { H, E, targets } = caseData(c);
    const one = await logitsCrossEntropy(rt, H, E, targets, c, { withGrad: true });
    const five = await logitsCrossEntropy(rt, H, E, targets, c, { withGrad: true, maxTileRows: 8 });
    assert.equal(one.tiles.length, 1);
    assert.equal(five.tiles.length, 5);
    assert.deepEqual(Array.from(one.argmax), Array.from(five.argmax));
    console.log(
      `1 vs 5 tiles: loss ${one.loss} vs ${five.loss}, max|ΔdH|=${Math.max(...one.dh!.map((v, i) => Math.abs(v - five.dh![i]))).toExponential(2)}`,
    );
    assert.ok(Math.abs(one.loss - five.loss) < 1e-5);
  });

  test('backward accumulate + setLossScale + forced split-K 3 (chunks of 3,3,2 rows) on a prepared call; all-padding batch gives loss 0, dH 0', async () => {
    const T = 4;
    const C = 8;
    const V = 20;
    const H = randomF32(T * C, 71);
    const E = randomF32(V * C, 72);
    const targets = new Int32Array([1, 5, -1, 19]);
    const h = rt.upload('ce_acc:H', H);
    const e = rt.upload('ce_acc:E', E);
    const tg = rt.upload('ce_acc:targets', targets);
    const prev = randomF32(T * C, 73);
    const dh = rt.upload(
      'ce_acc:dH',
      Float32Array.from({ length: T * C + 64 }, (_, i) => (i < T * C ? prev[i] : 777)),
    );
    const call = await prepareLogitsCe(
      rt,
      { T, C, V },
      { h, E: e, targets: tg, dh },
      { accumulate: true, maxTileRows: 8, splitK: 3, label: 'ce_acc' },
    );
    call.setLossScale(0.25);
    call.forward();
    call.backward();
    const got = await rt.readF32(dh, T * C);
    assert.ok(
      (await rt.readF32(dh, T * C + 64)).subarray(T * C).every((v) => v === 777),
      'dH written past T·C',
    );
    const ref = logitsCeForwardRef(H, E, targets, T, C, V);
    const dRef = logitsCeBackwardRef(H, E, targets, T, C, V, 0.25, ref).map((v, i) => v + prev[i]);
    const bnd = logitsCeBounds(E, targets, T, C, V, call.tiles.length, ref, 0.25);
    const s = compareWithBound(got, dRef, (i) => bnd.dh[i] + 2 ** -23 * Math.abs(dRef[i]));
    console.log(`logits_ce dH += (lossScale 0.25, ${call.tiles.length} tiles, split-K ${call.splits}): ${fmtStats(s)}`);
    assert.ok(s.firstBad < 0);
    // all padding
    rt.device.queue.writeBuffer(tg, 0, new Int32Array([-1, -1, -1, -1]));
    rt.device.queue.writeBuffer(dh, 0, new Float32Array(T * C).fill(3));
    call.forward();
    call.backward();
    const l = await call.readLoss();
    const g = await rt.readF32(dh, T * C);
    assert.deepEqual([l.loss, l.count], [0, 0]);
    assert.ok(
      g.every((v) => v === 3),
      'all-padding batch must add nothing to dH',
    );
    call.destroy();
    for (const b of [h, e, tg, dh]) b.destroy();
  });

  test('Whisper vocabulary V = 51865, C = 48, T = 5, 128 MiB binding cap, default 8192-row tiles', async () => {
    const T = 5;
    const C = 48; // C·4 = 192 B → tiles must be multiples of 4 rows for 256-B offset alignment
    const V = 51865;
    const H = randomF32(T * C, 81, -2, 2);
    const E = randomF32(V * C, 82, -0.5, 0.5);
    const targets = new Int32Array([50257, 0, -1, 51864, 220]);
    const t0 = performance.now();
    const got = await logitsCrossEntropy(rt, H, E, targets, { T, C, V }, { withGrad: true, maxBindingBytes: 128 * 2 ** 20 });
    const ms = performance.now() - t0;
    const ref = logitsCeForwardRef(H, E, targets, T, C, V);
    const dhRef = logitsCeBackwardRef(H, E, targets, T, C, V, 1, ref);
    const bnd = logitsCeBounds(E, targets, T, C, V, got.tiles.length, ref, 1);
    console.log(
      `logits_ce V=${V}: GPU forward+backward ${ms.toFixed(0)} ms (incl. upload of E, ${((V * C * 4) / 2 ** 20).toFixed(1)} MiB)`,
    );
    assert.equal(got.tiles.length, 7);
    report(`V=${V} C=${C} T=${T}`, got, ref, dhRef, bnd, targets, { T, V });
  });

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

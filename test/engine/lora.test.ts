/**
 * LoRA / BLoRA adapter (engine_lora.wgsl):
 *  (1) float64 reference backward vs central differences of the float64 reference forward,
 *      L = Σ G ⊙ Δy, for every mode pair (LoRA, Flipout, Flipout A-only, bbb, LRT) with dropout;
 *  (2) GPU forward/backward vs the reference, accumulate semantics included, with a per-element
 *      bound 2·(n_in + r + 16)·u·Σ|terms| (+ u·|initial value| for accumulation);
 *  (3) bit-for-bit reproducibility of a step, and a different draw at another step.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { prepareLoraAdapter } from '../../src/engine/kernels/lora';
import {
  type AdapterRefConfig,
  type AdapterRefParams,
  type LoraMode,
  loraAdapterBackwardAbsRef,
  loraAdapterBackwardRef,
  loraAdapterForwardRef,
  materializeAdapterNoise,
  type FactorNoiseArrays,
} from '../../src/engine/reference/lora';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { randomF32 } from '../support/random';
import { compare, dot, fdCheck, U32 } from './blora-check';

interface Case {
  name: string;
  modeA: LoraMode;
  modeB: LoraMode;
  T: number;
  nIn: number;
  r: number;
  nOut: number;
  dropout: number;
}

const CASES: Case[] = [
  { name: 'LoRA det/det', modeA: 'det', modeB: 'det', T: 37, nIn: 45, r: 5, nOut: 33, dropout: 0.05 },
  { name: 'BLoRA flipout/flipout', modeA: 'flipout', modeB: 'flipout', T: 37, nIn: 45, r: 5, nOut: 33, dropout: 0.3 },
  { name: 'BLoRA flipout A-only', modeA: 'flipout', modeB: 'det', T: 3, nIn: 7, r: 2, nOut: 70, dropout: 0 },
  { name: 'BLoRA bbb/bbb', modeA: 'bbb', modeB: 'bbb', T: 33, nIn: 17, r: 4, nOut: 9, dropout: 0.1 },
  { name: 'BLoRA lrt/lrt', modeA: 'lrt', modeB: 'lrt', T: 35, nIn: 40, r: 3, nOut: 34, dropout: 0.2 },
];

const SEED: [number, number] = [0x0badcafe, 7];
const SEED_BIG = (7n << 32n) | 0x0badcafen;

function makeParams(
  c: Case,
  seed: number,
): AdapterRefParams & { muA: Float32Array; rhoA: Float32Array; muB: Float32Array; rhoB: Float32Array } {
  const nA = c.r * c.nIn;
  const nB = c.nOut * c.r;
  const bound = 1 / Math.sqrt(c.nIn);
  return {
    muA: randomF32(nA, seed + 1, -bound, bound), // kaiming-uniform range
    rhoA: randomF32(nA, seed + 2, -3, 0.5), // σ ≈ 0.05…1: noise visible in the check
    muB: randomF32(nB, seed + 3, -0.5, 0.5), // trained-B-like (B = 0 would hide A's gradients)
    rhoB: randomF32(nB, seed + 4, -3, 0.5),
  };
}

function refCfg(c: Case, step: number, abs = false): AdapterRefConfig {
  return {
    T: c.T,
    nIn: c.nIn,
    r: c.r,
    nOut: c.nOut,
    alpha: 2 * c.r,
    modeA: c.modeA,
    modeB: c.modeB,
    seed: SEED,
    step,
    tensorA: 2 * 3,
    tensorB: 2 * 3 + 1,
    dropout: c.dropout,
    abs,
  };
}

/**
 * tools/blora_torch.py's BayesianFactor.forward / BLoRALinear.forward, transcribed with plain
 * matrix loops over injected noise: an independent second implementation of the forward.
 */
function oracleForward(x: ArrayLike<number>, P: AdapterRefParams, c: AdapterRefConfig): Float64Array {
  const noise = materializeAdapterNoise(c);
  const mm = (X: ArrayLike<number>, W: ArrayLike<number>, T: number, nIn: number, nOut: number): Float64Array => {
    const Y = new Float64Array(T * nOut); // X · Wᵀ
    for (let t = 0; t < T; t++)
      for (let o = 0; o < nOut; o++) for (let k = 0; k < nIn; k++) Y[t * nOut + o] += X[t * nIn + k] * W[o * nIn + k];
    return Y;
  };
  const sp = (r: number): number => (r < -20 ? Math.exp(r) : Math.log1p(Math.exp(r)));
  const factor = (
    X: ArrayLike<number>,
    mu: ArrayLike<number>,
    rho: ArrayLike<number> | undefined,
    mode: LoraMode,
    nz: FactorNoiseArrays,
    T: number,
    nIn: number,
    nOut: number,
  ) => {
    if (mode === 'det') return mm(X, mu, T, nIn, nOut);
    const sigma = Array.from(rho!, sp);
    if (mode === 'bbb')
      return mm(
        X,
        Array.from(mu, (m, i) => m + sigma[i] * nz.eps![i]),
        T,
        nIn,
        nOut,
      );
    if (mode === 'flipout') {
      const a = mm(X, mu, T, nIn, nOut);
      const b = mm(
        Array.from(X, (v, i) => v * nz.signIn![i]),
        sigma.map((s, i) => s * nz.eps![i]),
        T,
        nIn,
        nOut,
      );
      return a.map((v, i) => v + b[i] * nz.signOut![i]);
    }
    const mean = mm(X, mu, T, nIn, nOut);
    const vr = mm(
      Array.from(X, (v) => v * v),
      sigma.map((s) => s * s),
      T,
      nIn,
      nOut,
    );
    return mean.map((m, i) => m + Math.sqrt(vr[i] + 1e-8) * nz.xi![i]);
  };
  const hIn = noise.dropoutMask ? Array.from(x, (v, i) => v * noise.dropoutMask![i]) : x;
  const h = factor(hIn, P.muA, P.rhoA, c.modeA, noise.a, c.T, c.nIn, c.r);
  const d = factor(h, P.muB, P.rhoB, c.modeB, noise.b, c.T, c.r, c.nOut);
  return d.map((v) => (c.alpha / c.r) * v);
}

describe('engine lora / blora', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-lora-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  test('reference forward = the PyTorch oracle formulas (tools/blora_torch.py) on the materialized noise', () => {
    for (const c of CASES) {
      const small = { ...c, T: 5, nIn: 9, r: 3, nOut: 7 };
      const P = makeParams(small, 50);
      const x = randomF32(small.T * small.nIn, 51);
      const cfg = refCfg(small, 9);
      const want = oracleForward(x, P, cfg);
      const got = loraAdapterForwardRef(x, P, cfg).dy;
      const err = Math.max(...got.map((v, i) => Math.abs(v - want[i])));
      console.log(`${c.name}: max |ref − oracle formulas| = ${err.toExponential(2)}`);
      assert.ok(err < 1e-12, c.name);
    }
  });

  for (const c of CASES) {
    test(`FD check of the float64 reference: ${c.name}`, () => {
      const small = { ...c, T: 4, nIn: 6, r: 3, nOut: 5 };
      const P = makeParams(small, 11);
      const th = {
        x: Float64Array.from(randomF32(small.T * small.nIn, 21)),
        muA: Float64Array.from(P.muA),
        rhoA: Float64Array.from(P.rhoA),
        muB: Float64Array.from(P.muB),
        rhoB: Float64Array.from(P.rhoB),
      };
      const G = Float64Array.from(randomF32(small.T * small.nOut, 22));
      const cfg = refCfg(small, 5);
      const loss = (): number => dot(G, loraAdapterForwardRef(th.x, th, cfg).dy);
      const an = loraAdapterBackwardRef(th.x, th, G, cfg);
      const checks = [fdCheck('dx', th.x, an.dx, loss), fdCheck('dμA', th.muA, an.dmuA, loss), fdCheck('dμB', th.muB, an.dmuB, loss)];
      if (c.modeA !== 'det') checks.push(fdCheck('dρA', th.rhoA, an.drhoA, loss));
      if (c.modeB !== 'det') checks.push(fdCheck('dρB', th.rhoB, an.drhoB, loss));
      for (const r of checks) {
        console.log(`${c.name} ${r.line}`);
        // Central differences with h = 1e-5: truncation O(h²·f‴) ~ 1e-10, cancellation ~ 1e-16/h.
        assert.ok(r.rel < 1e-7, `${c.name} ${r.line}`);
      }
    });

    test(`GPU vs float64 reference: ${c.name} T=${c.T} in=${c.nIn} r=${c.r} out=${c.nOut} p=${c.dropout}`, async () => {
      const P = makeParams(c, 100);
      const nA = c.r * c.nIn;
      const nB = c.nOut * c.r;
      // Flat parameter / gradient buffers with odd offsets (as in a real packed layout).
      const off = { muA: 3, rhoA: 3 + nA, muB: 3 + 2 * nA, rhoB: 3 + 2 * nA + nB };
      const gradOff = { muA: 1 + 2 * nB, rhoA: 1 + 2 * nB + nA, muB: 1, rhoB: 1 + nB };
      const nTheta = 3 + 2 * nA + 2 * nB;
      const theta = new Float32Array(nTheta);
      theta.set(P.muA, off.muA);
      theta.set(P.rhoA, off.rhoA);
      theta.set(P.muB, off.muB);
      theta.set(P.rhoB, off.rhoB);
      const grads0 = randomF32(nTheta, 31); // accumulated into
      const x = randomF32(c.T * c.nIn, 32);
      const y0 = randomF32(c.T * c.nOut, 33); // frozen layer's output
      const dY = randomF32(c.T * c.nOut, 34);
      const dx0 = randomF32(c.T * c.nIn, 35); // frozen layer's dX

      const b = {
        theta: rt.upload('lora-test:theta', theta),
        grads: rt.upload('lora-test:grads', grads0),
        x: rt.upload('lora-test:x', x),
        y: rt.upload('lora-test:y', y0),
        dy: rt.upload('lora-test:dy', dY),
        dx: rt.upload('lora-test:dx', dx0),
      };
      const step = 12;
      const call = await prepareLoraAdapter(
        rt,
        {
          T: c.T,
          nIn: c.nIn,
          r: c.r,
          nOut: c.nOut,
          alpha: 2 * c.r,
          modeA: c.modeA,
          modeB: c.modeB,
          seed: SEED_BIG,
          moduleId: 3,
          dropout: c.dropout,
          off,
          gradOff,
        },
        b,
      );
      call.forward(step);
      call.backward(step);
      const [y, dx, grads] = await Promise.all([rt.readF32(b.y, c.T * c.nOut), rt.readF32(b.dx, c.T * c.nIn), rt.readF32(b.grads, nTheta)]);

      const cfg = refCfg(c, step);
      const fw = loraAdapterForwardRef(x, P, cfg);
      const fwAbs = loraAdapterForwardRef(x, P, refCfg(c, step, true));
      const bw = loraAdapterBackwardRef(x, P, dY, cfg);
      const bwAbs = loraAdapterBackwardAbsRef(x, P, dY, cfg);
      // Bound: 2·(n + 16)·u·Σ|terms|, n = in + r (the longest chain of f32 sums feeding an output,
      // Higham γ_n for a product of two dot products), ×2 and +16 for the non-sum operations
      // (softplus, Box–Muller, sqrt, ÷AUX, sigmoid: each a few ulp, all relative to the same terms);
      // plus u·|initial| for the accumulation into an existing value.
      const n = c.nIn + c.r + 16;
      const bnd =
        (absArr: ArrayLike<number>, init: ArrayLike<number>, io = 0) =>
        (i: number) =>
          2 * n * U32 * absArr[i] + U32 * Math.abs(init[io + i]);
      const results = [
        compare(
          'y = y0 + Δy',
          y,
          fw.dy.map((v, i) => y0[i] + v),
          bnd(fwAbs.dy, y0),
        ),
        compare(
          'dx = dx0 + ∂',
          dx,
          bw.dx.map((v, i) => dx0[i] + v),
          bnd(bwAbs.dx, dx0),
        ),
        compare(
          'dμA',
          grads.subarray(gradOff.muA, gradOff.muA + nA),
          bw.dmuA.map((v, i) => grads0[gradOff.muA + i] + v),
          bnd(bwAbs.dmuA, grads0, gradOff.muA),
        ),
        compare(
          'dμB',
          grads.subarray(gradOff.muB, gradOff.muB + nB),
          bw.dmuB.map((v, i) => grads0[gradOff.muB + i] + v),
          bnd(bwAbs.dmuB, grads0, gradOff.muB),
        ),
      ];
      if (c.modeA !== 'det')
        results.push(
          compare(
            'dρA',
            grads.subarray(gradOff.rhoA, gradOff.rhoA + nA),
            bw.drhoA.map((v, i) => grads0[gradOff.rhoA + i] + v),
            bnd(bwAbs.drhoA, grads0, gradOff.rhoA),
          ),
        );
      else
        results.push(
          compare(
            'ρA slot untouched',
            grads.subarray(gradOff.rhoA, gradOff.rhoA + nA),
            grads0.subarray(gradOff.rhoA, gradOff.rhoA + nA),
            () => 0,
          ),
        );
      if (c.modeB !== 'det')
        results.push(
          compare(
            'dρB',
            grads.subarray(gradOff.rhoB, gradOff.rhoB + nB),
            bw.drhoB.map((v, i) => grads0[gradOff.rhoB + i] + v),
            bnd(bwAbs.drhoB, grads0, gradOff.rhoB),
          ),
        );
      for (const r of results) console.log(`${c.name} ${r.line}`);
      for (const r of results) assert.ok(r.ok, `${c.name} ${r.line}`);

      // Reproducibility: the same step again from the same y0 → bit-identical; another step differs.
      const again = async (s: number): Promise<Float32Array> => {
        rt.device.queue.writeBuffer(b.y, 0, y0 as Float32Array<ArrayBuffer>);
        call.forward(s);
        return rt.readF32(b.y, c.T * c.nOut);
      };
      const y1 = await again(step);
      assert.deepEqual(new Uint32Array(y1.buffer), new Uint32Array(y.buffer), 'same step must reproduce bit-for-bit');
      if (c.modeA !== 'det' || c.dropout > 0) {
        const y2 = await again(step + 1);
        assert.notDeepEqual(Array.from(y2), Array.from(y), 'another step must draw other noise');
      }
      call.destroy();
      Object.values(b).forEach((buf) => buf.destroy());
    });
  }

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

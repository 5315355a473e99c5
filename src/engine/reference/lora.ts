/**
 * float64 CPU reference of shaders/engine_lora.wgsl: one LoRA / BLoRA factor, forward + backward,
 * and the adapter Δy = s · f_B(f_A(drop(x))) built from two factors.
 *
 * Shapes (row-major): x (T, n_in), μ, ρ (n_out, n_in), f / g (T, n_out). Noise comes from the
 * CPU twin of the GPU RNG (reference/rng.ts) with the same (seed, step, tensor, stream, index), so
 * it is the same draw (normals computed in float64 from the same u32 words).
 *
 * `abs: true` evaluates the same expressions on absolute values (|x|, |μ|, |ε|, |ξ|, signs = +1,
 * |g|): the Σ|terms| each f32 result is a sum of, used for the tests' Higham-style error bound.
 */
import { dropThreshold, rngKeep, rngNormal, rngSign, RNG_STREAM, type RngKey } from './rng';
import { sigmoidRef, softplusRef } from './kl';

export type LoraMode = 'det' | 'bbb' | 'flipout' | 'lrt';
export const LORA_MODE_ID: Record<LoraMode, number> = { det: 0, bbb: 1, flipout: 2, lrt: 3 };

export interface FactorRefConfig {
  T: number;
  nIn: number;
  nOut: number;
  mode: LoraMode;
  /** seed as [lo, hi], step, tensor id of this factor. */
  key: RngKey;
  /** Dropout probability on the factor input (factor A only); 0 = none. */
  dropout?: number;
  abs?: boolean;
}

export interface FactorRefParams {
  mu: ArrayLike<number>; // (n_out, n_in)
  rho?: ArrayLike<number>; // (n_out, n_in), BLoRA modes only
}

type Arr = ArrayLike<number>;

/** Factor input after dropout, X[t,k] = keep · x / (1 − p). */
export function dropInputRef(x: Arr, c: FactorRefConfig): Float64Array {
  const n = c.T * c.nIn;
  const out = new Float64Array(n);
  const p = c.dropout ?? 0;
  const thresh = p > 0 ? dropThreshold(p) : 0;
  for (let i = 0; i < n; i++) {
    const v = c.abs ? Math.abs(x[i]) : x[i];
    out[i] = thresh ? (rngKeep(c.key, i, thresh) * v) / (1 - p) : v;
  }
  return out;
}

interface Noise {
  sigma: Float64Array;
  eps: Float64Array;
  /** bbb: μ + σε; flipout: σε; lrt: σ². */
  n: Float64Array;
  w1: Float64Array;
}

function sampleRef(p: FactorRefParams, c: FactorRefConfig): Noise {
  const m = c.nOut * c.nIn;
  const sigma = new Float64Array(m);
  const eps = new Float64Array(m);
  const n = new Float64Array(m);
  const w1 = new Float64Array(m);
  const a = (v: number): number => (c.abs ? Math.abs(v) : v);
  for (let i = 0; i < m; i++) {
    const mu = a(p.mu[i]);
    w1[i] = mu;
    if (c.mode === 'det') continue;
    sigma[i] = softplusRef(p.rho![i]);
    eps[i] = a(rngNormal(c.key, RNG_STREAM.EPS, i));
    if (c.mode === 'lrt') n[i] = sigma[i] * sigma[i];
    else n[i] = sigma[i] * eps[i] + (c.mode === 'bbb' ? mu : 0);
    if (c.mode === 'bbb') w1[i] = n[i];
  }
  return { sigma, eps, n, w1 };
}

const sgnIn = (c: FactorRefConfig, i: number): number => (c.abs ? 1 : rngSign(c.key, RNG_STREAM.SIGN_IN, i));
const sgnOut = (c: FactorRefConfig, i: number): number => (c.abs ? 1 : rngSign(c.key, RNG_STREAM.SIGN_OUT, i));
const xi = (c: FactorRefConfig, i: number): number => {
  const z = rngNormal(c.key, RNG_STREAM.XI, i);
  return c.abs ? Math.abs(z) : z;
};

export interface FactorForwardRef {
  /** (T, n_out) f_M(X). */
  f: Float64Array;
  /** (T, n_out) lrt: sqrt(X²·σ²ᵀ + 1e-8); empty otherwise. */
  aux: Float64Array;
}

/** F = f_M(drop(x)) — see the WGSL header for the four modes. */
export function loraFactorForwardRef(x: Arr, p: FactorRefParams, c: FactorRefConfig): FactorForwardRef {
  const { T, nIn, nOut, mode } = c;
  const X = dropInputRef(x, c);
  const nz = sampleRef(p, c);
  const f = new Float64Array(T * nOut);
  const aux = new Float64Array(mode === 'lrt' ? T * nOut : 0);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < nOut; o++) {
      let s1 = 0;
      let s2 = 0;
      for (let k = 0; k < nIn; k++) {
        const xv = X[t * nIn + k];
        const wi = o * nIn + k;
        s1 += xv * nz.w1[wi];
        if (mode === 'flipout') s2 += xv * sgnIn(c, t * nIn + k) * nz.n[wi];
        else if (mode === 'lrt') s2 += xv * xv * nz.n[wi];
      }
      const idx = t * nOut + o;
      if (mode === 'flipout') s1 += s2 * sgnOut(c, idx);
      else if (mode === 'lrt') {
        const a = Math.sqrt(s2 + 1e-8);
        aux[idx] = a;
        s1 += a * xi(c, idx);
      }
      f[idx] = s1;
    }
  }
  return { f, aux };
}

export interface FactorBackwardRef {
  dx: Float64Array; // (T, n_in) w.r.t. x before dropout
  dmu: Float64Array; // (n_out, n_in)
  drho: Float64Array; // (n_out, n_in); zeros for det
}

/** Gradients of L = Σ g ⊙ f_M(drop(x)) w.r.t. x, μ, ρ (g: (T, n_out)). */
export function loraFactorBackwardRef(x: Arr, p: FactorRefParams, g: Arr, c: FactorRefConfig): FactorBackwardRef {
  const { T, nIn, nOut, mode } = c;
  const X = dropInputRef(x, c);
  const nz = sampleRef(p, c);
  const { aux } = mode === 'lrt' ? loraFactorForwardRef(x, p, c) : { aux: new Float64Array(0) };
  const G = Float64Array.from({ length: T * nOut }, (_, i) => (c.abs ? Math.abs(g[i]) : g[i]));
  // G̃ = flipout: G ⊙ S_out; lrt: G ⊙ Ξ / AUX.
  const G2 = new Float64Array(T * nOut);
  for (let i = 0; i < T * nOut; i++) {
    if (mode === 'flipout') G2[i] = G[i] * sgnOut(c, i);
    else if (mode === 'lrt') G2[i] = (G[i] * xi(c, i)) / aux[i];
  }
  const dXd = new Float64Array(T * nIn);
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < nIn; k++) {
      let s1 = 0;
      let s2 = 0;
      for (let o = 0; o < nOut; o++) {
        s1 += G[t * nOut + o] * nz.w1[o * nIn + k];
        s2 += G2[t * nOut + o] * nz.n[o * nIn + k];
      }
      const idx = t * nIn + k;
      if (mode === 'flipout') s1 += s2 * sgnIn(c, idx);
      else if (mode === 'lrt') s1 += s2 * X[idx];
      dXd[idx] = s1;
    }
  }
  // Through dropout: dx = keep/(1 − p) · dX.
  const pDrop = c.dropout ?? 0;
  const thresh = pDrop > 0 ? dropThreshold(pDrop) : 0;
  const dx = dXd.map((v, i) => (thresh ? (rngKeep(c.key, i, thresh) * v) / (1 - pDrop) : v));

  const dmu = new Float64Array(nOut * nIn);
  const drho = new Float64Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    for (let k = 0; k < nIn; k++) {
      let P = 0;
      let Q = 0;
      for (let t = 0; t < T; t++) {
        const xv = X[t * nIn + k];
        P += G[t * nOut + o] * xv;
        if (mode === 'flipout') Q += G2[t * nOut + o] * xv * sgnIn(c, t * nIn + k);
        else if (mode === 'lrt') Q += G2[t * nOut + o] * xv * xv;
      }
      const pi = o * nIn + k;
      dmu[pi] = P;
      if (mode === 'det') continue;
      const sig = sigmoidRef(p.rho![pi]);
      if (mode === 'bbb') drho[pi] = P * nz.eps[pi] * sig;
      else if (mode === 'flipout') drho[pi] = Q * nz.eps[pi] * sig;
      else drho[pi] = Q * nz.sigma[pi] * sig;
    }
  }
  return { dx, dmu, drho };
}

export interface AdapterRefConfig {
  T: number;
  nIn: number;
  r: number;
  nOut: number;
  alpha: number;
  modeA: LoraMode;
  modeB: LoraMode;
  seed: readonly [number, number];
  step: number;
  tensorA: number;
  tensorB: number;
  dropout: number;
  abs?: boolean;
}

export interface AdapterRefParams {
  muA: Arr;
  rhoA?: Arr;
  muB: Arr;
  rhoB?: Arr;
}

function factorCfgs(c: AdapterRefConfig): [FactorRefConfig, FactorRefConfig] {
  const a: FactorRefConfig = {
    T: c.T,
    nIn: c.nIn,
    nOut: c.r,
    mode: c.modeA,
    dropout: c.dropout,
    abs: c.abs,
    key: { seed: c.seed, step: c.step, tensor: c.tensorA },
  };
  const b: FactorRefConfig = {
    T: c.T,
    nIn: c.r,
    nOut: c.nOut,
    mode: c.modeB,
    abs: c.abs,
    key: { seed: c.seed, step: c.step, tensor: c.tensorB },
  };
  return [a, b];
}

/** Δy (T, n_out) = s · f_B(h), h (T, r) = f_A(drop(x)), s = α / r. */
export function loraAdapterForwardRef(x: Arr, p: AdapterRefParams, c: AdapterRefConfig): { h: Float64Array; dy: Float64Array } {
  const [ca, cb] = factorCfgs(c);
  const h = loraFactorForwardRef(x, { mu: p.muA, rho: p.rhoA }, ca).f;
  const fb = loraFactorForwardRef(h, { mu: p.muB, rho: p.rhoB }, cb).f;
  const s = c.alpha / c.r;
  return { h, dy: fb.map((v) => s * v) };
}

/** Gradients of L = Σ G ⊙ Δy w.r.t. x and the four parameter matrices. */
export function loraAdapterBackwardRef(x: Arr, p: AdapterRefParams, G: Arr, c: AdapterRefConfig) {
  const [ca, cb] = factorCfgs(c);
  const s = c.alpha / c.r;
  const h = loraFactorForwardRef(x, { mu: p.muA, rho: p.rhoA }, ca).f;
  const gB = Float64Array.from({ length: c.T * c.nOut }, (_, i) => s * G[i]);
  const b = loraFactorBackwardRef(h, { mu: p.muB, rho: p.rhoB }, gB, { ...cb, abs: false });
  const a = loraFactorBackwardRef(x, { mu: p.muA, rho: p.rhoA }, b.dx, ca);
  return { dx: a.dx, dmuA: a.dmu, drhoA: a.drho, dmuB: b.dmu, drhoB: b.drho, dh: b.dx };
}

/**
 * Σ|terms| companion of loraAdapterBackwardRef: same chain evaluated on absolute values
 * (the B factor's abs pass feeds the A factor's, as for a product |X||A||B| bound).
 */
export function loraAdapterBackwardAbsRef(x: Arr, p: AdapterRefParams, G: Arr, c: AdapterRefConfig) {
  const ca = { ...factorCfgs(c)[0], abs: true };
  const cb = { ...factorCfgs(c)[1], abs: true };
  const s = Math.abs(c.alpha / c.r);
  const h = loraFactorForwardRef(x, { mu: p.muA, rho: p.rhoA }, ca).f;
  const gB = Float64Array.from({ length: c.T * c.nOut }, (_, i) => s * Math.abs(G[i]));
  const b = loraFactorBackwardRef(h, { mu: p.muB, rho: p.rhoB }, gB, cb);
  const a = loraFactorBackwardRef(x, { mu: p.muA, rho: p.rhoA }, b.dx, ca);
  return { dx: a.dx, dmuA: a.dmu, drhoA: a.drho, dmuB: b.dmu, drhoB: b.drho, dh: b.dx };
}

/** Noise of one factor for one step, in tools/blora_torch.py's FactorNoise layout (row-major). */
export interface FactorNoiseArrays {
  eps: Float64Array | null; // (n_out, n_in): bbb, flipout
  signIn: Float64Array | null; // (T, n_in): flipout
  signOut: Float64Array | null; // (T, n_out): flipout
  xi: Float64Array | null; // (T, n_out): lrt
}

/**
 * The draws the engine makes for one adapter at one step, materialized for the PyTorch oracle
 * (tools/blora_torch.py: AdapterNoise(a, b, dropout_mask)); dropoutMask is keep/(1 − p).
 */
export function materializeAdapterNoise(c: AdapterRefConfig): {
  a: FactorNoiseArrays;
  b: FactorNoiseArrays;
  dropoutMask: Float64Array | null;
} {
  const [ca, cb] = factorCfgs({ ...c, abs: false });
  const factor = (f: FactorRefConfig): FactorNoiseArrays => {
    const gen = (n: number, g: (i: number) => number): Float64Array => Float64Array.from({ length: n }, (_, i) => g(i));
    const hasEps = f.mode === 'bbb' || f.mode === 'flipout';
    return {
      eps: hasEps ? gen(f.nOut * f.nIn, (i) => rngNormal(f.key, RNG_STREAM.EPS, i)) : null,
      signIn: f.mode === 'flipout' ? gen(f.T * f.nIn, (i) => rngSign(f.key, RNG_STREAM.SIGN_IN, i)) : null,
      signOut: f.mode === 'flipout' ? gen(f.T * f.nOut, (i) => rngSign(f.key, RNG_STREAM.SIGN_OUT, i)) : null,
      xi: f.mode === 'lrt' ? gen(f.T * f.nOut, (i) => rngNormal(f.key, RNG_STREAM.XI, i)) : null,
    };
  };
  const thresh = c.dropout > 0 ? dropThreshold(c.dropout) : 0;
  const dropoutMask = thresh ? Float64Array.from({ length: c.T * c.nIn }, (_, i) => rngKeep(ca.key, i, thresh) / (1 - c.dropout)) : null;
  return { a: factor(ca), b: factor(cb), dropoutMask };
}

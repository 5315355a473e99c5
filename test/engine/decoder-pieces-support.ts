/**
 * Shared by the decoder-piece kernel tests (layernorm, gelu, embedding, logits_ce):
 * error statistics against a float64 reference with a per-element bound, and a central-difference
 * gradient check of a float64 reference backward.
 */
import { mulberry32 } from '../support/random';

export interface ErrStats {
  n: number;
  maxAbs: number;
  /** max |err| / |ref| over elements with |ref| ≥ 1e-3 · max|ref| (elementwise relative). */
  maxRel: number;
  /** max |err| / bound — the assertion is ≤ 1. NaN/Inf anywhere → Infinity. */
  maxOverBound: number;
  maxAbsRef: number;
  /** first element over its bound, −1 if none. */
  firstBad: number;
}

/** Compare `got` (f32 from the GPU) with `ref` (float64) under a per-element `bound(i)`. */
export function compareWithBound(got: ArrayLike<number>, ref: ArrayLike<number>, bound: (i: number) => number): ErrStats {
  if (got.length < ref.length) throw new Error(`compare: got ${got.length} < ref ${ref.length}`);
  const n = ref.length;
  let maxAbsRef = 0;
  for (let i = 0; i < n; i++) maxAbsRef = Math.max(maxAbsRef, Math.abs(ref[i]));
  let maxAbs = 0;
  let maxRel = 0;
  let maxOverBound = 0;
  let firstBad = -1;
  for (let i = 0; i < n; i++) {
    const err = Math.abs(got[i] - ref[i]);
    const r = err / bound(i);
    if (!(r <= 1) && firstBad < 0) firstBad = i;
    if (Number.isNaN(err) || !Number.isFinite(r)) maxOverBound = Infinity;
    else maxOverBound = Math.max(maxOverBound, r);
    if (!Number.isNaN(err)) maxAbs = Math.max(maxAbs, err);
    if (Math.abs(ref[i]) >= 1e-3 * maxAbsRef && ref[i] !== 0) maxRel = Math.max(maxRel, err / Math.abs(ref[i]));
  }
  return { n, maxAbs, maxRel, maxOverBound, maxAbsRef, firstBad };
}

export function fmtStats(s: ErrStats): string {
  return (
    `n=${s.n} max|err|=${s.maxAbs.toExponential(2)} max rel=${s.maxRel.toExponential(2)} ` +
    `max err/bound=${s.maxOverBound.toExponential(2)} max|ref|=${s.maxAbsRef.toPrecision(3)}`
  );
}

export interface FdResult {
  checked: number;
  maxAbs: number;
  /** max |fd − analytic| / (|analytic| + 1e-3·max|analytic|) */
  maxRel: number;
}

/**
 * Central differences of the scalar float64 function `f` at `x` (modified in place and restored),
 * compared with the analytic gradient `grad`, on `indices` (default: all). Step h·max(1, |x_i|).
 */
export function fdGradCheck(
  f: (x: Float64Array) => number,
  x: Float64Array,
  grad: ArrayLike<number>,
  opts: { h?: number; indices?: number[] } = {},
): FdResult {
  const h0 = opts.h ?? 1e-5;
  const idx = opts.indices ?? Array.from({ length: x.length }, (_, i) => i);
  let gmax = 0;
  for (let i = 0; i < grad.length; i++) gmax = Math.max(gmax, Math.abs(grad[i]));
  let maxAbs = 0;
  let maxRel = 0;
  for (const i of idx) {
    const xi = x[i];
    const h = h0 * Math.max(1, Math.abs(xi));
    x[i] = xi + h;
    const fp = f(x);
    x[i] = xi - h;
    const fm = f(x);
    x[i] = xi;
    const fd = (fp - fm) / (2 * h);
    const err = Math.abs(fd - grad[i]);
    maxAbs = Math.max(maxAbs, err);
    maxRel = Math.max(maxRel, err / (Math.abs(grad[i]) + 1e-3 * gmax + Number.MIN_VALUE));
  }
  return { checked: idx.length, maxAbs, maxRel };
}

export function fmtFd(r: FdResult): string {
  return `FD on ${r.checked} coords: max|fd−analytic|=${r.maxAbs.toExponential(2)} max rel=${r.maxRel.toExponential(2)}`;
}

/** n float64 values uniform in [lo, hi) (not rounded to f32). */
export function randomF64(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const rnd = mulberry32(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rnd();
  return out;
}

/** Σ G ⊙ Y — the random scalar loss used to contract a tensor output for gradient checks. */
export function dotLoss(G: ArrayLike<number>, Y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < Y.length; i++) s += G[i] * Y[i];
  return s;
}

/** Seeded random integers in [0, n). */
export function randomInts(count: number, n: number, seed: number): number[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: count }, () => Math.floor(rnd() * n));
}

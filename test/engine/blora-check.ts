/**
 * Test helpers for the engine kernels (rng, lora, kl, adamw, attention, linear_backward):
 * GPU-vs-reference comparison with per-element error bounds, and finite-difference checks of the
 * float64 references.
 */

/** Unit roundoff of f32. */
export const U32 = 2 ** -24;

export interface Compare {
  name: string;
  maxAbsErr: number;
  /** max |err| / max |ref| */
  maxRelErr: number;
  /** max over elements of |err| / bound (must be ≤ 1) */
  worst: number;
  maxAbsRef: number;
  firstBad: number;
  ok: boolean;
  line: string;
}

/**
 * |gpu − ref| ≤ bound[i] for every element. `bound(i)` is given by the caller (typically
 * c·(n + k)·u·Σ|terms| — Higham's γ_n bound with a stated safety factor).
 */
export function compare(name: string, gpu: ArrayLike<number>, ref: ArrayLike<number>, bound: (i: number) => number): Compare {
  if (gpu.length < ref.length) throw new Error(`${name}: gpu has ${gpu.length} < ${ref.length} elements`);
  let maxAbsErr = 0;
  let maxAbsRef = 0;
  let worst = 0;
  let firstBad = -1;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(gpu[i] - ref[i]);
    const b = bound(i) + Number.MIN_VALUE;
    maxAbsErr = Math.max(maxAbsErr, e);
    maxAbsRef = Math.max(maxAbsRef, Math.abs(ref[i]));
    const r = e / b;
    if (!(r <= 1) && firstBad < 0) firstBad = i; // catches NaN
    if (r > worst || Number.isNaN(r)) worst = Number.isNaN(r) ? Infinity : r;
  }
  const maxRelErr = maxAbsErr / (maxAbsRef || 1);
  const ok = firstBad < 0;
  const line =
    `${name}: n=${ref.length} max|err|=${maxAbsErr.toExponential(2)} max|ref|=${maxAbsRef.toExponential(2)} ` +
    `rel=${maxRelErr.toExponential(2)} worst err/bound=${worst.toExponential(2)}` +
    (ok ? '' : ` FIRST BAD [${firstBad}] gpu=${gpu[firstBad]} ref=${ref[firstBad]} bound=${bound(firstBad)}`);
  return { name, maxAbsErr, maxRelErr, worst, maxAbsRef, firstBad, ok, line };
}

export interface FdResult {
  name: string;
  maxAbsErr: number;
  maxAbsGrad: number;
  rel: number;
  line: string;
}

/**
 * Central differences of a scalar float64 function `loss()` w.r.t. every element of `theta`
 * (perturbed in place and restored), against the analytic gradient `grad`.
 * rel = max |fd − grad| / max(|grad|_∞, floor).
 */
export function fdCheck(name: string, theta: Float64Array, grad: ArrayLike<number>, loss: () => number, h = 1e-5, floor = 1e-12): FdResult {
  let maxAbsErr = 0;
  let maxAbsGrad = 0;
  for (let i = 0; i < theta.length; i++) {
    const t0 = theta[i];
    const step = h * Math.max(1, Math.abs(t0));
    theta[i] = t0 + step;
    const lp = loss();
    theta[i] = t0 - step;
    const lm = loss();
    theta[i] = t0;
    const fd = (lp - lm) / (2 * step);
    maxAbsErr = Math.max(maxAbsErr, Math.abs(fd - grad[i]));
    maxAbsGrad = Math.max(maxAbsGrad, Math.abs(grad[i]));
  }
  const rel = maxAbsErr / Math.max(maxAbsGrad, floor);
  const line = `FD ${name}: n=${theta.length} max|fd−an|=${maxAbsErr.toExponential(2)} max|an|=${maxAbsGrad.toExponential(2)} rel=${rel.toExponential(2)}`;
  return { name, maxAbsErr, maxAbsGrad, rel, line };
}

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** Copy into float64, rounding every element to f32 (so the GPU sees the same values). */
export function f32Copy(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (v) => Math.fround(v));
}

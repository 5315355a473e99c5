/**
 * float64 CPU reference for shaders/engine_gelu.wgsl: exact GELU (PyTorch nn.GELU(), erf form).
 *
 *   forward   y  = x · Φ(x),               Φ(x) = ½·erfc(−x/√2)
 *   backward  dx = dy · (Φ(x) + x·φ(x)),   φ(x) = exp(−x²/2)/√(2π)
 *
 * JavaScript has no Math.erf, so erf64/erfc64 are implemented here (accurate to ~1e-15 relative;
 * checked against CPython's math.erf values in test/engine/gelu.test.ts):
 *   |x| < 3 : erf(x) = (2/√π)·e^{−x²}·Σ_n 2ⁿ x^{2n+1} / (1·3·…·(2n+1))   (all terms positive: no
 *             cancellation; Abramowitz–Stegun 7.1.6)
 *   erfc(x), x ≥ 1: e^{−x²}/√π · 1/(x + ½/(x + 1/(x + (3/2)/(x + 2/(x + …)))))  (continued
 *             fraction, A&S 7.1.14, evaluated bottom-up with 300 levels: converged to 1e-16 at
 *             x = 1, faster beyond); erfc(x) = 1 − erf(x) for −3 < x < 1 (erfc ≥ 0.157, no
 *             relative loss); erf(x) = 1 − erfc(x) for |x| ≥ 3.
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const INV_SQRT_PI = 0.5641895835477563;
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327;

/** erf(x) by the positive series, |x| < 3 (≈ 2x²+40 terms). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x; // 2ⁿ x^{2n+1} / (2n+1)!!
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** erfc(x) by the continued fraction, x ≥ 1. */
function erfcContinuedFraction(x: number): number {
  let f = x;
  for (let k = 300; k >= 1; k--) f = x + k / 2 / f;
  return (Math.exp(-x * x) * INV_SQRT_PI) / f;
}

export function erf64(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a < 3) return erfSeries(x);
  const r = 1 - erfcContinuedFraction(a);
  return x < 0 ? -r : r;
}

export function erfc64(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= 1) return erfcContinuedFraction(x);
  if (x <= -3) return 2 - erfcContinuedFraction(-x);
  return 1 - erfSeries(x);
}

/** Standard normal CDF Φ(x) = ½·erfc(−x/√2), relative accuracy kept in the left tail. */
export function normalCdf64(x: number): number {
  return 0.5 * erfc64(-x * INV_SQRT2);
}

/** Standard normal density φ(x). */
export function normalPdf64(x: number): number {
  return Math.exp(-0.5 * x * x) * INV_SQRT_2PI;
}

/** gelu(x) = x·Φ(x) */
export function gelu64(x: number): number {
  return x * normalCdf64(x);
}

/** gelu'(x) = Φ(x) + x·φ(x) */
export function geluGrad64(x: number): number {
  return normalCdf64(x) + x * normalPdf64(x);
}

/** Y (n,) = gelu(X) elementwise. */
export function geluForwardRef(X: ArrayLike<number>): Float64Array {
  const y = new Float64Array(X.length);
  for (let i = 0; i < X.length; i++) y[i] = gelu64(X[i]);
  return y;
}

/** dX (n,) = dY ⊙ gelu'(X). */
export function geluBackwardRef(X: ArrayLike<number>, dY: ArrayLike<number>): Float64Array {
  if (dY.length !== X.length) throw new Error(`geluBackwardRef: dY has ${dY.length} ≠ ${X.length}`);
  const dx = new Float64Array(X.length);
  for (let i = 0; i < X.length; i++) dx[i] = dY[i] * geluGrad64(X[i]);
  return dx;
}

/** Unit roundoff of f32. */
const U = 2 ** -24;

/**
 * Per-element tolerances of the f32 GPU GELU against this reference (justification in
 * src/engine/README.md and test/engine/gelu.test.ts):
 *  - |x/√2| < 0.85 or x > 0: Φ has ≤ GELU_PHI_ABS absolute error (measured ≈ 1e-7 on SwiftShader;
 *    erf's own approximation error is 1e-9, the rest is f32 rounding of ~8 operations on O(1) values);
 *  - left tail x ≤ −0.85·√2: Φ = ½·erfc(|x|/√2) is kept to a RELATIVE error
 *    relTail(x) = 6e-7 + 2u·(x² + 12), where 2u·(3 + 2|arg|) is the error WGSL allows exp(arg)
 *    (3 + 2|arg| ULP) summed over the three exp calls (|arg| ≈ x²/2, ≈ 0, ≤ 1.3), and 6e-7 the
 *    measured approximation + rounding error of the tail with a correctly rounded exp;
 *  - the product x·Φ (resp. dy·(…)) adds one rounding, 2u|result| leaves room for an FMA-less sum.
 */
export const GELU_PHI_ABS = 2e-7;
const ERF_SPLIT_X = -0.85 * Math.SQRT2;

function relTail(x: number): number {
  return 6e-7 + 2 * U * (x * x + 12);
}

/** Bound on |Φ_f32(x) − Φ(x)|. */
export function geluPhiTol(x: number): number {
  return x <= ERF_SPLIT_X ? relTail(x) * normalCdf64(x) : GELU_PHI_ABS;
}

/** Bound on |gelu_f32(x) − gelu(x)|. */
export function geluForwardTol(x: number, yRef: number): number {
  return Math.abs(x) * geluPhiTol(x) + 2 * U * Math.abs(yRef) + Number.MIN_VALUE;
}

/** Bound on |dx_f32 − dy·gelu'(x)| (dy exact f32). */
export function geluBackwardTol(x: number, dy: number, dxRef: number): number {
  const pdfTerm = Math.abs(x) * normalPdf64(x) * relTail(x);
  return Math.abs(dy) * (geluPhiTol(x) + pdfTerm) + 2 * U * Math.abs(dxRef) + Number.MIN_VALUE;
}

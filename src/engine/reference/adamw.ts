/**
 * CPU references for shaders/engine_adamw.wgsl.
 *
 * adamwStepRef: torch.optim.AdamW (amsgrad=False, maximize=False, _single_tensor_adamw) in float64,
 * op for op:
 *   param.mul_(1 − lr·wd); exp_avg.lerp_(g, 1 − β1); exp_avg_sq.mul_(β2).addcmul_(g, g, 1 − β2)
 *   denom = sqrt(exp_avg_sq) / sqrt(1 − β2ᵗ) + eps;  param.addcdiv_(exp_avg, denom, −lr/(1 − β1ᵗ))
 * Also tracks, per element, a first-order bound on the f32 rounding error of the same recursion
 * (for the GPU comparison): see `errP`.
 *
 * clipGradNormRef: torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2): total = ‖g‖₂,
 *   coef = min(1, max_norm / (total + 1e-6)), g ← g·coef.
 */

export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const TORCH_ADAMW_DEFAULTS: AdamHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 };

/** The step-dependent scalars, in float64 (as PyTorch computes them from Python floats). */
export function adamScalars(h: AdamHyper, t: number) {
  if (!(Number.isInteger(t) && t >= 1)) throw new Error(`AdamW step t must be an integer ≥ 1, got ${t}`);
  const bc1 = 1 - h.beta1 ** t;
  const bc2 = 1 - h.beta2 ** t;
  return { decay: 1 - h.lr * h.weightDecay, stepSize: h.lr / bc1, bc2Sqrt: Math.sqrt(bc2) };
}

export interface AdamState {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  /** Running bound on |p_f32 − p_exact| (see adamwStepRef). */
  errP: Float64Array;
  /** EMA of |g| (the Σ|terms| of m). */
  mAbs: Float64Array;
}

export function adamState(p0: ArrayLike<number>): AdamState {
  const n = p0.length;
  return { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n), errP: new Float64Array(n), mAbs: new Float64Array(n) };
}

/** U: f32 unit roundoff. */
const U = 2 ** -24;

/**
 * One AdamW step (t ≥ 1) on `s` with gradient g (already clipped), in place.
 * Error model for the f32 GPU run (per element, first order): each step adds
 *   3u·|p| (the decay product, the final add, the f32 store) +
 *   stepSize · (16 + 6t)·u · mAbs/denom — m's rounding errors (≤ 3u·mAbs per step, carried ×β1, so
 *   ≤ 3t·u·mAbs after t steps), v's (relative ≤ (2 + t)u, halved by sqrt), sqrt/÷/+eps/×step_size
 *   (a few ulp each: WGSL allows 2.5 ulp for ÷ and sqrt)
 * and the previous error is carried ×decay. A bound with margin, not an estimate.
 */
export function adamwStepRef(s: AdamState, g: ArrayLike<number>, h: AdamHyper, t: number): void {
  const { decay, stepSize, bc2Sqrt } = adamScalars(h, t);
  const w = 1 - h.beta1;
  for (let i = 0; i < s.p.length; i++) {
    const gi = g[i];
    let p = s.p[i] * decay;
    const m = s.m[i] + w * (gi - s.m[i]);
    const v = s.v[i] * h.beta2 + (1 - h.beta2) * gi * gi;
    const denom = Math.sqrt(v) / bc2Sqrt + h.eps;
    p = p - stepSize * (m / denom);
    s.mAbs[i] = s.mAbs[i] + w * (Math.abs(gi) - s.mAbs[i]);
    s.errP[i] = s.errP[i] * decay + 3 * U * Math.abs(p) + stepSize * (16 + 6 * t) * U * (s.mAbs[i] / denom);
    s.p[i] = p;
    s.m[i] = m;
    s.v[i] = v;
  }
}

/** f32 emulation of the WGSL op order (Math.fround after every op); sqrt/÷ correctly rounded. */
export function adamwStepF32Ref(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: ArrayLike<number>,
  coef: number,
  h: AdamHyper,
  t: number,
): void {
  const f = Math.fround;
  const { decay, stepSize, bc2Sqrt } = adamScalars(h, t);
  const [d, w, b2, w2, ss, bs, eps] = [decay, 1 - h.beta1, h.beta2, 1 - h.beta2, stepSize, bc2Sqrt, h.eps].map(f);
  for (let i = 0; i < p.length; i++) {
    const gi = f(f(g[i]) * f(coef));
    let pi = f(p[i] * d);
    const mi = f(m[i] + f(w * f(gi - m[i])));
    const vi = f(f(v[i] * b2) + f(f(w2 * gi) * gi));
    const denom = f(f(f(Math.sqrt(vi)) / bs) + eps);
    pi = f(pi + f(-ss * f(mi / denom)));
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

/** Global 2-norm and clip coefficient (clip_grad_norm_); maxNorm ≤ 0 → coef 1. */
export function clipGradNormRef(g: ArrayLike<number>, maxNorm: number): { norm: number; coef: number } {
  let s = 0;
  for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  const norm = Math.sqrt(s);
  const coef = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  return { norm, coef };
}

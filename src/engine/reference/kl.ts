/**
 * float64 CPU reference of shaders/engine_kl.wgsl and shaders/engine_blora_sigma.wgsl.
 *
 * Per factor matrix (n elements, μ and ρ of the same shape), prior N(0, σ_p²), σ = softplus(ρ):
 *   KL      = (1/n) Σ_i [ log(σ_p/σ_i) + (σ_i² + μ_i²)/(2σ_p²) − ½ ]
 *   ∂KL/∂μ  = μ / σ_p² / n
 *   ∂KL/∂ρ  = (−1/σ + σ/σ_p²) · sigmoid(ρ) / n        (−sigmoid(ρ)/σ → 1 as ρ → −∞: computed as a ratio)
 * With logEps ε > 0 (the authors' code, 1e-6): log(σ + ε) for log σ, so ∂KL/∂ρ has −sigmoid(ρ)/(σ + ε).
 * The GPU adds β·∂KL into the gradient buffers (accumulate) and writes KL (unscaled) to its slot.
 */

/** σ = softplus(ρ); for ρ < −20: exp(ρ) (spec). */
export function softplusRef(rho: number): number {
  if (rho < -20) return Math.exp(rho);
  return Math.max(rho, 0) + Math.log1p(Math.exp(-Math.abs(rho)));
}

/** log σ, stable (ρ < −20: log σ = ρ). */
export function logSoftplusRef(rho: number): number {
  return rho < -20 ? rho : Math.log(softplusRef(rho));
}

export function sigmoidRef(rho: number): number {
  if (rho >= 0) return 1 / (1 + Math.exp(-rho));
  const e = Math.exp(rho);
  return e / (1 + e);
}

/** sigmoid(ρ) / softplus(ρ), finite for all ρ (→ 1 as ρ → −∞). */
export function sigmoidOverSoftplusRef(rho: number): number {
  if (rho < -20) return 1 / (1 + Math.exp(rho));
  return sigmoidRef(rho) / softplusRef(rho);
}

export interface KlRef {
  /** mean KL over the n elements. */
  kl: number;
  /** Σ of the (non-negative) per-element terms, for the sum's error bound. */
  sum: number;
  dmu: Float64Array;
  drho: Float64Array;
}

/** KL(q‖p) mean over elements, and its gradients (÷ n, NOT scaled by β). */
export function klRef(mu: ArrayLike<number>, rho: ArrayLike<number>, sigmaPrior: number, logEps = 0): KlRef {
  const n = mu.length;
  if (rho.length !== n) throw new Error(`klRef: μ has ${n} elements, ρ ${rho.length}`);
  const vp = sigmaPrior * sigmaPrior;
  const logSp = Math.log(sigmaPrior);
  let sum = 0;
  const dmu = new Float64Array(n);
  const drho = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = softplusRef(rho[i]);
    // ε > 0: log(σ + ε) (the authors' code), ∂/∂ρ −sigmoid(ρ)/(σ + ε)
    const logS = logEps > 0 ? Math.log(s + logEps) : logSoftplusRef(rho[i]);
    const sigOverS = logEps > 0 ? sigmoidRef(rho[i]) / (s + logEps) : sigmoidOverSoftplusRef(rho[i]);
    sum += logSp - logS + (s * s + mu[i] * mu[i]) / (2 * vp) - 0.5;
    dmu[i] = mu[i] / vp / n;
    drho[i] = (-sigOverS + (s * sigmoidRef(rho[i])) / vp) / n;
  }
  return { kl: sum / n, sum, dmu, drho };
}

// engine_blora_sigma — σ = softplus(ρ) and ∂σ/∂ρ = sigmoid(ρ), stable in f32 (library: no bindings,
// no entry points; prepended by the lora and kl wrappers). CPU twin: src/engine/reference/kl.ts.
//
// σ = softplus(ρ) = max(ρ, 0) + log1p(exp(−|ρ|)), stable in f32 without relying on log near 1:
// log1p(y) for y ∈ [0, 1] is 2·atanh(z), z = y / (2 + y) ≤ 1/3, by its odd series to z¹⁷
// (truncation < z¹⁹/19·2 ≈ 1e-10 relative). For ρ < −20 (spec): σ = exp(ρ).
fn log1p_unit(y: f32) -> f32 {
  let z = y / (2.0 + y);
  let z2 = z * z;
  var s = 1.0 / 17.0;
  s = fma(s, z2, 1.0 / 15.0);
  s = fma(s, z2, 1.0 / 13.0);
  s = fma(s, z2, 1.0 / 11.0);
  s = fma(s, z2, 1.0 / 9.0);
  s = fma(s, z2, 1.0 / 7.0);
  s = fma(s, z2, 1.0 / 5.0);
  s = fma(s, z2, 1.0 / 3.0);
  s = fma(s, z2, 1.0);
  return 2.0 * z * s;
}

fn softplus_stable(rho: f32) -> f32 {
  if (rho < -20.0) {
    return exp(rho);
  }
  return max(rho, 0.0) + log1p_unit(exp(-abs(rho)));
}

fn sigmoid_stable(rho: f32) -> f32 {
  if (rho >= 0.0) {
    return 1.0 / (1.0 + exp(-rho));
  }
  let e = exp(rho);
  return e / (1.0 + e);
}

/**
 * float64 CPU reference for shaders/engine_layernorm.wgsl (PyTorch nn.LayerNorm over the last dim).
 *
 *   forward   X (T, C), γ (C,), β (C,)  →  Y (T, C), mean (T,), rstd (T,)
 *             Y = (X − mean)·rstd·γ + β,  rstd = 1/√(var + eps),  var = biased (÷C), eps = 1e-5
 *   backward  dY (T, C), X, γ, mean, rstd  →  dX (T, C)
 *             dX = rstd · (g − mean_c(g) − x̂ · mean_c(g ⊙ x̂)),  g = dY ⊙ γ,  x̂ = (X − mean)·rstd
 *             (γ, β frozen: no dγ, dβ.)
 *
 * Derivation of the backward (one row; llm.c layernorm_backward): y_c = γ_c x̂_c + β_c,
 * x̂_c = (x_c − μ) r, ∂μ/∂x_j = 1/C, ∂r/∂x_j = −r³ (x_j − μ)/C = −r² x̂_j / C, so
 * ∂x̂_c/∂x_j = r (δ_cj − 1/C − x̂_c x̂_j / C) and dx_j = Σ_c g_c ∂x̂_c/∂x_j
 *          = r (g_j − mean(g) − x̂_j mean(g x̂)).
 *
 * Also: first-order worst-case f32 error bounds of the GPU algorithm (used as test tolerances).
 */

export const LAYERNORM_EPS = 1e-5;

export interface LayernormRef {
  y: Float64Array; // (T, C)
  mean: Float64Array; // (T,)
  rstd: Float64Array; // (T,)
}

export function layernormForwardRef(
  X: ArrayLike<number>, // (T, C)
  gamma: ArrayLike<number>, // (C,)
  beta: ArrayLike<number>, // (C,)
  T: number,
  C: number,
  eps = LAYERNORM_EPS,
): LayernormRef {
  if (X.length < T * C) throw new Error(`layernormForwardRef: X has ${X.length} < T·C = ${T * C}`);
  const y = new Float64Array(T * C);
  const mean = new Float64Array(T);
  const rstd = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const o = t * C;
    let s = 0;
    for (let c = 0; c < C; c++) s += X[o + c];
    const m = s / C;
    let q = 0;
    for (let c = 0; c < C; c++) q += (X[o + c] - m) ** 2;
    const r = 1 / Math.sqrt(q / C + eps);
    for (let c = 0; c < C; c++) y[o + c] = (X[o + c] - m) * r * gamma[c] + beta[c];
    mean[t] = m;
    rstd[t] = r;
  }
  return { y, mean, rstd };
}

/** dX (T, C) given dY and the saved per-row mean/rstd (taken as exact). */
export function layernormBackwardRef(
  dY: ArrayLike<number>, // (T, C)
  X: ArrayLike<number>, // (T, C)
  gamma: ArrayLike<number>, // (C,)
  mean: ArrayLike<number>, // (T,)
  rstd: ArrayLike<number>, // (T,)
  T: number,
  C: number,
): Float64Array {
  const dx = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const o = t * C;
    const m = mean[t];
    const r = rstd[t];
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < C; c++) {
      const g = dY[o + c] * gamma[c];
      sg += g;
      sgx += g * (X[o + c] - m) * r;
    }
    const a = sg / C;
    const b = sgx / C;
    for (let c = 0; c < C; c++) {
      const xhat = (X[o + c] - m) * r;
      dx[o + c] = r * (dY[o + c] * gamma[c] - a - xhat * b);
    }
  }
  return dx;
}

// ---- f32 error bounds -------------------------------------------------------------------------
// Model (Higham, "Accuracy and Stability of Numerical Algorithms", ch. 2–3): every f32 operation
// is exact·(1 + ε), |ε| ≤ u = 2⁻²⁴, except division and inverseSqrt, which WGSL only requires to
// 2.5 and 2 ULP (≤ 5u and 4u relative); a sum of n terms in any order (our tree reduction) is off by
// ≤ γ_n·Σ|terms|, γ_n = n·u/(1 − n·u). Bounds are first order in u; the final ×2 covers the
// second-order terms (products of two ε's, ≤ C·u ≈ 3e-5 relative for C = 512, far below 1).

const U = 2 ** -24;
const gam = (n: number): number => (n * U) / (1 - n * U);

export interface LayernormForwardBounds {
  y: Float64Array; // (T, C)
  mean: Float64Array; // (T,)
  rstd: Float64Array; // (T,)
}

/** Per-element bounds on |GPU − reference| of the forward outputs (X, γ, β exact f32 inputs). */
export function layernormForwardBounds(
  X: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  ref: LayernormRef,
  T: number,
  C: number,
  eps = LAYERNORM_EPS,
): LayernormForwardBounds {
  const y = new Float64Array(T * C);
  const mean = new Float64Array(T);
  const rstd = new Float64Array(T);
  const epsErr = Math.abs(Math.fround(eps) - eps);
  for (let t = 0; t < T; t++) {
    const o = t * C;
    const mu = ref.mean[t];
    const r = ref.rstd[t];
    let m1 = 0;
    for (let c = 0; c < C; c++) m1 += Math.abs(X[o + c]);
    m1 /= C;
    const dMu = gam(C) * m1 + 5 * U * Math.abs(mu); // sum, then ÷C (2.5 ulp)
    let sq = 0;
    let cross = 0;
    for (let c = 0; c < C; c++) {
      const d = X[o + c] - mu;
      sq += d * d;
      cross += 2 * Math.abs(d) * (dMu + U * Math.abs(d)); // ∂(d²) · δd
    }
    const variance = sq / C;
    const dVar = (cross + gam(C + 1) * sq) / C + 5 * U * variance; // squares+sum, then ÷C
    const ve = variance + eps;
    const dVe = dVar + U * ve + epsErr;
    const relR = (0.5 * dVe) / ve + 4 * U; // √ halves the relative error; inverseSqrt 2 ULP
    for (let c = 0; c < C; c++) {
      const d = X[o + c] - mu;
      const e = dMu + U * Math.abs(d); // error of fl(x − μ̂)
      const yc = ref.y[o + c];
      y[o + c] =
        2 * (Math.abs(gamma[c]) * r * (e + Math.abs(d) * (relR + 2 * U)) + U * (Math.abs(yc) + Math.abs(beta[c]))) + Number.MIN_VALUE;
    }
    mean[t] = 2 * dMu + Number.MIN_VALUE;
    rstd[t] = 2 * relR * r;
  }
  return { y, mean, rstd };
}

/**
 * Per-element bounds on |GPU dX − reference dX| (dY, X, γ, mean, rstd exact f32 inputs; with
 * `dxPrev` the accumulate mode adds one rounding of the sum).
 */
export function layernormBackwardBounds(
  dY: ArrayLike<number>,
  X: ArrayLike<number>,
  gamma: ArrayLike<number>,
  mean: ArrayLike<number>,
  rstd: ArrayLike<number>,
  dxRef: ArrayLike<number>,
  T: number,
  C: number,
  dxPrev?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const o = t * C;
    const m = mean[t];
    const r = rstd[t];
    let sAbsG = 0;
    let sAbsGX = 0;
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < C; c++) {
      const g = dY[o + c] * gamma[c];
      const xh = (X[o + c] - m) * r;
      sAbsG += Math.abs(g);
      sAbsGX += Math.abs(g * xh);
      sg += g;
      sgx += g * xh;
    }
    const a = sg / C;
    const b = sgx / C;
    const dA = ((U + gam(C)) * sAbsG) / C + 5 * U * Math.abs(a);
    const dB = ((4 * U + gam(C)) * sAbsGX) / C + 5 * U * Math.abs(b);
    for (let c = 0; c < C; c++) {
      const g = dY[o + c] * gamma[c];
      const xh = (X[o + c] - m) * r;
      const dInner =
        U * Math.abs(g) + dA + Math.abs(xh) * dB + 2 * U * Math.abs(xh * b) + 3 * U * (Math.abs(g) + Math.abs(a) + Math.abs(xh * b));
      let bound = r * dInner + U * r * Math.abs(g - a - xh * b);
      if (dxPrev) bound += U * Math.abs(dxRef[o + c]);
      out[o + c] = 2 * bound + Number.MIN_VALUE;
    }
  }
  return out;
}

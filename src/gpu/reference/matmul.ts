/**
 * CPU reference for shaders/matmul_bias.wgsl, in float64.
 *
 *   X: (M, K), W: (N, K) (PyTorch Linear layout), b: (N,) or null  →  Y: (M, N) = X · Wᵀ + b
 *
 * Also returns |X|·|W|ᵀ + |b| (elementwise absolute values), the quantity the floating-point
 * error bound of an f32 dot product scales with (see errorBoundF32).
 */
export interface MatmulRef {
  /** Exact-ish result (float64 accumulation of the f32 inputs). */
  y: Float64Array;
  /** Σ_k |X[m,k]·W[n,k]| + |b[n]| per output element. */
  absSum: Float64Array;
}

export function matmulBiasRef(
  X: Float32Array, // (M, K)
  W: Float32Array, // (N, K)
  b: Float32Array | null, // (N,)
  M: number,
  N: number,
  K: number,
): MatmulRef {
  if (X.length < M * K) throw new Error(`matmulBiasRef: X has ${X.length} < M·K = ${M * K}`);
  if (W.length < N * K) throw new Error(`matmulBiasRef: W has ${W.length} < N·K = ${N * K}`);
  if (b && b.length < N) throw new Error(`matmulBiasRef: b has ${b.length} < N = ${N}`);
  const y = new Float64Array(M * N);
  const absSum = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    const xo = m * K;
    for (let n = 0; n < N; n++) {
      const wo = n * K;
      let s = b ? b[n] : 0;
      let a = b ? Math.abs(b[n]) : 0;
      for (let k = 0; k < K; k++) {
        const p = X[xo + k] * W[wo + k];
        s += p;
        a += Math.abs(p);
      }
      y[m * N + n] = s;
      absSum[m * N + n] = a;
    }
  }
  return { y, absSum };
}

/** Unit roundoff of IEEE binary32 (round to nearest). */
export const F32_UNIT_ROUNDOFF = 2 ** -24;

/**
 * Rigorous worst-case bound on |fl32(Σ_{i<n} t_i) − Σ t_i| for n terms t_i = x_i·y_i (+ bias),
 * in ANY summation order, with or without fused multiply-add (Higham, "Accuracy and Stability of
 * Numerical Algorithms", §3.1): γ_n · Σ|t_i| with γ_n = n·u / (1 − n·u), u = 2⁻²⁴.
 * Inputs are exact f32 values (the reference uses the same f32 arrays), so input rounding adds
 * nothing. n = K products + 1 bias add. Holds while no subnormals/overflow occur (inputs ~ O(1)).
 */
export function errorBoundF32(nTerms: number, absSum: number): number {
  const nu = nTerms * F32_UNIT_ROUNDOFF;
  return (nu / (1 - nu)) * absSum;
}

/**
 * float64 CPU reference of shaders/engine_linear_backward.wgsl and of the frozen Linear forward it
 * differentiates (for the finite-difference check).
 *
 *   forward:  Y (M, N) = X (M, K) · Wᵀ + b,  W: (N, K)
 *   backward: dX (M, K) = dY (M, N) · W (N, K)       (W, b frozen: no dW, db)
 */
type Arr = ArrayLike<number>;

export function linearForwardRef(x: Arr, W: Arr, b: Arr | null, M: number, N: number, K: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * W[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

/** dX = dY·W and Σ_n |dY[m,n]·W[n,k]| per element (the f32 error bound's scale). */
export function linearBackwardRef(dY: Arr, W: Arr, M: number, N: number, K: number): { dx: Float64Array; absSum: Float64Array } {
  const dx = new Float64Array(M * K);
  const absSum = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      const g = dY[m * N + n];
      if (g === 0) continue;
      for (let k = 0; k < K; k++) {
        const t = g * W[n * K + k];
        dx[m * K + k] += t;
        absSum[m * K + k] += Math.abs(t);
      }
    }
  }
  return { dx, absSum };
}

/**
 * CPU reference for shaders/engine_embedding.wgsl.
 *
 *   X[t, c] = E[tok[t], c] + P[pos[t], c]      tok, pos: (T,)   E: (V, C)   P: (NP, C)   X: (T, C)
 *
 * A token ≥ V or position ≥ NP yields a zero row (the kernel's defined behaviour for markers).
 * Returned as float64 of the f32 sum fl32(E + P): one correctly rounded f32 addition is exactly
 * what the GPU computes, so the test compares bit for bit. No backward (frozen tables, no adapter).
 */
export function embeddingForwardRef(
  tok: ArrayLike<number>,
  pos: ArrayLike<number>,
  E: ArrayLike<number>,
  P: ArrayLike<number>,
  T: number,
  C: number,
  V: number,
  NP: number,
): Float64Array {
  const x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const k = tok[t];
    const p = pos[t];
    if (!(k >= 0 && k < V && p >= 0 && p < NP)) continue;
    for (let c = 0; c < C; c++) x[t * C + c] = Math.fround(E[k * C + c] + P[p * C + c]);
  }
  return x;
}

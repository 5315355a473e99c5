// W' = W + s·B·A, the LoRA merge, in float64 with one rounding at the end: the engine's greedy decoder
// (posterior means merged into f32 weights) and the merged exports (rounded to the source's dtype) share it.

/** W + s·B·A in float64, row-major [out, in] (the same arithmetic as mergeLora, without the rounding). */
export function mergeF64(
  W: Float32Array,
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  s: number,
  nOut: number,
  nIn: number,
  r: number,
): Float64Array {
  if (W.length !== nOut * nIn || A.length !== r * nIn || B.length !== nOut * r) {
    throw new Error(`merge: shapes W ${W.length} ≠ ${nOut}·${nIn}, A ${A.length} ≠ ${r}·${nIn} or B ${B.length} ≠ ${nOut}·${r}`);
  }
  const out = new Float64Array(nOut * nIn);
  const acc = new Float64Array(nIn);
  for (let o = 0; o < nOut; o++) {
    acc.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = B[o * r + k];
      if (bk === 0) continue;
      const a0 = k * nIn;
      for (let i = 0; i < nIn; i++) acc[i] += bk * A[a0 + i];
    }
    const w0 = o * nIn;
    // a zero update keeps W as is: −0 + 0 would turn a −0 weight into +0 (same value, other bits)
    for (let i = 0; i < nIn; i++) out[w0 + i] = acc[i] === 0 ? W[w0 + i] : W[w0 + i] + s * acc[i];
  }
  return out;
}

/**
 * W' (nOut, nIn) = fl32(W + s·B·A) with the product and the sum in float64 (one rounding per
 * element). A (r, nIn), B (nOut, r) row-major (PyTorch / PEFT lora_A, lora_B layout).
 */
export function mergeLora(
  W: Float32Array,
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  s: number,
  nOut: number,
  nIn: number,
  r: number,
): Float32Array<ArrayBuffer> {
  return new Float32Array(mergeF64(W, A, B, s, nOut, nIn, r));
}

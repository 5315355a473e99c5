/**
 * float64 CPU reference for shaders/engine_logits_ce.wgsl: tied-embedding logits + mean softmax
 * cross-entropy over the valid target tokens, and its gradient w.r.t. the final hidden states.
 *
 *   H (T, C), E (V, C), tgt (T,) int (valid ⇔ 0 ≤ tgt < V; −1 = padding), s = loss scale
 *   logits[t, v] = H[t]·E[v]
 *   lse[t]       = log Σ_v exp(logits[t, v])
 *   rowLoss[t]   = lse[t] − logits[t, tgt[t]]   (0 for padding rows)
 *   loss         = Σ_t rowLoss[t] / N,  N = #valid rows (loss = 0 when N = 0)
 *   dH[t]        = (s/N) Σ_v (softmax[t, v] − 1[v = tgt[t]]) E[v]   (0 for padding rows)
 * i.e. dH = ∂(s·loss)/∂H. E is frozen: no dE. Argmax ties → the smallest index (first occurrence).
 *
 * Also: first-order worst-case f32 error bounds of the GPU algorithm (tile count included).
 */

export interface LogitsCeRef {
  /** per row: max logit M, log Σ exp(l − M), lse = M + log S */
  max: Float64Array;
  logSumExpShifted: Float64Array;
  lse: Float64Array;
  rowLoss: Float64Array;
  loss: number;
  count: number;
  argmax: Int32Array;
  /** Σ_c |H[t,c]·E[v,c]| per (t, v): what an f32 dot product's rounding error scales with */
  absDot: Float64Array;
  logits: Float64Array;
}

export const isValidTarget = (tg: number, V: number): boolean => Number.isInteger(tg) && tg >= 0 && tg < V;

export function logitsCeForwardRef(
  H: ArrayLike<number>, // (T, C)
  E: ArrayLike<number>, // (V, C)
  tgt: ArrayLike<number>, // (T,)
  T: number,
  C: number,
  V: number,
): LogitsCeRef {
  const logits = new Float64Array(T * V);
  const absDot = new Float64Array(T * V);
  const max = new Float64Array(T);
  const logSumExpShifted = new Float64Array(T);
  const lse = new Float64Array(T);
  const rowLoss = new Float64Array(T);
  const argmax = new Int32Array(T);
  let sum = 0;
  let count = 0;
  for (let t = 0; t < T; t++) {
    const h = t * C;
    let m = -Infinity;
    let am = 0;
    for (let v = 0; v < V; v++) {
      const e = v * C;
      let s = 0;
      let a = 0;
      for (let c = 0; c < C; c++) {
        const p = H[h + c] * E[e + c];
        s += p;
        a += Math.abs(p);
      }
      logits[t * V + v] = s;
      absDot[t * V + v] = a;
      if (s > m) {
        m = s;
        am = v;
      }
    }
    let se = 0;
    for (let v = 0; v < V; v++) se += Math.exp(logits[t * V + v] - m);
    max[t] = m;
    logSumExpShifted[t] = Math.log(se);
    lse[t] = m + Math.log(se);
    argmax[t] = am;
    if (isValidTarget(tgt[t], V)) {
      rowLoss[t] = lse[t] - logits[t * V + tgt[t]];
      sum += rowLoss[t];
      count++;
    }
  }
  return { max, logSumExpShifted, lse, rowLoss, loss: count > 0 ? sum / count : 0, count, argmax, absDot, logits };
}

/** dH (T, C) = ∂(lossScale · loss)/∂H. */
export function logitsCeBackwardRef(
  H: ArrayLike<number>,
  E: ArrayLike<number>,
  tgt: ArrayLike<number>,
  T: number,
  C: number,
  V: number,
  lossScale = 1,
  fwd: LogitsCeRef = logitsCeForwardRef(H, E, tgt, T, C, V),
): Float64Array {
  const dh = new Float64Array(T * C);
  if (fwd.count === 0) return dh;
  const w = lossScale / fwd.count;
  for (let t = 0; t < T; t++) {
    if (!isValidTarget(tgt[t], V)) continue;
    for (let v = 0; v < V; v++) {
      const g = (Math.exp(fwd.logits[t * V + v] - fwd.lse[t]) - (v === tgt[t] ? 1 : 0)) * w;
      if (g === 0) continue;
      const e = v * C;
      for (let c = 0; c < C; c++) dh[t * C + c] += g * E[e + c];
    }
  }
  return dh;
}

// ---- f32 error bounds -------------------------------------------------------------------------
// u = 2⁻²⁴; a sum of n terms in any order (tiles, tree reductions, FMA or not) errs by ≤ γ_n·Σ|terms|;
// WGSL accuracy: exp(x) 3 + 2|x| ULP, log 3 ULP (absolute 2⁻²¹ on [0.5, 2]), division 2.5 ULP.
// First-order bounds; the final ×2 covers second-order terms.

const U = 2 ** -24;
const gam = (n: number): number => (n * U) / (1 - n * U);
const expRel = (x: number): number => 2 * U * (3 + 2 * Math.abs(x)); // ULP ≤ 2u relative

export interface LogitsCeBounds {
  rowLoss: Float64Array; // (T,)
  loss: number;
  /** max logit error per row (argmax near-tie tolerance) */
  logitErr: Float64Array; // (T,)
  dh: Float64Array; // (T, C)
}

export function logitsCeBounds(
  E: ArrayLike<number>,
  tgt: ArrayLike<number>,
  T: number,
  C: number,
  V: number,
  nTiles: number,
  ref: LogitsCeRef,
  lossScale = 1,
): LogitsCeBounds {
  const rowLoss = new Float64Array(T);
  const logitErr = new Float64Array(T);
  const dh = new Float64Array(T * C);
  const dLogit = (t: number, v: number): number => gam(C) * ref.absDot[t * V + v];
  let lossErrSum = 0;
  let absRowSum = 0;
  const w = ref.count > 0 ? lossScale / ref.count : 0;
  for (let t = 0; t < T; t++) {
    let dM = 0;
    let lmin = Infinity;
    for (let v = 0; v < V; v++) {
      dM = Math.max(dM, dLogit(t, v));
      lmin = Math.min(lmin, ref.logits[t * V + v]);
    }
    logitErr[t] = dM;
    const M = ref.max[t];
    const S = Math.exp(ref.logSumExpShifted[t]);
    // relative error of S = Σ exp(l − M): the exp arguments (δl + δM), exp itself, the sum, and the
    // per-tile rescale exp(M_old − M_new) (|arg| ≤ M − min l) + its multiply and add
    let relS = gam(V);
    for (let v = 0; v < V; v++) {
      const x = ref.logits[t * V + v] - M;
      relS += (Math.exp(x) / S) * (dLogit(t, v) + dM + expRel(x));
    }
    relS += nTiles * (expRel(M - lmin) + 2 * U);
    const logS = ref.logSumExpShifted[t];
    rowLoss[t] = Number.MIN_VALUE; // padding rows: exactly 0 expected
    const dLogS = relS + Math.max(2 ** -21, 6 * U * Math.abs(logS));
    if (isValidTarget(tgt[t], V)) {
      const diff = M - ref.logits[t * V + tgt[t]];
      const e = dM + dLogit(t, tgt[t]) + U * Math.abs(diff) + dLogS + U * Math.abs(ref.rowLoss[t]);
      rowLoss[t] = 2 * e + Number.MIN_VALUE;
      lossErrSum += e;
      absRowSum += Math.abs(ref.rowLoss[t]);
      // dlogits: p = exp((l − M) − log S), g = (p − y)·w
      for (let v = 0; v < V; v++) {
        const x = ref.logits[t * V + v] - ref.lse[t];
        const p = Math.exp(x);
        const y = v === tgt[t] ? 1 : 0;
        const dp = p * (dLogit(t, v) + dM + dLogS + expRel(x) + 2 * U);
        const g = (p - y) * w;
        const dg = w * (dp + U * Math.abs(p - y)) + 5 * U * Math.abs(g); // ×w, w = s/N (÷: 2.5 ULP)
        const e = v * C;
        for (let c = 0; c < C; c++) {
          const ev = Math.abs(E[e + c]);
          dh[t * C + c] += dg * ev + gam(V + 64) * Math.abs(g) * ev; // V terms + tile/split partial sums
        }
      }
    }
  }
  for (let i = 0; i < dh.length; i++) dh[i] = 2 * dh[i] + Number.MIN_VALUE;
  const loss =
    ref.count > 0
      ? 2 * (lossErrSum / ref.count + (gam(T) * absRowSum) / ref.count + 5 * U * Math.abs(ref.loss)) + Number.MIN_VALUE
      : Number.MIN_VALUE;
  return { rowLoss, loss, logitErr, dh };
}

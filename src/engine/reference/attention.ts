/**
 * float64 CPU reference of shaders/engine_attention.wgsl (multi-head SDPA, forward + backward).
 *
 *   Q: (B, S, H·D), K, V: (B, Skv, H·D), mask (B, Skv) 1 = attendable (or null),
 *   causal: key j visible to query i iff j ≤ i + (Skv − S).  scale = D^-½ applied to Q.
 *   O = softmax(scale·Q Kᵀ + mask) V per (b, h); rows without a visible key → O = 0, no gradient.
 * Backward: dQ, dK, dV of L = Σ dO ⊙ O (the standard softmax backward, via the full P matrix).
 * Also returns the Σ|terms| companions the tests' error bounds are made of.
 */

export interface AttnShape {
  B: number;
  S: number;
  Skv: number;
  H: number;
  D: number;
  causal: boolean;
  scale?: number;
}

type Arr = ArrayLike<number>;

const idx = (c: AttnShape, rows: number, b: number, s: number, h: number): number => ((b * rows + s) * c.H + h) * c.D;

export interface AttnForwardRef {
  o: Float64Array; // (B, S, H·D)
  /** P (B, H, S, Skv), zeros where not visible. */
  p: Float64Array;
  /** per (b, h, i): max_j scale·Σ_d |q_d k_d| over visible j (score error scale). */
  scoreAbs: Float64Array;
  /** Σ_j p_ij |v_jd| per output element. */
  oAbs: Float64Array;
}

export function visible(c: AttnShape, mask: Arr | null, b: number, i: number, j: number): boolean {
  if (c.causal && j > i + (c.Skv - c.S)) return false;
  return !mask || mask[b * c.Skv + j] !== 0;
}

export function attentionForwardRef(q: Arr, k: Arr, v: Arr, mask: Arr | null, c: AttnShape): AttnForwardRef {
  const { B, S, Skv, H, D } = c;
  const scale = c.scale ?? 1 / Math.sqrt(D);
  const o = new Float64Array(B * S * H * D);
  const oAbs = new Float64Array(B * S * H * D);
  const p = new Float64Array(B * H * S * Skv);
  const scoreAbs = new Float64Array(B * H * S);
  const s = new Float64Array(Skv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < S; i++) {
        const qo = idx(c, S, b, i, h);
        let mx = -Infinity;
        let sa = 0;
        for (let j = 0; j < Skv; j++) {
          if (!visible(c, mask, b, i, j)) continue;
          const ko = idx(c, Skv, b, j, h);
          let dot = 0;
          let ad = 0;
          for (let d = 0; d < D; d++) {
            dot += q[qo + d] * k[ko + d];
            ad += Math.abs(q[qo + d] * k[ko + d]);
          }
          s[j] = scale * dot;
          sa = Math.max(sa, scale * ad);
          mx = Math.max(mx, s[j]);
        }
        scoreAbs[(b * H + h) * S + i] = sa;
        if (mx === -Infinity) continue; // no visible key: O = 0
        let l = 0;
        for (let j = 0; j < Skv; j++) if (visible(c, mask, b, i, j)) l += Math.exp(s[j] - mx);
        const po = ((b * H + h) * S + i) * Skv;
        for (let j = 0; j < Skv; j++) {
          if (!visible(c, mask, b, i, j)) continue;
          const pj = Math.exp(s[j] - mx) / l;
          p[po + j] = pj;
          const vo = idx(c, Skv, b, j, h);
          for (let d = 0; d < D; d++) {
            o[qo + d] += pj * v[vo + d];
            oAbs[qo + d] += pj * Math.abs(v[vo + d]);
          }
        }
      }
    }
  }
  return { o, p, scoreAbs, oAbs };
}

export interface AttnBackwardRef {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  /** Σ|terms| companions (see test/engine/attention.test.ts for how they enter the bound). */
  dqAbs: Float64Array;
  dkAbs: Float64Array;
  dvAbs: Float64Array;
}

export function attentionBackwardRef(q: Arr, k: Arr, v: Arr, mask: Arr | null, dO: Arr, c: AttnShape): AttnBackwardRef {
  const { B, S, Skv, H, D } = c;
  const scale = c.scale ?? 1 / Math.sqrt(D);
  const f = attentionForwardRef(q, k, v, mask, c);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  const dqAbs = new Float64Array(q.length);
  const dkAbs = new Float64Array(k.length);
  const dvAbs = new Float64Array(v.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < S; i++) {
        const qo = idx(c, S, b, i, h);
        let Di = 0;
        let DiAbs = 0; // Σ|dO|·Σ_j p|v| — O's own error scale enters D_i through dO
        for (let d = 0; d < D; d++) {
          Di += dO[qo + d] * f.o[qo + d];
          DiAbs += Math.abs(dO[qo + d]) * f.oAbs[qo + d];
        }
        const po = ((b * H + h) * S + i) * Skv;
        for (let j = 0; j < Skv; j++) {
          const pij = f.p[po + j];
          if (pij === 0) continue;
          const ko = idx(c, Skv, b, j, h);
          let dp = 0;
          let dpAbs = 0;
          for (let d = 0; d < D; d++) {
            dp += dO[qo + d] * v[ko + d];
            dpAbs += Math.abs(dO[qo + d] * v[ko + d]);
          }
          const ds = pij * (dp - Di);
          const dsAbs = pij * (dpAbs + DiAbs);
          for (let d = 0; d < D; d++) {
            dq[qo + d] += scale * ds * k[ko + d];
            dqAbs[qo + d] += scale * dsAbs * Math.abs(k[ko + d]);
            dk[ko + d] += scale * ds * q[qo + d];
            dkAbs[ko + d] += scale * dsAbs * Math.abs(q[qo + d]);
            dv[ko + d] += pij * dO[qo + d];
            dvAbs[ko + d] += pij * Math.abs(dO[qo + d]);
          }
        }
      }
    }
  }
  return { dq, dk, dv, dqAbs, dkAbs, dvAbs };
}

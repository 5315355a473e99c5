// engine_attention — multi-head scaled dot-product attention, forward + backward (Whisper decoder:
// causal self-attention with a key padding mask; cross-attention over encoder frames, no causal mask).
//
// Layout (the projection outputs, row-major):
//   Q: (B, S, H·D)   K, V: (B, Skv, H·D)   O, dO, dQ: (B, S, H·D)   dK, dV: (B, Skv, H·D)
//   element (b, s, h, d) at ((b·S + s)·H + h)·D + d   (Skv in place of S for K, V)
//   MASK: (B, Skv) u32, 1 = key attendable (read when has_mask ≠ 0)
//   STATS: (B, H, S, 2) = (m, l): running max and Σ exp(s − m) of each query row (saved by forward)
//   DROW: (B, H, S) = Σ_d dO·O (written by backward_dq, read by backward_dkv)
// Scores s_ij = (scale · q_i) · k_j with scale = D^-½ (HF Whisper multiplies the q_proj output by it;
// Q here is the raw q_proj output). Key j is attendable by query i iff mask(b, j) and, when causal,
// j ≤ i + (Skv − S) (S = Skv in training; the offset allows a KV cache). A query with no attendable
// key gets O = 0, STATS = (−3e38, 0) and zero gradients (HF would give a uniform average instead;
// only left-padding creates such rows).
//
// forward (FlashAttention-style online softmax, keys in chunks of 64):
//   O_i = Σ_j p_ij V_j,  p_ij = exp(s_ij − m_i) / l_i
// backward (recomputes p from STATS, no S×Skv matrix stored):
//   D_i = Σ_d dO_id O_id;  dP_ij = dO_i · V_j;  dS_ij = p_ij (dP_ij − D_i)
//   dQ_i = scale Σ_j dS_ij K_j;  dK_j = scale Σ_i dS_ij Q_i;  dV_j = Σ_i p_ij dO_i
// Kernels: D ≤ 64 (every Whisper size) uses forward_tiled / backward_dq_tiled (16-query blocks,
// register-tiled; at the end of this file). The row kernels below serve D ≤ 256 and backward_dkv:
// 64 threads; one query row (forward, backward_dq) or one key row (backward_dkv) per workgroup;
// thread t owns the chunk element t and the head dims d = t + 64u, u < 4 (so D ≤ 256).
// forward_decode (end of file) serves one query row with D ≤ 64 (greedy decoding, S = 1).
// Dispatch: forward / forward_decode / backward_dq (S, B·H); backward_dkv (Skv, B·H);
//           forward_tiled / backward_dq_tiled (ceil(S/16), B·H).
// Reference: src/engine/reference/attention.ts. Test: test/engine/attention.test.ts.

struct AttnParams {
  B: u32,
  S: u32,
  Skv: u32,
  H: u32,
  D: u32,
  causal: u32,
  has_mask: u32,
  _pad: u32,
  scale: f32,
  _pad1: f32,
  _pad2: f32,
  _pad3: f32,
}

@group(0) @binding(0) var<uniform> ap: AttnParams;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
// Storage type (src/gpu/wgsl-variants.ts rewrites the alias to f16 for f16 storage; math stays f32).
alias KVStore = f32; // K and V (f16: the cross-attention K/V cache)
@group(0) @binding(2) var<storage, read> K: array<KVStore>;
@group(0) @binding(3) var<storage, read> V: array<KVStore>;
fn ldK(i: u32) -> f32 { return f32(K[i]); }
fn ldV(i: u32) -> f32 { return f32(V[i]); }
@group(0) @binding(4) var<storage, read> MASK: array<u32>;
@group(0) @binding(5) var<storage, read_write> O: array<f32>;
@group(0) @binding(6) var<storage, read_write> STATS: array<f32>;
@group(0) @binding(7) var<storage, read> Oin: array<f32>;      // O (read-only view, backward)
@group(0) @binding(8) var<storage, read> dO: array<f32>;
@group(0) @binding(9) var<storage, read_write> dQ: array<f32>;
@group(0) @binding(10) var<storage, read_write> DROW: array<f32>;
@group(0) @binding(11) var<storage, read_write> dK: array<f32>;
@group(0) @binding(12) var<storage, read_write> dV: array<f32>;
@group(0) @binding(13) var<storage, read> STATSin: array<f32>; // STATS (read-only view, backward)
@group(0) @binding(14) var<storage, read> DROWin: array<f32>;  // DROW (read-only view, backward_dkv)

const WG: u32 = 64u;
const DPT: u32 = 4u;           // head dims per thread → D ≤ 256
const NEG_BIG: f32 = -3.0e38;  // finite "−∞" (WGSL implementations may not honour infinities)

var<workgroup> row_a: array<f32, 256>; // query- or key-side vector of this workgroup's row
var<workgroup> row_b: array<f32, 256>;
var<workgroup> ch_a: array<f32, 64>;   // per-chunk values
var<workgroup> ch_b: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

fn qk_index(b: u32, s: u32, h: u32, rows: u32) -> u32 {
  return ((b * rows + s) * ap.H + h) * ap.D;
}

fn key_ok(b: u32, j: u32) -> bool {
  return ap.has_mask == 0u || MASK[b * ap.Skv + j] != 0u;
}

// Number of leading keys query i may see (before the padding mask).
fn n_keys(i: u32) -> u32 {
  if (ap.causal != 0u) {
    return min(ap.Skv, i + 1u + (ap.Skv - ap.S));
  }
  return ap.Skv;
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let i = wid.x;
  let b = wid.y / ap.H;
  let h = wid.y % ap.H;
  let D = ap.D;
  let qo = qk_index(b, i, h, ap.S);
  for (var d = lid; d < D; d += WG) {
    row_a[d] = Q[qo + d] * ap.scale;
  }
  workgroupBarrier();
  let nk = n_keys(i);
  var m = NEG_BIG;
  var l = 0.0;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var c0 = 0u; c0 < nk; c0 += WG) {
    let j = c0 + lid;
    let valid = j < nk && key_ok(b, j);
    var s = NEG_BIG;
    if (valid) {
      let ko = qk_index(b, j, h, ap.Skv);
      var dot = 0.0;
      for (var d = 0u; d < D; d++) {
        dot = fma(row_a[d], ldK(ko + d), dot);
      }
      s = dot;
    }
    ch_a[lid] = s;
    workgroupBarrier();
    var cm = NEG_BIG;
    for (var jj = 0u; jj < WG; jj++) {
      cm = max(cm, ch_a[jj]);
    }
    let m_new = max(m, cm);
    var p = 0.0;
    if (valid) {
      p = exp(s - m_new);
    }
    let alpha = exp(m - m_new); // m = NEG_BIG, m_new real → 0; both NEG_BIG → 1 (l, acc are 0)
    workgroupBarrier();
    ch_a[lid] = p;
    workgroupBarrier();
    var csum = 0.0;
    let cn = min(WG, nk - c0);
    for (var jj = 0u; jj < cn; jj++) {
      csum += ch_a[jj];
    }
    l = l * alpha + csum;
    for (var u = 0u; u < DPT; u++) {
      let d = lid + WG * u;
      if (d < D) {
        var a = acc[u] * alpha;
        for (var jj = 0u; jj < cn; jj++) {
          let pj = ch_a[jj];
          if (pj != 0.0) {
            a = fma(pj, ldV(qk_index(b, c0 + jj, h, ap.Skv) + d), a);
          }
        }
        acc[u] = a;
      }
    }
    m = m_new;
    workgroupBarrier();
  }
  var inv_l = 0.0;
  if (l > 0.0) {
    inv_l = 1.0 / l;
  }
  for (var u = 0u; u < DPT; u++) {
    let d = lid + WG * u;
    if (d < D) {
      O[qo + d] = acc[u] * inv_l;
    }
  }
  if (lid == 0u) {
    let so = ((b * ap.H + h) * ap.S + i) * 2u;
    STATS[so] = m;
    STATS[so + 1u] = l;
  }
}

@compute @workgroup_size(64)
fn backward_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let i = wid.x;
  let b = wid.y / ap.H;
  let h = wid.y % ap.H;
  let D = ap.D;
  let qo = qk_index(b, i, h, ap.S);
  var dpart = 0.0;
  for (var d = lid; d < D; d += WG) {
    row_a[d] = Q[qo + d] * ap.scale;
    let g = dO[qo + d];
    row_b[d] = g;
    dpart = fma(g, Oin[qo + d], dpart);
  }
  red[lid] = dpart;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
  let drow = red[0];
  let si = (b * ap.H + h) * ap.S + i;
  if (lid == 0u) {
    DROW[si] = drow;
  }
  let m = STATSin[2u * si];
  let l = STATSin[2u * si + 1u];
  var inv_l = 0.0;
  if (l > 0.0) {
    inv_l = 1.0 / l;
  }
  let nk = n_keys(i);
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var c0 = 0u; c0 < nk; c0 += WG) {
    let j = c0 + lid;
    var ds = 0.0;
    if (j < nk && key_ok(b, j)) {
      let ko = qk_index(b, j, h, ap.Skv);
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        s = fma(row_a[d], ldK(ko + d), s);
        dp = fma(row_b[d], ldV(ko + d), dp);
      }
      let p = exp(s - m) * inv_l;
      ds = p * (dp - drow);
    }
    ch_a[lid] = ds;
    workgroupBarrier();
    let cn = min(WG, nk - c0);
    for (var u = 0u; u < DPT; u++) {
      let d = lid + WG * u;
      if (d < D) {
        var a = acc[u];
        for (var jj = 0u; jj < cn; jj++) {
          let w = ch_a[jj];
          if (w != 0.0) {
            a = fma(w, ldK(qk_index(b, c0 + jj, h, ap.Skv) + d), a);
          }
        }
        acc[u] = a;
      }
    }
    workgroupBarrier();
  }
  for (var u = 0u; u < DPT; u++) {
    let d = lid + WG * u;
    if (d < D) {
      dQ[qo + d] = acc[u] * ap.scale;
    }
  }
}

@compute @workgroup_size(64)
fn backward_dkv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let j = wid.x;
  let b = wid.y / ap.H;
  let h = wid.y % ap.H;
  let D = ap.D;
  let ko = qk_index(b, j, h, ap.Skv);
  for (var d = lid; d < D; d += WG) {
    row_a[d] = ldK(ko + d);
    row_b[d] = ldV(ko + d);
  }
  workgroupBarrier();
  let kvalid = key_ok(b, j);
  // First query that may see key j: causal j ≤ i + (Skv − S)  ⇔  i ≥ j − (Skv − S).
  var i0 = 0u;
  if (ap.causal != 0u && j > ap.Skv - ap.S) {
    i0 = j - (ap.Skv - ap.S);
  }
  var acc_k = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  var acc_v = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var c0 = i0; c0 < ap.S; c0 += WG) {
    let i = c0 + lid;
    var p = 0.0;
    var ds = 0.0;
    if (i < ap.S && kvalid) {
      let qo = qk_index(b, i, h, ap.S);
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        s = fma(Q[qo + d] * ap.scale, row_a[d], s);
        dp = fma(dO[qo + d], row_b[d], dp);
      }
      let si = (b * ap.H + h) * ap.S + i;
      let l = STATSin[2u * si + 1u];
      if (l > 0.0) {
        p = exp(s - STATSin[2u * si]) / l;
      }
      ds = p * (dp - DROWin[si]);
    }
    ch_a[lid] = p;
    ch_b[lid] = ds;
    workgroupBarrier();
    let cn = min(WG, ap.S - c0);
    for (var u = 0u; u < DPT; u++) {
      let d = lid + WG * u;
      if (d < D) {
        var ak = acc_k[u];
        var av = acc_v[u];
        for (var ii = 0u; ii < cn; ii++) {
          let pi = ch_a[ii];
          if (pi != 0.0) {
            let qo = qk_index(b, c0 + ii, h, ap.S);
            av = fma(pi, dO[qo + d], av);
            ak = fma(ch_b[ii], Q[qo + d], ak);
          }
        }
        acc_k[u] = ak;
        acc_v[u] = av;
      }
    }
    workgroupBarrier();
  }
  for (var u = 0u; u < DPT; u++) {
    let d = lid + WG * u;
    if (d < D) {
      dK[ko + d] = acc_k[u] * ap.scale;
      dV[ko + d] = acc_v[u];
    }
  }
}

// ───────────────────────── Tiled kernels (D ≤ 64): the fast path ─────────────────────────
// One workgroup per (block of BQ = 16 queries, b·H + h); keys in tiles of TK = 64. Each K/V row is
// read once per query block (not once per query), and both products are register-tiled like
// matmul_bias: every thread owns a 4×4 micro-tile, so one k-step loads 8 floats for 16 FMAs
// (software WebGPU — llvmpipe, SwiftShader — pays per loaded float and lane, not per FMA).
//   phase 1 (scores / dP): thread (qg = t/16, kg = t%16) → queries 4qg..+3 × keys c0+4kg..+3:
//     s_c (vec4 over the 4 queries) = Σ_d qs[d·4 + qg] · K[key c, d]; the block's Q·scale (and dO)
//     are staged TRANSPOSED in workgroup memory as vec4 over 4 queries (qs[d·4 + g]).
//   softmax bookkeeping (forward): thread i < 16 owns query i0 + i: running max m, Σ l, rescale α;
//     it turns the tile's scores (pt[j·4 + g], vec4 over queries) into p in place.
//   phase 2 (O += P·V / dQ += dS·K): thread (qg, dg = t%16) → queries 4qg..+3 × dims 4dg..+3:
//     acc_r (vec4 over dims) += p[query r, key j] · V[j, 4dg..+3].
// Masking: invisible keys (causal, mask, past the tile end) get score −3e38 → p = 0 (forward) and
// dS = 0 via select() (backward), never arithmetic on them. K/V indices are clamped to the tensor
// (keys ≥ Skv, dims ≥ D) so loads need no divergent branch; such values are never used.
// Dispatch: forward_tiled / backward_dq_tiled (ceil(S/16), B·H). Same bindings as the row kernels.

const BQ: u32 = 16u;
const TK: u32 = 64u;

var<workgroup> qs: array<vec4<f32>, 256>;   // [d·4 + g]: Q·scale of queries 4g..4g+3 at dim d
var<workgroup> gs: array<vec4<f32>, 256>;   // [d·4 + g]: dO likewise (backward)
var<workgroup> pt: array<vec4<f32>, 256>;   // [j·4 + g]: scores → p (forward) / dS (backward)
var<workgroup> qv0: array<vec4<f32>, 4>;    // per query group: α (forward) / m (backward)
var<workgroup> qv1: array<vec4<f32>, 4>;    // 1/l
var<workgroup> qv2: array<vec4<f32>, 4>;    // D_i = Σ dO·O (backward)

// Keys query i may see before the mask (0 for the block's padding queries i ≥ S).
fn n_keys_blk(i: u32) -> u32 {
  if (i >= ap.S) {
    return 0u;
  }
  return n_keys(i);
}

// Stage rows i0..i0+15 of Q (·scale) into qs / of dO into gs, transposed; padding queries → 0.
// (Two functions: a binding referenced by an entry point becomes part of its auto layout.)
fn stage_q(i0: u32, b: u32, h: u32, lid: u32) {
  let D = ap.D;
  for (var e = lid; e < BQ * D; e += WG) {
    let qi = e / D;
    let d = e % D;
    let i = i0 + qi;
    var x = 0.0;
    if (i < ap.S) {
      x = Q[qk_index(b, i, h, ap.S) + d] * ap.scale;
    }
    qs[d * 4u + qi / 4u][qi % 4u] = x;
  }
}

fn stage_do(i0: u32, b: u32, h: u32, lid: u32) {
  let D = ap.D;
  for (var e = lid; e < BQ * D; e += WG) {
    let qi = e / D;
    let d = e % D;
    let i = i0 + qi;
    var x = 0.0;
    if (i < ap.S) {
      x = dO[qk_index(b, i, h, ap.S) + d];
    }
    gs[d * 4u + qi / 4u][qi % 4u] = x;
  }
}

// Visibility of key j for the 4 queries iq..iq+3 (vec4 over queries).
fn vis4(b: u32, nkq: vec4<u32>, j: u32, cend: u32) -> vec4<bool> {
  let ok = j < cend && key_ok(b, min(j, ap.Skv - 1u));
  return (vec4<u32>(j) < nkq) & vec4<bool>(ok);
}

fn nk4(iq: u32) -> vec4<u32> {
  return vec4<u32>(n_keys_blk(iq), n_keys_blk(iq + 1u), n_keys_blk(iq + 2u), n_keys_blk(iq + 3u));
}

// Offsets of dims 4dg..4dg+3 inside a K/V row (clamped to D − 1: lanes past D read a valid
// element of the row and never write their result).
fn dim_offs(dg: u32) -> vec4<u32> {
  let dm = ap.D - 1u;
  return vec4<u32>(min(4u * dg, dm), min(4u * dg + 1u, dm), min(4u * dg + 2u, dm), min(4u * dg + 3u, dm));
}

@compute @workgroup_size(64)
fn forward_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let i0 = wid.x * BQ;
  let b = wid.y / ap.H;
  let h = wid.y % ap.H;
  let D = ap.D;
  let HD = ap.H * D;
  let qg = lid / 16u;
  let kg = lid % 16u; // key group in phase 1, dim group in phase 2
  let iq = i0 + 4u * qg;
  let nkq = nk4(iq);
  stage_q(i0, b, h, lid);
  let nk_max = n_keys_blk(min(i0 + BQ, ap.S) - 1u); // causal n_keys grows with i
  let row0 = b * ap.Skv * HD + h * D; // K/V element (b, 0, h, 0)
  let dof = dim_offs(kg);
  // Softmax state of query i0 + lid (threads lid < BQ).
  var m = NEG_BIG;
  var l = 0.0;
  // acc_r: query iq + r, dims 4kg..+3
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  let neg = vec4<f32>(NEG_BIG);
  let slast = ap.Skv - 1u;
  workgroupBarrier();
  for (var c0 = 0u; c0 < nk_max; c0 += TK) {
    let cn = min(TK, nk_max - c0);
    let cend = c0 + cn;
    // Phase 1: s_c = scores of key j_c = c0 + 4kg + c for the 4 queries (vec4 over queries).
    {
      let j = c0 + 4u * kg;
      let k0 = row0 + min(j, slast) * HD;
      let k1 = row0 + min(j + 1u, slast) * HD;
      let k2 = row0 + min(j + 2u, slast) * HD;
      let k3 = row0 + min(j + 3u, slast) * HD;
      var s0 = vec4<f32>(0.0);
      var s1 = vec4<f32>(0.0);
      var s2 = vec4<f32>(0.0);
      var s3 = vec4<f32>(0.0);
      for (var d = 0u; d < D; d++) {
        let qv = qs[d * 4u + qg];
        s0 = fma(qv, vec4<f32>(ldK(k0 + d)), s0);
        s1 = fma(qv, vec4<f32>(ldK(k1 + d)), s1);
        s2 = fma(qv, vec4<f32>(ldK(k2 + d)), s2);
        s3 = fma(qv, vec4<f32>(ldK(k3 + d)), s3);
      }
      let jl = 4u * kg; // key index inside the tile
      pt[jl * 4u + qg] = select(neg, s0, vis4(b, nkq, j, cend));
      pt[(jl + 1u) * 4u + qg] = select(neg, s1, vis4(b, nkq, j + 1u, cend));
      pt[(jl + 2u) * 4u + qg] = select(neg, s2, vis4(b, nkq, j + 2u, cend));
      pt[(jl + 3u) * 4u + qg] = select(neg, s3, vis4(b, nkq, j + 3u, cend));
    }
    workgroupBarrier();
    // Softmax bookkeeping: thread lid < BQ owns query i0 + lid (component lid%4 of group lid/4).
    if (lid < BQ) {
      let g = lid / 4u;
      let c = lid % 4u;
      var cm = NEG_BIG;
      for (var jj = 0u; jj < cn; jj++) {
        cm = max(cm, pt[jj * 4u + g][c]);
      }
      let m_new = max(m, cm);
      var csum = 0.0;
      for (var jj = 0u; jj < cn; jj++) {
        let s = pt[jj * 4u + g][c];
        var p = 0.0;
        if (s != NEG_BIG) {
          p = exp(s - m_new);
        }
        pt[jj * 4u + g][c] = p;
        csum += p;
      }
      let alpha = exp(m - m_new); // m = NEG_BIG, m_new real → 0; both NEG_BIG → 1 (l, acc are 0)
      l = l * alpha + csum;
      m = m_new;
      qv0[g][c] = alpha;
    }
    workgroupBarrier();
    // Phase 2: acc_r += p[iq + r, j] · V[j, 4kg..+3].
    {
      let al = qv0[qg];
      a0 *= al.x;
      a1 *= al.y;
      a2 *= al.z;
      a3 *= al.w;
      var vo = row0 + c0 * HD;
      for (var jj = 0u; jj < cn; jj++) {
        let p = pt[jj * 4u + qg];
        let vv = vec4<f32>(ldV(vo + dof.x), ldV(vo + dof.y), ldV(vo + dof.z), ldV(vo + dof.w));
        a0 = fma(vec4<f32>(p.x), vv, a0);
        a1 = fma(vec4<f32>(p.y), vv, a1);
        a2 = fma(vec4<f32>(p.z), vv, a2);
        a3 = fma(vec4<f32>(p.w), vv, a3);
        vo += HD;
      }
    }
    workgroupBarrier();
  }
  if (lid < BQ) {
    var inv_l = 0.0;
    if (l > 0.0) {
      inv_l = 1.0 / l;
    }
    qv1[lid / 4u][lid % 4u] = inv_l;
    let i = i0 + lid;
    if (i < ap.S) {
      let so = ((b * ap.H + h) * ap.S + i) * 2u;
      STATS[so] = m;
      STATS[so + 1u] = l;
    }
  }
  workgroupBarrier();
  let il = qv1[qg];
  store_o(b, h, iq, kg, array<vec4<f32>, 4>(a0 * il.x, a1 * il.y, a2 * il.z, a3 * il.w));
}

// Write a 4×4 micro-tile (rows = queries iq..iq+3, cols = dims 4dg..+3) to O / dQ. (Two
// functions: a binding referenced by an entry point becomes part of its auto layout.)
fn store_o(b: u32, h: u32, iq: u32, dg: u32, rows: array<vec4<f32>, 4>) {
  for (var r = 0u; r < 4u; r++) {
    let i = iq + r;
    if (i < ap.S) {
      let o = qk_index(b, i, h, ap.S);
      for (var e = 0u; e < 4u; e++) {
        if (4u * dg + e < ap.D) {
          O[o + 4u * dg + e] = rows[r][e];
        }
      }
    }
  }
}

fn store_dq(b: u32, h: u32, iq: u32, dg: u32, rows: array<vec4<f32>, 4>) {
  for (var r = 0u; r < 4u; r++) {
    let i = iq + r;
    if (i < ap.S) {
      let o = qk_index(b, i, h, ap.S);
      for (var e = 0u; e < 4u; e++) {
        if (4u * dg + e < ap.D) {
          dQ[o + 4u * dg + e] = rows[r][e];
        }
      }
    }
  }
}

@compute @workgroup_size(64)
fn backward_dq_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let i0 = wid.x * BQ;
  let b = wid.y / ap.H;
  let h = wid.y % ap.H;
  let D = ap.D;
  let HD = ap.H * D;
  let qg = lid / 16u;
  let kg = lid % 16u; // key group in phase 1, dim group in phase 2
  let iq = i0 + 4u * qg;
  let nkq = nk4(iq);
  stage_q(i0, b, h, lid);
  stage_do(i0, b, h, lid);
  if (lid < BQ) {
    // Per-query constants: m, 1/l from STATS; D_i = Σ dO·O (saved to DROW for backward_dkv).
    let i = i0 + lid;
    var m = 0.0;
    var inv_l = 0.0;
    var drow = 0.0;
    if (i < ap.S) {
      let qo = qk_index(b, i, h, ap.S);
      for (var d = 0u; d < D; d++) {
        drow = fma(dO[qo + d], Oin[qo + d], drow);
      }
      let si = (b * ap.H + h) * ap.S + i;
      DROW[si] = drow;
      m = STATSin[2u * si];
      let l = STATSin[2u * si + 1u];
      if (l > 0.0) {
        inv_l = 1.0 / l;
      }
    }
    qv0[lid / 4u][lid % 4u] = m;
    qv1[lid / 4u][lid % 4u] = inv_l;
    qv2[lid / 4u][lid % 4u] = drow;
  }
  let nk_max = n_keys_blk(min(i0 + BQ, ap.S) - 1u);
  let row0 = b * ap.Skv * HD + h * D;
  let dof = dim_offs(kg);
  let slast = ap.Skv - 1u;
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  let zero = vec4<f32>(0.0);
  workgroupBarrier();
  let mq = qv0[qg];
  let ilq = qv1[qg];
  let drq = qv2[qg];
  for (var c0 = 0u; c0 < nk_max; c0 += TK) {
    let cend = c0 + min(TK, nk_max - c0);
    // Phase 1: s_c, dP_c of key j_c = c0 + 4kg + c for the 4 queries → dS = p (dP − D_i).
    {
      let j = c0 + 4u * kg;
      let k0 = row0 + min(j, slast) * HD;
      let k1 = row0 + min(j + 1u, slast) * HD;
      let k2 = row0 + min(j + 2u, slast) * HD;
      let k3 = row0 + min(j + 3u, slast) * HD;
      var s0 = vec4<f32>(0.0);
      var s1 = vec4<f32>(0.0);
      var s2 = vec4<f32>(0.0);
      var s3 = vec4<f32>(0.0);
      var p0 = vec4<f32>(0.0);
      var p1 = vec4<f32>(0.0);
      var p2 = vec4<f32>(0.0);
      var p3 = vec4<f32>(0.0);
      for (var d = 0u; d < D; d++) {
        let qv = qs[d * 4u + qg];
        let gv = gs[d * 4u + qg];
        s0 = fma(qv, vec4<f32>(ldK(k0 + d)), s0);
        s1 = fma(qv, vec4<f32>(ldK(k1 + d)), s1);
        s2 = fma(qv, vec4<f32>(ldK(k2 + d)), s2);
        s3 = fma(qv, vec4<f32>(ldK(k3 + d)), s3);
        p0 = fma(gv, vec4<f32>(ldV(k0 + d)), p0);
        p1 = fma(gv, vec4<f32>(ldV(k1 + d)), p1);
        p2 = fma(gv, vec4<f32>(ldV(k2 + d)), p2);
        p3 = fma(gv, vec4<f32>(ldV(k3 + d)), p3);
      }
      let jl = 4u * kg;
      // select() (not arithmetic) drops exp's inf/NaN of invisible keys (e.g. m = −3e38 of empty rows).
      pt[jl * 4u + qg] = select(zero, exp(s0 - mq) * ilq * (p0 - drq), vis4(b, nkq, j, cend));
      pt[(jl + 1u) * 4u + qg] = select(zero, exp(s1 - mq) * ilq * (p1 - drq), vis4(b, nkq, j + 1u, cend));
      pt[(jl + 2u) * 4u + qg] = select(zero, exp(s2 - mq) * ilq * (p2 - drq), vis4(b, nkq, j + 2u, cend));
      pt[(jl + 3u) * 4u + qg] = select(zero, exp(s3 - mq) * ilq * (p3 - drq), vis4(b, nkq, j + 3u, cend));
    }
    workgroupBarrier();
    // Phase 2: dQ_r += dS[iq + r, j] · K[j, 4kg..+3].
    {
      var ko = row0 + c0 * HD;
      for (var jj = 0u; jj < cend - c0; jj++) {
        let w = pt[jj * 4u + qg];
        let kv = vec4<f32>(ldK(ko + dof.x), ldK(ko + dof.y), ldK(ko + dof.z), ldK(ko + dof.w));
        a0 = fma(vec4<f32>(w.x), kv, a0);
        a1 = fma(vec4<f32>(w.y), kv, a1);
        a2 = fma(vec4<f32>(w.z), kv, a2);
        a3 = fma(vec4<f32>(w.w), kv, a3);
        ko += HD;
      }
    }
    workgroupBarrier();
  }
  let sc = ap.scale;
  store_dq(b, h, iq, kg, array<vec4<f32>, 4>(a0 * sc, a1 * sc, a2 * sc, a3 * sc));
}

// ---------------------------------------------------------------------------------------------------
// forward_decode — the forward for ONE query row per (b, h) against many keys (greedy decoding's
// cross-attention: S = 1, Skv = 1500 encoder frames), D ≤ 64. Dispatch (S, B·H), as forward.
// Why not forward: its 64-key chunks cost 4 barriers each plus a 64-entry max and sum in every thread,
// about half of its work at S = 1 (on llvmpipe a barrier switches all 64 invocations). Here thread t
// owns the keys j = t, t + 32, … and keeps its own online softmax (m_t, l_t, acc_t[D]) with no barrier;
// one barrier at the end merges the 32 partial states: M = max m_t, L = Σ l_t·e^(m_t − M),
// O_d = Σ acc_t[d]·e^(m_t − M) / L. Scores are computed exactly as in forward (q·scale first, then
// fma over d in order); only the order of the softmax sums differs (f32 rounding).
const DEC_WG: u32 = 32u;
var<workgroup> dec_acc: array<f32, 2048>; // [t·64 + d] partial Σ p·V of thread t (DEC_WG × 64)

@compute @workgroup_size(32)
fn forward_decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let t = lid3.x;
  let i = wid.x;
  let b = wid.y / ap.H;
  let h = wid.y % ap.H;
  let D = ap.D;
  let qo = qk_index(b, i, h, ap.S);
  var q: array<f32, 64>;
  for (var d = 0u; d < D; d++) {
    q[d] = Q[qo + d] * ap.scale;
  }
  var acc: array<f32, 64>;
  for (var d = 0u; d < D; d++) {
    acc[d] = 0.0;
  }
  var m = NEG_BIG;
  var l = 0.0;
  let nk = n_keys(i);
  for (var j = t; j < nk; j += DEC_WG) {
    if (!key_ok(b, j)) {
      continue;
    }
    let ko = qk_index(b, j, h, ap.Skv);
    var s = 0.0;
    for (var d = 0u; d < D; d++) {
      s = fma(q[d], ldK(ko + d), s);
    }
    if (s > m) {
      // new running max: rescale what this thread has summed so far
      let alpha = exp(m - s);
      l = l * alpha;
      for (var d = 0u; d < D; d++) {
        acc[d] = acc[d] * alpha;
      }
      m = s;
    }
    let p = exp(s - m);
    l = l + p;
    for (var d = 0u; d < D; d++) {
      acc[d] = fma(p, ldV(ko + d), acc[d]);
    }
  }
  ch_a[t] = m;
  ch_b[t] = l;
  for (var d = 0u; d < D; d++) {
    dec_acc[t * 64u + d] = acc[d];
  }
  workgroupBarrier();
  var M = NEG_BIG;
  for (var u = 0u; u < DEC_WG; u++) {
    M = max(M, ch_a[u]);
  }
  var L = 0.0;
  for (var u = 0u; u < DEC_WG; u++) {
    if (ch_b[u] > 0.0) {
      L = L + ch_b[u] * exp(ch_a[u] - M);
    }
  }
  var inv_l = 0.0;
  if (L > 0.0) {
    inv_l = 1.0 / L;
  }
  for (var d = t; d < D; d += DEC_WG) {
    var o = 0.0;
    for (var u = 0u; u < DEC_WG; u++) {
      if (ch_b[u] > 0.0) {
        o = fma(dec_acc[u * 64u + d], exp(ch_a[u] - M), o);
      }
    }
    O[qo + d] = o * inv_l;
  }
  if (t == 0u) {
    let so = ((b * ap.H + h) * ap.S + i) * 2u;
    STATS[so] = M;
    STATS[so + 1u] = L;
  }
}

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
// Workgroups: 64 threads; one query row (forward, backward_dq) or one key row (backward_dkv) per
// workgroup; thread t owns the chunk element t and the head dims d = t + 64u, u < 4 (so D ≤ 256).
// Dispatch: forward / backward_dq (S, B·H); backward_dkv (Skv, B·H).
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
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
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
        dot = fma(row_a[d], K[ko + d], dot);
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
            a = fma(pj, V[qk_index(b, c0 + jj, h, ap.Skv) + d], a);
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
        s = fma(row_a[d], K[ko + d], s);
        dp = fma(row_b[d], V[ko + d], dp);
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
            a = fma(w, K[qk_index(b, c0 + jj, h, ap.Skv) + d], a);
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
    row_a[d] = K[ko + d];
    row_b[d] = V[ko + d];
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

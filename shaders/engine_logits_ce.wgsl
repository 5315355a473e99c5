// engine_logits_ce — tied-embedding logits + softmax cross-entropy over vocab tiles, f32.
//
//   logits[t, v] = H[t, :] · E[v, :]                                   H: (T, C), E: (V, C)
//   loss         = (1/N) Σ_{t valid} (logsumexp_v logits[t, v] − logits[t, tgt[t]])
//   dH[t, :]     = (s/N) Σ_v (softmax(logits[t])[v] − 1[v = tgt[t]]) · E[v, :]   (valid rows; else 0)
// t valid ⇔ 0 ≤ tgt[t] < V (tgt = −1 marks padding); N = number of valid rows; s = loss_scale
// (1, or 1/accumulation-steps). E is frozen (tied with the token embedding): no dE.
//
// The (T, V) logits never exist: E is bound one vocab tile [v0, v0 + n) at a time (a row range of
// one buffer, see src/engine/kernels/vocab_tiles.ts) and a (T, n) scratch L is reused per tile.
//   forward,  per tile:  logits_tile (mode 0)  L = H·E_tileᵀ
//                        ce_tile_stats         online logsumexp per row: running max M, running
//                                              Σ exp(l − M) rescaled when M grows; argmax; target logit
//             once:      ce_finalize           (M, log S) per row, per-row loss, mean loss, argmax
//   backward, per tile:  logits_tile (mode 1)  recompute the tile's logits, epilogue writes
//                                              G = (exp(l − M − log S) − 1[v = tgt]) · s/N  into L
//                        dh_tile               PART[z] (+)= G[:, kz] · E_tile[kz, :]  (split-K: the
//                                              tile's rows are cut into S chunks kz, one per
//                                              workgroup layer z, so a small (T, C) output still
//                                              fills the GPU; the first tile overwrites)
//             once:      dh_reduce             dH (+)= Σ_z PART[z]
// so a training step reads E three times (2 matmuls of 2·T·V·C flops each pass).
//
// Entry points and their bindings (each gets its own 'auto' layout; numbers are unique per file):
//   logits_tile    0 params, 1 H, 2 E_tile, 3 L (rw), 4 TGT, 5 LSE2, 6 LOSS
//   ce_tile_stats  0 params, 4 TGT, 7 L (read), 8 RUN (rw), 15 RUN_AM (rw)
//   ce_finalize    0 params, 4 TGT, 8 RUN, 15 RUN_AM, 9 LSE2_OUT, 10 ROW_LOSS, 11 LOSS_OUT, 12 ARGMAX
//   dh_tile        0 params, 2 E_tile, 13 G (read), 17 PART (rw)
//   dh_reduce      0 params, 16 PART (read), 14 DH (rw)
// Matmul tiling as shaders/matmul_bias.wgsl: 64×64 output tile per workgroup of 16×16 threads, 4×4
// micro-tile per thread, K in slices of 16 staged in workgroup memory; loads outside the matrices
// stage 0, stores are bounds-checked, so any T, C, n work. Software adapters (llvmpipe, SwiftShader)
// run logits_tile_rt / dh_tile_rt instead (end of file: 16×16 register micro-tiles, no workgroup
// memory, bit-identical; same bindings and grids).
//
// Reference: src/engine/reference/logits_ce.ts (float64). Test: test/engine/logits_ce.test.ts.

struct Params {
  T: u32,
  C: u32,
  V: u32,
  v0: u32,         // first vocabulary row of this tile
  n: u32,          // rows in this tile (L/G row stride)
  flag: u32,       // logits_tile: 0 logits / 1 dlogits; ce_tile_stats, dh_tile: 1 = first tile;
                   // dh_reduce: 1 = accumulate into DH
  loss_scale: f32, // s in dH (logits_tile mode 1)
  kchunk: u32,     // dh_tile: tile rows per split-K chunk; dh_reduce: number of chunks S
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> H: array<f32>;             // (T, C)
// Storage type (src/gpu/wgsl-variants.ts rewrites the alias to f16 for f16 storage; math stays f32).
alias EStore = f32; // frozen E (tied output projection)
@group(0) @binding(2) var<storage, read> ET: array<EStore>; // (n, C) rows v0.. of E (V, C)
fn ldE(i: u32) -> f32 { return f32(ET[i]); }
@group(0) @binding(3) var<storage, read_write> L: array<f32>;       // (T, n) logits / dlogits tile
@group(0) @binding(4) var<storage, read> TGT: array<i32>;           // (T,) target id, <0 = padding
@group(0) @binding(5) var<storage, read> LSE2: array<f32>;          // (T, 2) (M, log S) from forward
@group(0) @binding(6) var<storage, read> LOSS: array<f32>;          // (4,) [loss, N, Σ, 0] from forward
@group(0) @binding(7) var<storage, read> LT: array<f32>;            // (T, n) logits tile (stats)
@group(0) @binding(8) var<storage, read_write> RUN: array<f32>;     // (T, 3) running M, S, target logit
@group(0) @binding(15) var<storage, read_write> RUN_AM: array<u32>; // (T,) running argmax (vocab id)
@group(0) @binding(9) var<storage, read_write> LSE2_OUT: array<f32>; // (T, 2)
@group(0) @binding(10) var<storage, read_write> ROW_LOSS: array<f32>; // (T,) 0 for padding rows
@group(0) @binding(11) var<storage, read_write> LOSS_OUT: array<f32>; // (4,)
@group(0) @binding(12) var<storage, read_write> ARGMAX: array<u32>;  // (T,) greedy token per row
@group(0) @binding(13) var<storage, read> G: array<f32>;            // (T, n) dlogits tile
@group(0) @binding(14) var<storage, read_write> DH: array<f32>;     // (T, C)
@group(0) @binding(16) var<storage, read> PART_IN: array<f32>;      // (S, T, C) split-K partials
@group(0) @binding(17) var<storage, read_write> PART: array<f32>;   // (S, T, C)

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const WG: u32 = 16u;
const RED: u32 = 256u;
const LOWEST: f32 = -0x1.fffffep+127f; // lowest finite f32

var<workgroup> Xs: array<vec4<f32>, BK * BM / 4u>; // [BK][BM/4], vec4 along the output rows
var<workgroup> Ws: array<vec4<f32>, BK * BN / 4u>; // [BK][BN/4], vec4 along the output cols
// one workgroup array per reduction, never reused within a dispatch (see engine_layernorm.wgsl:
// reuse gave wrong results on Dawn's GL backend / Mesa llvmpipe)
var<workgroup> red_v: array<f32, RED>;       // ce_tile_stats: max
var<workgroup> red_i: array<u32, RED>;       // ce_tile_stats: argmax
var<workgroup> red_s: array<f32, RED>;       // ce_tile_stats: Σ exp
var<workgroup> red_f: array<vec2<f32>, RED>; // ce_finalize: (Σ row loss, N)

fn row_valid(t: u32) -> bool {
  let tg = TGT[t];
  return tg >= 0 && u32(tg) < params.V;
}

// ---------------------------------------------------------------------------------------------
// logits_tile: L (T, n) = H (T, C) · E_tileᵀ, E_tile (n, C); mode 1 turns logits into dlogits.
@compute @workgroup_size(WG, WG, 1)
fn logits_tile(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) lidx: u32,
) {
  let M = params.T;
  let N = params.n;
  let K = params.C;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  let sk = lidx % BK;
  let sq = lidx / BK;
  for (var k0 = 0u; k0 < K; k0 += BK) {
    let gk = k0 + sk;
    var xv = vec4<f32>(0.0);
    var wv = vec4<f32>(0.0);
    if (gk < K) {
      for (var i = 0u; i < 4u; i++) {
        let r = row0 + 4u * sq + i;
        if (r < M) {
          xv[i] = H[r * K + gk];
        }
        let c = col0 + 4u * sq + i;
        if (c < N) {
          wv[i] = ldE(c * K + gk);
        }
      }
    }
    Xs[sk * (BM / 4u) + sq] = xv;
    Ws[sk * (BN / 4u) + sq] = wv;
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = Xs[k * (BM / 4u) + lid.y];
      let w = Ws[k * (BN / 4u) + lid.x];
      acc0 = fma(vec4<f32>(a.x), w, acc0);
      acc1 = fma(vec4<f32>(a.y), w, acc1);
      acc2 = fma(vec4<f32>(a.z), w, acc2);
      acc3 = fma(vec4<f32>(a.w), w, acc3);
    }
    workgroupBarrier();
  }

  let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  let c = col0 + 4u * lid.x;
  let r = row0 + 4u * lid.y;
  let dlogits = params.flag != 0u;
  for (var i = 0u; i < 4u; i++) {
    let t = r + i;
    if (t < M) {
      var m = 0.0;
      var logs = 0.0;
      var w = 0.0;
      var tg = -1;
      if (dlogits && row_valid(t)) {
        m = LSE2[2u * t];
        logs = LSE2[2u * t + 1u];
        w = params.loss_scale / LOSS[1];
        tg = TGT[t];
      }
      for (var j = 0u; j < 4u; j++) {
        let col = c + j;
        if (col < N) {
          var out = rows[i][j];
          if (dlogits) {
            // padding rows: w = 0 and the exp is skipped (its argument could be anything there)
            var g = 0.0;
            if (w != 0.0) {
              let p = exp((out - m) - logs);
              g = (p - select(0.0, 1.0, i32(params.v0 + col) == tg)) * w;
            }
            out = g;
          }
          L[t * N + col] = out;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ce_tile_stats: one workgroup per row t; folds the tile's logits into RUN[t].
@compute @workgroup_size(RED, 1, 1)
fn ce_tile_stats(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= params.T) {
    return;
  }
  let n = params.n;
  let base = t * n;

  // tile max and its first index (strict > while j increases keeps the first occurrence)
  var m = LOWEST;
  var mi = 0xFFFFFFFFu;
  for (var j = lid; j < n; j += RED) {
    let v = LT[base + j];
    if (v > m) {
      m = v;
      mi = j;
    }
  }
  red_v[lid] = m;
  red_i[lid] = mi;
  workgroupBarrier();
  for (var s = RED / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = red_v[lid + s];
      let oi = red_i[lid + s];
      let cv = red_v[lid];
      if (ov > cv || (ov == cv && oi < red_i[lid])) {
        red_v[lid] = ov;
        red_i[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  let tmax = red_v[0];
  let targ = red_i[0];

  // Σ exp(l − tile max) (NaN logits propagate through here into the loss)
  var s_loc = 0.0;
  for (var j = lid; j < n; j += RED) {
    s_loc += exp(LT[base + j] - tmax);
  }
  red_s[lid] = s_loc;
  workgroupBarrier();
  for (var s = RED / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_s[lid] += red_s[lid + s];
    }
    workgroupBarrier();
  }

  if (lid == 0u) {
    let tsum = red_s[0];
    let o = 3u * t;
    if (params.flag != 0u) {
      RUN[o] = tmax;
      RUN[o + 1u] = tsum;
      RUN[o + 2u] = 0.0;
      RUN_AM[t] = params.v0 + targ;
    } else {
      let M0 = RUN[o];
      let S0 = RUN[o + 1u];
      if (tmax > M0) {
        RUN[o] = tmax;
        RUN[o + 1u] = S0 * exp(M0 - tmax) + tsum;
        RUN_AM[t] = params.v0 + targ; // strictly greater: earlier tiles win ties
      } else {
        RUN[o + 1u] = S0 + tsum * exp(tmax - M0);
      }
    }
    let tg = TGT[t];
    if (tg >= 0 && u32(tg) >= params.v0 && u32(tg) - params.v0 < n) {
      RUN[o + 2u] = LT[base + u32(tg) - params.v0];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ce_finalize: one workgroup; per-row (M, log S), loss, argmax; mean over valid rows.
@compute @workgroup_size(RED, 1, 1)
fn ce_finalize(@builtin(local_invocation_index) lid: u32) {
  var sum = 0.0;
  var cnt = 0.0;
  for (var t = lid; t < params.T; t += RED) {
    let o = 3u * t;
    let M = RUN[o];
    let logs = log(RUN[o + 1u]);
    LSE2_OUT[2u * t] = M;
    LSE2_OUT[2u * t + 1u] = logs;
    ARGMAX[t] = RUN_AM[t];
    var rl = 0.0;
    if (row_valid(t)) {
      rl = (M - RUN[o + 2u]) + logs; // (max − target logit) + log Σ exp(l − max)
      cnt += 1.0;
    }
    ROW_LOSS[t] = rl;
    sum += rl;
  }
  red_f[lid] = vec2<f32>(sum, cnt);
  workgroupBarrier();
  for (var s = RED / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_f[lid] += red_f[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let total = red_f[0].x;
    let count = red_f[0].y;
    LOSS_OUT[0] = select(0.0, total / count, count > 0.0);
    LOSS_OUT[1] = count;
    LOSS_OUT[2] = total;
    LOSS_OUT[3] = 0.0;
  }
}

// ---------------------------------------------------------------------------------------------
// dh_tile: PART[z] (T, C) (+)= G[:, kz] · E_tile[kz, :],  kz = [z·kchunk, min(n, (z+1)·kchunk))
@compute @workgroup_size(WG, WG, 1)
fn dh_tile(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) lidx: u32,
) {
  let M = params.T;
  let N = params.C;
  let K = params.n;               // row stride of G
  let kbeg = wid.z * params.kchunk;
  let kend = min(K, kbeg + params.kchunk);
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  // G staging as X in logits_tile: k = lidx % 16, rows 4·(lidx/16)..+3
  let sk = lidx % BK;
  let sq = lidx / BK;
  // E staging: row k = lidx / 16 of the slice, 4 consecutive columns 4·(lidx % 16)..+3
  let ek = lidx / (BN / 4u);
  let eq = lidx % (BN / 4u);
  for (var k0 = kbeg; k0 < kend; k0 += BK) {
    var xv = vec4<f32>(0.0);
    let gk = k0 + sk;
    if (gk < kend) {
      for (var i = 0u; i < 4u; i++) {
        let r = row0 + 4u * sq + i;
        if (r < M) {
          xv[i] = G[r * K + gk];
        }
      }
    }
    var wv = vec4<f32>(0.0);
    let k = k0 + ek;
    if (k < kend) {
      for (var i = 0u; i < 4u; i++) {
        let c = col0 + 4u * eq + i;
        if (c < N) {
          wv[i] = ldE(k * N + c);
        }
      }
    }
    Xs[sk * (BM / 4u) + sq] = xv;
    Ws[ek * (BN / 4u) + eq] = wv;
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a = Xs[kk * (BM / 4u) + lid.y];
      let w = Ws[kk * (BN / 4u) + lid.x];
      acc0 = fma(vec4<f32>(a.x), w, acc0);
      acc1 = fma(vec4<f32>(a.y), w, acc1);
      acc2 = fma(vec4<f32>(a.z), w, acc2);
      acc3 = fma(vec4<f32>(a.w), w, acc3);
    }
    workgroupBarrier();
  }
  let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  let c = col0 + 4u * lid.x;
  let r = row0 + 4u * lid.y;
  let zo = wid.z * M * N;
  for (var i = 0u; i < 4u; i++) {
    if (r + i < M) {
      for (var j = 0u; j < 4u; j++) {
        if (c + j < N) {
          let o = zo + (r + i) * N + c + j;
          var v = rows[i][j];
          if (params.flag == 0u) {
            v += PART[o]; // not the first vocab tile: keep accumulating this chunk's partial
          }
          PART[o] = v;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// dh_reduce: DH (T, C) (+)= Σ_{z < S} PART[z]; one thread per element, 2-D grid when large.
@compute @workgroup_size(RED, 1, 1)
fn dh_reduce(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * (nwg.x * RED);
  let TC = params.T * params.C;
  if (i >= TC) {
    return;
  }
  var v = 0.0;
  for (var z = 0u; z < params.kchunk; z++) {
    v += PART_IN[z * TC + i];
  }
  if (params.flag != 0u) {
    v += DH[i];
  }
  DH[i] = v;
}

// ---------------------------------------------------------------------------------------------
// logits_tile_rt / dh_tile_rt — the same two products for SOFTWARE adapters (llvmpipe, SwiftShader;
// chosen by src/engine/kernels/logits_ce.ts), as matmul_bias.wgsl main_rt: no workgroup memory,
// each thread owns a 16×16 micro-tile read straight from the inputs (per k: 16 + 16 loads for 256
// FMAs; software adapters pay per loaded float and lane, not per FMA). Workgroup 4×4 threads = the
// same 64×64 output tile and grid; sums run over k in the same order as the tiled entry points
// (bit-identical). Rows/cols past the matrix read a clamped element and are never stored.
@compute @workgroup_size(4, 4, 1)
fn logits_tile_rt(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = params.T;
  let N = params.n;
  let K = params.C;
  let r = wid.y * BM + 16u * lid.y;
  let c = wid.x * BN + 16u * lid.x;
  let rm = max(M, 1u) - 1u;
  let cm = max(N, 1u) - 1u;
  let xr0 = min(r + 0u, rm) * K;
  let xr1 = min(r + 1u, rm) * K;
  let xr2 = min(r + 2u, rm) * K;
  let xr3 = min(r + 3u, rm) * K;
  let xr4 = min(r + 4u, rm) * K;
  let xr5 = min(r + 5u, rm) * K;
  let xr6 = min(r + 6u, rm) * K;
  let xr7 = min(r + 7u, rm) * K;
  let xr8 = min(r + 8u, rm) * K;
  let xr9 = min(r + 9u, rm) * K;
  let xr10 = min(r + 10u, rm) * K;
  let xr11 = min(r + 11u, rm) * K;
  let xr12 = min(r + 12u, rm) * K;
  let xr13 = min(r + 13u, rm) * K;
  let xr14 = min(r + 14u, rm) * K;
  let xr15 = min(r + 15u, rm) * K;
  let wr0 = min(c + 0u, cm) * K;
  let wr1 = min(c + 1u, cm) * K;
  let wr2 = min(c + 2u, cm) * K;
  let wr3 = min(c + 3u, cm) * K;
  let wr4 = min(c + 4u, cm) * K;
  let wr5 = min(c + 5u, cm) * K;
  let wr6 = min(c + 6u, cm) * K;
  let wr7 = min(c + 7u, cm) * K;
  let wr8 = min(c + 8u, cm) * K;
  let wr9 = min(c + 9u, cm) * K;
  let wr10 = min(c + 10u, cm) * K;
  let wr11 = min(c + 11u, cm) * K;
  let wr12 = min(c + 12u, cm) * K;
  let wr13 = min(c + 13u, cm) * K;
  let wr14 = min(c + 14u, cm) * K;
  let wr15 = min(c + 15u, cm) * K;
  var a0_0 = vec4<f32>(0.0); var a0_1 = vec4<f32>(0.0); var a0_2 = vec4<f32>(0.0); var a0_3 = vec4<f32>(0.0);
  var a1_0 = vec4<f32>(0.0); var a1_1 = vec4<f32>(0.0); var a1_2 = vec4<f32>(0.0); var a1_3 = vec4<f32>(0.0);
  var a2_0 = vec4<f32>(0.0); var a2_1 = vec4<f32>(0.0); var a2_2 = vec4<f32>(0.0); var a2_3 = vec4<f32>(0.0);
  var a3_0 = vec4<f32>(0.0); var a3_1 = vec4<f32>(0.0); var a3_2 = vec4<f32>(0.0); var a3_3 = vec4<f32>(0.0);
  var a4_0 = vec4<f32>(0.0); var a4_1 = vec4<f32>(0.0); var a4_2 = vec4<f32>(0.0); var a4_3 = vec4<f32>(0.0);
  var a5_0 = vec4<f32>(0.0); var a5_1 = vec4<f32>(0.0); var a5_2 = vec4<f32>(0.0); var a5_3 = vec4<f32>(0.0);
  var a6_0 = vec4<f32>(0.0); var a6_1 = vec4<f32>(0.0); var a6_2 = vec4<f32>(0.0); var a6_3 = vec4<f32>(0.0);
  var a7_0 = vec4<f32>(0.0); var a7_1 = vec4<f32>(0.0); var a7_2 = vec4<f32>(0.0); var a7_3 = vec4<f32>(0.0);
  var a8_0 = vec4<f32>(0.0); var a8_1 = vec4<f32>(0.0); var a8_2 = vec4<f32>(0.0); var a8_3 = vec4<f32>(0.0);
  var a9_0 = vec4<f32>(0.0); var a9_1 = vec4<f32>(0.0); var a9_2 = vec4<f32>(0.0); var a9_3 = vec4<f32>(0.0);
  var a10_0 = vec4<f32>(0.0); var a10_1 = vec4<f32>(0.0); var a10_2 = vec4<f32>(0.0); var a10_3 = vec4<f32>(0.0);
  var a11_0 = vec4<f32>(0.0); var a11_1 = vec4<f32>(0.0); var a11_2 = vec4<f32>(0.0); var a11_3 = vec4<f32>(0.0);
  var a12_0 = vec4<f32>(0.0); var a12_1 = vec4<f32>(0.0); var a12_2 = vec4<f32>(0.0); var a12_3 = vec4<f32>(0.0);
  var a13_0 = vec4<f32>(0.0); var a13_1 = vec4<f32>(0.0); var a13_2 = vec4<f32>(0.0); var a13_3 = vec4<f32>(0.0);
  var a14_0 = vec4<f32>(0.0); var a14_1 = vec4<f32>(0.0); var a14_2 = vec4<f32>(0.0); var a14_3 = vec4<f32>(0.0);
  var a15_0 = vec4<f32>(0.0); var a15_1 = vec4<f32>(0.0); var a15_2 = vec4<f32>(0.0); var a15_3 = vec4<f32>(0.0);
  for (var k = 0u; k < K; k++) {
    let w0 = vec4<f32>(ldE(wr0 + k), ldE(wr1 + k), ldE(wr2 + k), ldE(wr3 + k));
    let w1 = vec4<f32>(ldE(wr4 + k), ldE(wr5 + k), ldE(wr6 + k), ldE(wr7 + k));
    let w2 = vec4<f32>(ldE(wr8 + k), ldE(wr9 + k), ldE(wr10 + k), ldE(wr11 + k));
    let w3 = vec4<f32>(ldE(wr12 + k), ldE(wr13 + k), ldE(wr14 + k), ldE(wr15 + k));
    let x0 = vec4<f32>(H[xr0 + k]);
    a0_0 = fma(x0, w0, a0_0); a0_1 = fma(x0, w1, a0_1); a0_2 = fma(x0, w2, a0_2); a0_3 = fma(x0, w3, a0_3);
    let x1 = vec4<f32>(H[xr1 + k]);
    a1_0 = fma(x1, w0, a1_0); a1_1 = fma(x1, w1, a1_1); a1_2 = fma(x1, w2, a1_2); a1_3 = fma(x1, w3, a1_3);
    let x2 = vec4<f32>(H[xr2 + k]);
    a2_0 = fma(x2, w0, a2_0); a2_1 = fma(x2, w1, a2_1); a2_2 = fma(x2, w2, a2_2); a2_3 = fma(x2, w3, a2_3);
    let x3 = vec4<f32>(H[xr3 + k]);
    a3_0 = fma(x3, w0, a3_0); a3_1 = fma(x3, w1, a3_1); a3_2 = fma(x3, w2, a3_2); a3_3 = fma(x3, w3, a3_3);
    let x4 = vec4<f32>(H[xr4 + k]);
    a4_0 = fma(x4, w0, a4_0); a4_1 = fma(x4, w1, a4_1); a4_2 = fma(x4, w2, a4_2); a4_3 = fma(x4, w3, a4_3);
    let x5 = vec4<f32>(H[xr5 + k]);
    a5_0 = fma(x5, w0, a5_0); a5_1 = fma(x5, w1, a5_1); a5_2 = fma(x5, w2, a5_2); a5_3 = fma(x5, w3, a5_3);
    let x6 = vec4<f32>(H[xr6 + k]);
    a6_0 = fma(x6, w0, a6_0); a6_1 = fma(x6, w1, a6_1); a6_2 = fma(x6, w2, a6_2); a6_3 = fma(x6, w3, a6_3);
    let x7 = vec4<f32>(H[xr7 + k]);
    a7_0 = fma(x7, w0, a7_0); a7_1 = fma(x7, w1, a7_1); a7_2 = fma(x7, w2, a7_2); a7_3 = fma(x7, w3, a7_3);
    let x8 = vec4<f32>(H[xr8 + k]);
    a8_0 = fma(x8, w0, a8_0); a8_1 = fma(x8, w1, a8_1); a8_2 = fma(x8, w2, a8_2); a8_3 = fma(x8, w3, a8_3);
    let x9 = vec4<f32>(H[xr9 + k]);
    a9_0 = fma(x9, w0, a9_0); a9_1 = fma(x9, w1, a9_1); a9_2 = fma(x9, w2, a9_2); a9_3 = fma(x9, w3, a9_3);
    let x10 = vec4<f32>(H[xr10 + k]);
    a10_0 = fma(x10, w0, a10_0); a10_1 = fma(x10, w1, a10_1); a10_2 = fma(x10, w2, a10_2); a10_3 = fma(x10, w3, a10_3);
    let x11 = vec4<f32>(H[xr11 + k]);
    a11_0 = fma(x11, w0, a11_0); a11_1 = fma(x11, w1, a11_1); a11_2 = fma(x11, w2, a11_2); a11_3 = fma(x11, w3, a11_3);
    let x12 = vec4<f32>(H[xr12 + k]);
    a12_0 = fma(x12, w0, a12_0); a12_1 = fma(x12, w1, a12_1); a12_2 = fma(x12, w2, a12_2); a12_3 = fma(x12, w3, a12_3);
    let x13 = vec4<f32>(H[xr13 + k]);
    a13_0 = fma(x13, w0, a13_0); a13_1 = fma(x13, w1, a13_1); a13_2 = fma(x13, w2, a13_2); a13_3 = fma(x13, w3, a13_3);
    let x14 = vec4<f32>(H[xr14 + k]);
    a14_0 = fma(x14, w0, a14_0); a14_1 = fma(x14, w1, a14_1); a14_2 = fma(x14, w2, a14_2); a14_3 = fma(x14, w3, a14_3);
    let x15 = vec4<f32>(H[xr15 + k]);
    a15_0 = fma(x15, w0, a15_0); a15_1 = fma(x15, w1, a15_1); a15_2 = fma(x15, w2, a15_2); a15_3 = fma(x15, w3, a15_3);
  }
  logits_store_rt(r + 0u, c, M, N, array<vec4<f32>, 4>(a0_0, a0_1, a0_2, a0_3));
  logits_store_rt(r + 1u, c, M, N, array<vec4<f32>, 4>(a1_0, a1_1, a1_2, a1_3));
  logits_store_rt(r + 2u, c, M, N, array<vec4<f32>, 4>(a2_0, a2_1, a2_2, a2_3));
  logits_store_rt(r + 3u, c, M, N, array<vec4<f32>, 4>(a3_0, a3_1, a3_2, a3_3));
  logits_store_rt(r + 4u, c, M, N, array<vec4<f32>, 4>(a4_0, a4_1, a4_2, a4_3));
  logits_store_rt(r + 5u, c, M, N, array<vec4<f32>, 4>(a5_0, a5_1, a5_2, a5_3));
  logits_store_rt(r + 6u, c, M, N, array<vec4<f32>, 4>(a6_0, a6_1, a6_2, a6_3));
  logits_store_rt(r + 7u, c, M, N, array<vec4<f32>, 4>(a7_0, a7_1, a7_2, a7_3));
  logits_store_rt(r + 8u, c, M, N, array<vec4<f32>, 4>(a8_0, a8_1, a8_2, a8_3));
  logits_store_rt(r + 9u, c, M, N, array<vec4<f32>, 4>(a9_0, a9_1, a9_2, a9_3));
  logits_store_rt(r + 10u, c, M, N, array<vec4<f32>, 4>(a10_0, a10_1, a10_2, a10_3));
  logits_store_rt(r + 11u, c, M, N, array<vec4<f32>, 4>(a11_0, a11_1, a11_2, a11_3));
  logits_store_rt(r + 12u, c, M, N, array<vec4<f32>, 4>(a12_0, a12_1, a12_2, a12_3));
  logits_store_rt(r + 13u, c, M, N, array<vec4<f32>, 4>(a13_0, a13_1, a13_2, a13_3));
  logits_store_rt(r + 14u, c, M, N, array<vec4<f32>, 4>(a14_0, a14_1, a14_2, a14_3));
  logits_store_rt(r + 15u, c, M, N, array<vec4<f32>, 4>(a15_0, a15_1, a15_2, a15_3));
}

// One row t of logits_tile_rt's micro-tile, columns c .. c+15, with logits_tile's epilogue.
fn logits_store_rt(t: u32, c: u32, M: u32, N: u32, v: array<vec4<f32>, 4>) {
  if (t >= M) {
    return;
  }
  let dlogits = params.flag != 0u;
  var m = 0.0;
  var logs = 0.0;
  var w = 0.0;
  var tg = -1;
  if (dlogits && row_valid(t)) {
    m = LSE2[2u * t];
    logs = LSE2[2u * t + 1u];
    w = params.loss_scale / LOSS[1];
    tg = TGT[t];
  }
  for (var j = 0u; j < 16u; j++) {
    let col = c + j;
    if (col < N) {
      var out = v[j / 4u][j % 4u];
      if (dlogits) {
        var g = 0.0;
        if (w != 0.0) {
          let p = exp((out - m) - logs);
          g = (p - select(0.0, 1.0, i32(params.v0 + col) == tg)) * w;
        }
        out = g;
      }
      L[t * N + col] = out;
    }
  }
}

@compute @workgroup_size(4, 4, 1)
fn dh_tile_rt(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = params.T;
  let N = params.C;
  let K = params.n; // row stride of G
  let kbeg = wid.z * params.kchunk;
  let kend = min(K, kbeg + params.kchunk);
  let r = wid.y * BM + 16u * lid.y;
  let c = wid.x * BN + 16u * lid.x;
  let rm = max(M, 1u) - 1u;
  let cm = max(N, 1u) - 1u;
  let gr0 = min(r + 0u, rm) * K;
  let gr1 = min(r + 1u, rm) * K;
  let gr2 = min(r + 2u, rm) * K;
  let gr3 = min(r + 3u, rm) * K;
  let gr4 = min(r + 4u, rm) * K;
  let gr5 = min(r + 5u, rm) * K;
  let gr6 = min(r + 6u, rm) * K;
  let gr7 = min(r + 7u, rm) * K;
  let gr8 = min(r + 8u, rm) * K;
  let gr9 = min(r + 9u, rm) * K;
  let gr10 = min(r + 10u, rm) * K;
  let gr11 = min(r + 11u, rm) * K;
  let gr12 = min(r + 12u, rm) * K;
  let gr13 = min(r + 13u, rm) * K;
  let gr14 = min(r + 14u, rm) * K;
  let gr15 = min(r + 15u, rm) * K;
  let ec0 = min(c + 0u, cm);
  let ec1 = min(c + 1u, cm);
  let ec2 = min(c + 2u, cm);
  let ec3 = min(c + 3u, cm);
  let ec4 = min(c + 4u, cm);
  let ec5 = min(c + 5u, cm);
  let ec6 = min(c + 6u, cm);
  let ec7 = min(c + 7u, cm);
  let ec8 = min(c + 8u, cm);
  let ec9 = min(c + 9u, cm);
  let ec10 = min(c + 10u, cm);
  let ec11 = min(c + 11u, cm);
  let ec12 = min(c + 12u, cm);
  let ec13 = min(c + 13u, cm);
  let ec14 = min(c + 14u, cm);
  let ec15 = min(c + 15u, cm);
  var a0_0 = vec4<f32>(0.0); var a0_1 = vec4<f32>(0.0); var a0_2 = vec4<f32>(0.0); var a0_3 = vec4<f32>(0.0);
  var a1_0 = vec4<f32>(0.0); var a1_1 = vec4<f32>(0.0); var a1_2 = vec4<f32>(0.0); var a1_3 = vec4<f32>(0.0);
  var a2_0 = vec4<f32>(0.0); var a2_1 = vec4<f32>(0.0); var a2_2 = vec4<f32>(0.0); var a2_3 = vec4<f32>(0.0);
  var a3_0 = vec4<f32>(0.0); var a3_1 = vec4<f32>(0.0); var a3_2 = vec4<f32>(0.0); var a3_3 = vec4<f32>(0.0);
  var a4_0 = vec4<f32>(0.0); var a4_1 = vec4<f32>(0.0); var a4_2 = vec4<f32>(0.0); var a4_3 = vec4<f32>(0.0);
  var a5_0 = vec4<f32>(0.0); var a5_1 = vec4<f32>(0.0); var a5_2 = vec4<f32>(0.0); var a5_3 = vec4<f32>(0.0);
  var a6_0 = vec4<f32>(0.0); var a6_1 = vec4<f32>(0.0); var a6_2 = vec4<f32>(0.0); var a6_3 = vec4<f32>(0.0);
  var a7_0 = vec4<f32>(0.0); var a7_1 = vec4<f32>(0.0); var a7_2 = vec4<f32>(0.0); var a7_3 = vec4<f32>(0.0);
  var a8_0 = vec4<f32>(0.0); var a8_1 = vec4<f32>(0.0); var a8_2 = vec4<f32>(0.0); var a8_3 = vec4<f32>(0.0);
  var a9_0 = vec4<f32>(0.0); var a9_1 = vec4<f32>(0.0); var a9_2 = vec4<f32>(0.0); var a9_3 = vec4<f32>(0.0);
  var a10_0 = vec4<f32>(0.0); var a10_1 = vec4<f32>(0.0); var a10_2 = vec4<f32>(0.0); var a10_3 = vec4<f32>(0.0);
  var a11_0 = vec4<f32>(0.0); var a11_1 = vec4<f32>(0.0); var a11_2 = vec4<f32>(0.0); var a11_3 = vec4<f32>(0.0);
  var a12_0 = vec4<f32>(0.0); var a12_1 = vec4<f32>(0.0); var a12_2 = vec4<f32>(0.0); var a12_3 = vec4<f32>(0.0);
  var a13_0 = vec4<f32>(0.0); var a13_1 = vec4<f32>(0.0); var a13_2 = vec4<f32>(0.0); var a13_3 = vec4<f32>(0.0);
  var a14_0 = vec4<f32>(0.0); var a14_1 = vec4<f32>(0.0); var a14_2 = vec4<f32>(0.0); var a14_3 = vec4<f32>(0.0);
  var a15_0 = vec4<f32>(0.0); var a15_1 = vec4<f32>(0.0); var a15_2 = vec4<f32>(0.0); var a15_3 = vec4<f32>(0.0);
  for (var k = kbeg; k < kend; k++) {
    let eo = k * N;
    let w0 = vec4<f32>(ldE(eo + ec0), ldE(eo + ec1), ldE(eo + ec2), ldE(eo + ec3));
    let w1 = vec4<f32>(ldE(eo + ec4), ldE(eo + ec5), ldE(eo + ec6), ldE(eo + ec7));
    let w2 = vec4<f32>(ldE(eo + ec8), ldE(eo + ec9), ldE(eo + ec10), ldE(eo + ec11));
    let w3 = vec4<f32>(ldE(eo + ec12), ldE(eo + ec13), ldE(eo + ec14), ldE(eo + ec15));
    let x0 = vec4<f32>(G[gr0 + k]);
    a0_0 = fma(x0, w0, a0_0); a0_1 = fma(x0, w1, a0_1); a0_2 = fma(x0, w2, a0_2); a0_3 = fma(x0, w3, a0_3);
    let x1 = vec4<f32>(G[gr1 + k]);
    a1_0 = fma(x1, w0, a1_0); a1_1 = fma(x1, w1, a1_1); a1_2 = fma(x1, w2, a1_2); a1_3 = fma(x1, w3, a1_3);
    let x2 = vec4<f32>(G[gr2 + k]);
    a2_0 = fma(x2, w0, a2_0); a2_1 = fma(x2, w1, a2_1); a2_2 = fma(x2, w2, a2_2); a2_3 = fma(x2, w3, a2_3);
    let x3 = vec4<f32>(G[gr3 + k]);
    a3_0 = fma(x3, w0, a3_0); a3_1 = fma(x3, w1, a3_1); a3_2 = fma(x3, w2, a3_2); a3_3 = fma(x3, w3, a3_3);
    let x4 = vec4<f32>(G[gr4 + k]);
    a4_0 = fma(x4, w0, a4_0); a4_1 = fma(x4, w1, a4_1); a4_2 = fma(x4, w2, a4_2); a4_3 = fma(x4, w3, a4_3);
    let x5 = vec4<f32>(G[gr5 + k]);
    a5_0 = fma(x5, w0, a5_0); a5_1 = fma(x5, w1, a5_1); a5_2 = fma(x5, w2, a5_2); a5_3 = fma(x5, w3, a5_3);
    let x6 = vec4<f32>(G[gr6 + k]);
    a6_0 = fma(x6, w0, a6_0); a6_1 = fma(x6, w1, a6_1); a6_2 = fma(x6, w2, a6_2); a6_3 = fma(x6, w3, a6_3);
    let x7 = vec4<f32>(G[gr7 + k]);
    a7_0 = fma(x7, w0, a7_0); a7_1 = fma(x7, w1, a7_1); a7_2 = fma(x7, w2, a7_2); a7_3 = fma(x7, w3, a7_3);
    let x8 = vec4<f32>(G[gr8 + k]);
    a8_0 = fma(x8, w0, a8_0); a8_1 = fma(x8, w1, a8_1); a8_2 = fma(x8, w2, a8_2); a8_3 = fma(x8, w3, a8_3);
    let x9 = vec4<f32>(G[gr9 + k]);
    a9_0 = fma(x9, w0, a9_0); a9_1 = fma(x9, w1, a9_1); a9_2 = fma(x9, w2, a9_2); a9_3 = fma(x9, w3, a9_3);
    let x10 = vec4<f32>(G[gr10 + k]);
    a10_0 = fma(x10, w0, a10_0); a10_1 = fma(x10, w1, a10_1); a10_2 = fma(x10, w2, a10_2); a10_3 = fma(x10, w3, a10_3);
    let x11 = vec4<f32>(G[gr11 + k]);
    a11_0 = fma(x11, w0, a11_0); a11_1 = fma(x11, w1, a11_1); a11_2 = fma(x11, w2, a11_2); a11_3 = fma(x11, w3, a11_3);
    let x12 = vec4<f32>(G[gr12 + k]);
    a12_0 = fma(x12, w0, a12_0); a12_1 = fma(x12, w1, a12_1); a12_2 = fma(x12, w2, a12_2); a12_3 = fma(x12, w3, a12_3);
    let x13 = vec4<f32>(G[gr13 + k]);
    a13_0 = fma(x13, w0, a13_0); a13_1 = fma(x13, w1, a13_1); a13_2 = fma(x13, w2, a13_2); a13_3 = fma(x13, w3, a13_3);
    let x14 = vec4<f32>(G[gr14 + k]);
    a14_0 = fma(x14, w0, a14_0); a14_1 = fma(x14, w1, a14_1); a14_2 = fma(x14, w2, a14_2); a14_3 = fma(x14, w3, a14_3);
    let x15 = vec4<f32>(G[gr15 + k]);
    a15_0 = fma(x15, w0, a15_0); a15_1 = fma(x15, w1, a15_1); a15_2 = fma(x15, w2, a15_2); a15_3 = fma(x15, w3, a15_3);
  }
  let zo = wid.z * M * N;
  dh_store_rt(r + 0u, c, M, N, zo, array<vec4<f32>, 4>(a0_0, a0_1, a0_2, a0_3));
  dh_store_rt(r + 1u, c, M, N, zo, array<vec4<f32>, 4>(a1_0, a1_1, a1_2, a1_3));
  dh_store_rt(r + 2u, c, M, N, zo, array<vec4<f32>, 4>(a2_0, a2_1, a2_2, a2_3));
  dh_store_rt(r + 3u, c, M, N, zo, array<vec4<f32>, 4>(a3_0, a3_1, a3_2, a3_3));
  dh_store_rt(r + 4u, c, M, N, zo, array<vec4<f32>, 4>(a4_0, a4_1, a4_2, a4_3));
  dh_store_rt(r + 5u, c, M, N, zo, array<vec4<f32>, 4>(a5_0, a5_1, a5_2, a5_3));
  dh_store_rt(r + 6u, c, M, N, zo, array<vec4<f32>, 4>(a6_0, a6_1, a6_2, a6_3));
  dh_store_rt(r + 7u, c, M, N, zo, array<vec4<f32>, 4>(a7_0, a7_1, a7_2, a7_3));
  dh_store_rt(r + 8u, c, M, N, zo, array<vec4<f32>, 4>(a8_0, a8_1, a8_2, a8_3));
  dh_store_rt(r + 9u, c, M, N, zo, array<vec4<f32>, 4>(a9_0, a9_1, a9_2, a9_3));
  dh_store_rt(r + 10u, c, M, N, zo, array<vec4<f32>, 4>(a10_0, a10_1, a10_2, a10_3));
  dh_store_rt(r + 11u, c, M, N, zo, array<vec4<f32>, 4>(a11_0, a11_1, a11_2, a11_3));
  dh_store_rt(r + 12u, c, M, N, zo, array<vec4<f32>, 4>(a12_0, a12_1, a12_2, a12_3));
  dh_store_rt(r + 13u, c, M, N, zo, array<vec4<f32>, 4>(a13_0, a13_1, a13_2, a13_3));
  dh_store_rt(r + 14u, c, M, N, zo, array<vec4<f32>, 4>(a14_0, a14_1, a14_2, a14_3));
  dh_store_rt(r + 15u, c, M, N, zo, array<vec4<f32>, 4>(a15_0, a15_1, a15_2, a15_3));
}

// One row of dh_tile_rt's micro-tile into PART[z] (= on the first vocab tile, else +=).
fn dh_store_rt(row: u32, c: u32, M: u32, N: u32, zo: u32, v: array<vec4<f32>, 4>) {
  if (row >= M) {
    return;
  }
  for (var j = 0u; j < 16u; j++) {
    if (c + j < N) {
      let o = zo + row * N + c + j;
      var x = v[j / 4u][j % 4u];
      if (params.flag == 0u) {
        x += PART[o];
      }
      PART[o] = x;
    }
  }
}

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
  // @microtile16 rows xr = min(r + {i}u, rm) * K
  // @microtile16 cols wr = min(c + {i}u, cm) * K
  // @microtile16 acc
  for (var k = 0u; k < K; k++) {
    // @microtile16 fma w = ldE(wr{i} + k); x = H[xr{i} + k]
  }
  // @microtile16 store logits_store_rt(r + {i}u, c, M, N, array<vec4<f32>, 4>({acc}))
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
  // @microtile16 rows gr = min(r + {i}u, rm) * K
  // @microtile16 cols ec = min(c + {i}u, cm)
  // @microtile16 acc
  for (var k = kbeg; k < kend; k++) {
    let eo = k * N;
    // @microtile16 fma w = ldE(eo + ec{i}); x = G[gr{i} + k]
  }
  let zo = wid.z * M * N;
  // @microtile16 store dh_store_rt(r + {i}u, c, M, N, zo, array<vec4<f32>, 4>({acc}))
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

// matmul_bias — Y = X · Wᵀ + b (PyTorch nn.Linear forward), f32, tiled in workgroup memory.
//
// Shapes (row-major, contiguous):
//   X: (M, K)   input activations, e.g. (B·T, C)
//   W: (N, K)   weight in PyTorch Linear layout (out_features, in_features)
//   b: (N,)     bias; read only when params.has_bias != 0 (bind any ≥ 4-byte buffer otherwise)
//   Y: (M, N)   output, fully overwritten
//
// Tiling: each workgroup computes a BM×BN = 64×64 tile of Y with 16×16 threads; thread (tx, ty)
// owns the 4×4 micro-tile Y[row0 + 4·ty + i, col0 + 4·tx + j] (i, j < 4), kept as four vec4 rows.
// K is walked in BK = 16 slices staged in workgroup memory k-major and packed by 4 along M/N:
//   Xs[k·16 + m/4][m%4] = X[row0 + m, k0 + k],   Ws[k·16 + n/4][n%4] = W[col0 + n, k0 + k]
// so each k step is one vec4 read of Xs, one of Ws and four vec4 FMAs (an outer product).
// Staging: thread t loads k = t % 16 of rows 4·(t/16) .. +3 — consecutive threads read
// consecutive k of one row of X (resp. W): contiguous global reads.
// Loads outside X/W (odd M, N, K) stage 0, which adds nothing to the sums; stores are bounds-checked.
// (On SwiftShader this layout measured ~4× faster than a strided scalar 4×4 micro-tile.)
//
// Dispatch: (ceil(N / 64), ceil(M / 64), 1) workgroups, for both entry points: `main` (above,
// for GPUs) and `main_rt` (below, register-tiled for software adapters; bit-identical results).
// Reference: src/gpu/reference/matmul.ts (float64). Test: test/gpu/matmul.test.ts.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  has_bias: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;       // (M, K)
// Storage types (src/gpu/wgsl-variants.ts rewrites these to f16 for f16 storage; math stays f32).
alias WStore = f32; // frozen weights W
alias YStore = f32; // output Y (f16 only for the cross-attention K/V cache)
@group(0) @binding(2) var<storage, read> W: array<WStore>;    // (N, K)
@group(0) @binding(3) var<storage, read> B: array<f32>;       // (N,) or dummy
@group(0) @binding(4) var<storage, read_write> Y: array<YStore>; // (M, N)
fn ldW(i: u32) -> f32 { return f32(W[i]); }

const BM: u32 = 64u;  // rows of Y per workgroup  (= 4 · WG)
const BN: u32 = 64u;  // cols of Y per workgroup  (= 4 · WG)
const BK: u32 = 16u;  // K slice staged per iteration (BK · WG = 256 = threads: one load each)
const WG: u32 = 16u;  // workgroup is WG × WG threads

var<workgroup> Xs: array<vec4<f32>, BK * BM / 4u>; // [BK][BM/4] vec4 along M
var<workgroup> Ws: array<vec4<f32>, BK * BN / 4u>; // [BK][BN/4] vec4 along N

// Element i of vec4 v, 0 beyond the end: reads A[base + i·stride] for the rows still < limit.
fn load4(is_x: bool, base_row: u32, limit: u32, k: u32, K: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    let r = base_row + i;
    if (r < limit) {
      if (is_x) {
        v[i] = X[r * K + k];
      } else {
        v[i] = ldW(r * K + k);
      }
    }
  }
  return v;
}

@compute @workgroup_size(WG, WG, 1)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) lidx: u32,
) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let tx = lid.x;
  let ty = lid.y;

  // acc_i[j] ↔ Y[row0 + 4·ty + i, col0 + 4·tx + j]
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);

  // Staging assignment of this thread: k = lidx % BK, packed row group q = lidx / BK (0..15).
  let sk = lidx % BK;
  let sq = lidx / BK;

  for (var k0 = 0u; k0 < K; k0 += BK) {
    let gk = k0 + sk;
    var xv = vec4<f32>(0.0);
    var wv = vec4<f32>(0.0);
    if (gk < K) {
      xv = load4(true, row0 + 4u * sq, M, gk, K);
      wv = load4(false, col0 + 4u * sq, N, gk, K);
    }
    Xs[sk * (BM / 4u) + sq] = xv;
    Ws[sk * (BN / 4u) + sq] = wv;
    workgroupBarrier();

    for (var k = 0u; k < BK; k++) {
      let a = Xs[k * (BM / 4u) + ty]; // X[row0 + 4·ty + 0..3, k0 + k]
      let w = Ws[k * (BN / 4u) + tx]; // W[col0 + 4·tx + 0..3, k0 + k]
      acc0 = fma(vec4<f32>(a.x), w, acc0);
      acc1 = fma(vec4<f32>(a.y), w, acc1);
      acc2 = fma(vec4<f32>(a.z), w, acc2);
      acc3 = fma(vec4<f32>(a.w), w, acc3);
    }
    workgroupBarrier();
  }

  let c = col0 + 4u * tx;
  let r = row0 + 4u * ty;
  var bias = vec4<f32>(0.0);
  if (params.has_bias != 0u) {
    for (var j = 0u; j < 4u; j++) {
      if (c + j < N) {
        bias[j] = B[c + j];
      }
    }
  }
  let rows = array<vec4<f32>, 4>(acc0 + bias, acc1 + bias, acc2 + bias, acc3 + bias);
  for (var i = 0u; i < 4u; i++) {
    if (r + i < M) {
      let o = (r + i) * N + c;
      for (var j = 0u; j < 4u; j++) {
        if (c + j < N) {
          Y[o + j] = YStore(rows[i][j]);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// main_rt — the same product for SOFTWARE adapters (llvmpipe, SwiftShader; chosen by
// src/gpu/kernels/matmul.ts). These run a workgroup's invocations as SIMD lanes on one CPU thread
// and pay per loaded float and lane (a gather), not per FMA; workgroup memory and barriers cost more
// than they save. So: no staging, and each thread owns a 16×16 micro-tile read straight from X and W
// (per k: 16 + 16 loads for 256 FMAs, vs 8 workgroup loads for 16 FMAs above). Measured on 64×2048×512
// (CPU time of the process): llvmpipe 0.38 → 1.3 GFLOP/s, SwiftShader 0.25 → 0.66 GFLOP/s.
// Sums run over k in the same order as `main` (results are bit-identical).
// Workgroup 4×4 threads = the same 64×64 output tile, so the dispatch grid is unchanged.
// Rows/cols past M/N read a clamped (valid) element and are never stored. Written out in full
// (named accumulators): a private array here was 2× slower on llvmpipe (not kept in registers).
@compute @workgroup_size(4, 4, 1)
fn main_rt(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
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
    let w0 = vec4<f32>(ldW(wr0 + k), ldW(wr1 + k), ldW(wr2 + k), ldW(wr3 + k));
    let w1 = vec4<f32>(ldW(wr4 + k), ldW(wr5 + k), ldW(wr6 + k), ldW(wr7 + k));
    let w2 = vec4<f32>(ldW(wr8 + k), ldW(wr9 + k), ldW(wr10 + k), ldW(wr11 + k));
    let w3 = vec4<f32>(ldW(wr12 + k), ldW(wr13 + k), ldW(wr14 + k), ldW(wr15 + k));
    let x0 = vec4<f32>(X[xr0 + k]);
    a0_0 = fma(x0, w0, a0_0); a0_1 = fma(x0, w1, a0_1); a0_2 = fma(x0, w2, a0_2); a0_3 = fma(x0, w3, a0_3);
    let x1 = vec4<f32>(X[xr1 + k]);
    a1_0 = fma(x1, w0, a1_0); a1_1 = fma(x1, w1, a1_1); a1_2 = fma(x1, w2, a1_2); a1_3 = fma(x1, w3, a1_3);
    let x2 = vec4<f32>(X[xr2 + k]);
    a2_0 = fma(x2, w0, a2_0); a2_1 = fma(x2, w1, a2_1); a2_2 = fma(x2, w2, a2_2); a2_3 = fma(x2, w3, a2_3);
    let x3 = vec4<f32>(X[xr3 + k]);
    a3_0 = fma(x3, w0, a3_0); a3_1 = fma(x3, w1, a3_1); a3_2 = fma(x3, w2, a3_2); a3_3 = fma(x3, w3, a3_3);
    let x4 = vec4<f32>(X[xr4 + k]);
    a4_0 = fma(x4, w0, a4_0); a4_1 = fma(x4, w1, a4_1); a4_2 = fma(x4, w2, a4_2); a4_3 = fma(x4, w3, a4_3);
    let x5 = vec4<f32>(X[xr5 + k]);
    a5_0 = fma(x5, w0, a5_0); a5_1 = fma(x5, w1, a5_1); a5_2 = fma(x5, w2, a5_2); a5_3 = fma(x5, w3, a5_3);
    let x6 = vec4<f32>(X[xr6 + k]);
    a6_0 = fma(x6, w0, a6_0); a6_1 = fma(x6, w1, a6_1); a6_2 = fma(x6, w2, a6_2); a6_3 = fma(x6, w3, a6_3);
    let x7 = vec4<f32>(X[xr7 + k]);
    a7_0 = fma(x7, w0, a7_0); a7_1 = fma(x7, w1, a7_1); a7_2 = fma(x7, w2, a7_2); a7_3 = fma(x7, w3, a7_3);
    let x8 = vec4<f32>(X[xr8 + k]);
    a8_0 = fma(x8, w0, a8_0); a8_1 = fma(x8, w1, a8_1); a8_2 = fma(x8, w2, a8_2); a8_3 = fma(x8, w3, a8_3);
    let x9 = vec4<f32>(X[xr9 + k]);
    a9_0 = fma(x9, w0, a9_0); a9_1 = fma(x9, w1, a9_1); a9_2 = fma(x9, w2, a9_2); a9_3 = fma(x9, w3, a9_3);
    let x10 = vec4<f32>(X[xr10 + k]);
    a10_0 = fma(x10, w0, a10_0); a10_1 = fma(x10, w1, a10_1); a10_2 = fma(x10, w2, a10_2); a10_3 = fma(x10, w3, a10_3);
    let x11 = vec4<f32>(X[xr11 + k]);
    a11_0 = fma(x11, w0, a11_0); a11_1 = fma(x11, w1, a11_1); a11_2 = fma(x11, w2, a11_2); a11_3 = fma(x11, w3, a11_3);
    let x12 = vec4<f32>(X[xr12 + k]);
    a12_0 = fma(x12, w0, a12_0); a12_1 = fma(x12, w1, a12_1); a12_2 = fma(x12, w2, a12_2); a12_3 = fma(x12, w3, a12_3);
    let x13 = vec4<f32>(X[xr13 + k]);
    a13_0 = fma(x13, w0, a13_0); a13_1 = fma(x13, w1, a13_1); a13_2 = fma(x13, w2, a13_2); a13_3 = fma(x13, w3, a13_3);
    let x14 = vec4<f32>(X[xr14 + k]);
    a14_0 = fma(x14, w0, a14_0); a14_1 = fma(x14, w1, a14_1); a14_2 = fma(x14, w2, a14_2); a14_3 = fma(x14, w3, a14_3);
    let x15 = vec4<f32>(X[xr15 + k]);
    a15_0 = fma(x15, w0, a15_0); a15_1 = fma(x15, w1, a15_1); a15_2 = fma(x15, w2, a15_2); a15_3 = fma(x15, w3, a15_3);
  }
  var bias = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  if (params.has_bias != 0u) {
    for (var j = 0u; j < 16u; j++) {
      if (c + j < N) {
        bias[j / 4u][j % 4u] = B[c + j];
      }
    }
  }
  store_rt(r + 0u, c, M, N, array<vec4<f32>, 4>(a0_0 + bias[0], a0_1 + bias[1], a0_2 + bias[2], a0_3 + bias[3]));
  store_rt(r + 1u, c, M, N, array<vec4<f32>, 4>(a1_0 + bias[0], a1_1 + bias[1], a1_2 + bias[2], a1_3 + bias[3]));
  store_rt(r + 2u, c, M, N, array<vec4<f32>, 4>(a2_0 + bias[0], a2_1 + bias[1], a2_2 + bias[2], a2_3 + bias[3]));
  store_rt(r + 3u, c, M, N, array<vec4<f32>, 4>(a3_0 + bias[0], a3_1 + bias[1], a3_2 + bias[2], a3_3 + bias[3]));
  store_rt(r + 4u, c, M, N, array<vec4<f32>, 4>(a4_0 + bias[0], a4_1 + bias[1], a4_2 + bias[2], a4_3 + bias[3]));
  store_rt(r + 5u, c, M, N, array<vec4<f32>, 4>(a5_0 + bias[0], a5_1 + bias[1], a5_2 + bias[2], a5_3 + bias[3]));
  store_rt(r + 6u, c, M, N, array<vec4<f32>, 4>(a6_0 + bias[0], a6_1 + bias[1], a6_2 + bias[2], a6_3 + bias[3]));
  store_rt(r + 7u, c, M, N, array<vec4<f32>, 4>(a7_0 + bias[0], a7_1 + bias[1], a7_2 + bias[2], a7_3 + bias[3]));
  store_rt(r + 8u, c, M, N, array<vec4<f32>, 4>(a8_0 + bias[0], a8_1 + bias[1], a8_2 + bias[2], a8_3 + bias[3]));
  store_rt(r + 9u, c, M, N, array<vec4<f32>, 4>(a9_0 + bias[0], a9_1 + bias[1], a9_2 + bias[2], a9_3 + bias[3]));
  store_rt(r + 10u, c, M, N, array<vec4<f32>, 4>(a10_0 + bias[0], a10_1 + bias[1], a10_2 + bias[2], a10_3 + bias[3]));
  store_rt(r + 11u, c, M, N, array<vec4<f32>, 4>(a11_0 + bias[0], a11_1 + bias[1], a11_2 + bias[2], a11_3 + bias[3]));
  store_rt(r + 12u, c, M, N, array<vec4<f32>, 4>(a12_0 + bias[0], a12_1 + bias[1], a12_2 + bias[2], a12_3 + bias[3]));
  store_rt(r + 13u, c, M, N, array<vec4<f32>, 4>(a13_0 + bias[0], a13_1 + bias[1], a13_2 + bias[2], a13_3 + bias[3]));
  store_rt(r + 14u, c, M, N, array<vec4<f32>, 4>(a14_0 + bias[0], a14_1 + bias[1], a14_2 + bias[2], a14_3 + bias[3]));
  store_rt(r + 15u, c, M, N, array<vec4<f32>, 4>(a15_0 + bias[0], a15_1 + bias[1], a15_2 + bias[2], a15_3 + bias[3]));
}

// One row of main_rt's micro-tile: Y[row, c .. c+15] (bounds-checked).
fn store_rt(row: u32, c: u32, M: u32, N: u32, v: array<vec4<f32>, 4>) {
  if (row < M) {
    for (var j = 0u; j < 16u; j++) {
      if (c + j < N) {
        Y[row * N + c + j] = YStore(v[j / 4u][j % 4u]);
      }
    }
  }
}

// Element-type conversion Y[i] = YStore(W[i]) for i < params.M (the f16 K/V cache widened into f32
// batch buffers when encoder_attn k/v carry adapters: src/gpu/kernels/matmul.ts prepareConvert).
// A 2-D grid of 256-thread workgroups: i = global x + global y · (256 · workgroups in x).
@compute @workgroup_size(256)
fn convert(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = g.x + g.y * nwg.x * 256u;
  if (i < params.M) {
    Y[i] = YStore(ldW(i));
  }
}

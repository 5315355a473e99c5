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
// Rows/cols past M/N read a clamped (valid) element and are never stored. Unrolled by the
// `@microtile16` directives (src/gpu/microtile.ts expands them when the shader loads)
// into named accumulators: a private array here was 2× slower on llvmpipe (not kept in registers).
@compute @workgroup_size(4, 4, 1)
fn main_rt(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let r = wid.y * BM + 16u * lid.y;
  let c = wid.x * BN + 16u * lid.x;
  let rm = max(M, 1u) - 1u;
  let cm = max(N, 1u) - 1u;
  // @microtile16 rows xr = min(r + {i}u, rm) * K
  // @microtile16 cols wr = min(c + {i}u, cm) * K
  // @microtile16 acc
  for (var k = 0u; k < K; k++) {
    // @microtile16 fma w = ldW(wr{i} + k); x = X[xr{i} + k]
  }
  var bias = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  if (params.has_bias != 0u) {
    for (var j = 0u; j < 16u; j++) {
      if (c + j < N) {
        bias[j / 4u][j % 4u] = B[c + j];
      }
    }
  }
  // @microtile16 store store_rt(r + {i}u, c, M, N, array<vec4<f32>, 4>({acc})) | acc = a{i}_{q} + bias[{q}]
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

// engine_linear_backward — input gradient of a frozen nn.Linear: dX = dY · W  (no transpose of W).
//
// Forward (shaders/matmul_bias.wgsl): Y = X·Wᵀ + b with X: (M, K), W: (N, K), Y: (M, N).
// Backward, W and b frozen (no weight/bias gradient buffers exist):
//   dY: (M, N)   W: (N, K) PyTorch Linear layout   dX: (M, K) = dY · W   ((M,N)·(N,K))
//   accumulate ≠ 0: dX += dY·W (e.g. after an adapter or a residual branch wrote its share)
//
// Tiling, as matmul_bias: a workgroup computes a BM×BK_OUT = 64×64 tile of dX with 16×16 threads;
// thread (tx, ty) owns rows 4ty..4ty+3, cols 4tx..4tx+3 (four vec4 accumulators). The reduction
// over N is walked in slices of BN = 16 staged in workgroup memory, packed by 4:
//   Ys[n·16 + m/4][m%4] = dY[row0 + m, n0 + n]   (thread t: n = t % 16, rows 4·(t/16)..+3 —
//                                                  consecutive threads read consecutive n of a row)
//   Ws[n·16 + k/4][k%4] = W[n0 + n, col0 + k]    (thread t: n = t / 16, cols 4·(t%16)..+3 —
//                                                  W rows are contiguous along K: vec4 reads)
// so each n step is one vec4 from Ys, one from Ws and four vec4 FMAs (an outer product).
// Out-of-range loads stage 0 (odd M, N, K); stores are bounds-checked.
// Dispatch: (ceil(K / 64), ceil(M / 64), 1) for both entry points: `main` (GPUs) and `main_rt`
// (register-tiled for software adapters, at the end of this file; bit-identical results).
// Reference: src/engine/reference/linear_backward.ts. Test: test/engine/linear_backward.test.ts.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> DY: array<f32>;       // (M, N)
// Storage type (src/gpu/wgsl-variants.ts rewrites the alias to f16 for f16 storage; math stays f32).
alias WStore = f32; // frozen weights W
@group(0) @binding(2) var<storage, read> W: array<WStore>; // (N, K)
fn ldW(i: u32) -> f32 { return f32(W[i]); }
@group(0) @binding(3) var<storage, read_write> DX: array<f32>; // (M, K)

const BM: u32 = 64u;
const BKO: u32 = 64u; // output columns (along K) per workgroup
const BN: u32 = 16u;  // reduction slice
const WG: u32 = 16u;

var<workgroup> Ys: array<vec4<f32>, BN * BM / 4u>;  // [BN][BM/4]
var<workgroup> Ws: array<vec4<f32>, BN * BKO / 4u>; // [BN][BKO/4]

@compute @workgroup_size(WG, WG, 1)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) lidx: u32,
) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let row0 = wid.y * BM;
  let col0 = wid.x * BKO;
  let tx = lid.x;
  let ty = lid.y;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);

  // dY staging: n = lidx % 16, row group q = lidx / 16.   W staging: n = lidx / 16, col group lidx % 16.
  let yn = lidx % BN;
  let yq = lidx / BN;
  let wn = lidx / 16u;
  let wq = lidx % 16u;

  for (var n0 = 0u; n0 < N; n0 += BN) {
    var yv = vec4<f32>(0.0);
    let gn = n0 + yn;
    if (gn < N) {
      for (var i = 0u; i < 4u; i++) {
        let r = row0 + 4u * yq + i;
        if (r < M) {
          yv[i] = DY[r * N + gn];
        }
      }
    }
    Ys[yn * (BM / 4u) + yq] = yv;

    var wv = vec4<f32>(0.0);
    let wrow = n0 + wn;
    if (wrow < N) {
      for (var j = 0u; j < 4u; j++) {
        let c = col0 + 4u * wq + j;
        if (c < K) {
          wv[j] = ldW(wrow * K + c);
        }
      }
    }
    Ws[wn * (BKO / 4u) + wq] = wv;
    workgroupBarrier();

    for (var n = 0u; n < BN; n++) {
      let a = Ys[n * (BM / 4u) + ty];  // dY[row0 + 4ty + 0..3, n0 + n]
      let w = Ws[n * (BKO / 4u) + tx]; // W[n0 + n, col0 + 4tx + 0..3]
      acc0 = fma(vec4<f32>(a.x), w, acc0);
      acc1 = fma(vec4<f32>(a.y), w, acc1);
      acc2 = fma(vec4<f32>(a.z), w, acc2);
      acc3 = fma(vec4<f32>(a.w), w, acc3);
    }
    workgroupBarrier();
  }

  let c = col0 + 4u * tx;
  let r = row0 + 4u * ty;
  let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    if (r + i < M) {
      let o = (r + i) * K + c;
      for (var j = 0u; j < 4u; j++) {
        if (c + j < K) {
          var v = rows[i][j];
          if (params.accumulate != 0u) {
            v = DX[o + j] + v;
          }
          DX[o + j] = v;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// main_rt — the same product for SOFTWARE adapters (llvmpipe, SwiftShader; chosen by
// src/engine/kernels/linear_backward.ts), as matmul_bias.wgsl main_rt: no workgroup memory, each
// thread owns a 16×16 micro-tile of dX read straight from dY and W (per n: 16 + 16 loads for 256
// FMAs). Sums over n in the same order as `main`: bit-identical results. Workgroup 4×4 threads =
// the same 64×64 tile and dispatch grid. Rows/cols past M/K read a clamped element, never stored.
@compute @workgroup_size(4, 4, 1)
fn main_rt(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let r = wid.y * BM + 16u * lid.y;
  let c = wid.x * BKO + 16u * lid.x;
  let rm = max(M, 1u) - 1u;
  let km = max(K, 1u) - 1u;
  // @microtile16 rows yr = min(r + {i}u, rm) * N
  // @microtile16 cols wc = min(c + {i}u, km)
  // @microtile16 acc
  for (var n = 0u; n < N; n++) {
    let wo = n * K;
    // @microtile16 fma w = ldW(wo + wc{i}); y = DY[yr{i} + n]
  }
  // @microtile16 store store_rt(r + {i}u, c, M, K, array<vec4<f32>, 4>({acc}))
}

// One row of main_rt's micro-tile: dX[row, c .. c+15] (=, or += when accumulating; bounds-checked).
fn store_rt(row: u32, c: u32, M: u32, K: u32, v: array<vec4<f32>, 4>) {
  if (row < M) {
    for (var j = 0u; j < 16u; j++) {
      if (c + j < K) {
        let o = row * K + c + j;
        var x = v[j / 4u][j % 4u];
        if (params.accumulate != 0u) {
          x = DX[o] + x;
        }
        DX[o] = x;
      }
    }
  }
}

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
  let yr0 = min(r + 0u, rm) * N;
  let yr1 = min(r + 1u, rm) * N;
  let yr2 = min(r + 2u, rm) * N;
  let yr3 = min(r + 3u, rm) * N;
  let yr4 = min(r + 4u, rm) * N;
  let yr5 = min(r + 5u, rm) * N;
  let yr6 = min(r + 6u, rm) * N;
  let yr7 = min(r + 7u, rm) * N;
  let yr8 = min(r + 8u, rm) * N;
  let yr9 = min(r + 9u, rm) * N;
  let yr10 = min(r + 10u, rm) * N;
  let yr11 = min(r + 11u, rm) * N;
  let yr12 = min(r + 12u, rm) * N;
  let yr13 = min(r + 13u, rm) * N;
  let yr14 = min(r + 14u, rm) * N;
  let yr15 = min(r + 15u, rm) * N;
  let wc0 = min(c + 0u, km);
  let wc1 = min(c + 1u, km);
  let wc2 = min(c + 2u, km);
  let wc3 = min(c + 3u, km);
  let wc4 = min(c + 4u, km);
  let wc5 = min(c + 5u, km);
  let wc6 = min(c + 6u, km);
  let wc7 = min(c + 7u, km);
  let wc8 = min(c + 8u, km);
  let wc9 = min(c + 9u, km);
  let wc10 = min(c + 10u, km);
  let wc11 = min(c + 11u, km);
  let wc12 = min(c + 12u, km);
  let wc13 = min(c + 13u, km);
  let wc14 = min(c + 14u, km);
  let wc15 = min(c + 15u, km);
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
  for (var n = 0u; n < N; n++) {
    let wo = n * K;
    let w0 = vec4<f32>(ldW(wo + wc0), ldW(wo + wc1), ldW(wo + wc2), ldW(wo + wc3));
    let w1 = vec4<f32>(ldW(wo + wc4), ldW(wo + wc5), ldW(wo + wc6), ldW(wo + wc7));
    let w2 = vec4<f32>(ldW(wo + wc8), ldW(wo + wc9), ldW(wo + wc10), ldW(wo + wc11));
    let w3 = vec4<f32>(ldW(wo + wc12), ldW(wo + wc13), ldW(wo + wc14), ldW(wo + wc15));
    let y0 = vec4<f32>(DY[yr0 + n]);
    a0_0 = fma(y0, w0, a0_0); a0_1 = fma(y0, w1, a0_1); a0_2 = fma(y0, w2, a0_2); a0_3 = fma(y0, w3, a0_3);
    let y1 = vec4<f32>(DY[yr1 + n]);
    a1_0 = fma(y1, w0, a1_0); a1_1 = fma(y1, w1, a1_1); a1_2 = fma(y1, w2, a1_2); a1_3 = fma(y1, w3, a1_3);
    let y2 = vec4<f32>(DY[yr2 + n]);
    a2_0 = fma(y2, w0, a2_0); a2_1 = fma(y2, w1, a2_1); a2_2 = fma(y2, w2, a2_2); a2_3 = fma(y2, w3, a2_3);
    let y3 = vec4<f32>(DY[yr3 + n]);
    a3_0 = fma(y3, w0, a3_0); a3_1 = fma(y3, w1, a3_1); a3_2 = fma(y3, w2, a3_2); a3_3 = fma(y3, w3, a3_3);
    let y4 = vec4<f32>(DY[yr4 + n]);
    a4_0 = fma(y4, w0, a4_0); a4_1 = fma(y4, w1, a4_1); a4_2 = fma(y4, w2, a4_2); a4_3 = fma(y4, w3, a4_3);
    let y5 = vec4<f32>(DY[yr5 + n]);
    a5_0 = fma(y5, w0, a5_0); a5_1 = fma(y5, w1, a5_1); a5_2 = fma(y5, w2, a5_2); a5_3 = fma(y5, w3, a5_3);
    let y6 = vec4<f32>(DY[yr6 + n]);
    a6_0 = fma(y6, w0, a6_0); a6_1 = fma(y6, w1, a6_1); a6_2 = fma(y6, w2, a6_2); a6_3 = fma(y6, w3, a6_3);
    let y7 = vec4<f32>(DY[yr7 + n]);
    a7_0 = fma(y7, w0, a7_0); a7_1 = fma(y7, w1, a7_1); a7_2 = fma(y7, w2, a7_2); a7_3 = fma(y7, w3, a7_3);
    let y8 = vec4<f32>(DY[yr8 + n]);
    a8_0 = fma(y8, w0, a8_0); a8_1 = fma(y8, w1, a8_1); a8_2 = fma(y8, w2, a8_2); a8_3 = fma(y8, w3, a8_3);
    let y9 = vec4<f32>(DY[yr9 + n]);
    a9_0 = fma(y9, w0, a9_0); a9_1 = fma(y9, w1, a9_1); a9_2 = fma(y9, w2, a9_2); a9_3 = fma(y9, w3, a9_3);
    let y10 = vec4<f32>(DY[yr10 + n]);
    a10_0 = fma(y10, w0, a10_0); a10_1 = fma(y10, w1, a10_1); a10_2 = fma(y10, w2, a10_2); a10_3 = fma(y10, w3, a10_3);
    let y11 = vec4<f32>(DY[yr11 + n]);
    a11_0 = fma(y11, w0, a11_0); a11_1 = fma(y11, w1, a11_1); a11_2 = fma(y11, w2, a11_2); a11_3 = fma(y11, w3, a11_3);
    let y12 = vec4<f32>(DY[yr12 + n]);
    a12_0 = fma(y12, w0, a12_0); a12_1 = fma(y12, w1, a12_1); a12_2 = fma(y12, w2, a12_2); a12_3 = fma(y12, w3, a12_3);
    let y13 = vec4<f32>(DY[yr13 + n]);
    a13_0 = fma(y13, w0, a13_0); a13_1 = fma(y13, w1, a13_1); a13_2 = fma(y13, w2, a13_2); a13_3 = fma(y13, w3, a13_3);
    let y14 = vec4<f32>(DY[yr14 + n]);
    a14_0 = fma(y14, w0, a14_0); a14_1 = fma(y14, w1, a14_1); a14_2 = fma(y14, w2, a14_2); a14_3 = fma(y14, w3, a14_3);
    let y15 = vec4<f32>(DY[yr15 + n]);
    a15_0 = fma(y15, w0, a15_0); a15_1 = fma(y15, w1, a15_1); a15_2 = fma(y15, w2, a15_2); a15_3 = fma(y15, w3, a15_3);
  }
  store_rt(r + 0u, c, M, K, array<vec4<f32>, 4>(a0_0, a0_1, a0_2, a0_3));
  store_rt(r + 1u, c, M, K, array<vec4<f32>, 4>(a1_0, a1_1, a1_2, a1_3));
  store_rt(r + 2u, c, M, K, array<vec4<f32>, 4>(a2_0, a2_1, a2_2, a2_3));
  store_rt(r + 3u, c, M, K, array<vec4<f32>, 4>(a3_0, a3_1, a3_2, a3_3));
  store_rt(r + 4u, c, M, K, array<vec4<f32>, 4>(a4_0, a4_1, a4_2, a4_3));
  store_rt(r + 5u, c, M, K, array<vec4<f32>, 4>(a5_0, a5_1, a5_2, a5_3));
  store_rt(r + 6u, c, M, K, array<vec4<f32>, 4>(a6_0, a6_1, a6_2, a6_3));
  store_rt(r + 7u, c, M, K, array<vec4<f32>, 4>(a7_0, a7_1, a7_2, a7_3));
  store_rt(r + 8u, c, M, K, array<vec4<f32>, 4>(a8_0, a8_1, a8_2, a8_3));
  store_rt(r + 9u, c, M, K, array<vec4<f32>, 4>(a9_0, a9_1, a9_2, a9_3));
  store_rt(r + 10u, c, M, K, array<vec4<f32>, 4>(a10_0, a10_1, a10_2, a10_3));
  store_rt(r + 11u, c, M, K, array<vec4<f32>, 4>(a11_0, a11_1, a11_2, a11_3));
  store_rt(r + 12u, c, M, K, array<vec4<f32>, 4>(a12_0, a12_1, a12_2, a12_3));
  store_rt(r + 13u, c, M, K, array<vec4<f32>, 4>(a13_0, a13_1, a13_2, a13_3));
  store_rt(r + 14u, c, M, K, array<vec4<f32>, 4>(a14_0, a14_1, a14_2, a14_3));
  store_rt(r + 15u, c, M, K, array<vec4<f32>, 4>(a15_0, a15_1, a15_2, a15_3));
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

// engine_linear_rows — Y = X · Wᵀ + b for FEW rows M (greedy decoding: M = utterances per token step).
//
// Shapes (row-major, contiguous; same bindings as matmul_bias.wgsl, so a caller can swap the pipeline):
//   X: (M, K)   W: (N, K) PyTorch Linear layout   b: (N,) read when has_bias ≠ 0   Y: (M, N)
//
// Why not matmul_bias: its 64×64 output tile computes 64 rows whatever M is, so at M = 1 it does 64×
// the useful work (measured on llvmpipe: fc1 (1, 2048, 512) 990 ms, tied logits over V = 51,865 22 s).
// Here each thread owns output columns n (grid-stride: n = t, t + 64·G, … for G workgroups) and MR
// rows [m0, m0 + MR) (MR = 1, 2, 4 or 8, a const substituted per pipeline; workgroup y = row group),
// so each W element is loaded once per row group and used for MR rows: M·N·K FMAs in all. No
// workgroup memory and no barriers: X is read straight from global memory (the same address in every
// thread — a broadcast), W as vec4 along the row. On llvmpipe the cost per WORKGROUP dominated small
// kernels (≈ 0.17 ms each on this loaded 2-core machine, whether the kernel staged X with barriers
// or not), so the grid is capped (G ≤ 128 column groups) and threads loop over columns instead.
// Summation: acc = fma(x_k, w_k, acc) for k = 0, 1, …, K−1 in order, then + b — the operation
// sequence of matmul_bias, so both give the same f32 results where the device's fma is consistent.
// W is read as vec4: K must be a multiple of 4 (every Whisper width is). Thread n reads row n of W
// sequentially (uncoalesced across threads on a real GPU — not tuned for one).
//
// Dispatch: (G = min(ceil(N / 64), 128), ceil(M / MR), 1). Reference: src/gpu/reference/matmul.ts (float64).
// Test: test/engine/linear_rows.test.ts.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  has_bias: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>; // (M, K/4)
// Storage type (src/gpu/wgsl-variants.ts rewrites the alias to f16 for f16 storage; math stays f32).
alias WStore = f32; // frozen weights W
@group(0) @binding(2) var<storage, read> W: array<vec4<WStore>>; // (N, K/4) — K must be a multiple of 4
@group(0) @binding(3) var<storage, read> B: array<f32>;       // (N,) or dummy
@group(0) @binding(4) var<storage, read_write> Y: array<f32>; // (M, N)

const WG: u32 = 64u; // threads per workgroup
const MR: u32 = 8u;  // rows per workgroup (substituted by src/engine/kernels/linear_rows.ts)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3u) {
  let M = params.M;
  let N = params.N;
  let K4 = params.K / 4u;
  let m0 = wid.y * MR;
  let stride = nwg.x * WG;
  for (var n = wid.x * WG + lid; n < N; n += stride) {
    var acc: array<f32, MR>;
    for (var i = 0u; i < MR; i++) {
      acc[i] = 0.0;
    }
    let wo = n * K4;
    for (var c = 0u; c < K4; c++) {
      let w = vec4<f32>(W[wo + c]); // f16 storage: widened here
      for (var i = 0u; i < MR; i++) {
        if (m0 + i < M) {
          let x = X[(m0 + i) * K4 + c];
          var a = acc[i];
          a = fma(x.x, w.x, a);
          a = fma(x.y, w.y, a);
          a = fma(x.z, w.z, a);
          a = fma(x.w, w.w, a);
          acc[i] = a;
        }
      }
    }
    var bias = 0.0;
    if (params.has_bias != 0u) {
      bias = B[n];
    }
    for (var i = 0u; i < MR; i++) {
      if (m0 + i < M) {
        Y[(m0 + i) * N + n] = acc[i] + bias;
      }
    }
  }
}

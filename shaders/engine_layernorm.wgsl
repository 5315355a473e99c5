// engine_layernorm — LayerNorm over the last dim (PyTorch nn.LayerNorm(C, eps=1e-5)), f32.
//
//   forward   mean[t] = Σ_c X[t,c] / C
//             var[t]  = Σ_c (X[t,c] − mean[t])² / C          (two-pass: no E[x²]−E[x]² cancellation)
//             rstd[t] = 1 / sqrt(var[t] + eps)
//             Y[t,c]  = (X[t,c] − mean[t]) · rstd[t] · γ[c] + β[c]
//   backward  x̂ = (X − mean)·rstd,  g = dY ⊙ γ
//             dX[t,c] (+)= rstd[t] · (g[c] − mean_c(g) − x̂[c] · mean_c(g ⊙ x̂))
//             γ, β are frozen (only adapters train): no dγ / dβ. With params.accumulate = 1,
//             dX += … (the residual stream's gradient already holds the skip-path term).
//
// Shapes (row-major, contiguous): X, Y, dY, dX: (T, C)   γ, β: (C,)   mean, rstd: (T,)
// T = B·S tokens of a padded batch. One workgroup of 128 threads per row t = wid.x + wid.y·nwg.x
// (2-D grid for T > 65,535); thread i handles c = i, i + 128, …; sums by tree reduction in
// workgroup memory (one array per reduction). Any C ≥ 1, any T.
//
// Reference: src/engine/reference/layernorm.ts (float64). Test: test/engine/layernorm.test.ts.

struct Params {
  T: u32,
  C: u32,
  eps: f32,
  accumulate: u32, // backward only: 0 → dX = …, 1 → dX += …
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;            // (T, C)
@group(0) @binding(2) var<storage, read> GAMMA: array<f32>;        // (C,)
@group(0) @binding(3) var<storage, read> BETA: array<f32>;         // (C,)   forward
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;      // (T, C) forward out
@group(0) @binding(5) var<storage, read_write> MEAN: array<f32>;   // (T,)   forward out
@group(0) @binding(6) var<storage, read_write> RSTD: array<f32>;   // (T,)   forward out
@group(0) @binding(7) var<storage, read> DY: array<f32>;           // (T, C) backward in
@group(0) @binding(8) var<storage, read_write> DX: array<f32>;     // (T, C) backward out
@group(0) @binding(9) var<storage, read> MEAN_IN: array<f32>;      // (T,)   backward in (saved)
@group(0) @binding(10) var<storage, read> RSTD_IN: array<f32>;     // (T,)   backward in (saved)

const WG: u32 = 128u;

// One workgroup array PER reduction, never reused within a dispatch: on Dawn's GL backend (Mesa
// llvmpipe, the compat path) reusing one array for the mean and then the variance reduction gave a
// wrong variance (the mean read back from red[0] was not the value seen by later code) — measured,
// see src/engine/README.md. Separate arrays cost 1.5 KiB of workgroup memory and remove the hazard.
var<workgroup> red_mean: array<f32, WG>;
var<workgroup> red_var: array<f32, WG>;
var<workgroup> red_bwd: array<vec2<f32>, WG>;

@compute @workgroup_size(WG, 1, 1)
fn layernorm_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= params.T) {
    return; // uniform per workgroup
  }
  let C = params.C;
  let o = t * C;
  let fC = f32(C);

  var s = 0.0;
  for (var c = lid; c < C; c += WG) {
    s += X[o + c];
  }
  red_mean[lid] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) {
      red_mean[lid] += red_mean[lid + k];
    }
    workgroupBarrier();
  }
  let mean = red_mean[0] / fC;

  var q = 0.0;
  for (var c = lid; c < C; c += WG) {
    let d = X[o + c] - mean;
    q = fma(d, d, q);
  }
  red_var[lid] = q;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) {
      red_var[lid] += red_var[lid + k];
    }
    workgroupBarrier();
  }
  let variance = red_var[0] / fC;
  let rstd = inverseSqrt(variance + params.eps);

  for (var c = lid; c < C; c += WG) {
    let n = (X[o + c] - mean) * rstd;
    Y[o + c] = fma(n, GAMMA[c], BETA[c]);
  }
  if (lid == 0u) {
    MEAN[t] = mean;
    RSTD[t] = rstd;
  }
}

@compute @workgroup_size(WG, 1, 1)
fn layernorm_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= params.T) {
    return;
  }
  let C = params.C;
  let o = t * C;
  let fC = f32(C);
  let mean = MEAN_IN[t];
  let rstd = RSTD_IN[t];

  // (Σ g, Σ g·x̂)
  var acc = vec2<f32>(0.0);
  for (var c = lid; c < C; c += WG) {
    let xhat = (X[o + c] - mean) * rstd;
    let g = DY[o + c] * GAMMA[c];
    acc += vec2<f32>(g, g * xhat);
  }
  red_bwd[lid] = acc;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) {
      red_bwd[lid] += red_bwd[lid + k];
    }
    workgroupBarrier();
  }
  let sums = red_bwd[0];
  let a = sums.x / fC;
  let b = sums.y / fC;

  for (var c = lid; c < C; c += WG) {
    let xhat = (X[o + c] - mean) * rstd;
    let g = DY[o + c] * GAMMA[c];
    var dx = rstd * (g - a - xhat * b);
    if (params.accumulate != 0u) {
      dx += DX[o + c];
    }
    DX[o + c] = dx;
  }
}

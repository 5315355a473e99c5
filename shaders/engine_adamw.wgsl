// engine_adamw — AdamW step (torch.optim.AdamW semantics, amsgrad=False, maximize=False) over a
// range of a flat parameter buffer, and the global gradient norm for clip_grad_norm_.
//
// Buffers (flat f32, same indexing): P params, G grads, M exp_avg, V exp_avg_sq; CLIP = (‖g‖, coef).
// adamw_step, element idx = offset + i, i < n (PyTorch _single_tensor_adamw, op for op):
//   g  = G[idx] · coef                       (clip_grad_norm_ scaled the grads by coef ≤ 1)
//   P ← P · (1 − lr·wd)                       param.mul_(1 − lr·weight_decay)
//   M ← M + (1 − β1)·(g − M)                  exp_avg.lerp_(grad, 1 − β1)   (weight < ½ branch)
//   V ← V·β2 + (1 − β2)·g·g                   exp_avg_sq.mul_(β2).addcmul_(grad, grad, 1 − β2)
//   denom = sqrt(V) / sqrt(1 − β2ᵗ) + eps     (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
//   P ← P − (lr / (1 − β1ᵗ)) · (M / denom)    param.addcdiv_(exp_avg, denom, value=−step_size)
//   zero_grad ≠ 0: G[idx] ← 0                 (next accumulation cycle starts from zero)
// The step-dependent scalars (1 − lr·wd, lr/(1 − β1ᵗ), sqrt(1 − β2ᵗ)) are computed on the CPU in
// float64, as PyTorch does with Python floats, and passed as f32 uniforms.
//
// Global norm (torch.nn.utils.clip_grad_norm_, norm_type 2):
//   sumsq_partial:  grid-stride Σ G[offset + i]² → partials[wg]      dispatch (min(ceil(n/256), 256))
//   sumsq_finalize: norm = sqrt(Σ partials); coef = max_norm > 0 ? min(1, max_norm / (norm + 1e-6)) : 1
//                   CLIP = (norm, coef)                              dispatch (1)
// Reference: src/engine/reference/adamw.ts. Test: test/engine/adamw.test.ts.

struct AdamParams {
  n: u32,
  offset: u32,
  zero_grad: u32,
  n_partials: u32,
  decay: f32,          // 1 − lr·wd
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  step_size: f32,      // lr / (1 − β1ᵗ)
  bc2_sqrt: f32,       // sqrt(1 − β2ᵗ)
  eps: f32,
  max_norm: f32,       // ≤ 0: no clipping (coef 1)
}

@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read_write> P: array<f32>;
@group(0) @binding(2) var<storage, read_write> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;
@group(0) @binding(5) var<storage, read_write> CLIP: array<f32>;     // (norm, coef)
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
@group(0) @binding(7) var<storage, read> Gr: array<f32>;             // G, read-only view for the norm

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid.x;
  if (i >= ap.n) {
    return;
  }
  let idx = ap.offset + i;
  let g = G[idx] * CLIP[1];
  var p = P[idx] * ap.decay;
  var m = M[idx];
  m = m + ap.one_minus_beta1 * (g - m);
  var v = V[idx] * ap.beta2;
  v = v + ap.one_minus_beta2 * g * g;
  let denom = sqrt(v) / ap.bc2_sqrt + ap.eps;
  p = p + (-ap.step_size) * (m / denom);
  P[idx] = p;
  M[idx] = m;
  V[idx] = v;
  if (ap.zero_grad != 0u) {
    G[idx] = 0.0;
  }
}

fn tree_reduce(lid: u32) {
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  var acc = 0.0;
  for (var i = wid.x * WG + lid; i < ap.n; i += nwg.x * WG) {
    let g = Gr[ap.offset + i];
    acc = fma(g, g, acc);
  }
  red[lid] = acc;
  workgroupBarrier();
  tree_reduce(lid);
  if (lid == 0u) {
    partials[wid.x] = red[0];
  }
}

@compute @workgroup_size(256)
fn sumsq_finalize(@builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  var acc = 0.0;
  for (var i = lid; i < ap.n_partials; i += WG) {
    acc += partials[i];
  }
  red[lid] = acc;
  workgroupBarrier();
  tree_reduce(lid);
  if (lid == 0u) {
    let norm = sqrt(red[0]);
    var coef = 1.0;
    if (ap.max_norm > 0.0) {
      coef = min(1.0, ap.max_norm / (norm + 1e-6));
    }
    CLIP[0] = norm;
    CLIP[1] = coef;
  }
}

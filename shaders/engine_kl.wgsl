// engine_kl — BLoRA KL(q‖p) of one factor matrix and its gradients
// (prepended: engine_rng.wgsl for rng_ln, engine_blora_sigma.wgsl).
//
// q = N(μ, σ²) per element, σ = softplus(ρ); prior p = N(0, σ_p²). Over the n elements:
//   KL      = (1/n) Σ_i [ log σ_p − log σ_i + (σ_i² + μ_i²)/(2σ_p²) − ½ ]      → kl_out[slot]
//   dμ_i   += β/n · μ_i / σ_p²                                                 (accumulated)
//   dρ_i   += β/n · (σ_i·sigmoid(ρ_i)/σ_p² − sigmoid(ρ_i)/σ_i)                  (accumulated)
// For ρ < −20 (spec): σ = exp(ρ), log σ = ρ, and sigmoid(ρ)/σ = 1/(1 + exp(ρ)) (no 1/σ overflow
// and no 0·∞ when exp(ρ) underflows).
// log_eps = ε > 0 (the authors' code): log(σ + ε) in place of log σ and sigmoid(ρ)/(σ + ε) in ∂/∂ρ; σ + ε ≥ ε,
// so no special case.
//
// Two passes (a reduction that works for any n):
//   kl_partial:  grid-stride over the n elements with P = nwg·256 threads; each workgroup writes
//                its tree-reduced sum to partials[wg]; also adds the gradients (write_grads ≠ 0).
//                Dispatch (min(ceil(n/256), 256), 1, 1) → ≤ 256 partial sums.
//   kl_finalize: one workgroup sums partials[0 .. n_partials) → kl_out[slot] = Σ / n.
// Every term is ≥ 0 (KL of one Gaussian pair), so the f32 sums have no cancellation.
// Reference: src/engine/reference/kl.ts. Test: test/engine/kl.test.ts.

// @uniform KlParams (generated from KL_PARAMS in src/engine/kernels/kl.ts)

@group(0) @binding(0) var<uniform> kp: KlParams;
@group(0) @binding(1) var<storage, read> theta: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read_write> kl_out: array<f32>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

fn tree_reduce(lid: u32) {
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn kl_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let stride = nwg.x * WG;
  var acc = 0.0;
  for (var i = wid.x * WG + lid; i < kp.n; i += stride) {
    let mu = theta[kp.mu_off + i];
    let rho = theta[kp.rho_off + i];
    let sigma = softplus_stable(rho);
    var log_sigma = rho;
    var sig_over_sigma: f32;
    let sig = sigmoid_stable(rho);
    if (kp.log_eps > 0.0) {
      log_sigma = rng_ln(sigma + kp.log_eps);
      sig_over_sigma = sig / (sigma + kp.log_eps);
    } else if (rho < -20.0) {
      sig_over_sigma = 1.0 / (1.0 + exp(rho));
    } else {
      log_sigma = rng_ln(sigma);
      sig_over_sigma = sig / sigma;
    }
    acc += (kp.log_sigma_p - log_sigma) + (sigma * sigma + mu * mu) * (0.5 * kp.inv_var_p) - 0.5;
    if (kp.write_grads != 0u) {
      grads[kp.gmu_off + i] += kp.grad_scale * (mu * kp.inv_var_p);
      grads[kp.grho_off + i] += kp.grad_scale * (sigma * sig * kp.inv_var_p - sig_over_sigma);
    }
  }
  red[lid] = acc;
  workgroupBarrier();
  tree_reduce(lid);
  if (lid == 0u) {
    partials[wid.x] = red[0];
  }
}

@compute @workgroup_size(256)
fn kl_finalize(@builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  var acc = 0.0;
  for (var i = lid; i < kp.n_partials; i += WG) {
    acc += partials[i];
  }
  red[lid] = acc;
  workgroupBarrier();
  tree_reduce(lid);
  if (lid == 0u) {
    kl_out[kp.slot] = red[0] * kp.inv_n;
  }
}

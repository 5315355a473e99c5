// engine_lora — one factor f_M of a LoRA / BLoRA adapter, forward and backward
// (prepended: engine_rng.wgsl, engine_blora_sigma.wgsl).
//
// An adapter on a frozen linear y = x·Wᵀ + b adds Δy = s · f_B(f_A(drop(x))), s = α/r, with
// A: (r, in), B: (out, r). One factor M: (n_out, n_in) maps X: (T, n_in) → F: (T, n_out):
//   mode 0 det      F = X·μᵀ                                   (LoRA; BLoRA means; bayesian_a_only B)
//   mode 1 bbb      F = X·(μ + σ⊙ε)ᵀ
//   mode 2 flipout  F = X·μᵀ + ((X ⊙ R_in)·(σ⊙ε)ᵀ) ⊙ S_out        R_in: (T, n_in), S_out: (T, n_out) ±1
//   mode 3 lrt      F = X·μᵀ + sqrt((X ⊙ X)·(σ⊙σ)ᵀ + 1e-8) ⊙ Ξ     Ξ: (T, n_out) ~ N(0,1)
// with σ = softplus(ρ) and every ε, R_in, S_out, Ξ, dropout mask regenerated from the counter RNG
// (seed, step, tensor, stream, index) — never stored. X here is drop(x) when drop_thresh ≠ 0
// (factor A): X[t,k] = keep(t,k) · drop_scale · x[t,k], keep regenerated the same way.
//
// Parameters live in one flat f32 buffer theta (μ at mu_off, ρ at rho_off, row-major (n_out, n_in));
// gradients in a flat buffer grads (dμ at gmu_off, dρ at grho_off), ACCUMULATED (+=) when
// accumulate ≠ 0, so the KL kernel and micro-batches can add into the same slots.
//
// Entry points (one dispatch each, all per optimizer step):
//   sample       per parameter: noise = bbb: μ + σ⊙ε | flipout: σ⊙ε | lrt: σ⊙σ       (n_out, n_in)
//   forward      Y = (accumulate ? Y : 0) + out_scale · F;  lrt saves AUX = sqrt(X²·σ²ᵀ + 1e-8)
//   backward_dx  G' = g_scale · G (G = ∂L/∂(out_scale·F)·… ; for factor B pass g_scale = s)
//                dX = G'·W₁ + [flipout: R_in ⊙ ((G' ⊙ S_out)·N) | lrt: X ⊙ ((G' ⊙ Ξ / AUX)·N)]
//                W₁ = μ (det, flipout, lrt) or N (bbb); then ⊙ keep·drop_scale; DX (+)= dX
//   backward_dw  P = G'ᵀ·X → dμ (+)= P
//                Q = flipout: (G' ⊙ S_out)ᵀ·(X ⊙ R_in) → dρ (+)= Q ⊙ ε ⊙ sigmoid(ρ)
//                    lrt:     (G' ⊙ Ξ / AUX)ᵀ·(X ⊙ X) → dρ (+)= Q ⊙ σ ⊙ sigmoid(ρ)
//                    bbb:     Q = P               → dρ (+)= P ⊙ ε ⊙ sigmoid(ρ)
// (lrt: ∂AUX/∂X = X·σ²/AUX and ∂AUX/∂(σ²) = X²/(2·AUX), ∂(σ²)/∂ρ = 2σ·sigmoid(ρ).)
//
// Tiling (forward, backward_dx, backward_dw alike): a workgroup of 16×16 threads computes a
// 32×32 output tile, thread (tx, ty) the 2×2 micro-tile rows 2ty+i, cols 2tx+j; the reduction
// dimension is walked in slices of BK = 16 staged in workgroup memory as [BK][32] (k-major), two
// staged operands per side (the second one only in flipout / lrt). Staging loads are contiguous
// along the fastest global index; out-of-range loads stage 0 and stores are bounds-checked.
//   forward:     out (T, n_out),  reduce over n_in;  dispatch (ceil(n_out/32), ceil(T/32))
//   backward_dx: out (T, n_in),   reduce over n_out; dispatch (ceil(n_in/32),  ceil(T/32))
//   backward_dw: out (n_out, n_in), reduce over T;   dispatch (ceil(n_in/32),  ceil(n_out/32))
//   sample:      1-D over n_out·n_in, 256 threads;   dispatch folded (x, y)
// Reference: src/engine/reference/lora.ts. Test: test/engine/lora.test.ts.

// @uniform LoraParams   (generated from LORA_PARAMS in src/engine/kernels/lora.ts)

const MODE_DET: u32 = 0u;
const MODE_BBB: u32 = 1u;
const MODE_FLIPOUT: u32 = 2u;
const MODE_LRT: u32 = 3u;

@group(0) @binding(0) var<uniform> lp: LoraParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;            // (T, n_in) factor input (before dropout)
@group(0) @binding(2) var<storage, read> theta: array<f32>;        // flat parameters
@group(0) @binding(3) var<storage, read_write> noise: array<f32>;  // (n_out, n_in) per-step sample
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;      // (T, n_out) forward output
@group(0) @binding(5) var<storage, read_write> AUX: array<f32>;    // (T, n_out) lrt: sqrt(X²σ²ᵀ + 1e-8)
@group(0) @binding(6) var<storage, read> G: array<f32>;            // (T, n_out) upstream gradient
@group(0) @binding(7) var<storage, read_write> DX: array<f32>;     // (T, n_in) input gradient
@group(0) @binding(8) var<storage, read_write> grads: array<f32>;  // flat gradients

const TILE: u32 = 32u;
const BK: u32 = 16u;
var<workgroup> As1: array<f32, 512>; // [BK][TILE] operand of the output rows
var<workgroup> As2: array<f32, 512>;
var<workgroup> Bs1: array<f32, 512>; // [BK][TILE] operand of the output cols
var<workgroup> Bs2: array<f32, 512>;

fn seed() -> vec2<u32> {
  return vec2<u32>(lp.seed_lo, lp.seed_hi);
}

fn two_operands() -> bool {
  return lp.mode == MODE_FLIPOUT || lp.mode == MODE_LRT;
}

// Factor input after dropout, X[t,k] (t < T, k < n_in).
fn x_in(t: u32, k: u32) -> f32 {
  let i = t * lp.n_in + k;
  var v = X[i];
  if (lp.drop_thresh != 0u) {
    v = v * rng_keep(seed(), lp.step, lp.tensor, i, lp.drop_thresh) * lp.drop_scale;
  }
  return v;
}

// Second input operand: flipout X ⊙ R_in, lrt X ⊙ X (given x = x_in(t, k)).
fn x_second(t: u32, k: u32, x: f32) -> f32 {
  if (lp.mode == MODE_FLIPOUT) {
    return x * rng_sign(seed(), lp.step, lp.tensor, RNG_STREAM_SIGN_IN, t * lp.n_in + k);
  }
  return x * x;
}

// First weight operand W₁[o,k]: μ, or the sampled W for bbb.
fn w_first(o: u32, k: u32) -> f32 {
  let i = o * lp.n_in + k;
  if (lp.mode == MODE_BBB) {
    return noise[i];
  }
  return theta[lp.mu_off + i];
}

// Output-side multiplier of the second term at (t, o): flipout S_out, lrt Ξ (÷ AUX in backward).
fn out_noise(t: u32, o: u32) -> f32 {
  let i = t * lp.n_out + o;
  if (lp.mode == MODE_FLIPOUT) {
    return rng_sign(seed(), lp.step, lp.tensor, RNG_STREAM_SIGN_OUT, i);
  }
  return rng_normal(seed(), lp.step, lp.tensor, RNG_STREAM_XI, i);
}

// Staging element e ∈ {lidx, lidx + 256} of a [rows = TILE][cols = BK] tile, contiguous along BK:
// row = e / BK, col = e % BK.  Of a [rows = BK][cols = TILE] tile: row = e / TILE, col = e % TILE.

@compute @workgroup_size(16, 16, 1)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(local_invocation_index) lidx: u32) {
  let T = lp.T;
  let n_in = lp.n_in;
  let n_out = lp.n_out;
  let row0 = wid.y * TILE; // t
  let col0 = wid.x * TILE; // o
  let two = two_operands();
  var c1 = array<vec2<f32>, 2>(vec2<f32>(0.0), vec2<f32>(0.0));
  var c2 = array<vec2<f32>, 2>(vec2<f32>(0.0), vec2<f32>(0.0));
  for (var k0 = 0u; k0 < n_in; k0 += BK) {
    for (var h = 0u; h < 2u; h++) {
      let e = lidx + 256u * h;
      let r = e / BK;
      let kk = e % BK;
      let k = k0 + kk;
      // X tile: rows t, cols k  → As[kk][r]
      var a1 = 0.0;
      var a2 = 0.0;
      let t = row0 + r;
      if (t < T && k < n_in) {
        a1 = x_in(t, k);
        if (two) {
          a2 = x_second(t, k, a1);
        }
      }
      As1[kk * TILE + r] = a1;
      As2[kk * TILE + r] = a2;
      // W tile: rows o, cols k → Bs[kk][r]
      var b1 = 0.0;
      var b2 = 0.0;
      let o = col0 + r;
      if (o < n_out && k < n_in) {
        b1 = w_first(o, k);
        if (two) {
          b2 = noise[o * n_in + k];
        }
      }
      Bs1[kk * TILE + r] = b1;
      Bs2[kk * TILE + r] = b2;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let b1 = vec2<f32>(Bs1[kk * TILE + 2u * lid.x], Bs1[kk * TILE + 2u * lid.x + 1u]);
      for (var i = 0u; i < 2u; i++) {
        c1[i] = fma(vec2<f32>(As1[kk * TILE + 2u * lid.y + i]), b1, c1[i]);
      }
      if (two) {
        let b2 = vec2<f32>(Bs2[kk * TILE + 2u * lid.x], Bs2[kk * TILE + 2u * lid.x + 1u]);
        for (var i = 0u; i < 2u; i++) {
          c2[i] = fma(vec2<f32>(As2[kk * TILE + 2u * lid.y + i]), b2, c2[i]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 2u; i++) {
    let t = row0 + 2u * lid.y + i;
    for (var j = 0u; j < 2u; j++) {
      let o = col0 + 2u * lid.x + j;
      if (t < T && o < n_out) {
        let idx = t * n_out + o;
        var f = c1[i][j];
        if (lp.mode == MODE_FLIPOUT) {
          f = f + c2[i][j] * out_noise(t, o);
        } else if (lp.mode == MODE_LRT) {
          let a = sqrt(c2[i][j] + 1e-8);
          AUX[idx] = a;
          f = f + a * out_noise(t, o);
        }
        var y = lp.out_scale * f;
        if (lp.accumulate != 0u) {
          y = Y[idx] + y;
        }
        Y[idx] = y;
      }
    }
  }
}

@compute @workgroup_size(16, 16, 1)
fn backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(local_invocation_index) lidx: u32) {
  let T = lp.T;
  let n_in = lp.n_in;
  let n_out = lp.n_out;
  let row0 = wid.y * TILE; // t
  let col0 = wid.x * TILE; // k
  let two = two_operands();
  var c1 = array<vec2<f32>, 2>(vec2<f32>(0.0), vec2<f32>(0.0));
  var c2 = array<vec2<f32>, 2>(vec2<f32>(0.0), vec2<f32>(0.0));
  for (var o0 = 0u; o0 < n_out; o0 += BK) {
    for (var h = 0u; h < 2u; h++) {
      let e = lidx + 256u * h;
      // G tile: rows t, cols o (contiguous along o) → As[oo][r]
      let r = e / BK;
      let oo = e % BK;
      let t = row0 + r;
      let o = o0 + oo;
      var a1 = 0.0;
      var a2 = 0.0;
      if (t < T && o < n_out) {
        let idx = t * n_out + o;
        a1 = lp.g_scale * G[idx];
        if (lp.mode == MODE_FLIPOUT) {
          a2 = a1 * out_noise(t, o);
        } else if (lp.mode == MODE_LRT) {
          a2 = a1 * out_noise(t, o) / AUX[idx];
        }
      }
      As1[oo * TILE + r] = a1;
      As2[oo * TILE + r] = a2;
      // W tile: rows o (reduced), cols k (contiguous) → Bs[oo2][c]
      let oo2 = e / TILE;
      let c = e % TILE;
      let o2 = o0 + oo2;
      let k = col0 + c;
      var b1 = 0.0;
      var b2 = 0.0;
      if (o2 < n_out && k < n_in) {
        b1 = w_first(o2, k);
        if (two) {
          b2 = noise[o2 * n_in + k];
        }
      }
      Bs1[oo2 * TILE + c] = b1;
      Bs2[oo2 * TILE + c] = b2;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let b1 = vec2<f32>(Bs1[kk * TILE + 2u * lid.x], Bs1[kk * TILE + 2u * lid.x + 1u]);
      for (var i = 0u; i < 2u; i++) {
        c1[i] = fma(vec2<f32>(As1[kk * TILE + 2u * lid.y + i]), b1, c1[i]);
      }
      if (two) {
        let b2 = vec2<f32>(Bs2[kk * TILE + 2u * lid.x], Bs2[kk * TILE + 2u * lid.x + 1u]);
        for (var i = 0u; i < 2u; i++) {
          c2[i] = fma(vec2<f32>(As2[kk * TILE + 2u * lid.y + i]), b2, c2[i]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 2u; i++) {
    let t = row0 + 2u * lid.y + i;
    for (var j = 0u; j < 2u; j++) {
      let k = col0 + 2u * lid.x + j;
      if (t < T && k < n_in) {
        let idx = t * n_in + k;
        var d = c1[i][j];
        if (lp.mode == MODE_FLIPOUT) {
          d = d + c2[i][j] * rng_sign(seed(), lp.step, lp.tensor, RNG_STREAM_SIGN_IN, idx);
        } else if (lp.mode == MODE_LRT) {
          d = d + c2[i][j] * x_in(t, k);
        }
        if (lp.drop_thresh != 0u) {
          d = d * rng_keep(seed(), lp.step, lp.tensor, idx, lp.drop_thresh) * lp.drop_scale;
        }
        if (lp.accumulate != 0u) {
          d = DX[idx] + d;
        }
        DX[idx] = d;
      }
    }
  }
}

@compute @workgroup_size(16, 16, 1)
fn backward_dw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(local_invocation_index) lidx: u32) {
  let T = lp.T;
  let n_in = lp.n_in;
  let n_out = lp.n_out;
  let row0 = wid.y * TILE; // o
  let col0 = wid.x * TILE; // k
  let two = two_operands();
  var c1 = array<vec2<f32>, 2>(vec2<f32>(0.0), vec2<f32>(0.0));
  var c2 = array<vec2<f32>, 2>(vec2<f32>(0.0), vec2<f32>(0.0));
  for (var t0 = 0u; t0 < T; t0 += BK) {
    for (var h = 0u; h < 2u; h++) {
      let e = lidx + 256u * h;
      let tt = e / TILE;
      let c = e % TILE;
      let t = t0 + tt;
      // G tile: rows t (reduced), cols o (contiguous) → As[tt][c]
      let o = row0 + c;
      var a1 = 0.0;
      var a2 = 0.0;
      if (t < T && o < n_out) {
        let idx = t * n_out + o;
        a1 = lp.g_scale * G[idx];
        if (lp.mode == MODE_FLIPOUT) {
          a2 = a1 * out_noise(t, o);
        } else if (lp.mode == MODE_LRT) {
          a2 = a1 * out_noise(t, o) / AUX[idx];
        }
      }
      As1[tt * TILE + c] = a1;
      As2[tt * TILE + c] = a2;
      // X tile: rows t (reduced), cols k (contiguous) → Bs[tt][c]
      let k = col0 + c;
      var b1 = 0.0;
      var b2 = 0.0;
      if (t < T && k < n_in) {
        b1 = x_in(t, k);
        if (two) {
          b2 = x_second(t, k, b1);
        }
      }
      Bs1[tt * TILE + c] = b1;
      Bs2[tt * TILE + c] = b2;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let b1 = vec2<f32>(Bs1[kk * TILE + 2u * lid.x], Bs1[kk * TILE + 2u * lid.x + 1u]);
      for (var i = 0u; i < 2u; i++) {
        c1[i] = fma(vec2<f32>(As1[kk * TILE + 2u * lid.y + i]), b1, c1[i]);
      }
      if (two) {
        let b2 = vec2<f32>(Bs2[kk * TILE + 2u * lid.x], Bs2[kk * TILE + 2u * lid.x + 1u]);
        for (var i = 0u; i < 2u; i++) {
          c2[i] = fma(vec2<f32>(As2[kk * TILE + 2u * lid.y + i]), b2, c2[i]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 2u; i++) {
    let o = row0 + 2u * lid.y + i;
    for (var j = 0u; j < 2u; j++) {
      let k = col0 + 2u * lid.x + j;
      if (o < n_out && k < n_in) {
        let pi = o * n_in + k;
        var gmu = c1[i][j];
        if (lp.accumulate != 0u) {
          gmu = grads[lp.gmu_off + pi] + gmu;
        }
        grads[lp.gmu_off + pi] = gmu;
        if (lp.mode != MODE_DET) {
          let rho = theta[lp.rho_off + pi];
          var grho: f32;
          if (lp.mode == MODE_BBB) {
            grho = c1[i][j] * rng_normal(seed(), lp.step, lp.tensor, RNG_STREAM_EPS, pi);
          } else if (lp.mode == MODE_FLIPOUT) {
            grho = c2[i][j] * rng_normal(seed(), lp.step, lp.tensor, RNG_STREAM_EPS, pi);
          } else {
            grho = c2[i][j] * softplus_stable(rho);
          }
          grho = grho * sigmoid_stable(rho);
          if (lp.accumulate != 0u) {
            grho = grads[lp.grho_off + pi] + grho;
          }
          grads[lp.grho_off + pi] = grho;
        }
      }
    }
  }
}

@compute @workgroup_size(256)
fn sample(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= lp.n_out * lp.n_in) {
    return;
  }
  let sigma = softplus_stable(theta[lp.rho_off + i]);
  if (lp.mode == MODE_LRT) {
    noise[i] = sigma * sigma;
    return;
  }
  let s = sigma * rng_normal(seed(), lp.step, lp.tensor, RNG_STREAM_EPS, i);
  if (lp.mode == MODE_BBB) {
    noise[i] = theta[lp.mu_off + i] + s;
  } else {
    noise[i] = s;
  }
}

// engine_gelu — exact (erf) GELU, as PyTorch nn.GELU() (approximate='none'), Whisper's fc1 activation.
//
//   forward   Y  = X · Φ(X)                         Φ(x) = ½·(1 + erf(x/√2)) = ½·erfc(−x/√2)
//   backward  dX = dY · (Φ(X) + X·φ(X))             φ(x) = exp(−x²/2) / √(2π)
//   erf_probe Y  = erf(X)                           (diagnostic: measures erf_f32 on this device)
//
// Shapes: X, Y, dY, dX are any tensor flattened to n = T·C f32 elements (e.g. fc1 output (T, 4·C)).
// One thread per element, 256 per workgroup; the grid may be 2-D for n > 65,535·256:
// i = gid.x + gid.y · (num_workgroups.x · 256), bounds-checked against n.
// Frozen-weight rule: GELU has no parameters; backward only produces dX.
//
// WGSL has no erf. erf_f32 below (fit for this project, not a textbook formula):
//   |z| < 0.85 : erf(z) = z · P(z²),  P degree 6, least squares on Chebyshev nodes vs mpmath
//                (approximation error 1.1e-9 in float64).
//   |z| ≥ 0.85 : erfc(z) = t · exp(Q(t)) · exp(−z²),  t = 1/(1 + z/2),  Q degree 8 fitted the same
//                way on z ∈ [0.85, 10] (the Numerical-Recipes erfcc form, refitted; relative
//                approximation error < 1e-9), exp(−z²) computed as exp(−zh²)·exp(−(z−zh)(z+zh)) with
//                zh = z with its low 12 mantissa bits cleared, so zh² is exact in f32 and the
//                rounding of z² does not cost z²·u of relative accuracy in the tail.
// Measured on the float64 erf of src/engine/reference/gelu.ts (see test/engine/gelu.test.ts):
// max |erf_f32 − erf| ≈ 1.2e-7 over [−6, 6] (f32 ulp of 0.8 is 6e-8), erfc tail relative ≈ 5e-7.
// GELU uses the tail directly for x < 0 (Φ = ½·erfc(|x|/√2) with exp(−x²/2) split on x itself), so
// GELU keeps ~1e-6 RELATIVE accuracy for negative x instead of the absolute-only accuracy of
// ½·x·(1 + erf(x/√2)) evaluated in f32.
//
// Reference: src/engine/reference/gelu.ts (float64). Test: test/engine/gelu.test.ts.

struct Params {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;        // (n,)
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;  // (n,)  forward / erf_probe output
@group(0) @binding(3) var<storage, read> DY: array<f32>;       // (n,)  backward input
@group(0) @binding(4) var<storage, read_write> DX: array<f32>; // (n,)  backward output

const WG: u32 = 256u;
const ERF_SPLIT: f32 = 0.85;           // |z| threshold between the two approximations
const INV_SQRT2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;
const TAIL_ZERO: f32 = 9.3;            // erfc(z) < 1e-38 (below f32 normals) for z > 9.3

// erf(z)/z ≈ P(s), s = z², |z| < 0.85
fn erf_small_p(s: f32) -> f32 {
  var p = 8.853868e-05;
  p = fma(p, s, -8.248134e-04);
  p = fma(p, s, 5.2096136e-03);
  p = fma(p, s, -2.68626e-02);
  p = fma(p, s, 1.1283749e-01);
  p = fma(p, s, -3.7612638e-01);
  p = fma(p, s, 1.1283792e+00);
  return p;
}

// erfc(a) · exp(a²) ≈ t · exp(Q(t)), t = 1/(1 + a/2), a ≥ 0.85
fn erfc_scaled_tail(a: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * a);
  var q = -2.0522647e-01;
  q = fma(q, t, 5.297065e-01);
  q = fma(q, t, -2.9092607e-01);
  q = fma(q, t, -1.8856403e-01);
  q = fma(q, t, -1.5561852e-02);
  q = fma(q, t, 5.507581e-02);
  q = fma(q, t, 3.8072082e-01);
  q = fma(q, t, 9.994047e-01);
  q = fma(q, t, -1.2654868e+00);
  return t * exp(q);
}

// exp(−h·v²) for h ∈ {1, ½} without the z²·u error of rounding v² (v split into 12 + 12 bits).
fn exp_neg_sq(v: f32, h: f32) -> f32 {
  let vh = bitcast<f32>(bitcast<u32>(v) & 0xFFFFF000u);
  return exp(-h * (vh * vh)) * exp(-h * ((v - vh) * (v + vh)));
}

// erfc(a) for a ≥ 0.85 (0 beyond 9.3, which also maps +inf to 0)
fn erfc_tail(a: f32) -> f32 {
  if (a > TAIL_ZERO) {
    return 0.0;
  }
  return erfc_scaled_tail(a) * exp_neg_sq(a, 1.0);
}

fn erf_f32(z: f32) -> f32 {
  let a = abs(z);
  if (a < ERF_SPLIT) {
    return z * erf_small_p(z * z);
  }
  let r = 1.0 - erfc_tail(a);
  return select(r, -r, z < 0.0);
}

// Φ(x) (standard normal CDF) and φ(x) (its density), sharing exp(−x²/2).
struct PhiPdf {
  cdf: f32,
  pdf: f32,
}

fn phi_pdf(x: f32) -> PhiPdf {
  let z = x * INV_SQRT2;
  let a = abs(z);
  let g = exp_neg_sq(x, 0.5);            // exp(−x²/2), split on x itself
  var out: PhiPdf;
  out.pdf = g * INV_SQRT_2PI;
  if (a < ERF_SPLIT) {
    out.cdf = 0.5 + 0.5 * (z * erf_small_p(z * z));
  } else {
    var c = 0.0;                        // ½·erfc(|z|) = ½·erfc_scaled(|z|)·exp(−x²/2)
    if (a <= TAIL_ZERO) {
      c = 0.5 * erfc_scaled_tail(a) * g;
    }
    out.cdf = select(c, 1.0 - c, z > 0.0);
  }
  return out;
}

fn linear_id(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * (nwg.x * WG);
}

@compute @workgroup_size(WG, 1, 1)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) {
    return;
  }
  let x = X[i];
  Y[i] = x * phi_pdf(x).cdf;
}

@compute @workgroup_size(WG, 1, 1)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) {
    return;
  }
  let x = X[i];
  let p = phi_pdf(x);
  DX[i] = DY[i] * (p.cdf + x * p.pdf);
}

@compute @workgroup_size(WG, 1, 1)
fn erf_probe(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= params.n) {
    return;
  }
  Y[i] = erf_f32(X[i]);
}

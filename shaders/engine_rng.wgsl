// engine_rng — counter-based random numbers for the training engine (library: no bindings, no
// entry points; the TS wrappers prepend this text to the kernels that draw noise).
//
// Generator: Philox-4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
// 1, 2, 3", SC'11), bit-identical to Random123's philox4x32_10 (known-answer vectors checked in
// test/engine/rng.test.ts against the CPU twin src/engine/reference/rng.ts).
//
// Engine counter convention — every draw is a pure function of
//   key = (seed_lo, seed_hi)                          64-bit run seed
//   ctr = (index, step, tensor, stream)               element index, optimizer step, tensor id, purpose
// so a run reproduces bit-for-bit and the backward pass regenerates the forward's noise instead of
// storing it. Streams (what the draw is for):
const RNG_STREAM_EPS: u32 = 0u;      // ε ~ N(0,1) per parameter element (bbb / Flipout), index o·n_in + k
const RNG_STREAM_DROP: u32 = 1u;     // dropout keep mask on the adapter input, index t·n_in + k
const RNG_STREAM_SIGN_IN: u32 = 2u;  // Flipout r_in ∈ {±1} per input activation, index t·n_in + k
const RNG_STREAM_SIGN_OUT: u32 = 3u; // Flipout s_out ∈ {±1} per output activation, index t·n_out + o
const RNG_STREAM_XI: u32 = 4u;       // LRT ξ ~ N(0,1) per output activation, index t·n_out + o
//
// Derived draws (all from the FIRST words of one Philox block):
//   uniform24(w) = (w >> 8) · 2⁻²⁴ ∈ [0, 1)     (exact in f32)
//   normal      = sqrt(−2 ln u1) · cos(π (2 u2 − 1)),  (ln, cos: own polynomials below)
//                  u1 = ((x >> 8) + 1) · 2⁻²⁴ ∈ (0, 1], u2 = uniform24(y)
//                 (Box–Muller, cosine branch; |z| ≤ sqrt(2 · 24 ln 2) ≈ 5.77)
//   sign        = +1 if bit 31 of x is 0 else −1
//   keep        = (x >> 8) ≥ thresh, thresh = ceil(p · 2²⁴)  → P(keep) = 1 − p (to 2⁻²⁴)

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// Full 32×32 → 64-bit product of a and b as (hi, lo). WGSL has no mulhi: 16-bit limbs.
fn rng_mulhilo(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xFFFFu;
  let a1 = a >> 16u;
  let b0 = b & 0xFFFFu;
  let b1 = b >> 16u;
  let p00 = a0 * b0;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu); // < 3·2¹⁶: no overflow
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2<u32>(hi, a * b);
}

fn philox4x32_10(ctr_in: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
  var c = ctr_in;
  var k = key_in;
  for (var r = 0u; r < 10u; r++) {
    let p0 = rng_mulhilo(PHILOX_M0, c.x);
    let p1 = rng_mulhilo(PHILOX_M1, c.z);
    c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
  }
  return c;
}

// One Philox block for (seed, step, tensor, stream, index) in the engine convention.
fn rng_bits(seed: vec2<u32>, step: u32, tensor: u32, stream: u32, index: u32) -> vec4<u32> {
  return philox4x32_10(vec4<u32>(index, step, tensor, stream), seed);
}

// ln(u) for any positive normal f32 u (the RNG uses u ∈ (0, 1]; the KL kernel ln σ) from +,−,×,÷
// only — no driver log: SwiftShader's log/cos were measured ~1e-4 off, which the WGSL spec allows
// (log: absolute 2⁻²¹ on [0.5, 2]). u = m·2ᵉ with m ∈ [√½, √2); ln m = 2·atanh(z),
// z = (m − 1)/(m + 1), |z| ≤ 0.172, odd series to z⁹ (truncation < 2e-9); ln 2 split hi + lo.
fn rng_ln(u: f32) -> f32 {
  let fr = frexp(u); // u = fract · 2^exp, fract ∈ [0.5, 1)
  var m = fr.fract;
  var e = f32(fr.exp);
  if (m < 0.70710678) {
    m = 2.0 * m;
    e = e - 1.0;
  }
  let z = (m - 1.0) / (m + 1.0);
  let z2 = z * z;
  var s = 1.0 / 9.0;
  s = fma(s, z2, 1.0 / 7.0);
  s = fma(s, z2, 1.0 / 5.0);
  s = fma(s, z2, 1.0 / 3.0);
  s = fma(s, z2, 1.0);
  return fma(e, 0.693145751953125, fma(e, 1.428606765330187e-6, 2.0 * z * s));
}

// cos(π·t) for t ∈ [−1, 1] from +,−,×: exact reductions to x = π·a, a ∈ [0, ¼], then Taylor
// polynomials (truncation < 2e-9 on |x| ≤ π/4).
fn rng_cospi(t: f32) -> f32 {
  var a = abs(t);
  var sgn = 1.0;
  if (a > 0.5) {
    a = 1.0 - a; // exact
    sgn = -1.0;
  }
  var use_sin = false;
  if (a > 0.25) {
    a = 0.5 - a; // exact; cos(π(½ − a')) = sin(π a')
    use_sin = true;
  }
  let x = 3.14159265358979 * a;
  let x2 = x * x;
  var r: f32;
  if (use_sin) {
    var p = 1.0 / 362880.0;
    p = fma(p, x2, -1.0 / 5040.0);
    p = fma(p, x2, 1.0 / 120.0);
    p = fma(p, x2, -1.0 / 6.0);
    r = fma(x * x2, p, x);
  } else {
    var p = -1.0 / 3628800.0;
    p = fma(p, x2, 1.0 / 40320.0);
    p = fma(p, x2, -1.0 / 720.0);
    p = fma(p, x2, 1.0 / 24.0);
    p = fma(p, x2, -0.5);
    r = fma(x2, p, 1.0);
  }
  return sgn * r;
}

fn rng_normal_from(bits: vec4<u32>) -> f32 {
  let u1 = f32((bits.x >> 8u) + 1u) * 5.9604644775390625e-8; // 2⁻²⁴, (0, 1]
  let u2 = f32(bits.y >> 8u) * 5.9604644775390625e-8;        // [0, 1)
  let radius = sqrt(-2.0 * rng_ln(u1));
  return radius * rng_cospi(2.0 * u2 - 1.0);
}

fn rng_sign_from(bits: vec4<u32>) -> f32 {
  return select(1.0, -1.0, (bits.x >> 31u) != 0u);
}

fn rng_normal(seed: vec2<u32>, step: u32, tensor: u32, stream: u32, index: u32) -> f32 {
  return rng_normal_from(rng_bits(seed, step, tensor, stream, index));
}

fn rng_sign(seed: vec2<u32>, step: u32, tensor: u32, stream: u32, index: u32) -> f32 {
  return rng_sign_from(rng_bits(seed, step, tensor, stream, index));
}

// Dropout: 1 when the element is kept, 0 when dropped (thresh = ceil(p · 2²⁴); 0 keeps all).
fn rng_keep(seed: vec2<u32>, step: u32, tensor: u32, index: u32, thresh: u32) -> f32 {
  if (thresh == 0u) {
    return 1.0;
  }
  let b = rng_bits(seed, step, tensor, RNG_STREAM_DROP, index);
  return select(0.0, 1.0, (b.x >> 8u) >= thresh);
}

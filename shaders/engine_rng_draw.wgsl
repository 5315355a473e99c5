// engine_rng_draw — fill buffers with engine RNG draws (prepended: engine_rng.wgsl). Used by the
// bit-exactness test against the CPU twin (src/engine/reference/rng.ts) and for debugging.
//
//   draw_bits:   out_u32[4i + w] = philox4x32_10((i, step, tensor, stream), seed)[w]   (n blocks)
//   draw_normal: out_f32[i] = rng_normal(seed, step, tensor, stream, i)
//   draw_sign:   out_f32[i] = rng_sign(seed, step, tensor, stream, i)
//   draw_keep:   out_f32[i] = rng_keep(seed, step, tensor, i, thresh)   (stream DROP)
//
// Dispatch: 1-D grid of 256-thread workgroups, folded into (x, y) when n/256 > 65535:
//   i = (wid.y · nwg.x + wid.x) · 256 + lid.x.

struct DrawParams {
  n: u32,
  seed_lo: u32,
  seed_hi: u32,
  step: u32,
  tensor: u32,
  stream: u32,
  thresh: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> dp: DrawParams;
@group(0) @binding(1) var<storage, read_write> out_u32: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_f32: array<f32>;

fn draw_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn draw_bits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = draw_index(wid, nwg, lid);
  if (i >= dp.n) {
    return;
  }
  let b = rng_bits(vec2<u32>(dp.seed_lo, dp.seed_hi), dp.step, dp.tensor, dp.stream, i);
  out_u32[4u * i + 0u] = b.x;
  out_u32[4u * i + 1u] = b.y;
  out_u32[4u * i + 2u] = b.z;
  out_u32[4u * i + 3u] = b.w;
}

@compute @workgroup_size(256)
fn draw_normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = draw_index(wid, nwg, lid);
  if (i >= dp.n) {
    return;
  }
  out_f32[i] = rng_normal(vec2<u32>(dp.seed_lo, dp.seed_hi), dp.step, dp.tensor, dp.stream, i);
}

@compute @workgroup_size(256)
fn draw_sign(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = draw_index(wid, nwg, lid);
  if (i >= dp.n) {
    return;
  }
  out_f32[i] = rng_sign(vec2<u32>(dp.seed_lo, dp.seed_hi), dp.step, dp.tensor, dp.stream, i);
}

@compute @workgroup_size(256)
fn draw_keep(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = draw_index(wid, nwg, lid);
  if (i >= dp.n) {
    return;
  }
  out_f32[i] = rng_keep(vec2<u32>(dp.seed_lo, dp.seed_hi), dp.step, dp.tensor, i, dp.thresh);
}

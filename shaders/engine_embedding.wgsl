// engine_embedding — Whisper decoder input: token embedding gather + learned position embedding.
//
//   X[t, c] = E[tok[t], c] + P[pos[t], c]        (Whisper: scale_embeddings = 0, no √C factor)
//
// Shapes: tok, pos: (T,) u32 — one entry per token of the padded batch (B·S flattened), so each
// sequence carries its own positions 0..S−1 whatever its padding; E: (V, C) token table (the same
// tensor as the tied output projection); P: (NP, C) positions (448 rows in Whisper); X: (T, C).
// A token ≥ V or a position ≥ NP (e.g. 0xFFFFFFFF as an explicit "no token" marker) gives a row of
// zeros — well defined, never an out-of-bounds read.
//
// Vocab tiling: E may exceed one storage binding (see src/engine/kernels/vocab_tiles.ts), so the
// wrapper binds E one row range [v0, v0 + nv) at a time and dispatches once per range:
//   range 0 (params.first = 1): X = valid ? P[pos] + (tok in range ? E[tok] : 0) : 0
//   range k > 0:                X += E[tok]   only where valid and tok in range
// Each valid row receives exactly one E row and one P row → the result is fl(E + P), bit-exact
// whatever the number of ranges. One thread per (t, c), 256 per workgroup, 2-D grid when large.
//
// No backward: E and P are frozen and carry no adapter, and token ids are discrete, so the gradient
// flowing into X (the residual stream) stops here.
//
// Reference: src/engine/reference/embedding.ts. Test: test/engine/embedding.test.ts.

struct Params {
  T: u32,
  C: u32,
  V: u32,      // total vocabulary rows (validity of tok)
  NP: u32,     // position rows (validity of pos)
  v0: u32,     // first vocabulary row of the bound range of E
  nv: u32,     // rows in the bound range
  first: u32,  // 1 for the first range: writes X (positions included); 0: adds E only
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> TOK: array<u32>;       // (T,)
@group(0) @binding(2) var<storage, read> POS: array<u32>;       // (T,)
// Storage type (src/gpu/wgsl-variants.ts rewrites the alias to f16 for f16 storage; math stays f32).
alias EStore = f32; // frozen E and P
@group(0) @binding(3) var<storage, read> E: array<EStore>; // (nv, C) rows v0.. of (V, C)
@group(0) @binding(4) var<storage, read> P: array<EStore>; // (NP, C)
fn ldE(i: u32) -> f32 { return f32(E[i]); }
fn ldP(i: u32) -> f32 { return f32(P[i]); }
@group(0) @binding(5) var<storage, read_write> X: array<f32>;   // (T, C)

const WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * (nwg.x * WG);
  let C = params.C;
  if (i >= params.T * C) {
    return;
  }
  let t = i / C;
  let c = i - t * C;
  let tok = TOK[t];
  let pos = POS[t];
  let valid = tok < params.V && pos < params.NP;
  let in_range = valid && tok >= params.v0 && tok - params.v0 < params.nv;
  if (params.first != 0u) {
    var x = 0.0;
    if (valid) {
      x = ldP(pos * C + c);
      if (in_range) {
        x = ldE((tok - params.v0) * C + c) + x;
      }
    }
    X[i] = x;
  } else if (in_range) {
    X[i] = ldE((tok - params.v0) * C + c) + X[i];
  }
}

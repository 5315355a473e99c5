/**
 * CPU twin of shaders/engine_rng.wgsl: Philox-4x32-10 (Random123-compatible) and the engine's
 * derived draws. The u32 words are bit-identical to the GPU's; normals are computed here in float64
 * from the same words (the GPU's f32 log/cos/sqrt differ by ~1e-7 relative; see rng.test.ts).
 *
 * Counter convention: key = (seed_lo, seed_hi), ctr = (index, step, tensor, stream).
 */

export const RNG_STREAM = { EPS: 0, DROP: 1, SIGN_IN: 2, SIGN_OUT: 3, XI: 4 } as const;

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** (hi, lo) of the 64-bit product a·b of two u32 (exact: 16-bit limbs, like the WGSL). */
function mulhilo(a: number, b: number): [number, number] {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  const mid = Math.floor(p00 / 65536) + (p01 & 0xffff) + (p10 & 0xffff);
  const hi = (p11 + Math.floor(p01 / 65536) + Math.floor(p10 / 65536) + Math.floor(mid / 65536)) >>> 0;
  return [hi, Math.imul(a, b) >>> 0];
}

/** Philox-4x32 with `rounds` rounds (10 = the standard generator). */
export function philox4x32(ctr: readonly number[], key: readonly number[], rounds = 10): [number, number, number, number] {
  let [c0, c1, c2, c3] = ctr.map((v) => v >>> 0);
  let [k0, k1] = key.map((v) => v >>> 0);
  for (let r = 0; r < rounds; r++) {
    const [h0, l0] = mulhilo(M0, c0);
    const [h1, l1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(h1 ^ c1 ^ k0) >>> 0, l1, (h0 ^ c3 ^ k1) >>> 0, l0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

export interface RngKey {
  /** 64-bit seed as [lo, hi]. */
  seed: readonly [number, number];
  step: number;
  tensor: number;
}

export function rngBits(k: RngKey, stream: number, index: number): [number, number, number, number] {
  return philox4x32([index, k.step, k.tensor, stream], k.seed);
}

const TWO_M24 = 2 ** -24;

/** Box–Muller (cosine branch) from the words, in float64 — the same formula as the WGSL. */
export function normalFromBits(b: readonly number[]): number {
  const u1 = ((b[0] >>> 8) + 1) * TWO_M24;
  const u2 = (b[1] >>> 8) * TWO_M24;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(Math.PI * (2 * u2 - 1));
}

export function signFromBits(b: readonly number[]): number {
  return b[0] >>> 31 ? -1 : 1;
}

/** Dropout threshold on the top 24 bits: keep when (x >> 8) ≥ ceil(p · 2²⁴). */
export function dropThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout p must be in [0, 1), got ${p}`);
  return Math.ceil(p * 2 ** 24);
}

export const rngNormal = (k: RngKey, stream: number, i: number): number => normalFromBits(rngBits(k, stream, i));
export const rngSign = (k: RngKey, stream: number, i: number): number => signFromBits(rngBits(k, stream, i));
/** 1 = kept, 0 = dropped. */
export function rngKeep(k: RngKey, index: number, thresh: number): number {
  if (thresh === 0) return 1;
  return rngBits(k, RNG_STREAM.DROP, index)[0] >>> 8 >= thresh ? 1 : 0;
}

/**
 * Storage-type variants of a WGSL kernel from ONE source (issue 13 item 1: f16 storage where the adapter
 * has `shader-f16`). No copied shader files: a kernel that reads frozen weights or the K/V cache names
 * the element type of those bindings through a WGSL alias, always declared f32 in shaders/*.wgsl —
 *
 *     alias WStore = f32;                                   // frozen weights W (N, K)
 *     @group(0) @binding(2) var<storage, read> W: array<WStore>;
 *     fn ldW(i: u32) -> f32 { return f32(W[i]); }           // every read goes through a load helper
 *
 * — and `wgslVariant(name, { WStore: 'f16' })` rewrites exactly those alias lines to `f16` and puts
 * `enable f16;` first. The math is unchanged: loads convert to f32 (f32(f32) is the identity, so the
 * f32 variant is the source as written), accumulation is f32, stores into an f16 binding go through
 * `YStore(value)`. vec4 bindings use `vec4<WStore>` and `vec4<f32>(W[i])` (a vector conversion).
 * Variants are cached per (name, alias map). An alias the map names but the source lacks is an error
 * (a typo would otherwise silently give the f32 kernel).
 *
 * Which type a buffer holds travels with the buffer (tagStorage / bufferStorage), so a kernel's prepare
 * function picks the variant from the buffers it is handed: frozen weights uploaded as f16 (weights.ts),
 * the K/V cache (decoder.ts EncoderKvCache) — and f32 everywhere else (adapters, activations, gradients,
 * AdamW state never change type).
 */
import { wgsl } from './shaders';

export type StorageType = 'f32' | 'f16';
export const STORAGE_BYTES: Record<StorageType, number> = { f32: 4, f16: 2 };

const variantCache = new Map<string, string>();

/** Rewrite the `alias <Name> = f32;` lines of `src` named in `aliases`; `enable f16;` first if any is f16. */
export function specializeWgsl(src: string, aliases: Record<string, StorageType>, what = 'wgsl'): string {
  let out = src;
  let anyF16 = false;
  for (const [name, type] of Object.entries(aliases)) {
    const re = new RegExp(`^alias\\s+${name}\\s*=\\s*f32\\s*;`, 'm');
    if (!re.test(out)) throw new Error(`${what}: no 'alias ${name} = f32;' line to specialize`);
    if (type === 'f16') {
      out = out.replace(re, `alias ${name} = f16;`);
      anyF16 = true;
    } else if (type !== 'f32') {
      throw new Error(`${what}: storage type of ${name} must be 'f32' or 'f16', got '${type as string}'`);
    }
  }
  return anyF16 ? `enable f16;\n${out}` : out;
}

/** `shaders/<name>.wgsl` with its storage aliases set (cached). All-f32 maps return the file as is. */
export function wgslVariant(name: string, aliases: Record<string, StorageType> = {}): string {
  const key = `${name}|${Object.entries(aliases)
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join(',')}`;
  let v = variantCache.get(key);
  if (v === undefined) {
    v = specializeWgsl(wgsl(name), aliases, `shaders/${name}.wgsl`);
    variantCache.set(key, v);
  }
  return v;
}

/** Label suffix of a variant, e.g. '[W=f16]' ('' for all-f32, so f32 labels stay as they were). */
export function variantSuffix(aliases: Record<string, StorageType>): string {
  const f16 = Object.entries(aliases)
    .filter(([, t]) => t === 'f16')
    .map(([k]) => k)
    .sort();
  return f16.length ? `[f16:${f16.join(',')}]` : '';
}

// ---------------------------------------------------------------- element type of a buffer

const tags = new WeakMap<GPUBuffer, StorageType>();

/** Record that `buf` holds `type` elements (untagged buffers are f32). Returns buf. */
export function tagStorage<B extends GPUBuffer>(buf: B, type: StorageType): B {
  if (type === 'f16') tags.set(buf, 'f16');
  else tags.delete(buf);
  return buf;
}

/** Element type of a buffer: 'f16' if tagged so, else 'f32'. */
export function bufferStorage(buf: GPUBuffer): StorageType {
  return tags.get(buf) ?? 'f32';
}

export function bufferElemBytes(buf: GPUBuffer): number {
  return STORAGE_BYTES[bufferStorage(buf)];
}

// ---------------------------------------------------------------- f32 → f16 on the CPU

const f32v = new Float32Array(1);
const u32v = new Uint32Array(f32v.buffer);

/** IEEE half bits of x, round to nearest even (overflow → ±inf, NaN kept). */
export function floatToHalf(x: number): number {
  f32v[0] = x;
  const u = u32v[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflow to ±0
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent: still correct
  return sign | h;
}

/** f16 bits of every element (Uint16Array of the same length). */
export function toHalfBits(data: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]);
  return out;
}

/** The f32 values an f16 buffer holds for `data` (f16 rounding of each element). */
export function roundToHalf(data: ArrayLike<number>): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = halfBitsToFloat(floatToHalf(data[i]));
  return out;
}

export function halfBitsToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Upload `data` as `storage` elements (f16: rounded to nearest even, 2 bytes each; the buffer is tagged).
 * Byte size padded to 4 as every storage binding needs.
 */
export function uploadAs(
  rt: { upload(label: string, data: ArrayBufferView, extraUsage?: number): GPUBuffer },
  label: string,
  data: Float32Array,
  storage: StorageType,
): GPUBuffer {
  if (storage === 'f32') return rt.upload(label, data);
  const bits = toHalfBits(data);
  const padded =
    bits.length % 2
      ? (() => {
          const p = new Uint16Array(bits.length + 1);
          p.set(bits);
          return p;
        })()
      : bits;
  return tagStorage(rt.upload(label, padded), 'f16');
}

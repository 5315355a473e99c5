/**
 * Small helpers shared by the engine kernels of this folder that I wrote (rng, lora, kl, adamw,
 * attention, linear_backward): uniform packing, 1-D grids folded into 2-D, bind groups with
 * explicit (sparse) binding numbers, 64-bit seeds as two u32 words.
 */
import { bufferElemBytes } from '../../gpu/wgsl-variants';
import type { GpuRuntime } from '../../gpu/runtime';

/** Packs u32 / f32 words in declaration order (every field 4 bytes; pad to 16 B at the end). */
export class UniformWords {
  private readonly words: number[] = [];
  private readonly kinds: ('u' | 'f')[] = [];
  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`uniform u32 out of range: ${v}`);
    this.words.push(v);
    this.kinds.push('u');
    return this;
  }
  f32(v: number): this {
    this.words.push(v);
    this.kinds.push('f');
    return this;
  }
  bytes(): ArrayBuffer {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const u = new Uint32Array(buf);
    const f = new Float32Array(buf);
    this.words.forEach((w, i) => {
      if (this.kinds[i] === 'u') u[i] = w;
      else f[i] = w;
    });
    return buf;
  }
}

/** A uniform buffer holding `w` (COPY_DST, so `rewrite` can update it between dispatches). */
export function uniformFrom(rt: GpuRuntime, label: string, w: UniformWords): GPUBuffer {
  return rt.uniform(label, new Uint8Array(w.bytes()));
}

export function rewriteUniform(rt: GpuRuntime, buf: GPUBuffer, w: UniformWords): void {
  rt.device.queue.writeBuffer(buf, 0, w.bytes());
}

/** Workgroups for n items at `per` items per workgroup, folded into (x, y) above 65535 groups. */
export function grid1d(n: number, per: number, maxDim = 65535): [number, number, number] {
  const g = Math.ceil(n / per);
  if (g <= maxDim) return [g, 1, 1];
  return [maxDim, Math.ceil(g / maxDim), 1];
}

/** Bind group of group 0 with explicit binding numbers (the auto layout of one entry point). */
export function bindAt(
  rt: GpuRuntime,
  label: string,
  pipeline: GPUComputePipeline,
  entries: ReadonlyArray<readonly [number, GPUBuffer]>,
): GPUBindGroup {
  return rt.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: entries.map(([binding, buffer]) => ({ binding, resource: { buffer } })),
  });
}

/** A 64-bit seed (number ≤ 2⁵³ or bigint) as [lo, hi] u32 words. */
export function splitSeed(seed: number | bigint): [number, number] {
  const s = BigInt(seed);
  if (s < 0n || s >= 1n << 64n) throw new Error(`seed out of u64 range: ${seed}`);
  return [Number(s & 0xffffffffn), Number(s >> 32n)];
}

/** Throws unless every value is a non-negative integer < 2³². */
export function checkDims(label: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`${label}: bad ${k}=${v}`);
  }
}

/** Throws unless `buf` holds at least `elems` elements of its storage type (4 bytes, 2 for f16). */
export function needElems(label: string, buf: GPUBuffer, elems: number, what: string): void {
  // f16 buffers (tagged by src/gpu/wgsl-variants.ts: frozen weights, the K/V cache) hold 2-byte elements
  const eb = bufferElemBytes(buf);
  if (buf.size < elems * eb) {
    throw new Error(`${label}: ${what} buffer '${buf.label}' (${eb === 2 ? 'f16' : 'f32'}) has ${buf.size} B < ${elems * eb} B`);
  }
}

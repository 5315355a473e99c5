// Helpers every kernel wrapper shares: bind groups with explicit binding numbers (a WGSL file with several
// entry points gives each its own 'auto' layout, holding only the bindings it uses), workgroup grids for 1-D
// work beyond 65,535 workgroups, argument checks, the u64 seed split. One module, so each name means one thing.
import { bufferElemBytes } from '../../gpu/wgsl-variants';
import type { GpuRuntime } from '../../gpu/runtime';

export type Resource = GPUBuffer | GPUBufferBinding;

/** Bind group for group 0 of `pipeline`; `entries` = [binding number, buffer or sub-range]. */
export function bindGroupAt(
  rt: GpuRuntime,
  label: string,
  pipeline: GPUComputePipeline,
  entries: ReadonlyArray<readonly [number, Resource]>,
): GPUBindGroup {
  return rt.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: entries.map(([binding, r]) => ({
      binding,
      resource: 'buffer' in r ? r : { buffer: r },
    })),
  });
}

/** bindGroupAt for whole buffers. */
export function bindAt(
  rt: GpuRuntime,
  label: string,
  pipeline: GPUComputePipeline,
  entries: ReadonlyArray<readonly [number, GPUBuffer]>,
): GPUBindGroup {
  return bindGroupAt(rt, label, pipeline, entries);
}

/**
 * Workgroups for `n` items at `per` items per workgroup (per = 1: n workgroups), folded into (x, y) with
 * x ≤ maxDim when there are more than maxDim; shaders recover the linear id as wid.x + wid.y · num_workgroups.x
 * and bounds-check it.
 */
export function grid1d(n: number, per = 1, maxDim = 65535): [number, number, number] {
  const g = Math.ceil(n / per);
  if (g <= 0) return [0, 1, 1];
  if (g <= maxDim) return [g, 1, 1];
  return [maxDim, Math.ceil(g / maxDim), 1];
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

/** A prepared kernel call: run() encodes + submits its dispatch(es); destroy() frees its uniforms. */
export interface PreparedCall {
  run(): void;
  destroy(): void;
}

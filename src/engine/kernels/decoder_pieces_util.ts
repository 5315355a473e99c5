/**
 * Small helpers shared by the decoder-piece kernels (layernorm, gelu, embedding, logits_ce):
 * bind groups with explicit binding numbers and buffer sub-ranges (a WGSL file with several entry
 * points gives each entry point its own 'auto' layout holding only the bindings it uses), grid
 * sizes for 1-D work larger than 65,535 workgroups, and argument checks.
 */
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

/**
 * Workgroup grid for `count` independent workgroups: (x, y) with x ≤ 65,535 and x·y ≥ count.
 * Shaders recover the linear id as wid.x + wid.y · num_workgroups.x and bounds-check it.
 */
export function grid1d(count: number, maxPerDim = 65535): [number, number, number] {
  if (count <= 0) return [0, 1, 1];
  const x = Math.min(count, maxPerDim);
  return [x, Math.ceil(count / x), 1];
}

/** Throws unless every value is a non-negative integer < 2³² (they travel as u32 uniforms). */
export function checkDims(label: string, dims: Record<string, number>): void {
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`${label}: bad ${name}=${v}`);
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

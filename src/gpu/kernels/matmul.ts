/**
 * Linear layer forward on the GPU: Y = X · Wᵀ + b  (shaders/matmul_bias.wgsl).
 *
 *   X: (M, K)   W: (N, K) PyTorch Linear layout   b: (N,) optional   Y: (M, N)
 *
 * CPU reference: src/gpu/reference/matmul.ts. Test: test/gpu/matmul.test.ts (+ browser run).
 */
import type { GpuRuntime, KernelSpec } from '../runtime';
import { bufferElemBytes, bufferStorage, type StorageType, variantSuffix, wgslVariant } from '../wgsl-variants';

export const MATMUL_TILE_M = 64;
export const MATMUL_TILE_N = 64;

/**
 * `registerTiled` (default false): entry main_rt — 16×16 micro-tile per thread, no workgroup memory;
 * 2.5–3.5× faster on software adapters (llvmpipe, SwiftShader), bit-identical results.
 */
export function matmulBiasKernel(registerTiled = false, storage: { w?: StorageType; y?: StorageType } = {}): KernelSpec {
  const aliases = { WStore: storage.w ?? 'f32', YStore: storage.y ?? 'f32' };
  const code = wgslVariant('matmul_bias', aliases);
  const sfx = variantSuffix(aliases);
  return registerTiled ? { label: `matmul_bias.main_rt${sfx}`, code, entryPoint: 'main_rt' } : { label: `matmul_bias${sfx}`, code };
}

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
}

/** Workgroups to dispatch for an (M, N) output. */
export function matmulWorkgroups({ M, N }: Pick<MatmulShape, 'M' | 'N'>): [number, number, number] {
  return [Math.ceil(N / MATMUL_TILE_N), Math.ceil(M / MATMUL_TILE_M), 1];
}

/**
 * A prepared matmul call on existing GPU buffers (no allocation per run), for repeated dispatch.
 * `bias` null → the kernel ignores binding 3 (a 4-byte dummy is bound).
 * W and Y may be f16 buffers (tagged by src/gpu/wgsl-variants.ts tagStorage: frozen weights, the K/V
 * cache); the variant is chosen from the buffers. X and b are f32.
 */
export async function prepareMatmulBias(
  rt: GpuRuntime,
  shape: MatmulShape,
  buffers: { x: GPUBuffer; w: GPUBuffer; bias: GPUBuffer | null; y: GPUBuffer },
  label = 'matmul_bias',
  /** Kernel variant; default: main_rt on a software adapter (rt.softwareAdapter), else main. */
  registerTiled = rt.softwareAdapter,
): Promise<{ run(): void; destroy(): void }> {
  const { M, N, K } = shape;
  for (const [name, v] of Object.entries(shape)) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`${label}: bad ${name}=${v}`);
  }
  const need = (buf: GPUBuffer, elems: number, what: string): void => {
    const eb = bufferElemBytes(buf);
    if (buf.size < elems * eb)
      throw new Error(`${label}: ${what} buffer '${buf.label}' (${bufferStorage(buf)}) has ${buf.size} B < ${elems * eb} B`);
  };
  need(buffers.x, M * K, 'X (M,K)');
  need(buffers.w, N * K, 'W (N,K)');
  need(buffers.y, M * N, 'Y (M,N)');
  if (buffers.bias) need(buffers.bias, N, 'b (N,)');

  const pipeline = await rt.pipeline(matmulBiasKernel(registerTiled, { w: bufferStorage(buffers.w), y: bufferStorage(buffers.y) }));
  const params = rt.uniform(`${label}:params`, new Uint32Array([M, N, K, buffers.bias ? 1 : 0]));
  const dummy = buffers.bias ? null : rt.storage(`${label}:no_bias`, 4);
  const bg = rt.bindGroup(`${label}:bind`, pipeline, [params, buffers.x, buffers.w, buffers.bias ?? dummy!, buffers.y]);
  const wg = matmulWorkgroups(shape);
  return {
    run: () => rt.dispatch(label, pipeline, bg, wg),
    destroy: () => {
      params.destroy();
      dummy?.destroy();
    },
  };
}

/** One-shot convenience: upload, run, read back. Returns Y (M, N). */
export async function matmulBias(
  rt: GpuRuntime,
  X: Float32Array,
  W: Float32Array,
  b: Float32Array | null,
  shape: MatmulShape,
): Promise<Float32Array> {
  const { M, N } = shape;
  const x = rt.upload('matmul_bias:X', X);
  const w = rt.upload('matmul_bias:W', W);
  const bias = b ? rt.upload('matmul_bias:b', b) : null;
  const y = rt.storage('matmul_bias:Y', M * N * 4);
  try {
    const call = await prepareMatmulBias(rt, shape, { x, w, bias, y });
    call.run();
    const out = await rt.readF32(y, M * N);
    call.destroy();
    return out;
  } finally {
    for (const buf of [x, w, bias, y]) buf?.destroy();
  }
}

/**
 * Prepared element-type conversion dst[i] = src[i], i < n (matmul_bias.wgsl entry `convert`): e.g. an
 * f16 K/V cache tensor widened into an f32 batch buffer. Types come from the buffers' storage tags;
 * `dst` may be a sub-range binding (offset a multiple of minStorageBufferOffsetAlignment).
 */
export async function prepareConvert(
  rt: GpuRuntime,
  n: number,
  src: GPUBuffer,
  dst: GPUBuffer | GPUBufferBinding,
  label = 'convert',
): Promise<{ run(): void; destroy(): void }> {
  const dstBuf = 'buffer' in dst ? dst.buffer : dst;
  const pipeline = await rt.pipeline(convertKernel(bufferStorage(src), bufferStorage(dstBuf)));
  return convertCall(rt, pipeline, n, src, dst, label);
}

/** The `convert` kernel from `from` to `to` elements. */
export function convertKernel(from: StorageType, to: StorageType): KernelSpec {
  const aliases = { WStore: from, YStore: to };
  return { label: `matmul_bias.convert${variantSuffix(aliases)}→${to}`, code: wgslVariant('matmul_bias', aliases), entryPoint: 'convert' };
}

/** prepareConvert on an already compiled convertKernel pipeline (synchronous: bind group + uniform). */
export function convertCall(
  rt: GpuRuntime,
  pipeline: GPUComputePipeline,
  n: number,
  src: GPUBuffer,
  dst: GPUBuffer | GPUBufferBinding,
  label = 'convert',
): { run(): void; destroy(): void } {
  const dstBuf = 'buffer' in dst ? dst.buffer : dst;
  if (src.size < n * bufferElemBytes(src)) throw new Error(`${label}: source '${src.label}' has ${src.size} B < ${n} elements`);
  const dstSize = 'buffer' in dst ? (dst.size ?? dstBuf.size - (dst.offset ?? 0)) : dst.size;
  if (dstSize < n * bufferElemBytes(dstBuf)) throw new Error(`${label}: destination '${dstBuf.label}' has ${dstSize} B < ${n} elements`);
  const params = rt.uniform(`${label}:params`, new Uint32Array([n, 0, 0, 0]));
  const bg = rt.device.createBindGroup({
    label: `${label}:bind`,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: params } },
      { binding: 2, resource: { buffer: src } },
      { binding: 4, resource: 'buffer' in dst ? dst : { buffer: dst } },
    ],
  });
  const groups = Math.ceil(n / 256);
  const max = rt.device.limits.maxComputeWorkgroupsPerDimension;
  const wg: [number, number, number] = [Math.min(groups, max), Math.ceil(groups / Math.min(groups, max) || 1), 1];
  return {
    run: () => {
      if (n > 0) rt.dispatch(label, pipeline, bg, wg);
    },
    destroy: () => params.destroy(),
  };
}

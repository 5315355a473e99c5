/**
 * Linear layer forward for FEW rows (shaders/engine_linear_rows.wgsl): Y (M, N) = X (M, K) · Wᵀ + b,
 * W (N, K) in PyTorch layout — the token-step linears of greedy decoding (M = batch of utterances),
 * where matmul_bias's 64-row tile would do 64/M times the useful work.
 * K must be a multiple of 4 (X and W are read as vec4). Same bindings as matmul_bias (params M, N, K, has_bias; X; W; b; Y). MR (rows per workgroup) is
 * specialised per pipeline: the smallest of 1, 2, 4, 8 that is ≥ M (8 above; more row groups then).
 * CPU reference: src/gpu/reference/matmul.ts (float64). Test: test/engine/linear_rows.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { bufferStorage, STORAGE_BYTES, type StorageType, variantSuffix, wgslVariant } from '../../gpu/wgsl-variants';
import { bindGroupAt, checkDims, needElems, type PreparedCall, type Resource } from './kernel-util';

export const LINEAR_ROWS_WG = 64;
/** cap on column workgroups (threads loop over columns beyond): llvmpipe pays per workgroup */
export const LINEAR_ROWS_MAX_GROUPS = 128;
export const LINEAR_ROWS_MAX_MR = 8;

/** Rows per workgroup for M rows. */
export function linearRowsMR(M: number): number {
  for (const mr of [1, 2, 4]) if (M <= mr) return mr;
  return LINEAR_ROWS_MAX_MR;
}

export function linearRowsKernel(mr: number, w: StorageType = 'f32'): KernelSpec {
  if (![1, 2, 4, 8].includes(mr)) throw new Error(`engine_linear_rows: MR must be 1, 2, 4 or 8 (got ${mr})`);
  const aliases = { WStore: w };
  const src = wgslVariant('engine_linear_rows', aliases);
  const line = 'const MR: u32 = 8u;';
  if (!src.includes(line)) throw new Error(`engine_linear_rows.wgsl: the line '${line}' (substituted per MR) is missing`);
  return { label: `engine_linear_rows.mr${mr}${variantSuffix(aliases)}`, code: src.replace(line, `const MR: u32 = ${mr}u;`) };
}

/** Workgroups for (M, N). */
export function linearRowsWorkgroups(M: number, N: number): [number, number, number] {
  return [Math.min(Math.ceil(N / LINEAR_ROWS_WG), LINEAR_ROWS_MAX_GROUPS), Math.ceil(M / linearRowsMR(M)), 1];
}

/**
 * Prepared Y = X·Wᵀ + b on existing buffers (or sub-ranges: W and Y may be {buffer, offset, size}
 * bindings, e.g. vocab tiles of a tied embedding). `bias` null → not read.
 */
export async function prepareLinearRows(
  rt: GpuRuntime,
  shape: { M: number; N: number; K: number },
  b: { x: GPUBuffer; w: Resource; bias: Resource | null; y: Resource },
  label = 'linear_rows',
): Promise<PreparedCall> {
  const { M, N, K } = shape;
  checkDims(label, { M, N, K, MK: M * K, NK: N * K, MN: M * N });
  if (K % 4 !== 0) throw new Error(`${label}: K=${K} must be a multiple of 4 (X, W are read as vec4)`);
  const size = (r: Resource) => ('buffer' in r ? (r.size ?? r.buffer.size - (r.offset ?? 0)) : r.size);
  const wStorage = bufferStorage('buffer' in b.w ? b.w.buffer : b.w);
  const need = (r: Resource, elems: number, what: string, eb = 4) => {
    if (size(r) < elems * eb)
      throw new Error(`${label}: ${what} binding of '${('buffer' in r ? r.buffer : r).label}' has ${size(r)} B < ${elems * eb} B`);
  };
  needElems(label, b.x, M * K, 'X (M,K)');
  need(b.w, N * K, 'W (N,K)', STORAGE_BYTES[wStorage]);
  need(b.y, M * N, 'Y (M,N)');
  if (b.bias) need(b.bias, N, 'b (N,)');
  const wg = linearRowsWorkgroups(M, N);
  const max = rt.device.limits.maxComputeWorkgroupsPerDimension;
  if (wg[0] > max || wg[1] > max) throw new Error(`${label}: N=${N} or M=${M} needs more than ${max} workgroups per dimension`);
  const pipeline = await rt.pipeline(linearRowsKernel(linearRowsMR(M), wStorage));
  const params = rt.uniform(`${label}:params`, new Uint32Array([M, N, K, b.bias ? 1 : 0]));
  const dummy = b.bias ? null : rt.storage(`${label}:no_bias`, 4);
  const bg = bindGroupAt(rt, `${label}:bind`, pipeline, [
    [0, params],
    [1, b.x],
    [2, b.w],
    [3, b.bias ?? dummy!],
    [4, b.y],
  ]);
  return {
    run: () => {
      if (M > 0 && N > 0) rt.dispatch(label, pipeline, bg, wg);
    },
    destroy: () => {
      params.destroy();
      dummy?.destroy();
    },
  };
}

/** One-shot: upload, run, read back Y (M, N). */
export async function linearRows(
  rt: GpuRuntime,
  X: Float32Array,
  W: Float32Array,
  bias: Float32Array | null,
  shape: { M: number; N: number; K: number },
): Promise<Float32Array> {
  const x = rt.upload('linear_rows:X', X);
  const w = rt.upload('linear_rows:W', W);
  const b = bias ? rt.upload('linear_rows:b', bias) : null;
  const y = rt.storage('linear_rows:Y', shape.M * shape.N * 4);
  try {
    const call = await prepareLinearRows(rt, shape, { x, w, bias: b, y });
    call.run();
    const out = await rt.readF32(y, shape.M * shape.N);
    call.destroy();
    return out;
  } finally {
    for (const buf of [x, w, b, y]) buf?.destroy();
  }
}

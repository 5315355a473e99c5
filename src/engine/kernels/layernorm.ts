/**
 * LayerNorm over the last dim on the GPU (shaders/engine_layernorm.wgsl), forward + backward.
 *
 *   forward   X (T, C), γ (C,), β (C,)          →  Y (T, C), mean (T,), rstd (T,)  [saved]
 *   backward  dY (T, C), X, γ, mean, rstd       →  dX (T, C)   (= or +=, see `accumulate`)
 *
 * γ/β frozen: no dγ/dβ buffers. Whisper uses it pre-norm (self_attn_layer_norm,
 * encoder_attn_layer_norm, final_layer_norm per layer, decoder.layer_norm at the end), so X is the
 * residual stream and the backward usually ACCUMULATES into the residual gradient (accumulate: true).
 * CPU reference: src/engine/reference/layernorm.ts. Test: test/engine/layernorm.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { wgsl } from '../../gpu/shaders';
import { LAYERNORM_EPS } from '../reference/layernorm';
import { bindGroupAt, checkDims, grid1d, needElems, type PreparedCall } from './kernel-util';

type Entry = 'layernorm_forward' | 'layernorm_backward';

export function layernormKernel(entry: Entry): KernelSpec {
  return { label: `engine_layernorm.${entry}`, code: wgsl('engine_layernorm'), entryPoint: entry };
}

export interface LayernormShape {
  T: number;
  C: number;
}

function params(rt: GpuRuntime, label: string, { T, C }: LayernormShape, eps: number, accumulate: boolean): GPUBuffer {
  const words = new ArrayBuffer(16);
  new Uint32Array(words, 0, 2).set([T, C]);
  new Float32Array(words, 8, 1)[0] = eps;
  new Uint32Array(words, 12, 1)[0] = accumulate ? 1 : 0;
  return rt.uniform(`${label}:params`, new Uint8Array(words));
}

/** Prepared forward: x (T,C), gamma, beta (C,) → y (T,C), mean, rstd (T,). */
export async function prepareLayernormForward(
  rt: GpuRuntime,
  shape: LayernormShape,
  b: { x: GPUBuffer; gamma: GPUBuffer; beta: GPUBuffer; y: GPUBuffer; mean: GPUBuffer; rstd: GPUBuffer },
  opts: { eps?: number; label?: string; /** tests: force the 2-D grid */ maxWorkgroupsPerDim?: number } = {},
): Promise<PreparedCall> {
  const label = opts.label ?? 'layernorm_forward';
  const { T, C } = shape;
  checkDims(label, { T, C });
  if (C < 1) throw new Error(`${label}: C must be ≥ 1`);
  needElems(label, b.x, T * C, 'X (T,C)');
  needElems(label, b.gamma, C, 'γ (C,)');
  needElems(label, b.beta, C, 'β (C,)');
  needElems(label, b.y, T * C, 'Y (T,C)');
  needElems(label, b.mean, T, 'mean (T,)');
  needElems(label, b.rstd, T, 'rstd (T,)');
  const pipeline = await rt.pipeline(layernormKernel('layernorm_forward'));
  const p = params(rt, label, shape, opts.eps ?? LAYERNORM_EPS, false);
  const bg = bindGroupAt(rt, `${label}:bind`, pipeline, [
    [0, p],
    [1, b.x],
    [2, b.gamma],
    [3, b.beta],
    [4, b.y],
    [5, b.mean],
    [6, b.rstd],
  ]);
  const wg = grid1d(T, 1, opts.maxWorkgroupsPerDim ?? rt.device.limits.maxComputeWorkgroupsPerDimension);
  return { run: () => rt.dispatch(label, pipeline, bg, wg), destroy: () => p.destroy() };
}

/** Prepared backward: dy, x (T,C), gamma (C,), saved mean/rstd (T,) → dx (T,C) (= or +=). */
export async function prepareLayernormBackward(
  rt: GpuRuntime,
  shape: LayernormShape,
  b: { dy: GPUBuffer; x: GPUBuffer; gamma: GPUBuffer; mean: GPUBuffer; rstd: GPUBuffer; dx: GPUBuffer },
  opts: { accumulate?: boolean; label?: string; /** tests: force the 2-D grid */ maxWorkgroupsPerDim?: number } = {},
): Promise<PreparedCall> {
  const label = opts.label ?? 'layernorm_backward';
  const { T, C } = shape;
  checkDims(label, { T, C });
  if (C < 1) throw new Error(`${label}: C must be ≥ 1`);
  needElems(label, b.dy, T * C, 'dY (T,C)');
  needElems(label, b.x, T * C, 'X (T,C)');
  needElems(label, b.gamma, C, 'γ (C,)');
  needElems(label, b.mean, T, 'mean (T,)');
  needElems(label, b.rstd, T, 'rstd (T,)');
  needElems(label, b.dx, T * C, 'dX (T,C)');
  const pipeline = await rt.pipeline(layernormKernel('layernorm_backward'));
  const p = params(rt, label, shape, 0, opts.accumulate ?? false);
  const bg = bindGroupAt(rt, `${label}:bind`, pipeline, [
    [0, p],
    [1, b.x],
    [2, b.gamma],
    [7, b.dy],
    [8, b.dx],
    [9, b.mean],
    [10, b.rstd],
  ]);
  const wg = grid1d(T, 1, opts.maxWorkgroupsPerDim ?? rt.device.limits.maxComputeWorkgroupsPerDimension);
  return { run: () => rt.dispatch(label, pipeline, bg, wg), destroy: () => p.destroy() };
}

/** One-shot forward: upload, run, read back Y, mean, rstd. */
export async function layernormForward(
  rt: GpuRuntime,
  X: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  shape: LayernormShape,
): Promise<{ y: Float32Array; mean: Float32Array; rstd: Float32Array }> {
  const { T, C } = shape;
  const x = rt.upload('layernorm:X', X);
  const g = rt.upload('layernorm:gamma', gamma);
  const bt = rt.upload('layernorm:beta', beta);
  const y = rt.storage('layernorm:Y', T * C * 4);
  const mean = rt.storage('layernorm:mean', T * 4);
  const rstd = rt.storage('layernorm:rstd', T * 4);
  try {
    const call = await prepareLayernormForward(rt, shape, { x, gamma: g, beta: bt, y, mean, rstd });
    call.run();
    const out = { y: await rt.readF32(y, T * C), mean: await rt.readF32(mean, T), rstd: await rt.readF32(rstd, T) };
    call.destroy();
    return out;
  } finally {
    for (const buf of [x, g, bt, y, mean, rstd]) buf.destroy();
  }
}

/** One-shot backward: dX = LNᵀ(dY) (+ dxPrev when given: the accumulate mode). */
export async function layernormBackward(
  rt: GpuRuntime,
  dY: Float32Array,
  X: Float32Array,
  gamma: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  shape: LayernormShape,
  dxPrev?: Float32Array,
): Promise<Float32Array> {
  const { T, C } = shape;
  const dy = rt.upload('layernorm:dY', dY);
  const x = rt.upload('layernorm:X', X);
  const g = rt.upload('layernorm:gamma', gamma);
  const m = rt.upload('layernorm:mean', mean);
  const r = rt.upload('layernorm:rstd', rstd);
  const dx = dxPrev ? rt.upload('layernorm:dX', dxPrev) : rt.storage('layernorm:dX', T * C * 4);
  try {
    const call = await prepareLayernormBackward(rt, shape, { dy, x, gamma: g, mean: m, rstd: r, dx }, { accumulate: !!dxPrev });
    call.run();
    const out = await rt.readF32(dx, T * C);
    call.destroy();
    return out;
  } finally {
    for (const buf of [dy, x, g, m, r, dx]) buf.destroy();
  }
}

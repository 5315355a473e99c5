/**
 * Exact GELU (erf form, PyTorch nn.GELU() default, Whisper fc1 activation) on the GPU:
 * shaders/engine_gelu.wgsl.
 *
 *   forward   Y (n,)  = X · Φ(X)                  n = T · 4C for Whisper's fc1 output (T, 4C)
 *   backward  dX (n,) = dY · (Φ(X) + X·φ(X))       X is the saved forward input
 *
 * No parameters → no parameter gradients. dX is overwritten (fc1's output feeds only GELU).
 * CPU reference: src/engine/reference/gelu.ts. Test: test/engine/gelu.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { wgsl } from '../../gpu/shaders';
import { bindGroupAt, checkDims, grid1d, needElems, type PreparedCall } from './kernel-util';

const WG = 256;
type Entry = 'gelu_forward' | 'gelu_backward' | 'erf_probe';

export function geluKernel(entry: Entry): KernelSpec {
  return { label: `engine_gelu.${entry}`, code: wgsl('engine_gelu'), entryPoint: entry };
}

async function prepare(
  rt: GpuRuntime,
  entry: Entry,
  n: number,
  bindings: ReadonlyArray<readonly [number, GPUBuffer]>,
  label: string,
  maxWorkgroupsPerDim = rt.device.limits.maxComputeWorkgroupsPerDimension,
): Promise<PreparedCall> {
  checkDims(label, { n });
  const pipeline = await rt.pipeline(geluKernel(entry));
  const params = rt.uniform(`${label}:params`, new Uint32Array([n, 0, 0, 0]));
  const bg = bindGroupAt(rt, `${label}:bind`, pipeline, [[0, params], ...bindings]);
  const wg = grid1d(n, WG, maxWorkgroupsPerDim);
  return { run: () => rt.dispatch(label, pipeline, bg, wg), destroy: () => params.destroy() };
}

/** Prepared forward on existing buffers: x (n,) → y (n,). */
export async function prepareGeluForward(
  rt: GpuRuntime,
  n: number,
  b: { x: GPUBuffer; y: GPUBuffer },
  label = 'gelu_forward',
  /** Tests only: a smaller grid limit forces the 2-D grid path on small n. */
  maxWorkgroupsPerDim?: number,
): Promise<PreparedCall> {
  needElems(label, b.x, n, 'X (n,)');
  needElems(label, b.y, n, 'Y (n,)');
  return prepare(
    rt,
    'gelu_forward',
    n,
    [
      [1, b.x],
      [2, b.y],
    ],
    label,
    maxWorkgroupsPerDim,
  );
}

/** Prepared backward on existing buffers: (x, dy) (n,) → dx (n,). */
export async function prepareGeluBackward(
  rt: GpuRuntime,
  n: number,
  b: { x: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer },
  label = 'gelu_backward',
): Promise<PreparedCall> {
  needElems(label, b.x, n, 'X (n,)');
  needElems(label, b.dy, n, 'dY (n,)');
  needElems(label, b.dx, n, 'dX (n,)');
  return prepare(
    rt,
    'gelu_backward',
    n,
    [
      [1, b.x],
      [3, b.dy],
      [4, b.dx],
    ],
    label,
  );
}

async function oneShot(rt: GpuRuntime, entry: Entry, X: Float32Array, dY?: Float32Array): Promise<Float32Array> {
  const n = X.length;
  const x = rt.upload(`${entry}:X`, X);
  const out = rt.storage(`${entry}:out`, n * 4);
  const dy = dY ? rt.upload(`${entry}:dY`, dY) : null;
  try {
    const call =
      entry === 'gelu_backward'
        ? await prepareGeluBackward(rt, n, { x, dy: dy!, dx: out }, entry)
        : entry === 'gelu_forward'
          ? await prepareGeluForward(rt, n, { x, y: out }, entry)
          : await prepare(
              rt,
              'erf_probe',
              n,
              [
                [1, x],
                [2, out],
              ],
              entry,
            );
    call.run();
    const r = await rt.readF32(out, n);
    call.destroy();
    return r;
  } finally {
    for (const buf of [x, out, dy]) buf?.destroy();
  }
}

/** One-shot: Y = gelu(X). */
export const geluForward = (rt: GpuRuntime, X: Float32Array): Promise<Float32Array> => oneShot(rt, 'gelu_forward', X);

/** One-shot: dX = dY ⊙ gelu'(X). */
export function geluBackward(rt: GpuRuntime, X: Float32Array, dY: Float32Array): Promise<Float32Array> {
  if (dY.length !== X.length) throw new Error(`gelu_backward: dY has ${dY.length} ≠ ${X.length} elements`);
  return oneShot(rt, 'gelu_backward', X, dY);
}

/** Diagnostic: the shader's erf_f32 applied to X (used to measure its error on a device). */
export const erfF32OnGpu = (rt: GpuRuntime, X: Float32Array): Promise<Float32Array> => oneShot(rt, 'erf_probe', X);

/**
 * Input gradient of a frozen Linear on the GPU: dX (M, K) (+)= dY (M, N) · W (N, K)
 * (shaders/engine_linear_backward.wgsl; the forward is src/gpu/kernels/matmul.ts).
 * CPU reference: src/engine/reference/linear_backward.ts. Test: test/engine/linear_backward.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { bufferStorage, type StorageType, variantSuffix, wgslVariant } from '../../gpu/wgsl-variants';
import { checkDims, needElems } from './kernel-util';

export const LINEAR_BWD_TILE_M = 64;
export const LINEAR_BWD_TILE_K = 64;

/** `registerTiled`: entry main_rt (16×16 micro-tile per thread, no workgroup memory) for software adapters. */
export function linearBackwardKernel(registerTiled = false, w: StorageType = 'f32'): KernelSpec {
  const aliases = { WStore: w };
  const code = wgslVariant('engine_linear_backward', aliases);
  const sfx = variantSuffix(aliases);
  return registerTiled
    ? { label: `engine_linear_backward.main_rt${sfx}`, code, entryPoint: 'main_rt' }
    : { label: `engine_linear_backward${sfx}`, code };
}

export interface LinearBackwardShape {
  M: number;
  N: number;
  K: number;
}

export async function prepareLinearBackward(
  rt: GpuRuntime,
  shape: LinearBackwardShape,
  bufs: { dy: GPUBuffer; w: GPUBuffer; dx: GPUBuffer },
  /** registerTiled: kernel variant, default main_rt on a software adapter (rt.softwareAdapter), else main. */
  opts: { accumulate?: boolean; registerTiled?: boolean } = {},
  label = 'engine_linear_backward',
): Promise<{ run(): void; destroy(): void }> {
  const { M, N, K } = shape;
  checkDims(label, { M, N, K });
  needElems(label, bufs.dy, M * N, 'dY (M,N)');
  needElems(label, bufs.w, N * K, 'W (N,K)');
  needElems(label, bufs.dx, M * K, 'dX (M,K)');
  const pipeline = await rt.pipeline(linearBackwardKernel(opts.registerTiled ?? rt.softwareAdapter, bufferStorage(bufs.w)));
  const params = rt.uniform(`${label}:params`, new Uint32Array([M, N, K, opts.accumulate ? 1 : 0]));
  const bg = rt.bindGroup(`${label}:bind`, pipeline, [params, bufs.dy, bufs.w, bufs.dx]);
  const wg: [number, number, number] = [Math.ceil(K / LINEAR_BWD_TILE_K), Math.ceil(M / LINEAR_BWD_TILE_M), 1];
  return {
    run: () => {
      if (M > 0 && K > 0) rt.dispatch(label, pipeline, bg, wg);
    },
    destroy: () => params.destroy(),
  };
}

/**
 * Engine RNG on the GPU (shaders/engine_rng.wgsl library + shaders/engine_rng_draw.wgsl fills).
 *
 *   drawBits:   out (4n,) u32 — Philox-4x32-10 blocks for indices 0..n−1
 *   drawNormal / drawSign / drawKeep: out (n,) f32
 *
 * Every draw is a pure function of (seed, step, tensor, stream, index): see the WGSL header.
 * CPU twin: src/engine/reference/rng.ts. Test: test/engine/rng.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { wgsl } from '../../gpu/shaders';
import { UniformWords, uniformFrom } from './uniform-pack';
import { bindAt, grid1d, splitSeed } from './kernel-util';

/** WGSL of the RNG library (for kernels that prepend it). */
export const rngLibrary = (): string => wgsl('engine_rng');

export type DrawKind = 'bits' | 'normal' | 'sign' | 'keep';

export function rngDrawKernel(kind: DrawKind): KernelSpec {
  return { label: `engine_rng_draw.${kind}`, code: rngLibrary() + '\n' + wgsl('engine_rng_draw'), entryPoint: `draw_${kind}` };
}

export interface DrawArgs {
  n: number;
  seed: number | bigint;
  step: number;
  tensor: number;
  stream: number;
  /** draw_keep only: ceil(p · 2²⁴). */
  thresh?: number;
}

/** One-shot: run a draw kernel and read the result back. */
export async function rngDraw(rt: GpuRuntime, kind: DrawKind, a: DrawArgs): Promise<Uint32Array | Float32Array> {
  const spec = rngDrawKernel(kind);
  const pipeline = await rt.pipeline(spec);
  const [lo, hi] = splitSeed(a.seed);
  const params = uniformFrom(
    rt,
    `${spec.label}:params`,
    new UniformWords()
      .u32(a.n)
      .u32(lo)
      .u32(hi)
      .u32(a.step)
      .u32(a.tensor)
      .u32(a.stream)
      .u32(a.thresh ?? 0)
      .u32(0),
  );
  const out = rt.storage(`${spec.label}:out`, (kind === 'bits' ? 4 : 1) * a.n * 4);
  try {
    const binding = kind === 'bits' ? 1 : 2;
    const bg = bindAt(rt, `${spec.label}:bind`, pipeline, [
      [0, params],
      [binding, out],
    ]);
    rt.dispatch(spec.label, pipeline, bg, grid1d(a.n, 256));
    const bytes = await rt.readBytes(out, (kind === 'bits' ? 4 : 1) * a.n * 4);
    return kind === 'bits' ? new Uint32Array(bytes) : new Float32Array(bytes);
  } finally {
    params.destroy();
    out.destroy();
  }
}

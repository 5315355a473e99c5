/**
 * AdamW and global-norm gradient clipping on the GPU (shaders/engine_adamw.wgsl).
 *
 *   prepareGradNorm(...).run()      CLIP = (‖G[offset, offset+n)‖₂, min(1, max_norm/(‖G‖ + 1e-6)))
 *   prepareAdamW(...).step(t, lr?)  P, M, V updated over [offset, offset + n), g = G·CLIP[1];
 *                                   G zeroed after use when zeroGrad
 * P, G, M, V: flat f32 buffers with one indexing (one optimizer state per parameter element).
 * Several prepareAdamW calls over disjoint ranges = PyTorch param groups (e.g. no weight decay on ρ).
 * Order per optimizer step: grad norm (over ALL grads) → adamw step of each group.
 * CPU reference: src/engine/reference/adamw.ts. Test: test/engine/adamw.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { wgsl } from '../../gpu/shaders';
import { adamScalars, type AdamHyper } from '../reference/adamw';
import { rewriteUniform, UniformWords, uniformFrom } from './uniform-pack';
import { bindAt, checkDims, grid1d, needElems } from './kernel-util';

export type { AdamHyper } from '../reference/adamw';

type Entry = 'adamw_step' | 'sumsq_partial' | 'sumsq_finalize';

export function adamwKernel(entry: Entry): KernelSpec {
  return { label: `engine_adamw.${entry}`, code: wgsl('engine_adamw'), entryPoint: entry };
}

const MAX_PARTIALS = 256;

interface Words {
  n: number;
  offset: number;
  zeroGrad?: boolean;
  nPartials?: number;
  decay?: number;
  h?: AdamHyper;
  stepSize?: number;
  bc2Sqrt?: number;
  maxNorm?: number;
}

function words(w: Words): UniformWords {
  const h = w.h;
  return new UniformWords()
    .u32(w.n)
    .u32(w.offset)
    .u32(w.zeroGrad ? 1 : 0)
    .u32(w.nPartials ?? 0)
    .f32(w.decay ?? 1)
    .f32(h ? 1 - h.beta1 : 0)
    .f32(h ? h.beta2 : 0)
    .f32(h ? 1 - h.beta2 : 0)
    .f32(w.stepSize ?? 0)
    .f32(w.bc2Sqrt ?? 1)
    .f32(h ? h.eps : 0)
    .f32(w.maxNorm ?? 0);
}

/** A 2-float CLIP buffer = (norm 0, coef 1): AdamW without clipping. */
export function noClipBuffer(rt: GpuRuntime, label = 'engine_adamw:noclip'): GPUBuffer {
  return rt.upload(label, new Float32Array([0, 1]));
}

export async function prepareGradNorm(
  rt: GpuRuntime,
  spec: { n: number; offset: number; maxNorm: number },
  bufs: { grad: GPUBuffer; clip: GPUBuffer },
  label = 'engine_adamw.gradnorm',
): Promise<{ run(): void; destroy(): void }> {
  const { n, offset } = spec;
  checkDims(label, { n, offset });
  needElems(label, bufs.grad, offset + n, 'G');
  needElems(label, bufs.clip, 2, 'CLIP (norm, coef)');
  const nwg = Math.max(1, Math.min(Math.ceil(n / 256), MAX_PARTIALS));
  const partial = await rt.pipeline(adamwKernel('sumsq_partial'));
  const finalize = await rt.pipeline(adamwKernel('sumsq_finalize'));
  const partials = rt.storage(`${label}:partials`, nwg * 4);
  const params = uniformFrom(rt, `${label}:params`, words({ n, offset, nPartials: nwg, maxNorm: spec.maxNorm }));
  const bgP = bindAt(rt, `${label}.sumsq_partial:bind`, partial, [
    [0, params],
    [6, partials],
    [7, bufs.grad],
  ]);
  const bgF = bindAt(rt, `${label}.sumsq_finalize:bind`, finalize, [
    [0, params],
    [5, bufs.clip],
    [6, partials],
  ]);
  return {
    run: () => {
      rt.dispatch(`${label}.sumsq_partial`, partial, bgP, [nwg, 1, 1]);
      rt.dispatch(`${label}.sumsq_finalize`, finalize, bgF, [1, 1, 1]);
    },
    destroy: () => {
      partials.destroy();
      params.destroy();
    },
  };
}

export interface AdamWCall {
  /** Optimizer step t ≥ 1 (bias corrections); lr overrides the spec's (schedules). */
  step(t: number, lr?: number): void;
  destroy(): void;
}

export async function prepareAdamW(
  rt: GpuRuntime,
  spec: { n: number; offset: number; hyper: AdamHyper; zeroGrad?: boolean },
  bufs: { param: GPUBuffer; grad: GPUBuffer; m: GPUBuffer; v: GPUBuffer; clip: GPUBuffer },
  label = 'engine_adamw',
): Promise<AdamWCall> {
  const { n, offset } = spec;
  checkDims(label, { n, offset });
  for (const [k, b] of Object.entries({ P: bufs.param, G: bufs.grad, M: bufs.m, V: bufs.v })) needElems(label, b, offset + n, k);
  needElems(label, bufs.clip, 2, 'CLIP (norm, coef)');
  const pipeline = await rt.pipeline(adamwKernel('adamw_step'));
  const params = uniformFrom(rt, `${label}:params`, words({ n, offset }));
  const bg = bindAt(rt, `${label}.adamw_step:bind`, pipeline, [
    [0, params],
    [1, bufs.param],
    [2, bufs.grad],
    [3, bufs.m],
    [4, bufs.v],
    [5, bufs.clip],
  ]);
  const wg = grid1d(n, 256);
  return {
    step: (t, lr) => {
      const h = lr === undefined ? spec.hyper : { ...spec.hyper, lr };
      const s = adamScalars(h, t);
      rewriteUniform(
        rt,
        params,
        words({ n, offset, zeroGrad: spec.zeroGrad, decay: s.decay, h, stepSize: s.stepSize, bc2Sqrt: s.bc2Sqrt }),
      );
      if (n > 0) rt.dispatch(`${label}.adamw_step`, pipeline, bg, wg);
    },
    destroy: () => params.destroy(),
  };
}

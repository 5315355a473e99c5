/**
 * LoRA / BLoRA adapter on the GPU (shaders/engine_lora.wgsl, with engine_rng + engine_blora_sigma).
 *
 * Factor level — M: (n_out, n_in), X: (T, n_in) → F: (T, n_out), modes det | bbb | flipout | lrt:
 *   prepareLoraFactor(...).sample(step)       noise (n_out, n_in) for this step
 *                         .forward(step)      Y (+)= out_scale · f_M(drop(X))     [lrt: AUX (T, n_out)]
 *                         .backwardDx(step)   DX (+)= ∂/∂X of Σ (g_scale·G) ⊙ F   (T, n_in)
 *                         .backwardDw(step)   grads[dμ], grads[dρ] (+)= ∂/∂μ, ∂/∂ρ
 * Adapter level — Δy = s · f_B(f_A(drop(x))), A: (r, in), B: (out, r), s = α / r:
 *   prepareLoraAdapter(...).forward(step)     y (T, out) += Δy  (h: (T, r) kept for backward)
 *                          .backward(step)    dX (T, in) (+)= ∂Δy/∂x ᵀ dY;  grads (+)= dμ, dρ of A, B
 * Parameters: one flat f32 buffer `theta` (μ / ρ at element offsets); gradients: one flat buffer
 * `grads` with the same or other offsets. Frozen weights are not touched.
 * Noise: Philox counters (seed, step, tensor, stream, index); factor A uses tensor 2·moduleId and
 * factor B 2·moduleId + 1, so every module/factor/step draws independent noise and the backward
 * regenerates the forward's.
 *
 * CPU reference: src/engine/reference/lora.ts. Test: test/engine/lora.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { wgsl } from '../../gpu/shaders';
import { dropThreshold } from '../reference/rng';
import { LORA_MODE_ID, type LoraMode } from '../reference/lora';
import { rewriteUniform, UniformStruct, UniformWords, uniformFrom } from './uniform-pack';
import { bindAt, checkDims, grid1d, needElems, splitSeed } from './kernel-util';

export type { LoraMode } from '../reference/lora';

type Entry = 'forward' | 'backward_dx' | 'backward_dw' | 'sample';

/** engine_lora.wgsl's uniforms, by name (the shader's struct is generated from this table). */
export const LORA_PARAMS = new UniformStruct('LoraParams', [
  ['T', 'u32'],
  ['n_in', 'u32'],
  ['n_out', 'u32'],
  ['mode', 'u32'],
  ['seed_lo', 'u32'],
  ['seed_hi', 'u32'],
  ['step', 'u32'],
  ['tensor', 'u32'],
  ['mu_off', 'u32'],
  ['rho_off', 'u32'],
  ['gmu_off', 'u32'],
  ['grho_off', 'u32'],
  ['drop_thresh', 'u32', 'ceil(p·2²⁴); 0 = no dropout'],
  ['accumulate', 'u32', 'forward: Y +=; backward_dx: DX +=; backward_dw: grads +='],
  ['_pad0', 'u32'],
  ['_pad1', 'u32'], // the f32 block starts on a 16-byte row, as the struct always had it
  ['drop_scale', 'f32', '1 / (1 − p)'],
  ['out_scale', 'f32', 'forward: s for factor B, 1 for A'],
  ['g_scale', 'f32', 'backward: s for factor B, 1 for A'],
] as const);

const loraCode = (): string =>
  [wgsl('engine_rng'), wgsl('engine_blora_sigma'), LORA_PARAMS.inject(wgsl('engine_lora'), 'shaders/engine_lora.wgsl')].join('\n');

export function loraKernel(entry: Entry): KernelSpec {
  return { label: `engine_lora.${entry}`, code: loraCode(), entryPoint: entry };
}

export const LORA_TILE = 32;

export interface LoraFactorSpec {
  T: number;
  nIn: number;
  nOut: number;
  mode: LoraMode;
  seed: number | bigint;
  tensor: number;
  /** Element offsets into theta / grads. ρ offsets are ignored in mode 'det'. */
  muOff: number;
  rhoOff: number;
  gradMuOff: number;
  gradRhoOff: number;
  /** Dropout probability on the factor input (training, factor A); 0 / undefined = none. */
  dropout?: number;
}

export interface LoraFactorBuffers {
  theta: GPUBuffer;
  grads?: GPUBuffer;
  /** (n_out, n_in) per-step noise; needed unless mode 'det'. */
  noise?: GPUBuffer;
  x?: GPUBuffer; // (T, n_in)
  y?: GPUBuffer; // (T, n_out)
  aux?: GPUBuffer; // (T, n_out), mode 'lrt'
  g?: GPUBuffer; // (T, n_out)
  dx?: GPUBuffer; // (T, n_in)
}

export interface LoraFactorCall {
  sample(step: number): void;
  forward(step: number, o?: { outScale?: number; accumulate?: boolean }): void;
  backwardDx(step: number, o?: { gScale?: number; accumulate?: boolean }): void;
  backwardDw(step: number, o?: { gScale?: number; accumulate?: boolean }): void;
  destroy(): void;
}

export async function prepareLoraFactor(
  rt: GpuRuntime,
  spec: LoraFactorSpec,
  bufs: LoraFactorBuffers,
  label = 'engine_lora',
): Promise<LoraFactorCall> {
  const { T, nIn, nOut, mode } = spec;
  checkDims(label, {
    T,
    nIn,
    nOut,
    tensor: spec.tensor,
    muOff: spec.muOff,
    rhoOff: spec.rhoOff,
    gradMuOff: spec.gradMuOff,
    gradRhoOff: spec.gradRhoOff,
  });
  const bayes = mode !== 'det';
  const m = nOut * nIn;
  needElems(label, bufs.theta, spec.muOff + m, 'theta (μ)');
  if (bayes) needElems(label, bufs.theta, spec.rhoOff + m, 'theta (ρ)');
  if (bufs.grads) {
    needElems(label, bufs.grads, spec.gradMuOff + m, 'grads (dμ)');
    if (bayes) needElems(label, bufs.grads, spec.gradRhoOff + m, 'grads (dρ)');
  }
  if (bayes && !bufs.noise) throw new Error(`${label}: mode ${mode} needs a noise buffer (n_out·n_in)`);
  if (bufs.noise) needElems(label, bufs.noise, m, 'noise (n_out,n_in)');
  if (mode === 'lrt' && !bufs.aux) throw new Error(`${label}: mode lrt needs an aux buffer (T·n_out)`);
  if (bufs.aux) needElems(label, bufs.aux, T * nOut, 'aux (T,n_out)');
  if (bufs.x) needElems(label, bufs.x, T * nIn, 'X (T,n_in)');
  if (bufs.y) needElems(label, bufs.y, T * nOut, 'Y (T,n_out)');
  if (bufs.g) needElems(label, bufs.g, T * nOut, 'G (T,n_out)');
  if (bufs.dx) needElems(label, bufs.dx, T * nIn, 'DX (T,n_in)');

  const [seedLo, seedHi] = splitSeed(spec.seed);
  const p = spec.dropout ?? 0;
  const thresh = p > 0 ? dropThreshold(p) : 0;
  const words = (step: number, accumulate: boolean, outScale: number, gScale: number): UniformWords =>
    LORA_PARAMS.pack({
      T,
      n_in: nIn,
      n_out: nOut,
      mode: LORA_MODE_ID[mode],
      seed_lo: seedLo,
      seed_hi: seedHi,
      step: step >>> 0,
      tensor: spec.tensor,
      mu_off: spec.muOff,
      rho_off: bayes ? spec.rhoOff : 0,
      gmu_off: spec.gradMuOff,
      grho_off: bayes ? spec.gradRhoOff : 0,
      drop_thresh: thresh,
      accumulate,
      _pad0: 0,
      _pad1: 0,
      drop_scale: thresh ? 1 / (1 - p) : 1,
      out_scale: outScale,
      g_scale: gScale,
    });

  // A separate 4-byte dummy per unused slot: one buffer in two writable bindings is invalid.
  const owned: GPUBuffer[] = [];
  const dummyFor = (what: string): GPUBuffer => {
    const d = rt.storage(`${label}:unused-${what}`, 4);
    owned.push(d);
    return d;
  };

  const ops = new Map<Entry, { run: (w: UniformWords) => void }>();
  const make = async (entry: Entry, entries: [number, GPUBuffer | undefined][], wg: () => [number, number, number]) => {
    const missing = entries.filter(([, b]) => !b).map(([i]) => i);
    const pipeline = await rt.pipeline(loraKernel(entry));
    const u = uniformFrom(rt, `${label}.${entry}:params`, words(0, false, 1, 1));
    owned.push(u);
    const bg = bindAt(rt, `${label}.${entry}:bind`, pipeline, [
      [0, u],
      ...entries.map(([i, b]) => [i, b ?? dummyFor(`${entry}-${i}`)] as [number, GPUBuffer]),
    ]);
    ops.set(entry, {
      run: (w) => {
        if (missing.length) throw new Error(`${label}.${entry}: buffers for bindings ${missing.join(',')} not given`);
        rewriteUniform(rt, u, w);
        rt.dispatch(`${label}.${entry}`, pipeline, bg, wg());
      },
    });
  };
  // Bindings each entry point statically uses (auto layout): see engine_lora.wgsl.
  const noiseOrDummy = bufs.noise ?? dummyFor('noise');
  const auxOrDummy = bufs.aux ?? dummyFor('aux');
  await make(
    'forward',
    [
      [1, bufs.x],
      [2, bufs.theta],
      [3, noiseOrDummy],
      [4, bufs.y],
      [5, auxOrDummy],
    ],
    () => [Math.ceil(nOut / LORA_TILE), Math.ceil(T / LORA_TILE), 1],
  );
  await make(
    'backward_dx',
    [
      [1, bufs.x ?? dummyFor('x')],
      [2, bufs.theta],
      [3, noiseOrDummy],
      [5, auxOrDummy],
      [6, bufs.g],
      [7, bufs.dx],
    ],
    () => [Math.ceil(nIn / LORA_TILE), Math.ceil(T / LORA_TILE), 1],
  );
  await make(
    'backward_dw',
    [
      [1, bufs.x],
      [2, bufs.theta],
      [5, auxOrDummy],
      [6, bufs.g],
      [8, bufs.grads],
    ],
    () => [Math.ceil(nIn / LORA_TILE), Math.ceil(nOut / LORA_TILE), 1],
  );
  if (bayes)
    await make(
      'sample',
      [
        [2, bufs.theta],
        [3, bufs.noise],
      ],
      () => grid1d(m, 256),
    );

  if ((mode === 'lrt' || thresh) && bufs.dx && !bufs.x) {
    throw new Error(`${label}: backward_dx reads X in mode lrt and with dropout: pass x`);
  }
  const zero = (n: number): boolean => n === 0;
  return {
    sample: (step) => {
      if (bayes) ops.get('sample')!.run(words(step, false, 1, 1));
    },
    forward: (step, o = {}) => {
      if (zero(T) || zero(nOut)) return;
      ops.get('forward')!.run(words(step, o.accumulate ?? false, o.outScale ?? 1, 1));
    },
    backwardDx: (step, o = {}) => {
      if (zero(T) || zero(nIn)) return;
      ops.get('backward_dx')!.run(words(step, o.accumulate ?? false, 1, o.gScale ?? 1));
    },
    backwardDw: (step, o = {}) => {
      if (zero(nOut) || zero(nIn)) return;
      ops.get('backward_dw')!.run(words(step, o.accumulate ?? true, 1, o.gScale ?? 1));
    },
    destroy: () => owned.forEach((b) => b.destroy()),
  };
}

export interface LoraAdapterSpec {
  T: number;
  nIn: number;
  r: number;
  nOut: number;
  alpha: number;
  /** BLoRA: 'flipout' (default estimator) | 'bbb' | 'lrt'; LoRA: 'det' for both. */
  modeA: LoraMode;
  /** 'det' for LoRA and for BLoRA with bayesian_a_only. */
  modeB: LoraMode;
  seed: number | bigint;
  moduleId: number;
  dropout: number;
  /** Element offsets into theta / grads. */
  off: { muA: number; rhoA: number; muB: number; rhoB: number };
  gradOff: { muA: number; rhoA: number; muB: number; rhoB: number };
}

export interface LoraAdapterBuffers {
  theta: GPUBuffer;
  grads: GPUBuffer;
  x: GPUBuffer; // (T, in) input of the frozen layer
  y: GPUBuffer; // (T, out) output of the frozen layer: Δy is added
  dy: GPUBuffer; // (T, out) ∂L/∂y
  dx: GPUBuffer; // (T, in) ∂L/∂x: the adapter's contribution is added (or written)
}

export interface LoraAdapterCall {
  /** sample A, B; h = f_A(drop(x)); y += s · f_B(h). */
  forward(step: number): void;
  /** dμ, dρ of B and A (accumulated into grads); dX (+)= adapter contribution. */
  backward(step: number, o?: { accumulateDx?: boolean }): void;
  /** (T, r) intermediate h, (T, r) dh — exposed for tests. */
  h: GPUBuffer;
  dh: GPUBuffer;
  destroy(): void;
}

/**
 * f32 elements of the buffers prepareLoraAdapter allocates (0 = not allocated): the (T, r) intermediate
 * and its gradient, each Bayesian factor's sampled noise (its own shape), the lrt AUX (T, factor out).
 * src/engine/memory-plan.ts plans with it.
 */
export function loraAdapterBufferElems(spec: Pick<LoraAdapterSpec, 'T' | 'nIn' | 'r' | 'nOut' | 'modeA' | 'modeB'>): {
  h: number;
  dh: number;
  noiseA: number;
  auxA: number;
  noiseB: number;
  auxB: number;
} {
  const { T, nIn, r, nOut } = spec;
  return {
    h: T * r,
    dh: T * r,
    noiseA: spec.modeA !== 'det' ? r * nIn : 0,
    auxA: spec.modeA === 'lrt' ? T * r : 0,
    noiseB: spec.modeB !== 'det' ? nOut * r : 0,
    auxB: spec.modeB === 'lrt' ? T * nOut : 0,
  };
}

export async function prepareLoraAdapter(
  rt: GpuRuntime,
  spec: LoraAdapterSpec,
  bufs: LoraAdapterBuffers,
  label = `engine_lora[${spec.moduleId}]`,
): Promise<LoraAdapterCall> {
  const { T, nIn, r, nOut } = spec;
  const s = spec.alpha / r;
  const n = loraAdapterBufferElems(spec);
  const h = rt.storage(`${label}:h`, n.h * 4);
  const dh = rt.storage(`${label}:dh`, n.dh * 4);
  const owned = [h, dh];
  const alloc = (name: string, elems: number, needed: boolean): GPUBuffer | undefined => {
    if (!needed) return undefined;
    const b = rt.storage(`${label}:${name}`, elems * 4);
    owned.push(b);
    return b;
  };
  const a = await prepareLoraFactor(
    rt,
    {
      T,
      nIn,
      nOut: r,
      mode: spec.modeA,
      seed: spec.seed,
      tensor: 2 * spec.moduleId,
      dropout: spec.dropout,
      muOff: spec.off.muA,
      rhoOff: spec.off.rhoA,
      gradMuOff: spec.gradOff.muA,
      gradRhoOff: spec.gradOff.rhoA,
    },
    {
      theta: bufs.theta,
      grads: bufs.grads,
      x: bufs.x,
      y: h,
      g: dh,
      dx: bufs.dx,
      noise: alloc('noiseA', n.noiseA, spec.modeA !== 'det'),
      aux: alloc('auxA', n.auxA, spec.modeA === 'lrt'),
    },
    `${label}.A`,
  );
  const b = await prepareLoraFactor(
    rt,
    {
      T,
      nIn: r,
      nOut,
      mode: spec.modeB,
      seed: spec.seed,
      tensor: 2 * spec.moduleId + 1,
      muOff: spec.off.muB,
      rhoOff: spec.off.rhoB,
      gradMuOff: spec.gradOff.muB,
      gradRhoOff: spec.gradOff.rhoB,
    },
    {
      theta: bufs.theta,
      grads: bufs.grads,
      x: h,
      y: bufs.y,
      g: bufs.dy,
      dx: dh,
      noise: alloc('noiseB', n.noiseB, spec.modeB !== 'det'),
      aux: alloc('auxB', n.auxB, spec.modeB === 'lrt'),
    },
    `${label}.B`,
  );
  return {
    forward: (step) => {
      a.sample(step);
      b.sample(step);
      a.forward(step);
      b.forward(step, { outScale: s, accumulate: true });
    },
    backward: (step, o = {}) => {
      // Same step as the forward: sample() output (noise) and AUX are still those of this step.
      b.backwardDw(step, { gScale: s });
      b.backwardDx(step, { gScale: s });
      a.backwardDw(step);
      a.backwardDx(step, { accumulate: o.accumulateDx ?? true });
    },
    h,
    dh,
    destroy: () => {
      a.destroy();
      b.destroy();
      owned.forEach((x) => x.destroy());
    },
  };
}

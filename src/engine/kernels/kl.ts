/**
 * BLoRA KL term on the GPU (shaders/engine_kl.wgsl with engine_rng + engine_blora_sigma).
 *
 * One factor matrix of n elements, μ at theta[muOff ..], ρ at theta[rhoOff ..]:
 *   run():  kl_out[slot] = mean_i KL(N(μ_i, σ_i²) ‖ N(0, σ_p²))           (unscaled: loss adds β·Σ slots)
 *           with log(σ + ε) for log σ when logEps ε > 0 (the authors' code: 1e-6)
 *           grads[gradMuOff ..]  += β · ∂KL/∂μ,  grads[gradRhoOff ..] += β · ∂KL/∂ρ   (writeGrads)
 * Two dispatches: kl_partial (≤ 256 workgroups, grid-stride) and kl_finalize (one workgroup).
 * CPU reference: src/engine/reference/kl.ts. Test: test/engine/kl.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { wgsl } from '../../gpu/shaders';
import { rewriteUniform, UniformStruct, uniformFrom } from './uniform-pack';
import { bindAt, checkDims, needElems } from './kernel-util';

export const KL_MAX_PARTIALS = 256;

/** The uniform struct of shaders/engine_kl.wgsl, declared once (emitted into the shader, packed by name). */
export const KL_PARAMS = new UniformStruct('KlParams', [
  ['n', 'u32'],
  ['mu_off', 'u32'],
  ['rho_off', 'u32'],
  ['gmu_off', 'u32'],
  ['grho_off', 'u32'],
  ['slot', 'u32'],
  ['n_partials', 'u32'],
  ['write_grads', 'u32'],
  ['inv_var_p', 'f32', '1 / σ_p²'],
  ['log_sigma_p', 'f32', 'log σ_p'],
  ['grad_scale', 'f32', 'β / n'],
  ['inv_n', 'f32', '1 / n'],
  ['log_eps', 'f32', 'ε of log(σ + ε); 0 = exact log σ'],
] as const);

export function klKernel(entry: 'kl_partial' | 'kl_finalize'): KernelSpec {
  return {
    label: `engine_kl.${entry}`,
    code: [wgsl('engine_rng'), wgsl('engine_blora_sigma'), KL_PARAMS.inject(wgsl('engine_kl'), 'shaders/engine_kl.wgsl')].join('\n'),
    entryPoint: entry,
  };
}

export interface KlSpec {
  n: number;
  muOff: number;
  rhoOff: number;
  gradMuOff: number;
  gradRhoOff: number;
  /** Element of klOut receiving this factor's mean KL. */
  slot: number;
  /** Prior standard deviation σ_p (spec default 0.01). */
  sigmaPrior: number;
  /** ε in log(σ + ε) (default 0: exact log σ; the authors' code 1e-6, loras/bnn_lora.py kl_loss). */
  logEps?: number;
  /** Gradient scale β (spec default 1e-4 ÷ accumulation steps). */
  beta: number;
  /** Add β·∂KL into grads (training); false = value only (evaluation). Default true. */
  writeGrads?: boolean;
}

export interface KlBuffers {
  theta: GPUBuffer;
  grads: GPUBuffer;
  klOut: GPUBuffer;
}

export async function prepareKl(
  rt: GpuRuntime,
  spec: KlSpec,
  bufs: KlBuffers,
  label = 'engine_kl',
): Promise<{ run(): void; setBeta(beta: number): void; destroy(): void }> {
  const { n } = spec;
  checkDims(label, { n, muOff: spec.muOff, rhoOff: spec.rhoOff, gradMuOff: spec.gradMuOff, gradRhoOff: spec.gradRhoOff, slot: spec.slot });
  if (!(spec.sigmaPrior > 0)) throw new Error(`${label}: sigmaPrior must be > 0`);
  const logEps = spec.logEps ?? 0;
  if (!(logEps >= 0 && Number.isFinite(logEps))) throw new Error(`${label}: logEps must be ≥ 0 (got ${logEps})`);
  needElems(label, bufs.theta, Math.max(spec.muOff, spec.rhoOff) + n, 'theta');
  needElems(label, bufs.grads, Math.max(spec.gradMuOff, spec.gradRhoOff) + n, 'grads');
  needElems(label, bufs.klOut, spec.slot + 1, 'kl_out');
  const nwg = Math.max(1, Math.min(Math.ceil(n / 256), KL_MAX_PARTIALS));
  const partial = await rt.pipeline(klKernel('kl_partial'));
  const finalize = await rt.pipeline(klKernel('kl_finalize'));
  const partials = rt.storage(`${label}:partials`, nwg * 4);
  const words = (beta: number) =>
    KL_PARAMS.pack({
      n,
      mu_off: spec.muOff,
      rho_off: spec.rhoOff,
      gmu_off: spec.gradMuOff,
      grho_off: spec.gradRhoOff,
      slot: spec.slot,
      n_partials: nwg,
      write_grads: spec.writeGrads !== false,
      inv_var_p: 1 / (spec.sigmaPrior * spec.sigmaPrior),
      log_sigma_p: Math.log(spec.sigmaPrior),
      grad_scale: n ? beta / n : 0,
      inv_n: n ? 1 / n : 0,
      log_eps: logEps,
    });
  const params = uniformFrom(rt, `${label}:params`, words(spec.beta));
  const bgP = bindAt(rt, `${label}.kl_partial:bind`, partial, [
    [0, params],
    [1, bufs.theta],
    [2, bufs.grads],
    [3, partials],
  ]);
  const bgF = bindAt(rt, `${label}.kl_finalize:bind`, finalize, [
    [0, params],
    [3, partials],
    [4, bufs.klOut],
  ]);
  return {
    run: () => {
      rt.dispatch(`${label}.kl_partial`, partial, bgP, [nwg, 1, 1]);
      rt.dispatch(`${label}.kl_finalize`, finalize, bgF, [1, 1, 1]);
    },
    // β as a live value (a β schedule): the uniform is rewritten, no pipeline rebuilt. queue.writeBuffer takes
    // effect at the next submission, so call it between steps (the decoder flushes first).
    setBeta: (beta: number) => rewriteUniform(rt, params, words(beta)),
    destroy: () => {
      partials.destroy();
      params.destroy();
    },
  };
}

/**
 * SNR pruning of a BLoRA adapter before export: every posterior mean μ whose signal-to-noise ratio
 * |μ|/σ (σ = softplus(ρ), exp(ρ) below −20 as in the KL kernels) is below a threshold is set to 0 — the
 * element is indistinguishable from noise, so the sparse export keeps what the posterior is sure of
 * (../shared/blora-spec.md "Signal-to-noise"). Deterministic factors (LoRA, or B with bayesianAOnly) have no
 * σ and are kept. Works on theta in the plan's layout, so the pruned adapter can be both exported and
 * evaluated (the export view shows the WER the pruning costs).
 */
import { moduleTensors, type AdapterPlan } from '../engine/adapters';
import type { AdapterExport } from './peft';

export interface PruneResult {
  /** a copy of theta with the pruned μ elements set to 0 */
  theta: Float32Array;
  /** μ elements set to 0 / all μ elements of A and B (deterministic factors included in the count) */
  pruned: number;
  elements: number;
}

const sigmaOf = (rho: number) => (rho < -20 ? Math.exp(rho) : Math.log1p(Math.exp(rho)));

export function pruneBySnr(plan: AdapterPlan, theta: Float32Array, snr: number): PruneResult {
  if (theta.length !== plan.size) throw new Error(`pruneBySnr: theta has ${theta.length} values, the plan ${plan.size}`);
  if (!(snr >= 0)) throw new Error(`pruneBySnr: threshold must be ≥ 0 (got ${snr})`);
  const out = theta.slice();
  let pruned = 0;
  let elements = 0;
  for (const m of plan.modules) {
    const t = Object.fromEntries(moduleTensors(plan, m, out).map((x) => [x.key, x.data]));
    for (const [mu, rho] of [
      [t.muA ?? t.A, t.rhoA],
      [t.muB ?? t.B, t.rhoB],
    ] as const) {
      elements += mu.length;
      if (!rho || snr === 0) continue;
      for (let i = 0; i < mu.length; i++) {
        if (mu[i] !== 0 && Math.abs(mu[i]) / sigmaOf(rho[i]) < snr) {
          mu[i] = 0;
          pruned++;
        }
      }
    }
  }
  return { theta: out, pruned: elements ? pruned / elements : 0, elements };
}

/**
 * The same SNR pruning on an exported adapter (PEFT means + blora_posterior ρ, as a run folder holds it):
 * what `blora-studio export --prune-snr` merges. Factors without ρ are kept.
 */
export function pruneAdapterBySnr(a: AdapterExport, snr: number): { adapter: AdapterExport; pruned: number; elements: number } {
  if (!(snr >= 0)) throw new Error(`pruneAdapterBySnr: threshold must be ≥ 0 (got ${snr})`);
  let pruned = 0;
  let elements = 0;
  const prune = (mu: Float32Array, rho: Float32Array | undefined) => {
    const out = mu.slice();
    elements += mu.length;
    if (!rho || snr === 0) return out;
    for (let i = 0; i < out.length; i++) {
      if (out[i] !== 0 && Math.abs(out[i]) / sigmaOf(rho[i]) < snr) {
        out[i] = 0;
        pruned++;
      }
    }
    return out;
  };
  const modules = a.modules.map((m) => ({ ...m, A: prune(m.A, m.rhoA), B: prune(m.B, m.rhoB) }));
  return { adapter: { ...a, modules }, pruned: elements ? pruned / elements : 0, elements };
}

// Derived numbers of a run for the run and compare views: WER per role at a step, forgetting, and —
// against a LoRA run on the same data — backward gain and new-domain drop. (The benchmark's own
// definitions live in src/metrics/experiment.ts; these follow the same reading: positive forgetting =
// base-domain WER went up; positive backward gain = this run forgot less than LoRA; positive
// new-domain drop = this run's new-domain WER is higher than LoRA's.)
import type { EvalRecord, EvalRole } from '../train/config';
import type { RunState } from './store';

/** Utterance-weighted mean WER of the sets of `role` at `step` (undefined when none were evaluated). */
export function werAt(evals: EvalRecord[], role: EvalRole, step: number): number | undefined {
  const rs = evals.filter((e) => e.role === role && e.step === step);
  const n = rs.reduce((s, e) => s + e.utterances, 0);
  return n ? rs.reduce((s, e) => s + e.wer * e.utterances, 0) / n : undefined;
}

export function evalSteps(evals: EvalRecord[]): number[] {
  return [...new Set(evals.map((e) => e.step))].sort((a, b) => a - b);
}

export interface RunSummary {
  step: number;
  werNew?: number;
  werBase?: number;
  werNew0?: number;
  werBase0?: number;
  /** WER_base(last) − WER_base(0) */
  forgetting?: number;
  /** WER_new(0) − WER_new(last) */
  newGain?: number;
  finalCe?: number;
  finalKl?: number;
  sparsity?: number;
}

export function summarize(r: RunState): RunSummary {
  const steps = evalSteps(r.evals);
  const last = steps.at(-1) ?? 0;
  const werNew = werAt(r.evals, 'new', last);
  const werBase = werAt(r.evals, 'base', last);
  const werNew0 = werAt(r.evals, 'new', 0);
  const werBase0 = werAt(r.evals, 'base', 0);
  const t = r.train.at(-1);
  return {
    step: last,
    werNew,
    werBase,
    werNew0,
    werBase0,
    forgetting: werBase !== undefined && werBase0 !== undefined && last > 0 ? werBase - werBase0 : undefined,
    newGain: werNew !== undefined && werNew0 !== undefined && last > 0 ? werNew0 - werNew : undefined,
    finalCe: t?.ce,
    finalKl: t?.kl,
    sparsity: t ? (t.sparsityA + t.sparsityB) / 2 : undefined,
  };
}

/** The latest finished-or-running LoRA run with the same training data, to compare a BLoRA run against. */
export function loraReference(runs: RunState[], r: RunState): RunState | undefined {
  const key = (x: RunState) => x.data.train.map((u) => u.key).join();
  return runs.filter((x) => x.id !== r.id && x.config.method === 'lora' && key(x) === key(r) && x.evals.some((e) => e.step > 0)).at(-1);
}

export function versusLora(r: RunState, lora: RunState): { backwardGain?: number; newDrop?: number } {
  const a = summarize(r), b = summarize(lora);
  return {
    backwardGain: a.forgetting !== undefined && b.forgetting !== undefined ? b.forgetting - a.forgetting : undefined,
    newDrop: a.werNew !== undefined && b.werNew !== undefined ? a.werNew - b.werNew : undefined,
  };
}

export const pct = (v: number | undefined, sign = false) => (v === undefined ? '—' : `${sign && v > 0 ? '+' : ''}${(v * 100).toFixed(1)} %`);

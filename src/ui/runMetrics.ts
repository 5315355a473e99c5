// Derived numbers of a run for the run and compare views: WER per role at a step, forgetting, and —
// against a LoRA run on the same data — backward gain and new-domain drop. The definitions are the
// benchmark's own (src/metrics/experiment.ts, the same functions and texts the experiment report uses);
// this file only picks the WERs out of a run's records.
import { backwardGain, forgetting, METRIC_DEFINITIONS, newDomainDrop, type MaybeValue } from '../metrics/experiment';
import type { EvalRecord, EvalRole } from '../train/config';
import type { RunState } from './store';

/** Utterance-weighted mean WER of the sets of `role` at `step` (undefined when none were evaluated). */
export function werAt(evals: EvalRecord[], role: EvalRole, step: number): number | undefined {
  const rs = evals.filter((e) => e.role === role && e.step === step);
  const n = rs.reduce((s, e) => s + e.utterances, 0);
  return n ? rs.reduce((s, e) => s + e.wer * e.utterances, 0) / n : undefined;
}

/**
 * PIER (error rate on the embedded-language words, src/metrics/pier.ts) of the sets of `role` at `step`,
 * pooled over their embedded words; undefined when none of them has per-word language tags.
 */
export function pierAt(evals: EvalRecord[], step: number, role: EvalRole = 'new'): number | undefined {
  const rs = evals.filter((e) => e.role === role && e.step === step && e.pier !== undefined && e.pierWords);
  const n = rs.reduce((s, e) => s + (e.pierWords ?? 0), 0);
  return n ? rs.reduce((s, e) => s + (e.pier ?? 0) * (e.pierWords ?? 0), 0) / n : undefined;
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
  /** F = WER_base(last) − WER_base(step 0, the frozen model) */
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
    forgetting: werBase !== undefined && werBase0 !== undefined && last > 0 ? forgetting(werBase, werBase0) : undefined,
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

/**
 * Backward gain and new-domain drop of a run against a LoRA run on the same data, by the benchmark's
 * definitions (src/metrics/experiment.ts: the ratios the experiment report prints). A value that cannot
 * be computed says why (e.g. "LoRA did not forget").
 */
export function versusLora(r: RunState, lora: RunState): { backwardGain: MaybeValue; newDrop: MaybeValue } {
  const a = summarize(r),
    b = summarize(lora);
  const missing = (what: string): MaybeValue => ({ value: null, reason: `not yet: ${what} has no evaluation after training` });
  return {
    backwardGain:
      a.forgetting === undefined
        ? missing('this run')
        : b.forgetting === undefined
          ? missing(`LoRA run ${lora.name}`)
          : backwardGain(b.forgetting, a.forgetting),
    newDrop:
      a.werNew === undefined
        ? missing('this run')
        : b.werNew === undefined
          ? missing(`LoRA run ${lora.name}`)
          : newDomainDrop(a.werNew, b.werNew),
  };
}

/** The definition text of a metric (shown as a tooltip next to the number). */
export function definition(key: 'werNew' | 'werBase' | 'forgetting' | 'backwardGain' | 'newDomainDrop' | 'sparsity'): string {
  return METRIC_DEFINITIONS.find((d) => d.key === key)?.text ?? key;
}

/** A ratio that may be undefined: its percentage, or "n/a" with the reason as the tooltip. */
export function maybePct(v: MaybeValue | undefined, sign = true): { text: string; title?: string } {
  if (!v) return { text: '—' };
  return v.value === null ? { text: 'n/a', title: v.reason } : { text: pct(v.value, sign) };
}

/** WER points (a difference of two WERs), e.g. "+1.2 pts". */
export const pts = (v: number | undefined) => (v === undefined ? '—' : `${v > 0 ? '+' : ''}${(v * 100).toFixed(1)} pts`);

export const pct = (v: number | undefined, sign = false) =>
  v === undefined ? '—' : `${sign && v > 0 ? '+' : ''}${(v * 100).toFixed(1)} %`;

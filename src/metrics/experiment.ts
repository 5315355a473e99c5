/**
 * The experiment's metric definitions (../shared/blora-spec.md "Metrics"), shared by the studio UI and the
 * experiment report. The Python twin is tools/experiment_metrics.py (the runner's aggregator); both are
 * checked on the same hand-computed cases (test/metrics/experiment-cases.json) and their definition texts
 * must be identical (test/metrics/experiment.test.ts).
 *
 * WERs are fractions (0.25 = 25 %). A value that is undefined is `{ value: null, reason }`, never NaN:
 * the UI and the report print the reason next to the blank.
 */

export const SPARSITY_THRESHOLD = 1e-3;

/** The name convention for dev splits of data.eval (twin: experiment_metrics.is_dev_split): the name ends in "-dev". */
export function isDevSplit(name: string | null | undefined): boolean {
  return !!name && name.endsWith('-dev');
}

export interface MetricDefinition {
  key: string;
  name: string;
  text: string;
}

/** Printed next to every table of results (identical to METRIC_DEFINITIONS in tools/experiment_metrics.py). */
export const METRIC_DEFINITIONS: MetricDefinition[] = [
  {
    key: 'werNew',
    name: 'WER new',
    text: "word error rate on the new-domain (code-switched) test set(s) after Whisper's normalizer; mean over the new-domain sets",
  },
  {
    key: 'werBase',
    name: 'WER base',
    text: 'word error rate on the base-domain (monolingual) test set(s); mean over the base-domain sets',
  },
  {
    key: 'forgetting',
    name: 'forgetting F',
    text: 'F = WER_base(adapted) − WER_base(original model), in WER points; > 0 means the adapter made the base domain worse',
  },
  {
    key: 'backwardGain',
    name: 'backward gain',
    text: "(F_LoRA − F_BLoRA) / F_LoRA: the fraction of LoRA's forgetting that BLoRA avoids; undefined when F_LoRA ≤ 0 (LoRA forgot nothing, so there is nothing to gain back)",
  },
  {
    key: 'newDomainDrop',
    name: 'new-domain drop',
    text: '(WER_new(BLoRA) − WER_new(LoRA)) / WER_new(LoRA): how much worse BLoRA is than LoRA on the new domain, relative (negative = better); undefined when WER_new(LoRA) = 0',
  },
  {
    key: 'sparsity',
    name: 'sparsity',
    text: "fraction of elements with |μ| < 1e-3: over all elements of the A factors (μ_A, or LoRA's A), of the B factors, and of ΔW = s·μ_B·μ_A (s = α/r) of every adapted module",
  },
  {
    key: 'meanStd',
    name: 'mean ± std',
    text: 'mean and sample standard deviation (n − 1) over seeds; one seed: no std',
  },
];

export type MaybeValue = { value: number; reason?: undefined } | { value: null; reason: string };

/** F = WER_base(adapted) − WER_base(original). */
export function forgetting(werBaseAdapted: number, werBaseOriginal: number): number {
  return werBaseAdapted - werBaseOriginal;
}

/** (F_LoRA − F_BLoRA) / F_LoRA; undefined when F_LoRA ≤ 0. */
export function backwardGain(fLora: number, fBlora: number): MaybeValue {
  if (!(fLora > 0)) return { value: null, reason: `undefined: F_LoRA = ${fmt(fLora)} ≤ 0 (LoRA did not forget)` };
  return { value: (fLora - fBlora) / fLora };
}

/** (WER_new(BLoRA) − WER_new(LoRA)) / WER_new(LoRA); undefined when WER_new(LoRA) = 0. */
export function newDomainDrop(werNewBlora: number, werNewLora: number): MaybeValue {
  if (!(werNewLora > 0)) return { value: null, reason: `undefined: WER_new(LoRA) = ${fmt(werNewLora)}` };
  return { value: (werNewBlora - werNewLora) / werNewLora };
}

/** Fraction of |v| < threshold (strictly below). */
export function sparsity(values: ArrayLike<number>, threshold = SPARSITY_THRESHOLD): number {
  if (values.length === 0) throw new Error('sparsity of an empty set of values');
  let z = 0;
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]) < threshold) z++;
  return z / values.length;
}

/** ΔW = s·B·A, row-major [nOut, nIn]; A row-major [r, nIn], B row-major [nOut, r]; float64 sums. */
export function deltaW(A: ArrayLike<number>, B: ArrayLike<number>, r: number, nIn: number, nOut: number, scale: number): Float64Array {
  if (A.length !== r * nIn || B.length !== nOut * r) {
    throw new Error(`deltaW: A has ${A.length} values (r·in = ${r * nIn}), B ${B.length} (out·r = ${nOut * r})`);
  }
  const out = new Float64Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    for (let k = 0; k < r; k++) {
      const b = B[o * r + k];
      if (b === 0) continue;
      for (let i = 0; i < nIn; i++) out[o * nIn + i] += b * A[k * nIn + i];
    }
  }
  for (let j = 0; j < out.length; j++) out[j] *= scale;
  return out;
}

export interface AdapterFactors {
  /** A or μ_A, [r, nIn] */
  A: ArrayLike<number>;
  /** B or μ_B, [nOut, r] */
  B: ArrayLike<number>;
  r: number;
  nIn: number;
  nOut: number;
}

export interface AdapterSparsity {
  A: number;
  B: number;
  /** A and B together */
  AB: number;
  deltaW: number;
}

/** Sparsity over all A elements, all B elements, A and B together, and all ΔW elements of the modules. */
export function adapterSparsity(modules: AdapterFactors[], scale: number, threshold = SPARSITY_THRESHOLD): AdapterSparsity {
  let za = 0,
    na = 0,
    zb = 0,
    nb = 0,
    zd = 0,
    nd = 0;
  for (const m of modules) {
    za += sparsity(m.A, threshold) * m.A.length;
    na += m.A.length;
    zb += sparsity(m.B, threshold) * m.B.length;
    nb += m.B.length;
    const dw = deltaW(m.A, m.B, m.r, m.nIn, m.nOut, scale);
    zd += sparsity(dw, threshold) * dw.length;
    nd += dw.length;
  }
  if (!na || !nb) throw new Error('adapterSparsity: no modules');
  return { A: za / na, B: zb / nb, AB: (za + zb) / (na + nb), deltaW: zd / nd };
}

export interface MeanStd {
  mean: number | null;
  /** sample standard deviation (n − 1); null for n ≤ 1 */
  std: number | null;
  n: number;
  /** null entries left out */
  missing: number;
}

/** Mean ± sample std over seeds; null entries (undefined metrics) are left out and counted. */
export function meanStd(xs: (number | null)[]): MeanStd {
  const vals = xs.filter((x): x is number => x !== null);
  const missing = xs.length - vals.length;
  if (!vals.length) return { mean: null, std: null, n: 0, missing };
  const m = vals.reduce((a, b) => a + b, 0) / vals.length;
  const std = vals.length > 1 ? Math.sqrt(vals.reduce((a, x) => a + (x - m) ** 2, 0) / (vals.length - 1)) : null;
  return { mean: m, std, n: vals.length, missing };
}

/** Mean WER over the eval sets of one role; null when there is none. */
export function domainWer(evals: { role: 'new' | 'base'; wer: number }[], role: 'new' | 'base'): number | null {
  const ws = evals.filter((e) => e.role === role).map((e) => e.wer);
  return ws.length ? ws.reduce((a, b) => a + b, 0) / ws.length : null;
}

/** "12.3 ± 0.4" (percent when pct) or the reason a value is missing. */
export function formatMeanStd(s: MeanStd, pct = true, digits = 1): string {
  if (s.mean === null) return 'n/a';
  const k = pct ? 100 : 1;
  const m = (s.mean * k).toFixed(digits);
  return s.std === null ? m : `${m} ± ${(s.std * k).toFixed(digits)}`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x);
}

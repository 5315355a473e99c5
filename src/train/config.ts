/**
 * experiment.json — ONE description of a training run, read by every backend:
 *   - the studio's WGSL engine (browser worker, and headless: `blora-studio train --config experiment.json`)
 *   - the PyTorch trainer (`tools/blora_train.py --config experiment.json`, CPU here, GPUs via accelerate)
 * The studio's Export writes one beside the adapter, so a run is reproducible from the CLI.
 *
 * Metric records (JSONL, one object per line) are shared too: see TrainRecord / EvalRecord below.
 */
import { ADAPTER_TARGETS, type AdapterTarget, type BayesEstimator, DEFAULT_TARGETS, RHO_B_INITS, type RhoBInit } from '../engine/adapters';

export const EXPERIMENT_SCHEMA_VERSION = 1;

export type Method = 'lora' | 'blora';
export type LrSchedule = 'inverse_sqrt' | 'cosine' | 'constant';
export type EvalRole = 'new' | 'base';

export interface EvalSetConfig {
  /** dataset folder or manifest path (audiofolder metadata.csv, *.jsonl, Common Voice, Kaldi) */
  path: string;
  /** new domain (code-switched) or base domain (forgetting is measured here) */
  role: EvalRole;
  /** display name (default: the folder name) */
  name?: string;
  /** only the first N utterances */
  limit?: number;
}

/** A training set mixed in: dataset folder or manifest, its probability per utterance slot, optional first-N limit. */
export interface TrainMixConfig {
  path: string;
  p: number;
  limit?: number;
}

/** A dev set: dataset folder or manifest, optional name and first-N limit. */
export interface DevSetConfig {
  path: string;
  name?: string;
  limit?: number;
}

export type EvalSelect = 'last' | 'dev-ce';
export const EVAL_SELECTS: readonly EvalSelect[] = ['last', 'dev-ce'];

/** β from `step` on (see ExperimentConfig.adapter.betaSchedule). */
export interface BetaScheduleEntry {
  step: number;
  beta: number;
}

export interface ExperimentConfig {
  schema: number;
  name: string;
  /** model folder in the transformers.js layout + model.safetensors (default: the prepared Whisper base) */
  model?: string;
  data: {
    /** training dataset folder or manifest */
    train: string;
    /** only the first N training utterances */
    trainLimit?: number;
    /**
     * more training sets mixed in (e.g. replay of base-domain data): each utterance of a micro-batch comes from set i
     * with probability p_i and from data.train with 1 − Σ p_i (src/train/data.ts MixSampler; the authors interleave
     * their training sets, train_bnnlora.py:479-483)
     */
    trainMix?: TrainMixConfig[];
    eval: EvalSetConfig[];
    /**
     * dev sets for selection (eval.select 'dev-ce'): their teacher-forced CE with the posterior means, as the
     * authors' eval_loss on their dev split (continual-asr whisper/train_bnnlora.py:450-471); not a domain, no WER
     */
    dev?: DevSetConfig[];
  };
  method: Method;
  adapter: {
    targets: AdapterTarget[];
    /** decoder layers carrying adapters (default: all) */
    layers?: number[];
    r: number;
    alpha: number;
    /** dropout on the adapter input (training only) */
    dropout: number;
    /** BLoRA only */
    estimator: BayesEstimator;
    bayesianAOnly: boolean;
    sigmaPrior: number;
    /** initial ρ_B: 'uniform' (default: U(−5.5, −4.5), as ρ_A, the paper's) or 'constant' (−50: B noiseless at first); src/engine/adapters.ts RhoBInit */
    rhoBInit: RhoBInit;
    /**
     * KL weight per optimizer step; each of `gradAccum` micro-batches adds beta/gradAccum · KL (and CE/gradAccum), so the
     * step's loss is mean CE + β·KL. With a schedule: β before its first entry (step 1 unless the schedule starts there).
     * Default: klScale 1e-4 in the authors' meaning, i.e. 1e-4 / gradAccum.
     */
    beta: number;
    /**
     * The authors' `-kl_scale` (continual-asr whisper/train_bnnlora.py:58 default 1e-4, :255 model.kl_scale =
     * kl_scale / gradient_accumulation, memory_efficient_whisper.py:448 loss = ce + kl·model.kl_scale per
     * micro-batch): β = klScale / gradAccum on the mean CE. Give beta or klScale; parseExperiment sets beta from it
     * (both given: they must agree). The record keeps it, so an exported experiment.json reads back the same.
     */
    klScale?: number;
    /**
     * The authors' KL uses log(σ + ε) with ε = 1e-6 (loras/bnn_lora.py:325 kl_loss); 0 (default) is the exact
     * log σ. With ε the KL value of a noiseless factor (ρ_B −50) is ~9 nats an element instead of ~45, and its
     * ∂/∂ρ is ~0 instead of −1/n (the exact term pushes a tiny σ up).
     */
    klLogEps: number;
    /**
     * Freeze ρ (σ stays at its initial value; μ trains): the authors cast the adapters to bf16, where an AdamW
     * step of 1e-3 is below half a ulp at |ρ| ≈ 5, so their ρ never moves (train_bnnlora.py:175 torch_dtype bf16).
     * ρ's gradients still count in the clipping norm, as theirs do.
     */
    freezeRho: boolean;
    /**
     * β as a schedule: each entry's β holds from its step on (steps ascending integers ≥ 1); before the first
     * entry, `beta`. The studio's live β control appends {step: next step, beta} to it (src/train/trainer.ts setBeta).
     */
    betaSchedule?: BetaScheduleEntry[];
  };
  optim: {
    lr: number;
    betas: [number, number];
    eps: number;
    weightDecay: number;
    /** global-norm clipping threshold (0: off) */
    maxGradNorm: number;
    warmupSteps: number;
    schedule: LrSchedule;
    /** optimizer steps */
    steps: number;
    /** utterances per micro-batch */
    batchSize: number;
    /** micro-batches per optimizer step */
    gradAccum: number;
  };
  /** one seed for everything random: adapter init, data order, adapter noise (Philox key) */
  seed: number;
  eval: {
    /** evaluate every N optimizer steps (0: only before and after training) */
    interval: number;
    maxNewTokens: number;
    /** dev CE every N optimizer steps (0: none); the authors evaluate every 100 (train_bnnlora.py:78 -eval_steps) */
    devInterval: number;
    /**
     * the adapter the run ends with (final evaluation, export): 'last' step, or 'dev-ce', the lowest dev CE among
     * the dev evaluations (every devInterval steps and the last step) — the authors' load_best_model_at_end with
     * metric_for_best_model eval_loss (train_bnnlora.py:464, 471)
     */
    select: EvalSelect;
    /**
     * uncertainty after training (src/metrics/uncertainty.ts): K posterior samples of the adapter decoded beside the
     * mean on every eval set — per-utterance scores, AUROC for "has an error", token ECE; 0: off. Both backends.
     */
    posteriorSamples: number;
  };
}

/** Defaults: the spec's reference values scaled down for small data (docs: README "Training"). */
export function defaultExperiment(): ExperimentConfig {
  return {
    schema: EXPERIMENT_SCHEMA_VERSION,
    name: 'blora',
    data: { train: '', eval: [] },
    method: 'blora',
    adapter: {
      targets: [...DEFAULT_TARGETS],
      r: 32,
      alpha: 64,
      dropout: 0.05,
      estimator: 'flipout',
      bayesianAOnly: false,
      sigmaPrior: 0.01,
      // ρ_B drawn as ρ_A: the authors' code at the paper's date (bnn_lora.py:148; −50 came in commit 46826e7, 2025-10-31)
      rhoBInit: 'uniform',
      beta: 1e-4, // replaced by KL_SCALE_DEFAULT / gradAccum in parseExperiment unless beta or klScale is given
      klLogEps: 0,
      freezeRho: false,
    },
    optim: {
      lr: 1e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 5e-4,
      maxGradNorm: 1.0,
      warmupSteps: 10,
      schedule: 'inverse_sqrt',
      steps: 100,
      batchSize: 8,
      gradAccum: 1,
    },
    seed: 0,
    eval: { interval: 0, maxNewTokens: 128, devInterval: 0, select: 'last', posteriorSamples: 0 },
  };
}

export class ExperimentConfigError extends Error {}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge<T>(base: T, over: unknown, path: string): T {
  if (over === undefined) return base;
  if (!isObj(base) || Array.isArray(base)) return over as T;
  if (!isObj(over)) throw new ExperimentConfigError(`${path}: expected an object`);
  const out: Obj = { ...(base as Obj) };
  for (const [k, v] of Object.entries(over)) {
    if (!(k in (base as Obj)) && !OPTIONAL_KEYS.has(`${path}.${k}`)) {
      throw new ExperimentConfigError(`${path}.${k}: unknown key`);
    }
    out[k] = merge((base as Obj)[k], v, `${path}.${k}`);
  }
  return out as T;
}
const OPTIONAL_KEYS = new Set([
  'experiment.model',
  'experiment.data.trainLimit',
  'experiment.adapter.layers',
  'experiment.adapter.betaSchedule',
  'experiment.adapter.klScale',
  'experiment.data.dev',
  'experiment.data.trainMix',
]);

/** Probabilities of data.train and each data.trainMix set, in that order (data.train takes the rest). */
export function trainMixProbabilities(c: ExperimentConfig): number[] {
  const mix = c.data.trainMix ?? [];
  return [1 - mix.reduce((a, m) => a + m.p, 0), ...mix.map((m) => m.p)];
}

/** The authors' default -kl_scale (continual-asr whisper/train_bnnlora.py:58). */
export const KL_SCALE_DEFAULT = 1e-4;

/**
 * β from the authors' kl_scale (or the default): β = klScale / gradAccum. Given both, they must agree (a record the
 * studio or CLI wrote has both). Mutates cfg; errors go to e.
 */
function resolveBeta(cfg: ExperimentConfig, json: unknown, e: string[]): void {
  const a = cfg.adapter;
  const given = isObj(json) && isObj(json.adapter) && 'beta' in json.adapter;
  const ga = cfg.optim.gradAccum;
  if (a.klScale === undefined) {
    if (!given && Number.isInteger(ga) && ga >= 1) a.beta = KL_SCALE_DEFAULT / ga;
    return;
  }
  if (!(typeof a.klScale === 'number' && Number.isFinite(a.klScale) && a.klScale >= 0))
    return void e.push(`adapter.klScale must be ≥ 0 (got ${JSON.stringify(a.klScale)})`);
  const beta = a.klScale / ga;
  if (given && !(Math.abs(a.beta - beta) <= 1e-12 * Math.max(1, Math.abs(beta)))) {
    return void e.push(
      `adapter.beta ${a.beta} and adapter.klScale ${a.klScale} disagree: klScale is the authors' kl_scale, β = klScale / optim.gradAccum = ${beta}; give one of them`,
    );
  }
  a.beta = beta;
}

/**
 * The KL weight β of optimizer step `step` (1-based): the last schedule entry with entry.step ≤ step, else
 * adapter.beta. 0 for LoRA (no KL term).
 */
export function betaAt(c: ExperimentConfig, step: number): number {
  if (c.method !== 'blora') return 0;
  let b = c.adapter.beta;
  for (const e of c.adapter.betaSchedule ?? []) {
    if (e.step <= step) b = e.beta;
    else break;
  }
  return b;
}

/**
 * The schedule with {step, beta} put in: an entry at the same step is replaced, later entries stay
 * (a new array; the input is not changed).
 */
export function withBetaEntry(schedule: readonly BetaScheduleEntry[] | undefined, entry: BetaScheduleEntry): BetaScheduleEntry[] {
  const out = (schedule ?? []).filter((e) => e.step !== entry.step);
  out.push({ step: entry.step, beta: entry.beta });
  return out.sort((a, b) => a.step - b.step);
}

function validateBetaSchedule(s: unknown, e: string[]): void {
  const k = 'adapter.betaSchedule';
  if (s === undefined) return;
  if (!Array.isArray(s)) {
    e.push(`${k} must be an array of {step, beta} (got ${JSON.stringify(s)})`);
    return;
  }
  let prev = 0;
  s.forEach((x: unknown, i) => {
    if (!isObj(x)) return void e.push(`${k}[${i}] must be an object {step, beta} (got ${JSON.stringify(x)})`);
    for (const key of Object.keys(x)) if (key !== 'step' && key !== 'beta') e.push(`${k}[${i}].${key}: unknown key`);
    const { step, beta } = x as { step: unknown; beta: unknown };
    if (!(typeof step === 'number' && Number.isInteger(step) && step >= 1))
      e.push(`${k}[${i}].step must be an integer ≥ 1 (got ${JSON.stringify(step)})`);
    else if (step <= prev) e.push(`${k}[${i}].step must be above the previous entry's (${prev}; steps ascending, got ${step})`);
    else prev = step;
    if (!(typeof beta === 'number' && Number.isFinite(beta) && beta >= 0))
      e.push(`${k}[${i}].beta must be a finite number ≥ 0 (got ${JSON.stringify(beta)})`);
  });
}

/** Parse + validate (unknown keys and bad values are errors that name the key); missing keys = defaults. */
export function parseExperiment(json: unknown, source = 'experiment.json'): ExperimentConfig {
  let cfg: ExperimentConfig;
  try {
    cfg = merge(defaultExperiment(), json, 'experiment');
  } catch (e) {
    throw new ExperimentConfigError(`${source}: ${(e as Error).message}`);
  }
  const errs: string[] = [];
  resolveBeta(cfg, json, errs);
  errs.push(...validateExperiment(cfg));
  if (errs.length) throw new ExperimentConfigError(`${source}: ${errs.join('; ')}`);
  return cfg;
}

export function validateExperiment(c: ExperimentConfig): string[] {
  const e: string[] = [];
  const pos = (v: number, k: string) => (!(Number.isFinite(v) && v > 0) ? e.push(`${k} must be > 0 (got ${v})`) : 0);
  const nonneg = (v: number, k: string) => (!(Number.isFinite(v) && v >= 0) ? e.push(`${k} must be ≥ 0 (got ${v})`) : 0);
  const int = (v: number, k: string, min: number) =>
    !(Number.isInteger(v) && v >= min) ? e.push(`${k} must be an integer ≥ ${min} (got ${v})`) : 0;
  if (c.schema !== EXPERIMENT_SCHEMA_VERSION) e.push(`schema ${c.schema} is not ${EXPERIMENT_SCHEMA_VERSION}`);
  if (c.method !== 'lora' && c.method !== 'blora') e.push(`method must be "lora" or "blora" (got ${c.method})`);
  if (!c.data.train) e.push('data.train is required');
  for (const [i, s] of c.data.eval.entries()) {
    if (!s.path) e.push(`data.eval[${i}].path is required`);
    if (s.role !== 'new' && s.role !== 'base') e.push(`data.eval[${i}].role must be "new" or "base" (got ${s.role})`);
  }
  const a = c.adapter;
  if (!a.targets.length) e.push('adapter.targets is empty');
  for (const t of a.targets)
    if (!(ADAPTER_TARGETS as readonly string[]).includes(t))
      e.push(`adapter.targets: unknown target "${t}" (one of ${ADAPTER_TARGETS.join(', ')})`);
  int(a.r, 'adapter.r', 1);
  pos(a.alpha, 'adapter.alpha');
  if (!(a.dropout >= 0 && a.dropout < 1)) e.push(`adapter.dropout must be in [0, 1) (got ${a.dropout})`);
  if (!['flipout', 'bbb', 'lrt'].includes(a.estimator)) e.push(`adapter.estimator must be flipout, bbb or lrt (got ${a.estimator})`);
  pos(a.sigmaPrior, 'adapter.sigmaPrior');
  if (!RHO_B_INITS.includes(a.rhoBInit)) e.push(`adapter.rhoBInit must be ${RHO_B_INITS.join(' or ')} (got ${JSON.stringify(a.rhoBInit)})`);
  nonneg(a.beta, 'adapter.beta');
  if (!(typeof a.klLogEps === 'number' && a.klLogEps >= 0 && a.klLogEps <= 1e-2))
    e.push(`adapter.klLogEps must be in [0, 0.01] (the authors' 1e-6; got ${JSON.stringify(a.klLogEps)})`);
  if (typeof a.freezeRho !== 'boolean') e.push(`adapter.freezeRho must be true or false (got ${JSON.stringify(a.freezeRho)})`);
  validateBetaSchedule(a.betaSchedule, e);
  const o = c.optim;
  pos(o.lr, 'optim.lr');
  nonneg(o.weightDecay, 'optim.weightDecay');
  nonneg(o.maxGradNorm, 'optim.maxGradNorm');
  int(o.warmupSteps, 'optim.warmupSteps', 0);
  int(o.steps, 'optim.steps', 1);
  int(o.batchSize, 'optim.batchSize', 1);
  int(o.gradAccum, 'optim.gradAccum', 1);
  if (!['inverse_sqrt', 'cosine', 'constant'].includes(o.schedule))
    e.push(`optim.schedule must be inverse_sqrt, cosine or constant (got ${o.schedule})`);
  if (!(Number.isInteger(c.seed) && c.seed >= 0)) e.push(`seed must be an integer ≥ 0 (got ${c.seed})`);
  int(c.eval.interval, 'eval.interval', 0);
  int(c.eval.maxNewTokens, 'eval.maxNewTokens', 1);
  int(c.eval.devInterval, 'eval.devInterval', 0);
  int(c.eval.posteriorSamples, 'eval.posteriorSamples', 0);
  if (!EVAL_SELECTS.includes(c.eval.select))
    e.push(`eval.select must be ${EVAL_SELECTS.join(' or ')} (got ${JSON.stringify(c.eval.select)})`);
  const mix = c.data.trainMix;
  if (mix !== undefined && !Array.isArray(mix)) e.push(`data.trainMix must be an array of {path, p, limit?} (got ${JSON.stringify(mix)})`);
  else if (mix) {
    mix.forEach((m, i) => {
      if (!isObj(m) || !m.path) e.push(`data.trainMix[${i}].path is required`);
      else if (!(typeof m.p === 'number' && m.p > 0 && m.p < 1))
        e.push(`data.trainMix[${i}].p must be in (0, 1) (got ${JSON.stringify(m.p)})`);
    });
    const rest = 1 - mix.reduce((a, m) => a + (typeof m?.p === 'number' ? m.p : 0), 0);
    if (!(rest > 0)) e.push(`data.trainMix: the probabilities sum to ${(1 - rest).toPrecision(3)}; data.train needs the rest (> 0)`);
  }
  const dev = c.data.dev;
  if (dev !== undefined && !Array.isArray(dev)) e.push(`data.dev must be an array of {path, name?, limit?} (got ${JSON.stringify(dev)})`);
  else for (const [i, s] of (dev ?? []).entries()) if (!isObj(s) || !s.path) e.push(`data.dev[${i}].path is required`);
  if (c.eval.select === 'dev-ce' && !(Array.isArray(dev) && dev.length)) e.push("eval.select 'dev-ce' needs a dev set (data.dev)");
  if (c.eval.select === 'dev-ce' && !(c.eval.devInterval >= 1))
    e.push("eval.select 'dev-ce' needs eval.devInterval ≥ 1 (dev CE every N steps; the authors' 100)");
  return e;
}

/** One line of metrics.jsonl per optimizer step. */
export interface TrainRecord {
  kind: 'train';
  step: number;
  /** mean token CE of the step's micro-batches */
  ce: number;
  /** Σ per-factor mean KL (unscaled); 0 for LoRA */
  kl: number;
  /** ce + beta·kl */
  loss: number;
  /** the KL weight β of this step (betaAt(config, step); 0 for LoRA). Records written before the β schedule have none */
  beta: number;
  lr: number;
  /** global L2 norm of the gradient before clipping */
  gradNorm: number;
  /** scored target tokens this step */
  tokens: number;
  tokensPerSec: number;
  /** fraction of |μ| < 1e-3 over all elements of A and of B */
  sparsityA: number;
  sparsityB: number;
  elapsedS: number;
  backend: 'engine' | 'torch';
}

/** One line per dev evaluation (eval.devInterval): CE over every dev utterance, posterior means, teacher forcing. */
export interface DevRecord {
  kind: 'dev';
  step: number;
  /** token-mean CE over the dev sets (all of them together) */
  ce: number;
  tokens: number;
  utterances: number;
  backend: 'engine' | 'torch';
}

/** One line per eval set per evaluation (step 0 = before training). */
export interface EvalRecord {
  kind: 'eval';
  step: number;
  set: string;
  role: EvalRole;
  /** word error rate after Whisper's normalizer (fraction, not %) */
  wer: number;
  cer?: number;
  mer?: number;
  /**
   * PIER, the error rate on the embedded-language (code-switched) words (src/metrics/pier.ts), with
   * pierWords the number of such reference words; only when the set has per-word language tags
   */
  pier?: number;
  pierWords?: number;
  utterances: number;
  backend: 'engine' | 'torch';
}

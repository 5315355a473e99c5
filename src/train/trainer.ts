/**
 * The training loop on the WGSL engine (environment-agnostic: the headless CLI and the studio's Web
 * Worker run this same class). See src/train/README.md for the loop order, the accumulation/β rule,
 * reproducibility and checkpoints.
 *
 *   const tr = await Trainer.create({ rt, weights, cache, assets }, cfg, { train, eval }, { onRecord });
 *   await tr.evaluate();                  // step 0: the frozen model
 *   while (tr.step < cfg.optim.steps) await tr.trainStep();
 *   await tr.evaluate();                  // merged posterior means, greedy on the WGSL engine
 *   const files = tr.exportAdapter();     // PEFT adapter_model.safetensors + adapter_config.json (+ BLoRA posterior)
 *
 * One optimizer step t = gradAccum micro-batches (each: setBatch → forward → backward, CE·1/gradAccum
 * and KL·β/gradAccum into the gradients, see src/engine/decoder.ts) → global norm (+ clipping) →
 * AdamW at lr(t) (src/train/schedule.ts). Adapter noise of micro-batch k of step t uses the Philox
 * counter step (t − 1)·gradAccum + k + 1, so every micro-batch draws fresh noise and a run is a pure
 * function of (seed, data, config).
 */
import type { Utterance } from '../data/manifest';
import { type AdapterConfig, type AdapterPlan, moduleTensors, posteriorSample } from '../engine/adapters';
import { type EncoderKvCache, WhisperDecoderEngine } from '../engine/decoder';
import { WgslGreedyDecoder } from '../engine/generate';
import type { DecoderWeights } from '../engine/weights';
import { exportAdapter as exportPeft, type AdapterExport } from '../export/peft';
import type { GpuRuntime } from '../gpu/runtime';
import { editCounts } from '../metrics/align';
import { pierOfTranscripts } from '../metrics/pier';
import { auroc, disagreement, ece, meanEntropy, tokenCorrectness } from '../metrics/uncertainty';
import { computeCer, computeWer, normalizerFor, wordTokens } from '../metrics/wer';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors';
import type { WhisperAssets } from '../model/whisperModel';
import {
  type BetaScheduleEntry,
  betaAt,
  type DevRecord,
  type EvalRecord,
  type EvalRole,
  type ExperimentConfig,
  type TrainRecord,
  withBetaEntry,
} from './config';
import {
  BatchSampler,
  inputLength,
  makeBatch,
  MixSampler,
  type PreparedUtterance,
  type Sampler,
  type SamplerState,
  specialTokens,
} from './data';
import { learningRate } from './schedule';

export type { Utterance };

export interface TrainerDeps {
  rt: GpuRuntime;
  weights: DecoderWeights;
  cache: EncoderKvCache;
  assets: WhisperAssets;
}

export interface EvalSetData {
  name: string;
  role: EvalRole;
  utterances: PreparedUtterance[];
}

export interface TrainerData {
  train: PreparedUtterance[];
  eval: EvalSetData[];
  /**
   * data.train as several training sets one after the other (data.train first, then data.trainMix): their sizes and
   * mixing probabilities (MixSampler). Absent: one set, BatchSampler.
   */
  trainSets?: { n: number; p: number }[];
  /** dev utterances (all dev sets together) for devLoss / eval.select 'dev-ce' */
  dev?: PreparedUtterance[];
}

export interface TrainerProgress {
  phase: 'train' | 'eval';
  /** optimizer steps done */
  step: number;
  steps: number;
  /** eval: utterances decoded of the current set */
  done?: number;
  total?: number;
  message: string;
}

export interface TrainerHooks {
  onRecord(rec: TrainRecord | EvalRecord | DevRecord): void;
  onProgress?(p: TrainerProgress): void;
}

export interface TrainerOptions {
  /** keep an in-memory "last good" checkpoint every N optimizer steps (default 1): NaN/Inf rolls back to it */
  checkpointInterval?: number;
  /** base model name written into adapter_config.json */
  baseModel?: string;
  label?: string;
  /** diagnostics/tests: the summed gradient of each optimizer step, before clipping (reads it back) */
  inspectGrads?(grads: Float32Array, step: number): void;
  /**
   * Tests only: faults injected on purpose (nothing sets this in production; the CLI never does, the studio's
   * worker only when the page was opened with ?test-hooks=1).
   */
  testFaults?: TrainerTestFaults;
}

export interface TrainerTestFaults {
  /** after forward + backward of micro-batch `microBatch` (0-based) of step `step`, before its loss is read (e.g. destroy the device mid-step) */
  afterBackward?(step: number, microBatch: number): void | Promise<void>;
  /** the loss read back at this optimizer step is replaced by NaN (what a diverged step reads) */
  nanLossAtStep?: number;
}

/**
 * The format version of the state. A checksum over theta, m, v and the JSON state is written as its own
 * metadata entry (files written before it have none and stay readable, unverified).
 */
export const CHECKPOINT_VERSION = 1;

/** Everything a resumed run needs to continue bit for bit. */
export interface Checkpoint {
  format: 'blora-studio-checkpoint';
  version: 1;
  /** optimizer steps done */
  step: number;
  theta: Float32Array;
  m: Float32Array;
  v: Float32Array;
  sampler: SamplerState;
  config: ExperimentConfig;
  /** training seconds so far (eval excluded) */
  elapsedS: number;
}

export interface Transcript {
  id: string;
  language: string;
  reference: string;
  hypothesis: string;
}

/** The bytes of a checkpoint do not decode or do not match their checksum (a torn write, a bad disk, a truncated copy). */
export class CheckpointCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly why: string,
  ) {
    super(`${file}: the checkpoint is damaged (${why}); it is not used — the previous checkpoint is, if there is one that verifies`);
    this.name = 'CheckpointCorruptError';
  }
}

/** The GPU device went away (driver reset, another tab, destroy()): the run can go on from its last checkpoint on a new device. */
export class DeviceLostError extends Error {
  constructor(
    readonly step: number,
    readonly reason: string,
    readonly detail: string,
  ) {
    super(`the GPU device was lost during step ${step} (${reason}${detail ? `: ${detail}` : ''})`);
    this.name = 'DeviceLostError';
  }
}

export class TrainingDivergedError extends Error {
  constructor(
    readonly step: number,
    readonly what: string,
    readonly lastGood: Checkpoint,
  ) {
    super(
      `training stopped at step ${step}: ${what} is not finite (NaN/Inf). The adapter was rolled back to the last good ` +
        `checkpoint (step ${lastGood.step}); lower the learning rate (optim.lr) or enable clipping (optim.maxGradNorm).`,
    );
    this.name = 'TrainingDivergedError';
  }
}

/** The engine's adapter config from an experiment. */
export function adapterConfigOf(cfg: ExperimentConfig): AdapterConfig {
  const a = cfg.adapter;
  return {
    kind: cfg.method,
    estimator: a.estimator,
    r: a.r,
    alpha: a.alpha,
    dropout: a.dropout,
    targets: a.targets,
    layers: a.layers,
    bayesianAOnly: a.bayesianAOnly,
    sigmaPrior: a.sigmaPrior,
    rhoBInit: a.rhoBInit,
    klLogEps: a.klLogEps,
    freezeRho: a.freezeRho,
    // β of step 1; a β schedule changes it per step (Trainer.runStep → engine.setBeta, a uniform)
    beta: betaAt(cfg, 1),
    seed: cfg.seed,
  };
}

/** One eval utterance's uncertainty (Trainer.uncertainty). */
export interface UncertaintyRow {
  set: string;
  role: EvalRole;
  id: string;
  reference: string;
  /** the mean adapter's transcript */
  hypothesis: string;
  /** word errors of it (Whisper-normalized) */
  errors: number;
  wrong: boolean;
  /** mean token entropy (nats) of the mean adapter's transcript */
  entropy: number;
  /** mean WER of the K posterior-sample transcripts against it (null: LoRA, no posterior) */
  disagreement: number | null;
  samples: string[];
}

export interface UncertaintyResult {
  /** posterior samples decoded (0 for LoRA) */
  K: number;
  step: number;
  rows: UncertaintyRow[];
  byRole: Partial<
    Record<
      EvalRole,
      {
        utterances: number;
        wrong: number;
        aurocEntropy: number | null;
        aurocDisagreement: number | null;
        ece: number | null;
        tokens: number;
      }
    >
  >;
}

/** The experiment without its β schedule (what a checkpoint must match to be restored into a run). */
function withoutSchedule(c: ExperimentConfig): ExperimentConfig {
  const { betaSchedule: _s, ...adapter } = c.adapter;
  return { ...c, adapter };
}

/**
 * The β schedule a restored run follows: the checkpoint's entries up to its step (what the run did), and
 * after it the checkpoint's entries with the run's own ones over them (a change made after the checkpoint
 * was written, e.g. the studio's live control before a reload). Undefined when neither has one.
 */
export function mergeBetaSchedules(
  ck: BetaScheduleEntry[] | undefined,
  own: BetaScheduleEntry[] | undefined,
  ckStep: number,
): BetaScheduleEntry[] | undefined {
  if (!ck && !own) return undefined;
  let out = (ck ?? []).map((e) => ({ ...e }));
  for (const e of own ?? []) if (e.step > ckStep) out = withBetaEntry(out, e);
  return out;
}

/** Fraction of |μ_A| (|A|) and |μ_B| (|B|) below `thr` over all modules. */
export function adapterSparsity(plan: AdapterPlan, theta: Float32Array, thr = 1e-3): { a: number; b: number } {
  let na = 0,
    za = 0,
    nb = 0,
    zb = 0;
  for (const m of plan.modules) {
    for (const t of moduleTensors(plan, m, theta)) {
      if (t.key === 'rhoA' || t.key === 'rhoB') continue;
      const isA = t.key === 'A' || t.key === 'muA';
      let z = 0;
      for (const x of t.data) if (Math.abs(x) < thr) z++;
      if (isA) ((na += t.data.length), (za += z));
      else ((nb += t.data.length), (zb += z));
    }
  }
  return { a: na ? za / na : 0, b: nb ? zb / nb : 0 };
}

/** Fraction of |ΔW| = |s·μ_B·μ_A| below `thr` over all adapted weights (float64 products). */
export function deltaWSparsity(plan: AdapterPlan, theta: Float32Array, thr = 1e-3): number {
  const { r, alpha } = plan.config;
  const s = alpha / r;
  let n = 0,
    z = 0;
  for (const m of plan.modules) {
    const A = theta.subarray(m.off.muA, m.off.muA + r * m.nIn);
    const B = theta.subarray(m.off.muB, m.off.muB + m.nOut * r);
    for (let o = 0; o < m.nOut; o++) {
      for (let i = 0; i < m.nIn; i++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += B[o * r + k] * A[k * m.nIn + i];
        if (Math.abs(s * acc) < thr) z++;
      }
    }
    n += m.nOut * m.nIn;
  }
  return n ? z / n : 0;
}

export interface MuHistogram {
  /** bin edges in log10|μ| (length bins + 1); the first bin also holds |μ| below edges[0] (and 0) */
  edges: number[];
  a: number[];
  b: number[];
}

/** Histogram of log10|μ| of the A and B factors (the UI's sparsity chart). */
export function muHistogram(
  plan: AdapterPlan,
  theta: Float32Array,
  opts: { lo?: number; hi?: number; binsPerDecade?: number } = {},
): MuHistogram {
  const lo = opts.lo ?? -8;
  const hi = opts.hi ?? 1;
  const per = opts.binsPerDecade ?? 4;
  const bins = Math.round((hi - lo) * per);
  const edges = Array.from({ length: bins + 1 }, (_, i) => lo + i / per);
  const a = new Array<number>(bins).fill(0);
  const b = new Array<number>(bins).fill(0);
  for (const m of plan.modules) {
    for (const t of moduleTensors(plan, m, theta)) {
      if (t.key === 'rhoA' || t.key === 'rhoB') continue;
      const h = t.key === 'A' || t.key === 'muA' ? a : b;
      for (const x of t.data) {
        const l = Math.log10(Math.abs(x));
        h[Math.min(bins - 1, Math.max(0, Math.floor((l - lo) * per)))]++;
      }
    }
  }
  return { edges, a, b };
}

/** FNV-1a (32 bit) over byte ranges: detects torn or truncated checkpoint files (not tampering). */
function fnv1a32(parts: Uint8Array[]): string {
  let h = 0x811c9dc5;
  for (const p of parts) for (let i = 0; i < p.length; i++) h = Math.imul(h ^ p[i], 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function checksumOf(state: string, theta: Float32Array, m: Float32Array, v: Float32Array): string {
  return `fnv1a32:${fnv1a32([new TextEncoder().encode(state), bytesOf(theta), bytesOf(m), bytesOf(v)])}`;
}

/** Checkpoint ⇄ bytes (a safetensors file: theta, m, v + the JSON state and a checksum of all of it as metadata). */
export function encodeCheckpoint(ck: Checkpoint): Uint8Array {
  const t = (data: Float32Array) => ({ shape: [data.length], data });
  const { theta, m, v, ...rest } = ck;
  const state = JSON.stringify(rest);
  return writeSafetensors({ theta: t(theta), m: t(m), v: t(v) }, { checkpoint: state, checksum: checksumOf(state, theta, m, v) });
}

/** Throws CheckpointCorruptError for damaged bytes, a plain Error for a file that is no checkpoint of this format. */
export function decodeCheckpoint(bytes: Uint8Array, file = 'checkpoint.safetensors'): Checkpoint {
  let st: SafetensorsFile;
  try {
    st = new SafetensorsFile(bytes, file);
  } catch (e) {
    throw new CheckpointCorruptError(file, `${(e as Error).message.replace(`${file}: `, '')}; ${bytes.byteLength} bytes`);
  }
  const meta = st.metadata.checkpoint;
  if (!meta) throw new Error(`${file}: not a blora-studio checkpoint (no "checkpoint" metadata)`);
  let rest: Omit<Checkpoint, 'theta' | 'm' | 'v'>;
  try {
    rest = JSON.parse(meta);
  } catch (e) {
    throw new CheckpointCorruptError(file, `its state is not JSON: ${(e as Error).message}`);
  }
  if (rest.format !== 'blora-studio-checkpoint' || rest.version !== CHECKPOINT_VERSION) {
    throw new Error(
      `${file}: unknown checkpoint format ${rest.format} v${rest.version} (this studio reads v${CHECKPOINT_VERSION}; written by a newer version?)`,
    );
  }
  const ck = { ...rest, theta: st.float32('theta'), m: st.float32('m'), v: st.float32('v') } as Checkpoint;
  const want = st.metadata.checksum;
  if (want !== undefined) {
    const got = checksumOf(meta, ck.theta, ck.m, ck.v);
    if (got !== want) throw new CheckpointCorruptError(file, `checksum ${got} ≠ the recorded ${want}`);
  }
  return ck;
}

/** One stored generation of a run's checkpoint (newest first); `bytes` undefined when there is none. */
export interface CheckpointGeneration {
  name: string;
  bytes: Uint8Array | undefined;
}

/**
 * The newest generation that decodes and verifies; damaged ones are skipped with their reason (the caller
 * logs them). Null when none is usable — the run starts over. A file of another format still throws.
 */
export function pickCheckpoint(gens: CheckpointGeneration[]): { ck: Checkpoint; name: string; skipped: string[] } | null {
  const skipped: string[] = [];
  for (const g of gens) {
    if (!g.bytes) continue;
    try {
      return { ck: decodeCheckpoint(g.bytes, g.name), name: g.name, skipped };
    } catch (e) {
      if (!(e instanceof CheckpointCorruptError)) throw e;
      skipped.push(e.message);
    }
  }
  return null;
}

/** Word/character error rate of one eval set; utterances grouped by language for the normalizer. */
export function scoreTranscripts(ts: Transcript[]): { wer: number; cer: number } {
  const groups = new Map<string, Transcript[]>();
  for (const t of ts) groups.set(t.language, [...(groups.get(t.language) ?? []), t]);
  let we = 0,
    wn = 0,
    ce = 0,
    cn = 0;
  for (const [language, g] of groups) {
    const w = computeWer(
      g.map((x) => x.reference),
      g.map((x) => x.hypothesis),
      { language },
    );
    const c = computeCer(
      g.map((x) => x.reference),
      g.map((x) => x.hypothesis),
      { language },
    );
    we += w.substitutions + w.deletions + w.insertions;
    wn += w.refTokens;
    ce += c.substitutions + c.deletions + c.insertions;
    cn += c.refTokens;
  }
  return { wer: wn ? we / wn : 0, cer: cn ? ce / cn : 0 };
}

/** The greedy decoder API of src/engine/generate.ts that evaluation uses. */
interface GreedyDecoderLike {
  setAdapter(plan: AdapterPlan | null, theta: Float32Array | null): Promise<void> | void;
  generate(
    reqs: { utterance: string; language: string | null }[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ text: string; tokens?: number[]; tokenProbs?: number[]; tokenEntropy?: number[] }[]>;
  destroy(): void;
}

async function createGreedy(
  deps: TrainerDeps,
  opts: { maxBatch: number; maxNewTokens: number; label: string },
): Promise<GreedyDecoderLike> {
  return WgslGreedyDecoder.create(deps.rt, deps.weights, deps.cache, deps.assets, opts);
}

export class Trainer {
  /** optimizer steps done */
  step = 0;
  /** training seconds (eval excluded) */
  elapsedS = 0;
  /** transcripts of the last evaluate(), per eval set */
  lastTranscripts: Record<string, Transcript[]> = {};
  /** the lowest dev CE so far and the adapter values at it (eval.select 'dev-ce') */
  bestDev: { step: number; ce: number; theta: Float32Array } | null = null;
  /** KL of the last step (unscaled Σ of per-factor means) */
  lastKl = 0;
  /** the last step whose β is fixed (in flight or done): a live β change applies from the step after it */
  private betaFixedThrough = 0;
  private lastGood: Checkpoint;
  private greedy: GreedyDecoderLike | null = null;
  private theta: Float32Array | null = null;
  /** set when the device reports loss (device.lost resolved) */
  private lost: { reason: string; message: string } | null = null;

  private constructor(
    readonly deps: TrainerDeps,
    /** the run's experiment; its adapter.betaSchedule grows with setBeta (a new object each time) */
    public config: ExperimentConfig,
    readonly data: TrainerData,
    readonly hooks: TrainerHooks,
    readonly engine: WhisperDecoderEngine,
    readonly sampler: Sampler,
    readonly S: number,
    readonly opts: TrainerOptions,
    init: Checkpoint,
  ) {
    this.lastGood = init;
    deps.rt.device.lost.then((i) => (this.lost = { reason: String(i.reason), message: i.message }));
  }

  /** The device's loss as a DeviceLostError when `e` (any error of GPU work) was caused by it, else null. */
  async deviceLoss(e?: unknown): Promise<DeviceLostError | null> {
    if (e instanceof DeviceLostError) return e;
    // A failed map / an aborted read-back comes before or just after device.lost settles: give it a moment.
    if (!this.lost && e !== undefined) await Promise.race([this.deps.rt.device.lost, new Promise((r) => setTimeout(r, 1000))]);
    return this.lost ? new DeviceLostError(this.step + 1, this.lost.reason, this.lost.message) : null;
  }

  get plan(): AdapterPlan {
    return this.engine.plan;
  }

  static async create(
    deps: TrainerDeps,
    cfg: ExperimentConfig,
    data: TrainerData,
    hooks: TrainerHooks,
    opts: TrainerOptions = {},
  ): Promise<Trainer> {
    if (!data.train.length) throw new Error('Trainer: no training utterances (all rows rejected?)');
    const o = cfg.optim;
    // S covers the dev utterances too (devLoss runs them through the training engine's B × S batch)
    const S = Math.max(...data.train.map(inputLength), ...(data.dev ?? []).map(inputLength));
    const engine = await WhisperDecoderEngine.create(deps.rt, deps.weights, { B: o.batchSize, S }, adapterConfigOf(cfg), deps.cache, {
      initSeed: cfg.seed,
      hyper: { lr: o.lr, beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay },
      maxGradNorm: o.maxGradNorm,
      gradAccum: o.gradAccum,
      label: opts.label ?? 'trainer',
    });
    const sets = data.trainSets;
    if (sets && sets.reduce((a, x) => a + x.n, 0) !== data.train.length)
      throw new Error(`Trainer: trainSets cover ${sets.reduce((a, x) => a + x.n, 0)} utterances, data.train has ${data.train.length}`);
    const sampler: Sampler =
      sets && sets.length > 1
        ? new MixSampler(
            sets.map((x) => x.n),
            sets.map((x) => x.p),
            o.batchSize,
            cfg.seed,
          )
        : new BatchSampler(data.train.length, o.batchSize, cfg.seed);
    const st = await engine.readState();
    const init: Checkpoint = {
      format: 'blora-studio-checkpoint',
      version: CHECKPOINT_VERSION,
      step: 0,
      ...st,
      sampler: sampler.state,
      config: cfg,
      elapsedS: 0,
    };
    const tr = new Trainer(deps, cfg, data, hooks, engine, sampler, S, opts, init);
    tr.theta = st.theta;
    return tr;
  }

  /**
   * One optimizer step (gradAccum micro-batches); emits and returns its TrainRecord. Throws
   * TrainingDivergedError (rolled back to the last good state) or DeviceLostError (nothing recorded).
   */
  async trainStep(): Promise<TrainRecord> {
    let rec: TrainRecord;
    try {
      rec = await this.runStep();
    } catch (e) {
      if (e instanceof TrainingDivergedError) throw e;
      throw (await this.deviceLoss(e)) ?? e;
    }
    // A lost device can also read back zeros without an error: never record such a step.
    const lost = await this.deviceLoss();
    if (lost) throw lost;
    this.commit(rec);
    return rec;
  }

  /** what runStep() read back, committed by trainStep() once the device is known to have been alive */
  private pending: { rec: TrainRecord; theta: Float32Array; kl: number; sec: number } | null = null;
  private pendingState: { theta: Float32Array; m: Float32Array; v: Float32Array } | null = null;

  private async runStep(): Promise<TrainRecord> {
    const cfg = this.config;
    const o = cfg.optim;
    const t = this.step + 1;
    const lr = learningRate({ lr: o.lr, warmupSteps: o.warmupSteps, schedule: o.schedule, steps: o.steps }, t);
    // β of this step from the schedule: a uniform of the KL kernels, rewritten before the step's work
    // (synchronously, before any await: a live change arriving during this step goes to the next one)
    const beta = betaAt(cfg, t);
    this.betaFixedThrough = Math.max(this.betaFixedThrough, t);
    this.engine.setBeta(beta);
    const eot = specialTokens(this.deps.assets).eot;
    const t0 = performance.now();
    let ce = 0;
    let kl = 0;
    let tokens = 0;
    for (let k = 0; k < o.gradAccum; k++) {
      const utts = this.sampler.next().map((i) => this.data.train[i]);
      const batch = makeBatch(utts, this.S, eot);
      const rngStep = (t - 1) * o.gradAccum + k + 1;
      this.engine.setBatch(batch);
      this.engine.forward(rngStep);
      this.engine.backward(rngStep);
      await this.opts.testFaults?.afterBackward?.(t, k);
      const L = await this.engine.readLoss();
      if (this.opts.testFaults?.nanLossAtStep === t) L.ce = NaN;
      if (!Number.isFinite(L.ce) || !Number.isFinite(L.kl)) await this.diverged(t, !Number.isFinite(L.ce) ? 'the cross-entropy' : 'the KL');
      ce += L.ce / o.gradAccum;
      kl = L.kl;
      tokens += L.count;
    }
    if (this.opts.inspectGrads) this.opts.inspectGrads(await this.engine.readGrads(), t);
    this.engine.optimizerStep(t, lr);
    const gradNorm = await this.engine.readGradNorm();
    if (!Number.isFinite(gradNorm)) await this.diverged(t, 'the gradient norm');
    const theta = await this.engine.readTheta();
    const sec = (performance.now() - t0) / 1000;
    const lastGood = t % (this.opts.checkpointInterval ?? 1) === 0 ? await this.engine.readState() : null;
    const sp = adapterSparsity(this.plan, theta);
    const rec: TrainRecord = {
      kind: 'train',
      step: t,
      ce,
      kl,
      loss: ce + beta * kl,
      beta,
      lr,
      gradNorm,
      tokens,
      tokensPerSec: tokens / sec,
      sparsityA: sp.a,
      sparsityB: sp.b,
      elapsedS: this.elapsedS + sec,
      backend: 'engine',
    };
    this.pending = { rec, theta, kl, sec };
    this.pendingState = lastGood;
    return rec;
  }

  /** The step's state becomes the trainer's (only once its read-backs are known to come from a live device). */
  private commit(rec: TrainRecord): void {
    const p = this.pending!;
    this.pending = null;
    this.step = rec.step;
    this.elapsedS += p.sec;
    this.theta = p.theta;
    this.lastKl = p.kl;
    if (this.pendingState) {
      this.lastGood = {
        format: 'blora-studio-checkpoint',
        version: CHECKPOINT_VERSION,
        step: this.step,
        ...this.pendingState,
        sampler: this.sampler.state,
        config: this.config,
        elapsedS: this.elapsedS,
      };
    }
    this.pendingState = null;
    this.hooks.onRecord(rec);
    this.hooks.onProgress?.({
      phase: 'train',
      step: rec.step,
      steps: this.config.optim.steps,
      message: `step ${rec.step}/${this.config.optim.steps} ce ${rec.ce.toFixed(4)}`,
    });
  }

  private async diverged(step: number, what: string): Promise<never> {
    this.engine.setState({ theta: this.lastGood.theta, m: this.lastGood.m, v: this.lastGood.v });
    this.sampler.state = this.lastGood.sampler;
    this.step = this.lastGood.step;
    this.theta = this.lastGood.theta;
    throw new TrainingDivergedError(step, what, { ...this.lastGood, config: this.config });
  }

  /**
   * A live β change (the studio's Run view): β = `beta` from the next step not yet begun — the step after the
   * one in flight, if any — on. Put into the run's config as a schedule entry (so checkpoints, the exported
   * experiment.json and a resumed run keep it); a later entry of the schedule still applies at its step.
   * Returns the entry and the schedule now.
   */
  setBeta(beta: number): { entry: BetaScheduleEntry; schedule: BetaScheduleEntry[] } {
    if (this.config.method !== 'blora') throw new Error('β is the KL weight of BLoRA; this run is LoRA (no KL term)');
    if (!(typeof beta === 'number' && Number.isFinite(beta) && beta >= 0)) throw new Error(`β must be a finite number ≥ 0 (got ${beta})`);
    const entry = { step: Math.max(this.step, this.betaFixedThrough) + 1, beta };
    const schedule = withBetaEntry(this.config.adapter.betaSchedule, entry);
    this.config = { ...this.config, adapter: { ...this.config.adapter, betaSchedule: schedule } };
    return { entry, schedule };
  }

  /**
   * Dev CE (data.dev): teacher-forced token-mean CE over every dev utterance with the posterior means (LoRA: the
   * adapter), in the training engine's B × S batches — a last partial batch is filled with copies whose labels are
   * ignored. Emits a DevRecord and keeps the lowest (bestDev). Null without dev data.
   */
  async devLoss(): Promise<DevRecord | null> {
    const dev = this.data.dev;
    if (!dev?.length) return null;
    const B = this.config.optim.batchSize;
    const S = this.S;
    const eot = specialTokens(this.deps.assets).eot;
    let sum = 0;
    let tokens = 0;
    for (let i = 0; i < dev.length; i += B) {
      const chunk = dev.slice(i, i + B);
      const real = chunk.length;
      while (chunk.length < B) chunk.push(chunk[0]);
      const batch = makeBatch(chunk, S, eot);
      for (let b = real; b < B; b++) (batch.labels as Int32Array).fill(-100, b * S, (b + 1) * S);
      this.engine.setBatch(batch);
      this.engine.forward(0, { eval: true });
      const L = await this.engine.readLoss();
      sum += L.ce * L.count;
      tokens += L.count;
    }
    const rec: DevRecord = { kind: 'dev', step: this.step, ce: sum / tokens, tokens, utterances: dev.length, backend: 'engine' };
    if (!Number.isFinite(rec.ce)) throw new Error(`dev CE at step ${this.step} is ${rec.ce}`);
    if (!this.bestDev || rec.ce < this.bestDev.ce) this.bestDev = { step: this.step, ce: rec.ce, theta: await this.readTheta() };
    this.hooks.onRecord(rec);
    return rec;
  }

  /** eval.select 'dev-ce': the adapter becomes the one of the lowest dev CE (its step returned); otherwise the step now. */
  selectAdapter(): number {
    if (this.config.eval.select !== 'dev-ce' || !this.bestDev || this.bestDev.step === this.step) return this.step;
    this.engine.setTheta(this.bestDev.theta);
    this.theta = this.bestDev.theta;
    // checkpoint() hands out the last good state of this step: it is the selected adapter from now on
    if (this.lastGood.step === this.step) this.lastGood = { ...this.lastGood, theta: this.bestDev.theta };
    return this.bestDev.step;
  }

  /**
   * WER/CER of every eval set with the current adapter merged (posterior means; step 0 = the frozen
   * model), greedy decoding on the WGSL engine. Emits one EvalRecord per set.
   */
  async evaluate(): Promise<EvalRecord[]> {
    const sets = this.data.eval;
    if (!sets.length) return [];
    const greedy = await this.greedyDecoder();
    await greedy.setAdapter(this.step === 0 ? null : this.plan, this.step === 0 ? null : await this.readTheta());
    const names = sets.map((s) => s.name).join(' + ');
    const report = (done: number, total: number) =>
      this.hooks.onProgress?.({
        phase: 'eval',
        step: this.step,
        steps: this.config.optim.steps,
        done,
        total,
        message: `eval ${names} ${done}/${total}`,
      });
    const hyps = await this.decodeEvalSets(greedy, report);
    const out: EvalRecord[] = [];
    sets.forEach((set, k) => {
      const ts = set.utterances.map((u, i) => ({ id: u.id, language: u.language, reference: u.text, hypothesis: hyps[k][i] }));
      this.lastTranscripts[set.name] = ts;
      const { wer, cer } = scoreTranscripts(ts);
      const rec: EvalRecord = {
        kind: 'eval',
        step: this.step,
        set: set.name,
        role: set.role,
        wer,
        cer,
        utterances: set.utterances.length,
        backend: 'engine',
      };
      // PIER (code-switched words), when the set's references carry per-word language tags
      const pier = pierOfTranscripts(ts.map((t, i) => ({ ...t, wordLangs: set.utterances[i].wordLangs })));
      if (pier) Object.assign(rec, pier);
      this.hooks.onRecord(rec);
      out.push(rec);
    });
    return out;
  }

  /**
   * WER/CER of every eval set with other adapter values merged (e.g. an SNR-pruned copy of theta), without
   * records or a change of state: what the export view shows as the WER a pruning costs. The eval sets'
   * K/V must be in the cache.
   */
  async evaluateValues(
    values: Float32Array,
    onProgress?: (message: string) => void,
  ): Promise<{ set: string; role: EvalRole; wer: number; cer: number; utterances: number }[]> {
    if (values.length !== this.plan.size) throw new Error(`evaluateValues: ${values.length} values, the adapter has ${this.plan.size}`);
    const greedy = await this.greedyDecoder();
    await greedy.setAdapter(this.plan, values);
    const names = this.data.eval.map((s) => s.name).join(' + ');
    const hyps = await this.decodeEvalSets(greedy, (d, n) => onProgress?.(`eval ${names} ${d}/${n}`));
    return this.data.eval.map((set, k) => {
      const { wer, cer } = scoreTranscripts(
        set.utterances.map((u, i) => ({ id: u.id, language: u.language, reference: u.text, hypothesis: hyps[k][i] })),
      );
      return { set: set.name, role: set.role, wer, cer, utterances: set.utterances.length };
    });
  }

  /**
   * Greedy transcripts of every eval set's utterances, per set: ONE generate() over the sets' utterances
   * together, so small sets share token steps (a step of B rows costs far less than B steps of one row —
   * on llvmpipe 2 rows ≈ 1.3× one). Rows are independent in the decoder, so a transcript does not depend
   * on which utterances share its batch.
   */
  private async decodeEvalSets(greedy: GreedyDecoderLike, onProgress: (done: number, total: number) => void): Promise<string[][]> {
    const sets = this.data.eval;
    const reqs = sets.flatMap((set) => set.utterances.map((u) => ({ utterance: u.key, language: u.language })));
    const res = await greedy.generate(reqs, onProgress);
    let at = 0;
    return sets.map((set) => res.slice(at, (at += set.utterances.length)).map((r) => r.text));
  }

  /** The greedy decoder of the eval sets (made on first use; batches up to 8 utterances). */
  private async greedyDecoder(): Promise<GreedyDecoderLike> {
    if (!this.greedy) {
      const maxBatch = Math.max(
        1,
        Math.min(
          8,
          this.data.eval.reduce((n, s) => n + s.utterances.length, 0),
        ),
      );
      this.greedy = await createGreedy(this.deps, {
        maxBatch,
        maxNewTokens: this.config.eval.maxNewTokens,
        label: `${this.opts.label ?? 'trainer'}:eval`,
      });
    }
    return this.greedy;
  }

  /**
   * Greedy transcripts of utterances whose cross-attention K/V are in the cache (e.g. a clip the user just
   * dropped), by the frozen model and with the current adapter merged — the Try-it comparison.
   */
  async transcribeFrozenAndAdapted(utts: { key: string; language: string | null }[]): Promise<{ frozen: string[]; adapted: string[] }> {
    const greedy = await this.greedyDecoder();
    const reqs = utts.map((u) => ({ utterance: u.key, language: u.language }));
    const out: string[][] = [];
    for (const adapted of [false, true]) {
      await greedy.setAdapter(adapted ? this.plan : null, adapted ? await this.readTheta() : null);
      out.push((await greedy.generate(reqs)).map((r) => r.text)); // chunks of maxBatch inside
    }
    return { frozen: out[0], adapted: out[1] };
  }

  /**
   * Uncertainty from the posterior on every eval set (src/metrics/uncertainty.ts has the definitions): the mean
   * adapter's transcript with its token probabilities and entropies, and for BLoRA K transcripts of posterior
   * samples (posteriorSample, seeds seed·1000 + k); per utterance its error flag, entropy and disagreement; per
   * domain the AUROC of each score for "has an error" and the token ECE. The decoder holds the mean adapter again
   * afterwards. The eval sets' K/V must be in the cache. `only`: the eval sets to score (default: all).
   */
  async uncertainty(
    K: number,
    seed = this.config.seed,
    onProgress?: (message: string) => void,
    only?: (setName: string) => boolean,
  ): Promise<UncertaintyResult> {
    const sets = this.data.eval.filter((s) => !only || only(s.name));
    const reqs = sets.flatMap((s) => s.utterances.map((u) => ({ utterance: u.key, language: u.language })));
    const { mean, samples } = await this.decodeWithPosterior(reqs, K, seed, onProgress);
    const eot = specialTokens(this.deps.assets).eot;
    const rows: UncertaintyRow[] = [];
    const tok: Record<string, { p: number[]; ok: boolean[] }> = {};
    let at = 0;
    for (const set of sets) {
      for (const u of set.utterances) {
        const r = mean[at];
        const lang = u.language ?? 'en';
        const norm = normalizerFor(lang);
        const c = editCounts(wordTokens(norm(u.text)), wordTokens(norm(r.text)));
        const errors = c.substitutions + c.deletions + c.insertions;
        const toks = r.tokens ?? [];
        const ent = (r.tokenEntropy ?? []).filter((_, k) => toks[k] !== eot);
        const probs = (r.tokenProbs ?? []).filter((_, k) => toks[k] !== eot);
        const pieces = toks
          .filter((t) => t !== eot)
          .map((t) => this.deps.assets.tokenizer.decode([t], { skip_special_tokens: true, clean_up_tokenization_spaces: false }));
        const correct = tokenCorrectness(pieces, u.text, lang);
        const acc = (tok[set.role] ??= { p: [], ok: [] });
        correct.forEach((ok, k) => {
          if (ok === null || probs[k] === undefined) return;
          acc.p.push(probs[k]);
          acc.ok.push(ok);
        });
        rows.push({
          set: set.name,
          role: set.role,
          id: u.id,
          reference: u.text,
          hypothesis: r.text,
          errors,
          wrong: errors > 0,
          entropy: meanEntropy(ent),
          disagreement: samples.length
            ? disagreement(
                r.text,
                samples.map((s) => s[at]),
                lang,
              )
            : null,
          samples: samples.map((s) => s[at]),
        });
        at++;
      }
    }
    const byRole: UncertaintyResult['byRole'] = {};
    for (const role of ['new', 'base'] as EvalRole[]) {
      const rs = rows.filter((r) => r.role === role);
      if (!rs.length) continue;
      const wrong = rs.map((r) => r.wrong);
      const e = ece(tok[role]?.p ?? [], tok[role]?.ok ?? []);
      byRole[role] = {
        utterances: rs.length,
        wrong: wrong.filter(Boolean).length,
        aurocEntropy: auroc(
          rs.map((r) => r.entropy),
          wrong,
        ),
        aurocDisagreement: samples.length
          ? auroc(
              rs.map((r) => r.disagreement!),
              wrong,
            )
          : null,
        ece: e.ece,
        tokens: e.n,
      };
    }
    return { K: samples.length, step: this.step, rows, byRole };
  }

  /**
   * Greedy transcripts (with token probabilities and entropies) of `reqs` by the mean adapter, and for BLoRA the
   * transcripts of K posterior samples (seeds seed·1000 + k); the decoder holds the mean adapter afterwards.
   */
  private async decodeWithPosterior(
    reqs: { utterance: string; language: string | null }[],
    K: number,
    seed: number,
    onProgress?: (message: string) => void,
  ): Promise<{ mean: Awaited<ReturnType<GreedyDecoderLike['generate']>>; samples: string[][] }> {
    const greedy = await this.greedyDecoder();
    const theta = await this.readTheta();
    const bayes = this.plan.config.kind === 'blora' && this.plan.klFactors.length > 0 && this.step > 0;
    const meanAdapter = () => greedy.setAdapter(this.step === 0 ? null : this.plan, this.step === 0 ? null : theta);
    await meanAdapter();
    onProgress?.(`uncertainty: the mean adapter on ${reqs.length} utterance(s)`);
    const mean = await greedy.generate(reqs);
    const samples: string[][] = [];
    try {
      for (let k = 1; bayes && k <= K; k++) {
        onProgress?.(`uncertainty: posterior sample ${k}/${K}`);
        await greedy.setAdapter(this.plan, posteriorSample(this.plan, theta, seed * 1000 + k));
        samples.push((await greedy.generate(reqs)).map((r) => r.text));
      }
    } finally {
      await meanAdapter();
    }
    return { mean, samples };
  }

  /**
   * Try it: an utterance whose K/V are in the cache by the frozen model and by the adapter, with the adapter's
   * uncertainty (mean token entropy; BLoRA: disagreement of K posterior samples, src/metrics/uncertainty.ts).
   */
  async tryUtterance(
    u: { key: string; language: string },
    K: number,
  ): Promise<{ frozen: string; adapted: string; entropy: number; disagreement: number | null; samples: string[] }> {
    // the frozen model once; the adapter's transcript is the mean decode of decodeWithPosterior (not decoded twice)
    const req = { utterance: u.key, language: u.language };
    const greedy = await this.greedyDecoder();
    await greedy.setAdapter(null, null);
    const frozen = [(await greedy.generate([req]))[0].text];
    const { mean, samples } = await this.decodeWithPosterior([req], K, this.config.seed);
    const eot = specialTokens(this.deps.assets).eot;
    const r = mean[0];
    const ent = (r.tokenEntropy ?? []).filter((_, k) => (r.tokens ?? [])[k] !== eot);
    return {
      frozen: frozen[0],
      adapted: r.text,
      entropy: meanEntropy(ent),
      disagreement: samples.length
        ? disagreement(
            r.text,
            samples.map((s) => s[0]),
            u.language,
          )
        : null,
      samples: samples.map((s) => s[0]),
    };
  }

  /** The adapter values now (theta in the plan's layout). */
  async readTheta(): Promise<Float32Array> {
    this.theta ??= await this.engine.readTheta();
    return this.theta;
  }

  async checkpoint(): Promise<Checkpoint> {
    // The last good state is read back after every step (checkpointInterval 1): no second read-back.
    if (this.lastGood.step === this.step) return { ...this.lastGood, config: this.config };
    const st = await this.engine.readState();
    return {
      format: 'blora-studio-checkpoint',
      version: CHECKPOINT_VERSION,
      step: this.step,
      ...st,
      sampler: this.sampler.state,
      config: this.config,
      elapsedS: this.elapsedS,
    };
  }

  /**
   * Continue from a checkpoint of this configuration: the next trainStep() is bit-identical to the original
   * run's. The β schedule may differ (mergeBetaSchedules: the checkpoint's up to its step, then this run's
   * entries over the checkpoint's); everything else must match.
   */
  restore(ck: Checkpoint): void {
    if (ck.theta.length !== this.plan.size)
      throw new Error(`checkpoint has ${ck.theta.length} adapter values, this run ${this.plan.size} (another adapter configuration?)`);
    if (JSON.stringify(withoutSchedule(ck.config)) !== JSON.stringify(withoutSchedule(this.config)))
      throw new Error('checkpoint was written by another experiment configuration');
    const schedule = mergeBetaSchedules(ck.config.adapter.betaSchedule, this.config.adapter.betaSchedule, ck.step);
    const { betaSchedule: _s, ...adapter } = this.config.adapter;
    this.config = { ...this.config, adapter: schedule ? { ...adapter, betaSchedule: schedule } : adapter };
    this.betaFixedThrough = ck.step;
    this.engine.setState({ theta: ck.theta, m: ck.m, v: ck.v });
    this.sampler.state = ck.sampler;
    this.step = ck.step;
    this.elapsedS = ck.elapsedS;
    this.theta = ck.theta;
    this.lastGood = { ...ck, config: this.config };
  }

  /** Histogram of log10|μ| of A and B now. */
  async histogram(opts?: Parameters<typeof muHistogram>[2]): Promise<MuHistogram> {
    return muHistogram(this.plan, await this.readTheta(), opts);
  }

  /** The adapter as PEFT files (means) + BLoRA posterior, and its description; `values`: other adapter values (e.g. pruned). */
  async exportAdapter(values?: Float32Array): Promise<{ files: Record<string, Uint8Array | string>; adapter: AdapterExport }> {
    const theta = values ?? (await this.readTheta());
    const plan = this.plan;
    const c = plan.config;
    const adapter: AdapterExport = {
      method: c.kind,
      r: c.r,
      alpha: c.alpha,
      dropout: c.dropout,
      baseModel: this.opts.baseModel ?? 'openai/whisper-base',
      modules: plan.modules.map((m) => {
        const ts = Object.fromEntries(moduleTensors(plan, m, theta).map((x) => [x.key, new Float32Array(x.data)]));
        return { name: m.name, inFeatures: m.nIn, outFeatures: m.nOut, A: ts.A ?? ts.muA, B: ts.B ?? ts.muB, rhoA: ts.rhoA, rhoB: ts.rhoB };
      }),
      blora:
        c.kind === 'blora'
          ? {
              priorSigma: c.sigmaPrior,
              estimator: c.estimator,
              bayesianAOnly: c.bayesianAOnly,
              beta: betaAt(this.config, Math.max(1, this.step)),
            }
          : undefined,
    };
    return { files: exportPeft(adapter), adapter };
  }

  destroy(): void {
    this.greedy?.destroy();
    this.greedy = null;
    this.engine.destroy();
  }
}

/** How the recovery loop persists and finds checkpoints, rebuilds on a new device, and reports. */
export interface RecoveryOptions {
  /** device losses the run survives before it stops (default DEFAULT_MAX_RECOVERIES) */
  maxRecoveries?: number;
  /** persist a checkpoint as the newest generation (the previous newest stays as the fallback) */
  save(ck: Checkpoint): Promise<void>;
  /** the newest stored checkpoint that verifies (pickCheckpoint), or null: the run starts over */
  load(): Promise<Checkpoint | null>;
  /** a fresh Trainer at step 0 on a new device: weights, K/V cache and data uploaded again */
  rebuild(cause: DeviceLostError, attempt: number): Promise<Trainer>;
  /** whether to persist after this step (default: every step); the end of the run always is */
  shouldSave?(t: Trainer, rec: TrainRecord): boolean;
  /** after each step and its checkpoint: histograms, evaluations at intervals … */
  afterStep?(t: Trainer, rec: TrainRecord): Promise<void>;
  /** before each step; false stops the loop (pause / stop of the studio) */
  shouldContinue?(t: Trainer): Promise<boolean>;
  /** after a recovery: the run is at `step` again (drop records after it, redo its evaluation) */
  onRecovered?(t: Trainer, info: Recovery): Promise<void> | void;
  /** runs each step and checkpoint read-back (the worker serialises them with export requests on the same GPU) */
  exclusive?<T>(f: () => Promise<T>): Promise<T>;
  log(message: string): void;
}

export interface Recovery {
  attempt: number;
  max: number;
  /** the step the run went on from (its checkpoint's; 0 without one) */
  step: number;
  /** the step that was lost */
  lostStep: number;
  message: string;
}

export const DEFAULT_MAX_RECOVERIES = 3;

/**
 * Train `t` to `steps` optimizer steps, surviving device loss: on a DeviceLostError the trainer is dropped,
 * `rebuild` makes one on a new device, the newest good checkpoint is restored and the loop goes on — at
 * most maxRecoveries times. NaN/Inf (TrainingDivergedError) stops the run with its last good state
 * persisted. Returns the trainer that finished (another object than `t` after a recovery).
 */
export async function trainWithRecovery(
  t: Trainer,
  steps: number,
  o: RecoveryOptions,
): Promise<{ trainer: Trainer; recoveries: Recovery[] }> {
  const max = o.maxRecoveries ?? DEFAULT_MAX_RECOVERIES;
  const recoveries: Recovery[] = [];
  let savedStep = -1;
  const gpu = o.exclusive ?? (<T>(f: () => Promise<T>) => f());
  const save = async (ck: Checkpoint) => {
    await o.save(ck);
    savedStep = ck.step;
  };
  while (t.step < steps) {
    try {
      if (o.shouldContinue && !(await o.shouldContinue(t))) break;
      const tr = t;
      const rec = await gpu(() => tr.trainStep());
      if (rec.step === steps || (o.shouldSave?.(t, rec) ?? true)) await save(await gpu(() => tr.checkpoint()));
      await o.afterStep?.(t, rec);
    } catch (e) {
      if (e instanceof TrainingDivergedError) {
        // The trainer rolled back; a newer good state than the stored one is kept too.
        if (e.lastGood.step > savedStep) await save(e.lastGood);
        throw e;
      }
      const lost = await t.deviceLoss(e);
      if (!lost) throw e;
      if (recoveries.length >= max) {
        throw new Error(
          `${lost.message}; the device was lost ${recoveries.length + 1} times in this run, so it stops here. ` +
            `Its last checkpoint is kept: resume the run once the GPU is stable (close other GPU-heavy tabs or apps, update the driver).`,
        );
      }
      try {
        t.destroy();
      } catch {
        /* buffers of a lost device */
      }
      const attempt = recoveries.length + 1;
      o.log(`${lost.message}; recovering (${attempt} of at most ${max}): new device, weights and cache uploaded again`);
      t = await o.rebuild(lost, attempt);
      const ck = await o.load();
      if (ck) t.restore(ck);
      savedStep = ck?.step ?? -1;
      const r: Recovery = {
        attempt,
        max,
        step: t.step,
        lostStep: lost.step,
        message: `${lost.message}; resumed from ${ck ? `the checkpoint at step ${ck.step}` : 'the start (no checkpoint yet)'} (recovery ${attempt} of at most ${max})`,
      };
      recoveries.push(r);
      o.log(r.message);
      await o.onRecovered?.(t, r);
    }
  }
  return { trainer: t, recoveries };
}

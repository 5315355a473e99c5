// How long a run will take, shown before Start (issue 17 item 2). The run's work is counted in FLOPs from
// its shapes (the step count of scripts/gpu-bench/table.py; per-utterance cross K/V preparation; greedy
// decoding of the eval sets) and divided by a speed of this adapter: measured on it by an earlier run of the
// same model (stored per adapter + model in localStorage), else derived from the training worker's kernel
// probe (src/gpu/probe-variant.ts: one 128×512×512 matmul, its time shown in the Compute panel), else an
// assumption. Only a measured speed is labelled "measured on this adapter"; everything else is an estimate.
import type { WhisperDecoderDims } from '../engine/weights';
import type { TrainRecord } from '../train/config';

/** Encoder frames the decoder's cross-attention reads (Whisper: 30 s at 50 Hz). */
const FRAMES = 1500;

export interface RunShape {
  dims: Pick<WhisperDecoderDims, 'C' | 'F' | 'L' | 'V'>;
  method: 'lora' | 'blora';
  r: number;
  /** adapted modules per layer */
  targets: number;
  steps: number;
  batch: number;
  /** decoder tokens of a training utterance (prompt + transcript + EOT; the padded length of a batch) */
  trainTokens: number;
  /** utterances whose cross K/V the run prepares (train + eval) */
  utterances: number;
  evalUtterances: number;
  /** tokens greedy decoding generates per eval utterance */
  evalTokens: number;
  /** evaluations: step 0 (the frozen model; reused when an earlier run computed it) and after training / each interval */
  evaluations: number;
}

/** Matmul FLOPs of one training step (forward + backward; scripts/gpu-bench/table.py's count). */
export function trainStepFlops(s: Pick<RunShape, 'dims' | 'method' | 'r' | 'targets' | 'batch' | 'trainTokens'>): number {
  const { C, F, L, V } = s.dims;
  const S = s.trainTokens;
  const T = s.batch * S;
  const lin = 2 * T * (6 * C * C + 2 * C * F);
  const perLayer = 2 * lin + 3 * (4 * T * S * C) + 2 * (4 * T * FRAMES * C);
  const logits = 2 * (2 * T * C * V);
  const adapters = L * s.targets * 3 * (2 * T * s.r * 2 * C) * (s.method === 'blora' ? 2 : 1);
  return L * perLayer + logits + adapters;
}

/** FLOPs of preparing one utterance: the cross-attention K and V projections of its frames in every layer. */
export function prepFlops(dims: Pick<WhisperDecoderDims, 'C' | 'L'>): number {
  return dims.L * 2 * (2 * FRAMES * dims.C * dims.C);
}

/** Forward FLOPs of one generated token (one row through the decoder, the cross-attention and the tied logits). */
export function decodeTokenFlops(dims: Pick<WhisperDecoderDims, 'C' | 'F' | 'L' | 'V'>): number {
  const { C, F, L, V } = dims;
  return L * (2 * (6 * C * C + 2 * C * F) + 4 * FRAMES * C) + 2 * C * V;
}

/** Effective FLOP/s of each kind of work on an adapter. */
export interface Speed {
  train: number;
  prep: number;
  decode: number;
  source: 'measured' | 'probe' | 'assumed';
  /** how it was obtained, for the label */
  note: string;
}

/**
 * Share of the probe's matmul rate each kind of work reaches, calibrated on this repo's Mesa llvmpipe numbers.
 * train (docs/benchmarks.md, `npm run bench`): a B=4×S=14 step (13 GFLOP by trainStepFlops) ≈ 12 s, with the
 * probe's CPU-tuned matmul ≈ 20 ms (67 MFLOP, 3.4 GFLOP/s). prep and decode from the demo's headless run
 * (experiments/demo.json on the engine, 2026-12-07; the browser's probe 11.2 ms): 22 clips prepared (encoder +
 * cross K/V, 9.4 GFLOP by prepFlops each) in 75 s = 3.4 s a clip, and two evaluations of 10 clips (batched) in
 * about 29 s a run (its 225 s less preparation, 111 s of training and ~10 s of start-up). The earlier prep 0.15
 * and decode 0.027 came from one cold utterance at batch 1 (34 s prep, 1.28 s a token) and made the demo's
 * estimate 25 min for a run that took 9 min 22 s.
 */
export const PROBE_EFFICIENCY = { train: 0.32, prep: 0.46, decode: 0.15 } as const;

/** Probe matmul (src/gpu/probe-variant.ts's default shape): 2·M·N·K FLOPs. */
const PROBE_FLOPS = 2 * 128 * 512 * 512;

/** The speed a kernel probe implies: the faster variant's time of the probe matmul, times PROBE_EFFICIENCY. */
export function speedFromProbe(bestMs: number): Speed {
  const rate = PROBE_FLOPS / (bestMs / 1000);
  return {
    train: rate * PROBE_EFFICIENCY.train,
    prep: rate * PROBE_EFFICIENCY.prep,
    decode: rate * PROBE_EFFICIENCY.decode,
    source: 'probe',
    note: `kernel probe ${bestMs.toFixed(1)} ms per 128×512×512 matmul`,
  };
}

/** The probe times in the Compute panel's reason ("WGSL matmul probe: GPU tiles 80.1 ms, CPU-tuned 20.3 ms"): the faster. */
export function probeMsFromReason(reason: string | undefined): number | null {
  const m = /GPU tiles ([\d.]+) ms, CPU-tuned ([\d.]+) ms/.exec(reason ?? '');
  if (!m) return null;
  const ms = Math.min(Number(m[1]), Number(m[2]));
  return ms > 0 && Number.isFinite(ms) ? ms : null;
}

/**
 * Assumptions where nothing was measured: a software adapter as this repo's llvmpipe (probe ≈ 20 ms), a
 * hardware GPU as a laptop GPU — taken as 2 TFLOP/s of matmul at the same efficiencies (not measured here:
 * no GPU number exists yet, docs/benchmarks.md).
 */
export const ASSUMED_SOFTWARE_PROBE_MS = 20;
export const LAPTOP_GPU_FLOPS = 2e12;

export function assumedSpeed(kind: 'software' | 'laptop-gpu'): Speed {
  const s = speedFromProbe(kind === 'software' ? ASSUMED_SOFTWARE_PROBE_MS : (PROBE_FLOPS / LAPTOP_GPU_FLOPS) * 1000);
  return {
    ...s,
    source: 'assumed',
    note:
      kind === 'software'
        ? 'assumed: a software adapter like llvmpipe'
        : `assumed: a laptop GPU (${LAPTOP_GPU_FLOPS / 1e12} TFLOP/s of matmul)`,
  };
}

export interface Estimate {
  seconds: number;
  parts: { prep: number; train: number; eval: number };
  speed: Speed;
}

export function estimateRun(shape: RunShape, speed: Speed): Estimate {
  const prep = (shape.utterances * prepFlops(shape.dims)) / speed.prep;
  const train = (shape.steps * trainStepFlops(shape)) / speed.train;
  const evalS = (shape.evaluations * shape.evalUtterances * shape.evalTokens * decodeTokenFlops(shape.dims)) / speed.decode;
  return { seconds: prep + train + evalS, parts: { prep, train, eval: evalS }, speed };
}

/** Evaluations of a run: step 0, every `interval` steps, and the last step. */
export function evaluationsOf(steps: number, interval: number): number {
  const s = Math.max(1, Math.floor(steps));
  if (!(interval > 0)) return 2;
  const at = new Set<number>([0, s]);
  for (let k = interval; k < s; k += interval) at.add(k);
  return at.size;
}

/**
 * The speed a finished run measured: training from its records (each step's tokens / tokens-per-second), and —
 * when the run went from start to end in one session (`wallS`, seconds from launch to done) — preparation and
 * evaluation scaled so that the rest of the wall time is explained.
 */
export function measureSpeed(shape: RunShape, records: TrainRecord[], wallS: number | null, prior: Speed): Speed | null {
  const steps = records.filter((r) => r.tokensPerSec > 0 && r.tokens > 0);
  if (!steps.length) return null;
  const trainS = steps.reduce((s, r) => s + r.tokens / r.tokensPerSec, 0);
  const train = (steps.length * trainStepFlops(shape)) / trainS;
  let { prep, decode } = prior;
  let note = `measured on this adapter: ${steps.length} step${steps.length > 1 ? 's' : ''} of ${(trainS / steps.length).toFixed(1)} s`;
  if (wallS !== null) {
    const est = estimateRun(shape, prior);
    const other = wallS - trainS;
    const otherEst = est.parts.prep + est.parts.eval;
    if (other > 0 && otherEst > 0) {
      const k = otherEst / other; // > 1: faster than assumed
      prep *= k;
      decode *= k;
      note += `, a whole run ${Math.round(wallS)} s`;
    }
  }
  return { train, prep, decode, source: 'measured', note };
}

/** Storage of measured speeds per adapter + model (localStorage; a different GPU or model measures anew). */
const KEY = 'blora-studio:speed:';

export function speedKey(adapter: string, modelId: string): string {
  return `${KEY}${adapter}|${modelId}`;
}

export function loadSpeed(key: string, storage: Pick<Storage, 'getItem'> | undefined = globalThis.localStorage): Speed | null {
  try {
    const v = JSON.parse(storage?.getItem(key) ?? 'null') as Speed | null;
    return v && v.source === 'measured' && v.train > 0 && v.prep > 0 && v.decode > 0 ? v : null;
  } catch {
    return null;
  }
}

export function saveSpeed(key: string, s: Speed, storage: Pick<Storage, 'setItem'> | undefined = globalThis.localStorage): void {
  try {
    storage?.setItem(key, JSON.stringify(s));
  } catch {
    // storage full or disabled: the next estimate is the probe's again
  }
}

/** "about 4 min" / "about 1 h 20 min" / "about 40 s". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 90) return `${Math.max(1, Math.round(s / 5) * 5)} s`;
  const min = Math.round(s / 60);
  if (min < 90) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

// ------------------------------------------------------------------ the studio's run, from its state

/** Minimal studio state the estimate reads (a structural slice of StudioState). */
export interface EstimateInputs {
  model: {
    info?: {
      modelId: string;
      backendReason: string;
      summary: { dModel: number; layers: number; vocab: number };
      decoderConfig?: { ffn: number };
    };
  };
  gpu: { caps?: { adapter: { vendor: string; architecture: string; description: string } } };
  datasets: { role: string; utts: { text: string }[] }[];
}

export interface ExperimentLike {
  method: 'lora' | 'blora';
  adapter: { r: number; targets: string[] };
  optim: { steps: number; batchSize: number };
  eval: { interval: number; maxNewTokens: number };
}

/** Decoder tokens of a transcript: the 4-token prompt + EOT and about one BPE token per 3.5 characters. */
export const tokensOf = (text: string) => 5 + Math.ceil(text.length / 3.5);

export function adapterName(s: Pick<EstimateInputs, 'gpu'>): string {
  const a = s.gpu.caps?.adapter;
  return a ? [a.vendor, a.architecture, a.description].filter(Boolean).join(' ') || 'adapter (not disclosed)' : 'no WebGPU adapter';
}

/** The shape of a run with `cfg` on the studio's datasets (null without a model or training data). */
export function studioShape(s: EstimateInputs, cfg: ExperimentLike): RunShape | null {
  const sum = s.model.info?.summary;
  if (!sum) return null;
  const train = s.datasets.filter((d) => d.role === 'train').flatMap((d) => d.utts);
  if (!train.length) return null;
  const evalU = s.datasets.filter((d) => d.role === 'new' || d.role === 'base').flatMap((d) => d.utts);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  const batch = Math.max(1, Math.floor(cfg.optim.batchSize) || 1);
  return {
    dims: { C: sum.dModel, L: sum.layers, V: sum.vocab, F: s.model.info?.decoderConfig?.ffn ?? 4 * sum.dModel },
    method: cfg.method,
    r: Math.max(1, Math.floor(cfg.adapter.r) || 1),
    targets: Math.max(1, cfg.adapter.targets.length),
    steps: Math.max(1, Math.floor(cfg.optim.steps) || 1),
    batch,
    // a batch is padded to its longest transcript: the mean of the longest half is a fair middle
    trainTokens: Math.round(
      mean(
        train
          .map((u) => tokensOf(u.text))
          .sort((a, b) => b - a)
          .slice(0, Math.max(1, Math.ceil(train.length / 2))),
      ),
    ),
    utterances: train.length + evalU.length,
    evalUtterances: evalU.length,
    evalTokens: Math.min(cfg.eval.maxNewTokens, Math.round(mean(evalU.map((u) => tokensOf(u.text) - 4)))),
    evaluations: evalU.length ? evaluationsOf(cfg.optim.steps, cfg.eval.interval) : 0,
  };
}

/** The speed to estimate with: measured here > this adapter's probe > an assumption from the adapter's kind. */
export function studioSpeed(s: EstimateInputs, storage?: Pick<Storage, 'getItem'>): Speed {
  const modelId = s.model.info?.modelId ?? '';
  const measured = loadSpeed(speedKey(adapterName(s), modelId), storage);
  if (measured) return measured;
  const ms = probeMsFromReason(s.model.info?.backendReason);
  if (ms !== null) return speedFromProbe(ms);
  return assumedSpeed(
    /software|llvmpipe|swiftshader|lavapipe|fallback|no WebGPU/i.test(`${s.model.info?.backendReason ?? ''} ${adapterName(s)}`)
      ? 'software'
      : 'laptop-gpu',
  );
}

export function studioEstimate(s: EstimateInputs, cfg: ExperimentLike, storage?: Pick<Storage, 'getItem'>): Estimate | null {
  const shape = studioShape(s, cfg);
  return shape ? estimateRun(shape, studioSpeed(s, storage)) : null;
}

/** What the Experiment panel prints: "about 4 min (estimate: kernel probe …; prep …, training …, eval …)". */
export function describeEstimate(e: Estimate, laptop?: Estimate): string {
  const p = e.parts;
  const what = e.speed.source === 'measured' ? e.speed.note : `estimate from the ${e.speed.note}`;
  const parts = `preparing the clips ${formatDuration(p.prep)}, training ${formatDuration(p.train)}, evaluation ${formatDuration(p.eval)}`;
  return `about ${formatDuration(e.seconds)} (${what}; ${parts})${laptop ? `; on a laptop GPU about ${formatDuration(laptop.seconds)} (${laptop.speed.note})` : ''}`;
}

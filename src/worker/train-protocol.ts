// Messages between the UI thread and the training worker (src/worker/train.worker.ts). The worker owns
// the WebGPU device (navigator.gpu inside the worker), the decoder weights, the EncoderKvCache and the
// Trainer; the UI sends only references (encoder-cache keys + transcripts) and receives metric records.
import type { UncertaintyResult } from '../train/trainer';
import type { BetaScheduleEntry, DevRecord, EvalRecord, EvalRole, ExperimentConfig, TrainRecord } from '../train/config';
import type { ModelLocation } from './protocol';

/** One utterance as the training worker needs it: its encoder states are in IndexedDB under (modelId, key). */
export interface UttRef {
  id: string;
  key: string;
  text: string;
  language?: string;
}

export interface RunData {
  modelId: string;
  model: ModelLocation;
  train: UttRef[];
  /** several training sets mixed with probabilities (src/ui/mix.ts): sizes in train's order, data.train first */
  trainSets?: { n: number; p: number }[];
  eval: { name: string; role: EvalRole; utts: UttRef[] }[];
  /** dev utterances (the datasets of role dev): teacher-forced CE for eval.select 'dev-ce' */
  dev?: UttRef[];
}

/** Histogram of log10|μ| of the A and B factors (src/train/trainer.ts muHistogram), at a step. */
export interface Histogram {
  step: number;
  /** bin edges in log10|μ|; the first bin also holds smaller values */
  edges: number[];
  a: number[];
  b: number[];
}

/** One eval utterance's transcript at a step (step 0 = the frozen model). */
export interface EvalTranscript {
  id: string;
  language: string;
  reference: string;
  hypothesis: string;
}

export type ToTrain =
  | { type: 'start'; runId: string; config: ExperimentConfig; data: RunData; resume: boolean }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop' }
  /** β (BLoRA's KL weight) of the training run `runId` from its next step on (the Run view's live control) */
  | { type: 'set-beta'; runId: string; beta: number }
  /** tests only: the page was opened with ?test-hooks=1 — the worker then accepts 'test-fault' */
  | { type: 'test-hooks' }
  /**
   * tests only (after 'test-hooks'): destroy the GPU device mid-step `atStep` / NaN as the loss of step `atStep` /
   * pause before step `atStep` begins (as the Pause button, at a boundary the test can rely on)
   */
  | { type: 'test-fault'; fault: 'device-loss' | 'nan' | 'pause'; atStep: number }
  /** adapter export of a run's last checkpoint; snr > 0 zeroes μ elements with |μ|/σ below it first; measure: decode the eval sets with the pruned adapter */
  | { type: 'export'; id: string; runId: string; config: ExperimentConfig; data: RunData; snr: number; measure?: boolean }
  /** Try it: one clip (encoder states in IndexedDB under (modelId, key)) by the frozen model and by the run's adapter */
  | { type: 'try'; id: string; runId: string; config: ExperimentConfig; data: RunData; clip: { key: string; language: string } };

export type RunStatus = 'starting' | 'running' | 'paused' | 'stopped' | 'done' | 'error';

export type FromTrain =
  | { type: 'status'; runId: string; status: RunStatus; stage?: string; error?: string }
  | { type: 'record'; runId: string; record: TrainRecord | EvalRecord | DevRecord }
  | { type: 'hist'; runId: string; hist: Histogram }
  /** posterior uncertainty of the run's final adapter (eval.posteriorSamples; src/train/trainer.ts uncertainty) */
  | { type: 'uncertainty'; runId: string; result: UncertaintyResult }
  | { type: 'transcripts'; runId: string; step: number; set: string; transcripts: EvalTranscript[] }
  | { type: 'checkpoint'; runId: string; step: number }
  /**
   * A live β change took: β = `beta` from step `step` on; `schedule` is the run's adapter.betaSchedule now (the UI
   * puts it into the run's config: the exported experiment.json and a resume after a reload keep it). `error`: refused.
   */
  | { type: 'beta'; runId: string; step: number; beta: number; schedule: BetaScheduleEntry[]; error?: string }
  /**
   * A resumed run restarts at `step` (its checkpoint's; 0 without one). `records` are its training records up
   * to that step, saved with the checkpoint: the tab may not have stored the last ones (or the checkpoint
   * itself) before a reload. The UI keeps the evaluations before `step`; the worker redoes the one at `step`.
   * `betaSchedule`: the run's β schedule after the restore (its checkpoint's live β changes included).
   */
  | { type: 'resumed'; runId: string; step: number; records: TrainRecord[]; betaSchedule?: BetaScheduleEntry[] }
  /** files by name; pruned: fraction of μ elements zeroed by the SNR threshold (0 without pruning) */
  | {
      type: 'exported';
      id: string;
      files: Record<string, Uint8Array | string>;
      pruned: number;
      elements: number;
      prunedWer?: { set: string; role: EvalRole; wer: number; utterances: number }[];
    }
  /** entropy: mean token entropy (nats) of the adapter's transcript; disagreement: of K posterior samples (BLoRA; null for LoRA) */
  | {
      type: 'tried';
      id: string;
      step: number;
      frozen: string;
      adapted: string;
      entropy: number;
      disagreement: number | null;
      samples: string[];
    }
  | { type: 'request-error'; id: string; message: string }
  /**
   * The GPU device was lost during a run and the worker went on on a new device from the newest good
   * checkpoint (`step`); `records`: the training records up to it (later ones are redone).
   */
  | { type: 'recovered'; runId: string; step: number; attempt: number; max: number; message: string; records: TrainRecord[] }
  /** the GPU device was lost while no run was training: the UI restarts the worker (a run resumes from its checkpoint) */
  | { type: 'device-lost'; runId: string | null; message: string };

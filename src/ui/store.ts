// The studio's state (zustand). Components read slices; actions live in src/ui/actions.ts (model,
// clips), src/ui/data.ts (datasets), src/ui/training.ts (runs).
import { create } from 'zustand';
import type { GpuCapabilities } from '../gpu/device';
import type { LoadProgress } from '../pipeline/transcriber';
import type { ModelInfo } from '../worker/protocol';
import type { TranscriptMsg } from '../worker/client';
import type { UncertaintyResult } from '../train/trainer';
import { defaultExperiment, type DevRecord, type EvalRecord, type ExperimentConfig, type TrainRecord } from '../train/config';
import type { RunData, Histogram } from '../worker/train-protocol';

export interface DemoClip {
  id: string;
  file: string;
  url: string;
  text: string;
  language: string;
  languages?: string[];
  duration: number;
  domain: string;
}

export interface ClipResult {
  status: 'decoding' | 'running' | 'done' | 'error';
  transcript?: TranscriptMsg;
  wer?: number;
  error?: string;
}

export type DatasetRole = 'train' | 'new' | 'base' | 'dev';
export const ROLE_LABEL: Record<DatasetRole, string> = {
  train: 'train',
  new: 'new-domain eval',
  base: 'base-domain eval',
  dev: 'dev (selection by CE)',
};

export interface DatasetUtt {
  id: string;
  /** path inside the dataset */
  audio: string;
  text: string;
  language?: string;
  duration?: number;
  /** hash of the 16-kHz samples (encoder cache key, with the model id) */
  key?: string;
  status: 'pending' | 'encoding' | 'encoded' | 'error';
  cached?: boolean;
}

export interface DatasetIssue {
  file: string;
  line?: number;
  message: string;
}

export interface DatasetEntry {
  id: string;
  name: string;
  format?: string;
  role: DatasetRole;
  /** role train, not the first train dataset: its mixing probability in (0, 1) (src/ui/mix.ts); absent: concatenated */
  mix?: number;
  utts: DatasetUtt[];
  issues: DatasetIssue[];
  status: 'reading' | 'decoding' | 'waiting-model' | 'encoding' | 'ready' | 'error';
  error?: string;
  progress?: { done: number; total: number; startedAt: number; cached: number };
}

export interface RunState {
  id: string;
  name: string;
  config: ExperimentConfig;
  createdAt: number;
  status: 'queued' | 'starting' | 'running' | 'paused' | 'stopped' | 'done' | 'error';
  /** what the worker is doing right now (preparing data, evaluating, …) */
  stage?: string;
  error?: string;
  train: TrainRecord[];
  evals: EvalRecord[];
  /** dev CE records (eval.devInterval), when the run has a dev set */
  dev?: DevRecord[];
  /** posterior uncertainty of the final adapter (eval.posteriorSamples) */
  uncertainty?: UncertaintyResult;
  hist?: Histogram;
  lastCheckpointStep?: number;
  /** GPU device losses the worker recovered from during this run (src/train/trainer.ts trainWithRecovery) */
  recoveries?: { at: number; step: number; message: string }[];
  /** wall-clock start of the current session of this run (for the ETA) and the step it started at */
  sessionStart?: { at: number; step: number };
  data: RunData;
}

export type View = 'setup' | 'run' | 'compare' | 'export' | 'try';

export interface StudioState {
  gpu: { status: 'probing' | 'webgpu' | 'none'; caps?: GpuCapabilities; reason?: string };
  model: {
    status: 'idle' | 'loading' | 'ready' | 'error';
    label?: string;
    progress?: LoadProgress & { stageStartedAt: number };
    info?: ModelInfo;
    error?: string;
  };
  clips: DemoClip[];
  clipsError?: string;
  results: Record<string, ClipResult>;
  datasets: DatasetEntry[];
  experiment: ExperimentConfig;
  sweep: string;
  runs: RunState[];
  activeRun?: string;
  view: View;
  /** the one-click demo (src/ui/demo.ts): its size, what it is doing, its runs */
  demo?: { size: string; stage: string; runIds: string[] };
  /** why a run could not be started (no data, …) */
  setupError?: string;
  set: (partial: Partial<StudioState>) => void;
  setResult: (id: string, r: ClipResult) => void;
  updateDataset: (id: string, f: (d: DatasetEntry) => DatasetEntry) => void;
  updateRun: (id: string, f: (r: RunState) => RunState) => void;
}

function initialExperiment(): ExperimentConfig {
  const e = defaultExperiment();
  // Studio defaults: small data, few steps, evaluation every few steps.
  e.name = 'blora';
  e.data.train = 'studio';
  e.optim.steps = 20;
  e.optim.batchSize = 2;
  e.optim.warmupSteps = 2;
  e.eval.interval = 5;
  e.eval.maxNewTokens = 48;
  return e;
}

/** The experiment panel's settings survive a reload (localStorage): a user's next run starts from them. */
const EXPERIMENT_KEY = 'blora-studio:experiment';

function savedExperiment(): ExperimentConfig {
  const fallback = initialExperiment();
  try {
    const raw = globalThis.localStorage?.getItem(EXPERIMENT_KEY);
    if (!raw) return fallback;
    const saved = JSON.parse(raw) as ExperimentConfig;
    // Only a config of the current shape (a newer studio may have added fields: take the defaults for those).
    if (saved?.schema !== fallback.schema) return fallback;
    return {
      ...fallback,
      ...saved,
      data: fallback.data,
      adapter: { ...fallback.adapter, ...saved.adapter },
      optim: { ...fallback.optim, ...saved.optim },
      eval: { ...fallback.eval, ...saved.eval },
    };
  } catch {
    return fallback;
  }
}

export const useStudio = create<StudioState>((set) => ({
  gpu: { status: 'probing' },
  model: { status: 'idle' },
  clips: [],
  results: {},
  datasets: [],
  experiment: savedExperiment(),
  sweep: '1e-6, 1e-5, 1e-4, 1e-3',
  runs: [],
  view: 'setup',
  set: (partial) => set(partial),
  setResult: (id, r) => set((s) => ({ results: { ...s.results, [id]: r } })),
  updateDataset: (id, f) => set((s) => ({ datasets: s.datasets.map((d) => (d.id === id ? f(d) : d)) })),
  updateRun: (id, f) => set((s) => ({ runs: s.runs.map((r) => (r.id === id ? f(r) : r)) })),
}));

let lastSaved: ExperimentConfig | null = null;
useStudio.subscribe((s) => {
  if (s.experiment === lastSaved) return;
  lastSaved = s.experiment;
  try {
    globalThis.localStorage?.setItem(EXPERIMENT_KEY, JSON.stringify(s.experiment));
  } catch {
    // storage full or disabled: the settings just do not survive a reload
  }
});

// Messages between the UI thread and the model worker. The worker owns onnxruntime-web and the
// encoder cache; the UI thread decodes audio (WebAudio is not available in workers) and sends samples.
import type { LoadProgress, TranscribeTiming } from '../pipeline/transcriber';
import type { WhisperAssets } from '../model/whisperModel';
import type { OrtBackend } from '../runtime/ort';

export type ModelLocation =
  | { kind: 'url'; baseUrl: string; label?: string }
  /**
   * A Hub repo. `endpoint`: the Hub's address (a mirror, or the tests' local Hub; default the page's
   * setting). `weights`: where the engine's decoder weights come from when the repo has no
   * model.safetensors — a weights repo id (default: the table in src/model/hub.ts) or a dropped file.
   */
  | { kind: 'hub'; repoId: string; revision?: string; endpoint?: string; weights?: WeightsLocation }
  | { kind: 'files'; files: [string, Blob][]; weights?: WeightsLocation };

/** Decoder weights named by the user: another Hub repo, or a dropped model.safetensors. */
export type WeightsLocation = { kind: 'hub'; repoId: string; revision?: string } | { kind: 'file'; name: string; blob: Blob };

/** Whether (and from where) the WGSL engine can get the decoder weights of a loaded model. */
export interface Trainability {
  trainable: boolean;
  /** where the weights come from: "model.safetensors", "weights repo openai/whisper-small", … */
  from: string;
  /** bytes still to fetch (decoder tensors only; 0 when cached or local), when known */
  fetchBytes?: number;
  /** why not trainable, and what to do */
  reason?: string;
}

export type ToWorker =
  | { type: 'load'; location: ModelLocation; backend: OrtBackend | 'auto' }
  | { type: 'transcribe'; id: string; samples: Float32Array; language: string | null }
  /** Frozen-encoder states of an utterance into the persistent cache (IndexedDB `encoder`, keyed by model + audio hash). */
  | { type: 'encode'; id: string; samples: Float32Array; key: string };

export interface ModelInfo {
  label: string;
  /** Stable id of the model for cache keys (URL, Hub repo@revision, or dropped folder label). */
  modelId: string;
  /** Where the training worker reads the model from (url/hub; null for a dropped folder). */
  location: ModelLocation;
  summary: WhisperAssets['summary'];
  encoderBackend: OrtBackend;
  decoderBackend: OrtBackend;
  backendReason: string;
  hasSafetensors: boolean;
  /** filled after the load: headers of the weights are read (a few KB), not the weights */
  trainability?: Trainability;
  /** a merged export of blora-studio (its blora-export.json): the base it was merged into */
  exportOf?: { baseModel: string; format: string; method: string; r: number; modules: number };
  /** decoder config.json fields the memory plan needs beyond the summary (src/engine/memory-plan.ts) */
  decoderConfig?: { heads: number; ffn: number; positions: number };
}

export type FromWorker =
  | { type: 'progress'; progress: LoadProgress }
  | { type: 'loaded'; info: ModelInfo }
  /** after 'loaded': where the decoder weights for training come from (headers read) */
  | { type: 'trainability'; modelId: string; trainability: Trainability }
  | { type: 'load-error'; message: string }
  | { type: 'transcript'; id: string; text: string; language: string | null; tokens: number; truncated: boolean; timing: TranscribeTiming }
  | { type: 'transcribe-error'; id: string; message: string }
  | { type: 'encoded'; id: string; cached: boolean; ms: number }
  | { type: 'encode-error'; id: string; message: string };

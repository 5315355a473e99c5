// Messages between the UI thread and the model worker. The worker owns onnxruntime-web and the
// encoder cache; the UI thread decodes audio (WebAudio is not available in workers) and sends samples.
import type { LoadProgress, TranscribeTiming } from '../pipeline/transcriber';
import type { WhisperAssets } from '../model/whisperModel';
import type { OrtBackend } from '../runtime/ort';

export type ModelLocation =
  | { kind: 'url'; baseUrl: string; label?: string }
  | { kind: 'hub'; repoId: string; revision?: string }
  | { kind: 'files'; files: [string, Blob][] };

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
}

export type FromWorker =
  | { type: 'progress'; progress: LoadProgress }
  | { type: 'loaded'; info: ModelInfo }
  | { type: 'load-error'; message: string }
  | { type: 'transcript'; id: string; text: string; language: string | null; tokens: number; truncated: boolean; timing: TranscribeTiming }
  | { type: 'transcribe-error'; id: string; message: string }
  | { type: 'encoded'; id: string; cached: boolean; ms: number }
  | { type: 'encode-error'; id: string; message: string };

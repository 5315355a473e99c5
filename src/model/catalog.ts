// What loading a Whisper of the table (src/model/hub.ts) costs: the bytes the studio downloads for
// each part, computed from the architecture so the model picker can show them before anything is
// fetched. Estimates from the shapes (the headers give the exact figure once a model is chosen).

import { decoderParams, type WhisperModelInfo } from './hub';

/** Encoder parameters: conv1 (C·mel·3 + C), conv2 (C·C·3 + C), 1500 positions, L layers, final LN. */
export function encoderParams(C: number, L: number, F: number, melBins: number, frames = 1500): number {
  // per layer: q, v, out (C² + C each), k (C², no bias), 2 layer norms (4C), fc1 (FC + F), fc2 (CF + C)
  const layer = 4 * C * C + 3 * C + 4 * C + 2 * C * F + F + C;
  return C * melBins * 3 + C + C * C * 3 + C + frames * C + L * layer + 2 * C;
}

export interface DownloadEstimate {
  /** onnx/encoder_model.onnx + onnx/decoder_model_merged.onnx in f32 (what the studio loads) */
  onnxBytes: number;
  /** the decoder tensors of the weights repo, in its dtype (what training adds) */
  decoderWeightsBytes: number;
  /** ONNX f32 graphs over 2 GB keep their weights in an external-data file beside them (src/runtime/ort.ts readOnnx) */
  onnxExternalData: boolean;
}

export function downloadEstimate(m: WhisperModelInfo): DownloadEstimate {
  const enc = encoderParams(m.dModel, m.encoderLayers, m.ffn, m.melBins);
  const dec = decoderParams(m.dModel, m.decoderLayers, m.ffn, m.vocab, m.maxTargetPositions);
  // The merged decoder graph holds the decoder weights once (both branches share the initializers).
  const onnxBytes = 4 * (enc + dec);
  return { onnxBytes, decoderWeightsBytes: m.decoderBytes, onnxExternalData: 4 * enc > 2 ** 31 || 4 * dec > 2 ** 31 };
}

/** "612 MB" / "1.6 GB" (decimal units, as the Hub shows file sizes). */
export function formatSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(bytes >= 1e10 ? 0 : 1)} GB`;
  if (bytes >= 1e6) return `${Math.round(bytes / 1e6)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
  return `${bytes} B`;
}

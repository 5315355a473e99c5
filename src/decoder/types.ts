// The decoder as greedy generation sees it: feed tokens, get the next-token logits. Two implementations:
// the frozen ONNX decoder on onnxruntime-web (baseline transcription), and — from the engine on — the
// WGSL decoder with merged adapters. Both keep their own KV cache.

import type { EncoderOutput } from '../encoder/encoder';

export interface DecoderStepper {
  /** Feed the whole prompt on the first call, then one token per call. Returns logits of the last position [vocab]. */
  step(tokens: number[]): Promise<Float32Array>;
  dispose(): void;
}

export interface StepDecoder {
  readonly label: string;
  begin(encoder: EncoderOutput): Promise<DecoderStepper>;
}

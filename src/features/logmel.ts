// Log-mel features exactly as Whisper computes them, via transformers.js's WhisperFeatureExtractor
// (parity with Python's WhisperFeatureExtractor at 80 and 128 bins: test/features/logmel.test.ts).
// Audio is padded/trimmed to the 30-s window: the encoder always sees 3000 frames.

import { WhisperFeatureExtractor } from '@huggingface/transformers';
import type { PreprocessorConfig } from '../model/whisperModel';

export interface LogMel {
  /** [melBins, frames] row-major (frames = 3000 for a 30-s window). */
  data: Float32Array;
  melBins: number;
  frames: number;
}

export class LogMelExtractor {
  private fe: WhisperFeatureExtractor;
  constructor(readonly config: PreprocessorConfig) {
    this.fe = new WhisperFeatureExtractor({ ...config });
  }

  /** samples: mono 16 kHz. */
  async compute(samples: Float32Array): Promise<LogMel> {
    const { input_features } = await this.fe(samples);
    const [, melBins, frames] = input_features.dims as number[];
    return { data: input_features.data as Float32Array, melBins, frames };
  }
}

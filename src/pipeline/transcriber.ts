// The baseline transcription path: 16-kHz samples → log-mel → frozen encoder (cached per utterance)
// → greedy decoding. The same object runs in the browser (WebGPU or wasm) and in Node (wasm).

import { EncoderCache, utteranceKey, WhisperEncoder, type EncoderOutput } from '../encoder/encoder';
import { LogMelExtractor } from '../features/logmel';
import { OrtWhisperDecoder } from '../decoder/ortDecoder';
import { generateGreedy, type GenerateOptions, type GenerateResult } from '../decoder/generate';
import type { StepDecoder } from '../decoder/types';
import { loadWhisperAssets, type WhisperAssets } from '../model/whisperModel';
import type { ModelSource } from '../model/source';
import { pickBackend, type OrtBackend } from '../runtime/ort';

export interface LoadProgress {
  stage: 'config' | 'encoder' | 'decoder' | 'ready';
  message: string;
  loaded?: number;
  total?: number | null;
}

export interface TranscribeTiming {
  featuresMs: number;
  encoderMs: number;
  decodeMs: number;
  encoderCached: boolean;
}

export class Transcriber {
  readonly features: LogMelExtractor;
  readonly cache = new EncoderCache();
  private constructor(
    readonly assets: WhisperAssets,
    readonly encoder: WhisperEncoder,
    readonly decoder: StepDecoder,
    readonly backend: { encoder: OrtBackend; decoder: OrtBackend; reason: string },
  ) {
    this.features = new LogMelExtractor(assets.preprocessor);
  }

  /**
   * Encoder on WebGPU when available (else wasm). The frozen ONNX decoder runs on wasm: per-token
   * steps are small and latency-bound, where the CPU provider is faster than WebGPU dispatch.
   */
  static async load(
    source: ModelSource,
    opts: { backend?: OrtBackend | 'auto'; onProgress?: (p: LoadProgress) => void } = {},
  ): Promise<Transcriber> {
    const report = opts.onProgress ?? (() => {});
    const assets = await loadWhisperAssets(source, (m) => report({ stage: 'config', message: m }));
    const picked = await pickBackend(opts.backend ?? 'auto');
    report({ stage: 'encoder', message: `loading ${assets.encoderFile}` });
    const encoder = await WhisperEncoder.create(assets, picked.backend, (loaded, total) =>
      report({ stage: 'encoder', message: `loading ${assets.encoderFile}`, loaded, total }),
    );
    report({ stage: 'decoder', message: 'loading the decoder' });
    const decoder = await OrtWhisperDecoder.create(assets, 'wasm', (loaded, total) =>
      report({ stage: 'decoder', message: 'loading the decoder', loaded, total }),
    );
    report({ stage: 'ready', message: `ready (encoder on ${picked.backend}: ${picked.reason})` });
    return new Transcriber(assets, encoder, decoder, { encoder: picked.backend, decoder: 'wasm', reason: picked.reason });
  }

  /** Encoder states of an utterance, from the cache when it was seen before. */
  async encode(samples: Float32Array, timing?: Partial<TranscribeTiming>): Promise<EncoderOutput> {
    const key = utteranceKey(samples);
    let cached = true;
    const out = await this.cache.getOrCompute(key, async () => {
      cached = false;
      const t0 = performance.now();
      const mel = await this.features.compute(samples);
      const t1 = performance.now();
      const enc = await this.encoder.encode(mel);
      if (timing) {
        timing.featuresMs = t1 - t0;
        timing.encoderMs = performance.now() - t1;
      }
      return enc;
    });
    if (timing) timing.encoderCached = cached;
    return out;
  }

  async transcribe(samples: Float32Array, opts: GenerateOptions = {}): Promise<GenerateResult & { timing: TranscribeTiming }> {
    const timing: TranscribeTiming = { featuresMs: 0, encoderMs: 0, decodeMs: 0, encoderCached: false };
    const enc = await this.encode(samples, timing);
    const t0 = performance.now();
    const result = await generateGreedy(this.decoder, enc, this.assets, opts);
    timing.decodeMs = performance.now() - t0;
    return { ...result, timing };
  }
}

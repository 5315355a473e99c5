// The frozen Whisper encoder on onnxruntime-web. Its output for an utterance never changes during
// training (the encoder has no adapters), so it is computed once and cached per utterance.

import type { LogMel } from '../features/logmel';
import type { WhisperAssets } from '../model/whisperModel';
import type { Progress } from '../model/source';
import { createSession, ort, readOnnx, type OrtBackend } from '../runtime/ort';

export interface EncoderOutput {
  /** [frames, dModel] row-major (frames = 1500 for Whisper). */
  data: Float32Array;
  frames: number;
  dModel: number;
}

export class WhisperEncoder {
  private constructor(
    private session: ort.InferenceSession,
    readonly backend: OrtBackend,
  ) {}

  static async create(assets: WhisperAssets, backend: OrtBackend, onProgress?: Progress): Promise<WhisperEncoder> {
    const { bytes, externalData } = await readOnnx(assets.source, assets.encoderFile, onProgress);
    return new WhisperEncoder(await createSession(bytes, backend, `${assets.encoderFile} (${assets.source.label})`, externalData), backend);
  }

  async encode(mel: LogMel): Promise<EncoderOutput> {
    const input = new ort.Tensor('float32', mel.data, [1, mel.melBins, mel.frames]);
    const out = await this.session.run({ input_features: input });
    const hidden = out.last_hidden_state;
    const [, frames, dModel] = hidden.dims as number[];
    // getData() downloads from the GPU when the WebGPU EP produced it.
    const data = (await hidden.getData()) as Float32Array;
    hidden.dispose();
    return { data, frames, dModel };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** FNV-1a over the samples' bytes plus the length: the cache key of an utterance's audio. */
export function utteranceKey(samples: Float32Array): string {
  const bytes = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  let h1 = 0x811c9dc5,
    h2 = 0x01000193 ^ bytes.length;
  for (let i = 0; i < bytes.length; i++) {
    h1 = Math.imul(h1 ^ bytes[i], 0x01000193);
    h2 = Math.imul(h2 ^ bytes[i], 0x5bd1e995) ^ (h2 >>> 15);
  }
  return `${samples.length}:${(h1 >>> 0).toString(16)}${(h2 >>> 0).toString(16)}`;
}

/** In-memory LRU of encoder outputs (persistent OPFS/IndexedDB caching comes with the data panel). */
export class EncoderCache {
  private map = new Map<string, EncoderOutput>();
  hits = 0;
  misses = 0;
  constructor(readonly maxEntries = 256) {}

  async getOrCompute(key: string, compute: () => Promise<EncoderOutput>): Promise<EncoderOutput> {
    const hit = this.map.get(key);
    if (hit) {
      this.hits++;
      this.map.delete(key);
      this.map.set(key, hit); // most recently used last
      return hit;
    }
    this.misses++;
    const value = await compute();
    this.map.set(key, value);
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string);
    return value;
  }

  get size(): number {
    return this.map.size;
  }
}

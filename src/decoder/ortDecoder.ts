// The frozen Whisper decoder on onnxruntime-web with a KV cache: decoder_model_merged.onnx (one graph
// with a use_cache_branch switch) or the decoder_model.onnx + decoder_with_past_model.onnx pair.

import type { EncoderOutput } from '../encoder/encoder';
import type { WhisperAssets } from '../model/whisperModel';
import type { Progress } from '../model/source';
import { createSession, ort, readOnnx, type OrtBackend } from '../runtime/ort';
import type { DecoderStepper, StepDecoder } from './types';

type Feeds = Record<string, ort.Tensor>;

export class OrtWhisperDecoder implements StepDecoder {
  readonly label: string;
  private constructor(
    private first: ort.InferenceSession,
    private withPast: ort.InferenceSession | null, // null: merged graph
    private layers: number,
    private heads: number,
    readonly backend: OrtBackend,
  ) {
    this.label = `onnx decoder (${withPast ? 'split' : 'merged'}, ${backend})`;
  }

  static async create(assets: WhisperAssets, backend: OrtBackend, onProgress?: Progress): Promise<OrtWhisperDecoder> {
    const { config, decoder, source } = assets;
    const load = async (file: string) => {
      const { bytes, externalData } = await readOnnx(source, file, onProgress);
      return createSession(bytes, backend, `${file} (${source.label})`, externalData);
    };
    if (decoder.kind === 'merged') {
      return new OrtWhisperDecoder(await load(decoder.merged), null, config.decoder_layers, config.decoder_attention_heads, backend);
    }
    return new OrtWhisperDecoder(
      await load(decoder.first),
      await load(decoder.withPast),
      config.decoder_layers,
      config.decoder_attention_heads,
      backend,
    );
  }

  async begin(encoder: EncoderOutput): Promise<DecoderStepper> {
    const enc = new ort.Tensor('float32', encoder.data, [1, encoder.frames, encoder.dModel]);
    const headDim = encoder.dModel / this.heads;
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [1, this.heads, 0, headDim]);
    let past: Feeds | null = null;
    const self = this;

    return {
      async step(tokens: number[]): Promise<Float32Array> {
        const ids = new ort.Tensor('int64', BigInt64Array.from(tokens.map(BigInt)), [1, tokens.length]);
        const session = past && self.withPast ? self.withPast : self.first;
        const feeds: Feeds = { input_ids: ids, encoder_hidden_states: enc };
        if (!self.withPast) {
          // merged graph: always takes past inputs; the branch flag chooses whether it uses them.
          feeds.use_cache_branch = new ort.Tensor('bool', [past !== null], [1]);
          for (let l = 0; l < self.layers; l++) {
            for (const kind of ['decoder', 'encoder'] as const) {
              for (const kv of ['key', 'value'] as const) {
                const name = `past_key_values.${l}.${kind}.${kv}`;
                feeds[name] = past?.[name] ?? empty();
              }
            }
          }
        } else if (past) {
          Object.assign(feeds, past);
        }
        const wanted: Feeds = {};
        for (const n of session.inputNames) {
          if (!feeds[n]) throw new Error(`${self.label}: no value for graph input "${n}"`);
          wanted[n] = feeds[n];
        }
        const out = await session.run(wanted);
        const next: Feeds = {};
        for (const [name, t] of Object.entries(out)) {
          if (!name.startsWith('present.')) continue;
          const pastName = name.replace('present.', 'past_key_values.');
          // The cross-attention K/V are computed on the first step only; keep those.
          if (name.includes('.encoder.') && past?.[pastName]) {
            continue;
          }
          next[pastName] = t;
        }
        if (past) for (const [n, t] of Object.entries(past)) if (n.includes('.encoder.')) next[n] = t;
        past = next;
        const logits = out.logits;
        const [, seq, vocab] = logits.dims as number[];
        const all = (await logits.getData()) as Float32Array;
        return all.slice((seq - 1) * vocab, seq * vocab);
      },
      dispose() {
        past = null;
      },
    };
  }

  async release(): Promise<void> {
    await this.first.release();
    await this.withPast?.release();
  }
}

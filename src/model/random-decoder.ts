/**
 * Random Whisper decoder weights with a real shape of the model table, as a safetensors buffer — for
 * benchmarks and plans of sizes whose weights are not on this machine (`random:<size>`). No numerics
 * depend on the values: uniform fills in the ranges of test/engine/decoder-parity-support.ts'
 * writeTinyWhisper (linear weights ±1/√nIn, layer-norm gains 0.8…1.2) keep activations and the CE finite.
 */
import { WHISPER_MODELS, type WhisperModelInfo } from './hub';
import { writeSafetensors } from './safetensors';

/** Fast deterministic uniform fill (xorshift32) in lo..hi. */
export function fillUniform(n: number, lo: number, hi: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  const k = (hi - lo) / 4294967296;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = lo + (x >>> 0) * k;
  }
  return a;
}

/** The model-table row of `size` ("small", "whisper-small", "large-v3-turbo"); throws naming the sizes. */
export function modelRow(size: string, who: string): WhisperModelInfo {
  const row = WHISPER_MODELS.find((m) => m.name === size || m.name === `whisper-${size}`);
  if (!row)
    throw new Error(`${who}: unknown size ${size} (one of ${WHISPER_MODELS.map((m) => m.name.replace(/^whisper-/, '')).join(', ')})`);
  return row;
}

/** Decoder tensors (HF names) of width C, FFN F, L layers, vocabulary V, NP positions: safetensors bytes. */
export function randomDecoderSafetensors(C: number, F: number, L: number, V: number, NP: number): Uint8Array {
  let seed = 12345;
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  const put = (name: string, shape: number[], lo: number, hi: number) => {
    t[name] = {
      shape,
      data: fillUniform(
        shape.reduce((a, b) => a * b, 1),
        lo,
        hi,
        seed++,
      ),
    };
  };
  const linear = (name: string, nOut: number, nIn: number, bias = true) => {
    const b = 1 / Math.sqrt(nIn);
    put(`${name}.weight`, [nOut, nIn], -b, b);
    if (bias) put(`${name}.bias`, [nOut], -b, b);
  };
  const ln = (name: string) => {
    put(`${name}.weight`, [C], 0.8, 1.2);
    put(`${name}.bias`, [C], -0.1, 0.1);
  };
  put('model.decoder.embed_tokens.weight', [V, C], -0.05, 0.05); // logits std ≈ 0.05·√(C/3): CE near ln V
  put('model.decoder.embed_positions.weight', [NP, C], -0.3, 0.3);
  for (let l = 0; l < L; l++) {
    const p = `model.decoder.layers.${l}`;
    for (const a of ['self_attn', 'encoder_attn']) {
      ln(`${p}.${a}_layer_norm`);
      linear(`${p}.${a}.q_proj`, C, C);
      linear(`${p}.${a}.k_proj`, C, C, false);
      linear(`${p}.${a}.v_proj`, C, C);
      linear(`${p}.${a}.out_proj`, C, C);
    }
    ln(`${p}.final_layer_norm`);
    linear(`${p}.fc1`, F, C);
    linear(`${p}.fc2`, C, F);
  }
  ln('model.decoder.layer_norm');
  return writeSafetensors(t, { format: 'pt' });
}

/** B rows of S random token inputs and their next-token labels (ids below 50000: not the special tokens), every position real. */
export function randomTokenBatch(
  B: number,
  S: number,
  utterances: string[],
): { inputIds: Int32Array; labels: Int32Array; lengths: number[]; utterances: string[] } {
  const rnd = fillUniform(B * (S + 1), 0, 1, 4242);
  const inputIds = new Int32Array(B * S);
  const labels = new Int32Array(B * S);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++) {
      inputIds[b * S + s] = Math.floor(rnd[b * (S + 1) + s] * 50000);
      labels[b * S + s] = Math.floor(rnd[b * (S + 1) + s + 1] * 50000);
    }
  return { inputIds, labels, lengths: Array(B).fill(S), utterances };
}

/**
 * Frozen Whisper decoder weights on the GPU for the WGSL training engine.
 *
 * Read from model.safetensors (tools/prepare_model.py stores float16, Hugging Face names) and uploaded
 * once, one GPUBuffer per tensor, each labelled with its HF name. Frozen: no gradient buffers, never
 * written after the upload. Storage type (`storage`, issue 13 item 1):
 *   'f32'  every tensor widened to f32 (fp16 → f32 is lossless).
 *   'f16'  the matrices E, P and every Linear W stored as f16 (exact for fp16 checkpoints; other
 *          sources are rounded to nearest even), tagged so each kernel picks its f16 variant
 *          (src/gpu/wgsl-variants.ts); biases and layer-norm vectors stay f32 (small: 0.2 % of base).
 *   Needs the device feature 'shader-f16'; chooseStorage() picks f16 when the device has it.
 *
 *   model.decoder.embed_tokens.weight      E  (V, C)   also the output projection (tied: proj_out = E)
 *   model.decoder.embed_positions.weight   P  (NP, C)  learned positions (448 rows)
 *   model.decoder.layers.N.
 *     self_attn_layer_norm.{weight,bias}               (C,)
 *     self_attn.{q,v,out}_proj.{weight,bias}           (C, C), (C,)
 *     self_attn.k_proj.weight                          (C, C)  — no bias in Whisper
 *     encoder_attn_layer_norm.{weight,bias}            (C,)
 *     encoder_attn.{q,v,out}_proj.{weight,bias}, encoder_attn.k_proj.weight
 *     final_layer_norm.{weight,bias}                   (C,)
 *     fc1.{weight,bias}                                (F, C), (F,)
 *     fc2.{weight,bias}                                (C, F), (C,)
 *   model.decoder.layer_norm.{weight,bias}             (C,)
 *
 * Whisper base: C = 512, H = 8 heads of D = 64, F = 2048, L = 6, V = 51,865, NP = 448.
 * E in f32 is 106 MB (under the 128 MiB binding default; logits_ce / embedding bind it in tiles anyway).
 * Total ≈ 207 MB f32 for base.
 */
import type { GpuRuntime } from '../gpu/runtime';
import { chooseStorageFor, type StorageChoice } from '../gpu/storage-choice';
import { type StorageType, uploadAs } from '../gpu/wgsl-variants';
import type { TensorSource } from '../model/safetensors';
import { type RowSplit, uploadRowSplit } from './kernels/vocab_tiles';

export type { StorageType } from '../gpu/wgsl-variants';
export { chooseStorageFor, type StorageChoice } from '../gpu/storage-choice';

/**
 * Storage type for a device: `requested` ('f16' | 'f32') if given, else f16 where the device has the
 * 'shader-f16' feature and f32 otherwise. Asking for f16 on a device without it is an error.
 */
export function chooseStorage(device: GPUDevice, requested?: StorageType | 'auto'): StorageChoice {
  return chooseStorageFor(device.features.has('shader-f16'), requested);
}

/** The storage type of the env (BLORA_STORAGE=f16|f32|auto, for tests and `npm run bench`), or undefined. */
export function storageFromEnv(): StorageType | 'auto' | undefined {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.BLORA_STORAGE;
  if (v === undefined || v === '') return undefined;
  if (v !== 'f16' && v !== 'f32' && v !== 'auto') throw new Error(`BLORA_STORAGE must be f16, f32 or auto, got '${v}'`);
  return v;
}

export interface WhisperDecoderDims {
  /** d_model */
  C: number;
  /** attention heads, head dim (C = H·D) */
  H: number;
  D: number;
  /** fc1 width (decoder_ffn_dim) */
  F: number;
  /** decoder layers */
  L: number;
  /** vocabulary rows of embed_tokens */
  V: number;
  /** position rows of embed_positions (max_target_positions) */
  NP: number;
}

export interface LinearWeights {
  /** HF module name, e.g. model.decoder.layers.0.self_attn.q_proj */
  name: string;
  /** (nOut, nIn) PyTorch Linear layout */
  w: GPUBuffer;
  /** (nOut,) or null (k_proj) */
  b: GPUBuffer | null;
  nIn: number;
  nOut: number;
}

export interface LayerNormWeights {
  name: string;
  gamma: GPUBuffer; // (C,)
  beta: GPUBuffer; // (C,)
}

export interface AttentionWeights {
  q: LinearWeights;
  k: LinearWeights;
  v: LinearWeights;
  out: LinearWeights;
}

export interface DecoderLayerWeights {
  selfAttnLn: LayerNormWeights;
  selfAttn: AttentionWeights;
  crossAttnLn: LayerNormWeights;
  crossAttn: AttentionWeights;
  finalLn: LayerNormWeights;
  fc1: LinearWeights;
  fc2: LinearWeights;
}

export interface DecoderWeights {
  dims: WhisperDecoderDims;
  /** E (V, C): token embedding and tied output projection, in row parts where it is over maxBufferSize */
  embedTokens: RowSplit;
  /** P (NP, C) */
  embedPositions: GPUBuffer;
  layers: DecoderLayerWeights[];
  /** decoder.layer_norm (final) */
  layerNorm: LayerNormWeights;
  /** bytes uploaded */
  bytes: number;
  /** element type of E, P and the Linear W matrices (biases, layer norms: f32) */
  storage: StorageType;
  destroy(): void;
}

const PREFIX = 'model.decoder.';

/** Decoder dimensions from the tensor shapes; heads from config.json (decoder_attention_heads). */
export function decoderDims(st: TensorSource, heads: number): WhisperDecoderDims {
  const [V, C] = st.info(`${PREFIX}embed_tokens.weight`).shape;
  const [NP, C2] = st.info(`${PREFIX}embed_positions.weight`).shape;
  if (C2 !== C) throw new Error(`embed_positions width ${C2} ≠ embed_tokens width ${C}`);
  let L = 0;
  while (st.tensors.has(`${PREFIX}layers.${L}.fc1.weight`)) L++;
  if (L === 0) throw new Error('no decoder layers (model.decoder.layers.N.fc1.weight) in the safetensors file');
  const [F] = st.info(`${PREFIX}layers.0.fc1.weight`).shape;
  if (!Number.isInteger(heads) || heads < 1 || C % heads !== 0) throw new Error(`bad head count ${heads} for d_model ${C}`);
  return { C, H: heads, D: C / heads, F, L, V, NP };
}

/**
 * Upload the frozen decoder weights from a parsed model.safetensors (or the decoder tensors alone).
 * `heads` = config.json decoder_attention_heads (8 for Whisper base). `opts.storage`: 'f32' | 'f16' |
 * 'auto' (default: BLORA_STORAGE, else 'auto' = f16 where the device has shader-f16; see chooseStorage).
 */
export function uploadDecoderWeights(
  rt: GpuRuntime,
  st: TensorSource,
  heads: number,
  opts: { storage?: StorageType | 'auto' } = {},
): DecoderWeights {
  const storage = chooseStorage(rt.device, opts.storage ?? storageFromEnv()).storage;
  const dims = decoderDims(st, heads);
  const owned: GPUBuffer[] = [];
  let bytes = 0;
  const tensor = (name: string, shape: number[], matrix = shape.length === 2): GPUBuffer => {
    const info = st.info(name);
    if (info.shape.length !== shape.length || info.shape.some((s, i) => s !== shape[i])) {
      throw new Error(`${name}: shape [${info.shape}] ≠ expected [${shape}]`);
    }
    const data = st.float32(name);
    const buf = uploadAs(rt, name, data, matrix ? storage : 'f32');
    owned.push(buf);
    bytes += buf.size;
    return buf;
  };
  const { C, F, L, V, NP } = dims;
  const linear = (name: string, nOut: number, nIn: number, bias = true): LinearWeights => ({
    name,
    w: tensor(`${name}.weight`, [nOut, nIn]),
    b: bias ? tensor(`${name}.bias`, [nOut]) : null,
    nIn,
    nOut,
  });
  const ln = (name: string): LayerNormWeights => ({ name, gamma: tensor(`${name}.weight`, [C]), beta: tensor(`${name}.bias`, [C]) });
  const attn = (name: string): AttentionWeights => ({
    q: linear(`${name}.q_proj`, C, C),
    k: linear(`${name}.k_proj`, C, C, st.tensors.has(`${name}.k_proj.bias`)),
    v: linear(`${name}.v_proj`, C, C),
    out: linear(`${name}.out_proj`, C, C),
  });
  // E: the one tensor that outgrows a buffer (large-v3: 253 MiB in f32; phones allow less): row parts
  const eName = `${PREFIX}embed_tokens.weight`;
  const eInfo = st.info(eName);
  if (eInfo.shape.length !== 2 || eInfo.shape[0] !== V || eInfo.shape[1] !== C)
    throw new Error(`${eName}: shape [${eInfo.shape}] ≠ expected [${V},${C}]`);
  const embedTokens = uploadRowSplit(rt, eName, st.float32(eName), V, C, storage);
  for (const p of embedTokens.parts) {
    owned.push(p.buffer);
    bytes += p.buffer.size;
  }
  const embedPositions = tensor(`${PREFIX}embed_positions.weight`, [NP, C]);
  const layers: DecoderLayerWeights[] = [];
  for (let l = 0; l < L; l++) {
    const p = `${PREFIX}layers.${l}`;
    layers.push({
      selfAttnLn: ln(`${p}.self_attn_layer_norm`),
      selfAttn: attn(`${p}.self_attn`),
      crossAttnLn: ln(`${p}.encoder_attn_layer_norm`),
      crossAttn: attn(`${p}.encoder_attn`),
      finalLn: ln(`${p}.final_layer_norm`),
      fc1: linear(`${p}.fc1`, F, C),
      fc2: linear(`${p}.fc2`, C, F),
    });
  }
  const layerNorm = ln(`${PREFIX}layer_norm`);
  return {
    dims,
    embedTokens,
    embedPositions,
    layers,
    layerNorm,
    bytes,
    storage,
    destroy: () => owned.forEach((b) => b.destroy()),
  };
}

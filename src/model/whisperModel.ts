// Loads and validates a Whisper model folder in the transformers.js / Hugging Face ONNX layout:
//   config.json, generation_config.json, preprocessor_config.json, tokenizer.json, tokenizer_config.json,
//   onnx/encoder_model.onnx, and onnx/decoder_model_merged.onnx
//   (or onnx/decoder_model.onnx + onnx/decoder_with_past_model.onnx),
//   optionally model.safetensors (the weights as tensors for the WGSL engine; see docs/model-format.md).
// Every mismatch is reported with the file that causes it.

import { WhisperTokenizer } from '@huggingface/transformers';
import { ModelFileError, readJson, type ModelSource } from './source';

export interface WhisperConfig {
  model_type: string;
  vocab_size: number;
  num_mel_bins: number;
  d_model: number;
  encoder_layers: number;
  decoder_layers: number;
  encoder_attention_heads: number;
  decoder_attention_heads: number;
  encoder_ffn_dim: number;
  decoder_ffn_dim: number;
  max_source_positions: number;
  max_target_positions: number;
  decoder_start_token_id: number;
  eos_token_id: number;
}

export interface WhisperGenerationConfig {
  decoder_start_token_id: number;
  eos_token_id: number;
  no_timestamps_token_id: number;
  suppress_tokens: number[];
  begin_suppress_tokens: number[];
  is_multilingual?: boolean;
  lang_to_id?: Record<string, number>;
  task_to_id?: Record<string, number>;
  max_length?: number;
}

export interface PreprocessorConfig {
  feature_size: number;
  sampling_rate: number;
  hop_length: number;
  n_fft: number;
  chunk_length: number;
  n_samples: number;
  nb_max_frames: number;
  [k: string]: unknown;
}

export type DecoderFiles = { kind: 'merged'; merged: string } | { kind: 'split'; first: string; withPast: string };

export interface WhisperAssets {
  source: ModelSource;
  config: WhisperConfig;
  generation: WhisperGenerationConfig;
  preprocessor: PreprocessorConfig;
  tokenizer: WhisperTokenizer;
  encoderFile: string;
  decoder: DecoderFiles;
  hasSafetensors: boolean;
  /** Short summary for the UI. */
  summary: { layers: number; dModel: number; vocab: number; melBins: number; multilingual: boolean; languages: number };
}

export class ModelMismatchError extends Error {
  constructor(
    readonly file: string,
    readonly source: string,
    reason: string,
  ) {
    super(`Model file "${file}" in ${source} does not match the model: ${reason}`);
    this.name = 'ModelMismatchError';
  }
}

const ENCODER = 'onnx/encoder_model.onnx';
const MERGED = 'onnx/decoder_model_merged.onnx';
const SPLIT_FIRST = 'onnx/decoder_model.onnx';
const SPLIT_PAST = 'onnx/decoder_with_past_model.onnx';

function need<T>(obj: Record<string, unknown>, key: string, file: string, source: string, type: string): T {
  const v = obj[key];
  if (type === 'array' ? !Array.isArray(v) : typeof v !== type) {
    throw new ModelFileError(file, source, `field "${key}" is missing or not a ${type}`);
  }
  return v as T;
}

/** Token id of a token string in a tokenizer.json (vocab or added tokens), or undefined. */
function tokenId(tokJson: { model?: { vocab?: Record<string, number> }; added_tokens?: { id: number; content: string }[] }, token: string) {
  const added = tokJson.added_tokens?.find((t) => t.content === token);
  return added ? added.id : tokJson.model?.vocab?.[token];
}

export async function loadWhisperAssets(source: ModelSource, onStep?: (msg: string) => void): Promise<WhisperAssets> {
  const S = source.label;
  onStep?.('reading config files');
  const config = await readJson<WhisperConfig & Record<string, unknown>>(source, 'config.json');
  if (config.model_type !== 'whisper') {
    throw new ModelFileError('config.json', S, `model_type is "${String(config.model_type)}", expected "whisper"`);
  }
  for (const k of ['vocab_size', 'num_mel_bins', 'd_model', 'decoder_layers', 'decoder_attention_heads', 'max_target_positions']) {
    need<number>(config, k, 'config.json', S, 'number');
  }
  const generation = await readJson<WhisperGenerationConfig & Record<string, unknown>>(source, 'generation_config.json');
  for (const k of ['decoder_start_token_id', 'eos_token_id', 'no_timestamps_token_id']) {
    need<number>(generation, k, 'generation_config.json', S, 'number');
  }
  generation.suppress_tokens ??= [];
  generation.begin_suppress_tokens ??= [];
  // A multilingual prompt needs <|lang|> and <|transcribe|> ids; an English-only one (is_multilingual
  // false, e.g. tiny.en) is <|startoftranscript|> <|notimestamps|> and needs neither.
  if (generation.is_multilingual) {
    if (!Object.keys(generation.lang_to_id ?? {}).length) {
      throw new ModelFileError('generation_config.json', S, 'is_multilingual is true but lang_to_id is missing or empty');
    }
    if (typeof generation.task_to_id?.transcribe !== 'number') {
      throw new ModelFileError('generation_config.json', S, 'is_multilingual is true but task_to_id.transcribe is missing');
    }
  }
  const preprocessor = await readJson<PreprocessorConfig & Record<string, unknown>>(source, 'preprocessor_config.json');
  need<number>(preprocessor, 'feature_size', 'preprocessor_config.json', S, 'number');
  if (preprocessor.feature_size !== config.num_mel_bins) {
    throw new ModelMismatchError(
      'preprocessor_config.json',
      S,
      `feature_size ${preprocessor.feature_size} but config.json num_mel_bins is ${config.num_mel_bins}`,
    );
  }
  if (preprocessor.sampling_rate !== 16000) {
    throw new ModelMismatchError('preprocessor_config.json', S, `sampling_rate ${preprocessor.sampling_rate}, Whisper expects 16000`);
  }

  onStep?.('reading tokenizer');
  const tokJson = await readJson<Record<string, any>>(source, 'tokenizer.json');
  const tokConfig = await readJson<Record<string, any>>(source, 'tokenizer_config.json');
  // The tokenizer must belong to this model: same vocabulary size and the same special-token ids.
  const ids = [
    ...Object.values((tokJson.model?.vocab ?? {}) as Record<string, number>),
    ...((tokJson.added_tokens ?? []) as { id: number }[]).map((t) => t.id),
  ];
  const tokVocab = ids.length ? Math.max(...ids) + 1 : 0;
  if (tokVocab > config.vocab_size) {
    throw new ModelMismatchError(
      'tokenizer.json',
      S,
      `it has ${tokVocab} tokens but config.json vocab_size is ${config.vocab_size} (a tokenizer of another Whisper?)`,
    );
  }
  const specials: [string, number, string][] = [
    ['<|endoftext|>', generation.eos_token_id, 'generation_config.json eos_token_id'],
    ['<|startoftranscript|>', generation.decoder_start_token_id, 'generation_config.json decoder_start_token_id'],
    ['<|notimestamps|>', generation.no_timestamps_token_id, 'generation_config.json no_timestamps_token_id'],
  ];
  for (const [lang, id] of Object.entries(generation.lang_to_id ?? {}))
    specials.push([lang, id, `generation_config.json lang_to_id["${lang}"]`]);
  for (const [task, id] of Object.entries(generation.task_to_id ?? {}))
    specials.push([`<|${task}|>`, id, `generation_config.json task_to_id["${task}"]`]);
  for (const [token, id, where] of specials) {
    const got = tokenId(tokJson, token);
    if (got !== id) {
      throw new ModelMismatchError('tokenizer.json', S, `${token} is id ${got ?? '(absent)'} there, but ${where} is ${id}`);
    }
  }
  const tokenizer = new WhisperTokenizer(tokJson, tokConfig);

  onStep?.('checking ONNX files');
  if (!(await source.has(ENCODER))) throw new ModelFileError(ENCODER, S, 'file not found (the frozen encoder is required)');
  let decoder: DecoderFiles;
  if (await source.has(MERGED)) decoder = { kind: 'merged', merged: MERGED };
  else if ((await source.has(SPLIT_FIRST)) && (await source.has(SPLIT_PAST)))
    decoder = { kind: 'split', first: SPLIT_FIRST, withPast: SPLIT_PAST };
  else throw new ModelFileError(MERGED, S, `file not found (nor the pair ${SPLIT_FIRST} + ${SPLIT_PAST})`);
  const hasSafetensors = await source.has('model.safetensors');

  return {
    source,
    config,
    generation,
    preprocessor,
    tokenizer,
    encoderFile: ENCODER,
    decoder,
    hasSafetensors,
    summary: {
      layers: config.decoder_layers,
      dModel: config.d_model,
      vocab: config.vocab_size,
      melBins: config.num_mel_bins,
      multilingual: !!generation.is_multilingual,
      languages: Object.keys(generation.lang_to_id ?? {}).length,
    },
  };
}

// Greedy decoding as Hugging Face transformers' Whisper generate does it for short-form audio without
// timestamps: prompt <|startoftranscript|><|lang|><|transcribe|><|notimestamps|>, suppress_tokens at
// every step, begin_suppress_tokens at the first generated position, argmax, stop at <|endoftext|>.
// Language detection (when no language is given): argmax over the language tokens after <|startoftranscript|>.
// English-only models (generation_config.json is_multilingual false, e.g. tiny.en): prompt
// <|startoftranscript|><|notimestamps|> — no language, no task token, no detection (HF generate's prompt there).

import type { EncoderOutput } from '../encoder/encoder';
import type { WhisperAssets } from '../model/whisperModel';
import type { StepDecoder } from './types';

export interface GenerateOptions {
  /** "en", "de", "<|de|>" …; null/undefined = detect. */
  language?: string | null;
  task?: 'transcribe' | 'translate';
  /** Cap on generated tokens (transformers' max_new_tokens); runaway repetition stops here. */
  maxNewTokens?: number;
}

export interface GenerateResult {
  prompt: number[];
  /** Generated ids, without the prompt, including the final <|endoftext|> when reached. */
  tokens: number[];
  text: string;
  language: string | null;
  /** true when the cap, not <|endoftext|>, ended decoding. */
  truncated: boolean;
  /**
   * Per generated token (tokens' order): its probability and the entropy (nats) of the distribution it was picked
   * from (after token suppression) — the WGSL greedy decoder only; the uncertainty scores read them.
   */
  tokenProbs?: number[];
  tokenEntropy?: number[];
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

export function languageToken(assets: WhisperAssets, language: string): number {
  const map = assets.generation.lang_to_id ?? {};
  const token = language.startsWith('<|') ? language : `<|${language.toLowerCase()}|>`;
  const id = map[token];
  if (id === undefined) {
    const known = Object.keys(map)
      .map((t) => t.slice(2, -2))
      .join(', ');
    throw new Error(`Language "${language}" is not one this model knows (${known || 'it is English-only'})`);
  }
  return id;
}

/**
 * The language of a request to an English-only model: its prompt carries no language token, so it can
 * only transcribe English; "en" or no language is accepted, anything else is an error (HF generate
 * refuses a language for these models too).
 */
export function englishOnlyLanguage(language: string | null | undefined): 'en' {
  const code = language ? language.replace(/^<\||\|>$/g, '').toLowerCase() : 'en';
  if (code !== 'en') {
    throw new Error(
      `Language "${language}" cannot be transcribed: this model is English-only (generation_config.json is_multilingual is false)`,
    );
  }
  return 'en';
}

export async function detectLanguage(decoder: StepDecoder, enc: EncoderOutput, assets: WhisperAssets): Promise<string> {
  const map = assets.generation.lang_to_id ?? {};
  const stepper = await decoder.begin(enc);
  try {
    const logits = await stepper.step([assets.generation.decoder_start_token_id]);
    let best: string | null = null;
    let bestScore = -Infinity;
    for (const [tok, id] of Object.entries(map)) {
      if (logits[id] > bestScore) {
        bestScore = logits[id];
        best = tok;
      }
    }
    if (!best) throw new Error('this model has no language tokens to detect');
    return best.slice(2, -2);
  } finally {
    stepper.dispose();
  }
}

export async function generateGreedy(
  decoder: StepDecoder,
  enc: EncoderOutput,
  assets: WhisperAssets,
  opts: GenerateOptions = {},
): Promise<GenerateResult> {
  const g = assets.generation;
  const maxNew = opts.maxNewTokens ?? 128;
  let language: string | null = null;
  const prompt = [g.decoder_start_token_id];
  if (g.is_multilingual) {
    language = opts.language ? opts.language.replace(/^<\||\|>$/g, '') : await detectLanguage(decoder, enc, assets);
    prompt.push(languageToken(assets, language));
    const task = opts.task ?? 'transcribe';
    const taskId = g.task_to_id?.[task];
    if (taskId === undefined) throw new Error(`generation_config.json has no task_to_id["${task}"]`);
    prompt.push(taskId);
  } else {
    language = englishOnlyLanguage(opts.language);
    if (opts.task === 'translate') throw new Error('An English-only model cannot translate (its prompt has no task token)');
  }
  prompt.push(g.no_timestamps_token_id);
  const limit = Math.min(maxNew, assets.config.max_target_positions - prompt.length);

  const stepper = await decoder.begin(enc);
  const tokens: number[] = [];
  let truncated = true;
  try {
    let logits = await stepper.step(prompt);
    for (let i = 0; i < limit; i++) {
      for (const id of g.suppress_tokens) logits[id] = -Infinity;
      if (i === 0) for (const id of g.begin_suppress_tokens) logits[id] = -Infinity;
      const next = argmax(logits);
      tokens.push(next);
      if (next === g.eos_token_id) {
        truncated = false;
        break;
      }
      if (i + 1 < limit) logits = await stepper.step([next]);
    }
  } finally {
    stepper.dispose();
  }
  const text = assets.tokenizer
    .decode(tokens.filter((t) => t !== g.eos_token_id).length ? tokens : [g.eos_token_id], { skip_special_tokens: true })
    .trim();
  return { prompt, tokens, text, language, truncated };
}

/**
 * Training data for the engine (environment-agnostic: the CLI in Node and the studio's worker both
 * use it; audio bytes come in through a reader callback).
 *
 * A dataset row (src/data/manifest.ts Utterance) becomes a PreparedUtterance:
 *   sequence  = SOT, <|lang|>, <|transcribe|>, <|notimestamps|>, text tokens…, EOT
 *   decoder input = sequence[:-1], labels = sequence[1:]  (HF's shift; the 4-token prompt's first
 *   three labels are <|lang|>, <|transcribe|>, <|notimestamps|> — scored like every label, as HF's
 *   Whisper fine-tuning recipe does)
 *   English-only models (generation_config.json is_multilingual false, e.g. tiny.en): SOT,
 *   <|notimestamps|>, text…, EOT — the prompt their generate uses and their tokenizer's prefix (no
 *   language or task token exists in it); rows in English or without a language only.
 * Text is tokenized with a leading space (" I forgot …"), as Whisper itself generates it.
 * Rows are rejected one by one (PrepareError, never a crash): no or unknown language (another than
 * English for an English-only model), empty text, more than 448 positions (the decoder's learned
 * position table), unreadable audio.
 *
 * Encoder states: 16-kHz samples → log-mel → frozen encoder (onnxruntime-web) → EncoderKvCache.add
 * under the audio's content hash (utteranceKey), so the same clip in train and eval is encoded once.
 *
 * Batching: the engine is prepared once for (B, S) with S = the longest training input; every
 * micro-batch is right-padded to S (input EOT, label −100, self-attention keys masked). The order is
 * a seeded permutation per epoch; batches run straight across epoch boundaries (no partial batches,
 * no dropped rows), so the sampler state is just (epoch, position).
 */
import type { Utterance } from '../data/manifest';
import { englishOnlyLanguage, languageToken } from '../decoder/generate';
import { utteranceKey } from '../encoder/encoder';
import { mulberry32 } from '../engine/adapters';
import type { DecoderBatch, EncoderKvCache } from '../engine/decoder';
import type { WhisperAssets } from '../model/whisperModel';

/** Whisper's decoder positions (max_target_positions): a sequence longer than this is rejected. */
export const WHISPER_MAX_POSITIONS = 448;
/** Whisper's input window: 30 s at 16 kHz. */
export const WHISPER_MAX_SAMPLES = 30 * 16000;

export interface PreparedUtterance {
  /** EncoderKvCache key (content hash of the 16-kHz samples) */
  key: string;
  id: string;
  text: string;
  language: string;
  /** SOT, lang, transcribe, notimestamps, text…, EOT (English-only models: SOT, notimestamps, text…, EOT) */
  seq: number[];
  /** Per-word language tags of `text` when the dataset has them (Utterance.wordLangs; PIER) */
  wordLangs?: string[];
}

export interface PrepareError {
  id: string;
  audio?: string;
  message: string;
}

export interface SpecialTokens {
  sot: number;
  eot: number;
  /** null for an English-only model (its prompt has no task token) */
  transcribe: number | null;
  noTimestamps: number;
}

export function specialTokens(assets: WhisperAssets): SpecialTokens {
  const g = assets.generation;
  const base = { sot: g.decoder_start_token_id, eot: g.eos_token_id, noTimestamps: g.no_timestamps_token_id };
  // The same rule as the decoders (src/decoder/generate.ts): is_multilingual decides the prompt.
  if (!g.is_multilingual) return { ...base, transcribe: null };
  const transcribe = g.task_to_id?.transcribe;
  if (transcribe === undefined)
    throw new Error('generation_config.json has no task_to_id.transcribe (a multilingual Whisper needs it in the prompt)');
  return { ...base, transcribe };
}

/** The token sequence of a row, or the reason it cannot be trained on. */
export function tokenizeRow(
  row: Utterance,
  assets: WhisperAssets,
  opts: { language?: string | null; maxPositions?: number } = {},
): { seq: number[]; language: string } | { error: string } {
  const language = row.language ?? opts.language ?? null;
  const sp = specialTokens(assets);
  let prompt: number[];
  if (sp.transcribe === null) {
    try {
      englishOnlyLanguage(language); // no language = English: the only one the model knows
    } catch (e) {
      return {
        error: `language "${language}": only English rows can be trained on this English-only model (generation_config.json is_multilingual is false)`,
      };
    }
    prompt = [sp.sot, sp.noTimestamps];
  } else {
    if (!language) return { error: 'no language (add a "language" column, or pass a default language)' };
    let lang: number;
    try {
      lang = languageToken(assets, language);
    } catch (e) {
      return { error: (e as Error).message };
    }
    prompt = [sp.sot, lang, sp.transcribe, sp.noTimestamps];
  }
  const text = row.text.trim();
  if (!text) return { error: 'empty transcript' };
  const ids = assets.tokenizer.encode(` ${text}`, { add_special_tokens: false }) as number[];
  const seq = [...prompt, ...ids, sp.eot];
  const max = opts.maxPositions ?? Math.min(WHISPER_MAX_POSITIONS, assets.config.max_target_positions);
  if (seq.length > max) return { error: `too long: ${seq.length} tokens with the prompt > ${max} decoder positions` };
  return { seq, language: (language ?? 'en').replace(/^<\|(.*)\|>$/, '$1').toLowerCase() };
}

export interface PrepareDeps {
  assets: WhisperAssets;
  cache: EncoderKvCache;
  /** 16-kHz mono samples of a row (Node: fs + loadAudio16k; browser: File + WebAudio) */
  readAudio(row: Utterance): Promise<Float32Array>;
  /** encoder states (E·C floats, row-major (E, C)) of 16-kHz samples: log-mel + frozen encoder */
  encode(samples: Float32Array): Promise<Float32Array>;
  onProgress?(done: number, total: number, id: string): void;
  language?: string | null;
}

/** Tokenize, read, encode and cache rows; bad rows are returned as errors, the rest prepared. */
export async function prepareUtterances(
  rows: Utterance[],
  deps: PrepareDeps,
): Promise<{ utterances: PreparedUtterance[]; errors: PrepareError[] }> {
  const utterances: PreparedUtterance[] = [];
  const errors: PrepareError[] = [];
  const ok: { row: Utterance; seq: number[]; language: string }[] = [];
  for (const row of rows) {
    const t = tokenizeRow(row, deps.assets, { language: deps.language });
    if ('error' in t) errors.push({ id: row.id, audio: row.audio, message: t.error });
    else ok.push({ row, ...t });
  }
  for (const [i, { row, seq, language }] of ok.entries()) {
    let samples: Float32Array;
    try {
      samples = await deps.readAudio(row);
    } catch (e) {
      errors.push({ id: row.id, audio: row.audio, message: `audio: ${(e as Error).message}` });
      deps.onProgress?.(i + 1, ok.length, row.id);
      continue;
    }
    // Whisper hears 30 s: a longer clip's transcript would be trained against audio the model never
    // sees (the features cut the window), so it is rejected, with its duration.
    if (samples.length > WHISPER_MAX_SAMPLES) {
      errors.push({
        id: row.id,
        audio: row.audio,
        message: `${(samples.length / 16000).toFixed(1)} s of audio: longer than Whisper's 30-s window (cut it into clips of at most 30 s)`,
      });
      deps.onProgress?.(i + 1, ok.length, row.id);
      continue;
    }
    const key = utteranceKey(samples);
    if (!deps.cache.has(key)) await deps.cache.add(key, await deps.encode(samples));
    utterances.push({ key, id: row.id, text: row.text, language, seq, ...(row.wordLangs ? { wordLangs: row.wordLangs } : {}) });
    deps.onProgress?.(i + 1, ok.length, row.id);
  }
  return { utterances, errors };
}

/** Decoder input length of an utterance (sequence minus its last token). */
export const inputLength = (u: PreparedUtterance): number => u.seq.length - 1;

/** Right-padded teacher-forcing batch of exactly B utterances at length S. */
export function makeBatch(utts: PreparedUtterance[], S: number, eot: number): DecoderBatch & { tokens: number } {
  const B = utts.length;
  const inputIds = new Int32Array(B * S).fill(eot);
  const labels = new Int32Array(B * S).fill(-100);
  const lengths: number[] = [];
  let tokens = 0;
  utts.forEach((u, b) => {
    const n = inputLength(u);
    if (n > S) throw new Error(`utterance ${u.id}: ${n} input tokens > S = ${S}`);
    lengths.push(n);
    for (let i = 0; i < n; i++) {
      inputIds[b * S + i] = u.seq[i];
      labels[b * S + i] = u.seq[i + 1];
    }
    tokens += n;
  });
  return { inputIds, labels, lengths, utterances: utts.map((u) => u.key), tokens };
}

export interface SamplerState {
  epoch: number;
  /** next index into the epoch's permutation */
  pos: number;
  /** MixSampler only: draws made, and each training set's own permutation stream */
  mix?: { draws: number; sets: { epoch: number; pos: number }[] };
}

/** What Trainer draws its micro-batches from: indices into data.train. */
export interface Sampler {
  next(): number[];
  state: SamplerState;
}

/** Seeded per-epoch permutations, consumed B at a time straight across epoch boundaries. */
export class BatchSampler {
  private perm: number[];
  private st: SamplerState = { epoch: 0, pos: 0 };

  constructor(
    readonly n: number,
    readonly batchSize: number,
    readonly seed: number,
  ) {
    if (!(n >= 1)) throw new Error('BatchSampler: no training utterances');
    this.perm = this.permutation(0);
  }

  /** Fisher–Yates with mulberry32 seeded by (seed, epoch). */
  permutation(epoch: number): number[] {
    const rnd = mulberry32((Math.imul(this.seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
    const p = Array.from({ length: this.n }, (_, i) => i);
    for (let i = this.n - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }

  next(): number[] {
    const out: number[] = [];
    while (out.length < this.batchSize) {
      if (this.st.pos >= this.n) {
        this.st = { epoch: this.st.epoch + 1, pos: 0 };
        this.perm = this.permutation(this.st.epoch);
      }
      out.push(this.perm[this.st.pos++]);
    }
    return out;
  }

  get state(): SamplerState {
    return { ...this.st };
  }

  set state(s: SamplerState) {
    if (!(Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.pos) && s.pos >= 0 && s.pos <= this.n)) {
      throw new Error(`BatchSampler: bad state ${JSON.stringify(s)}`);
    }
    this.st = { ...s };
    this.perm = this.permutation(s.epoch);
  }
}

/**
 * Several training sets mixed with probabilities (data.trainMix; the authors interleave their training sets with
 * datasets.interleave_datasets, probabilities equal, train_bnnlora.py:479-483). data.train is the sets one after
 * the other; each utterance slot of a micro-batch draws its set with probability p_i — uniform u of draw d from
 * mulberry32(hash(seed, d)), so the state is a counter — and takes the next index of that set's own seeded
 * permutation stream (BatchSampler of batch 1, seed + 7919·i: set 0 alone reproduces BatchSampler(n, B, seed)'s
 * order). Sets are reshuffled when used up (not stopped at the first exhausted: a run has a fixed step count).
 * Twin: MixSampler in tools/blora_train.py.
 */
export class MixSampler implements Sampler {
  private readonly sets: BatchSampler[];
  private readonly offsets: number[];
  private readonly cum: number[];
  private draws = 0;

  constructor(
    sizes: number[],
    ps: number[],
    readonly batchSize: number,
    readonly seed: number,
  ) {
    if (sizes.length !== ps.length || !sizes.length) throw new Error('MixSampler: one probability per training set');
    const total = ps.reduce((a, b) => a + b, 0);
    if (!ps.every((p) => p > 0) || Math.abs(total - 1) > 1e-9)
      throw new Error(`MixSampler: probabilities must be > 0 and sum to 1 (got ${ps.join(', ')})`);
    this.sets = sizes.map((n, i) => new BatchSampler(n, 1, seed + 7919 * i));
    this.offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    let c = 0;
    this.cum = ps.map((p) => (c += p));
  }

  /** The set of draw d (uniform from a per-draw generator: no stream state). */
  setOf(d: number): number {
    const u = mulberry32((Math.imul(this.seed >>> 0, 0x27d4eb2d) ^ Math.imul(d + 1, 0x165667b1)) >>> 0)();
    const i = this.cum.findIndex((c) => u < c);
    return i < 0 ? this.cum.length - 1 : i;
  }

  next(): number[] {
    const out: number[] = [];
    while (out.length < this.batchSize) {
      const i = this.setOf(this.draws++);
      out.push(this.offsets[i] + this.sets[i].next()[0]);
    }
    return out;
  }

  get state(): SamplerState {
    return { epoch: 0, pos: 0, mix: { draws: this.draws, sets: this.sets.map((s) => s.state) } };
  }

  set state(s: SamplerState) {
    if (!s.mix || s.mix.sets.length !== this.sets.length || !(Number.isInteger(s.mix.draws) && s.mix.draws >= 0)) {
      throw new Error(`MixSampler: bad state ${JSON.stringify(s)} (${this.sets.length} training sets)`);
    }
    this.draws = s.mix.draws;
    s.mix.sets.forEach((st, i) => (this.sets[i].state = { epoch: st.epoch, pos: st.pos }));
  }
}

// Word / character / mixed error rates with jiwer 4 semantics, on text normalized
// by the Whisper normalizers (English -> EnglishTextNormalizer, else Basic).
//
// Corpus aggregation follows jiwer: errors and reference tokens are summed over all
// pairs first, value = (S + D + I) / (H + S + D). When the whole reference side is
// empty jiwer returns the raw insertion count instead of a rate; we do the same so
// numbers stay comparable with published jiwer results.
//
// Parity with Python (transformers' normalizers + jiwer 4.0.0) is checked by
// test/metrics/wer.test.ts using tools/wer_oracle.py.

import { editCounts, type EditCounts } from './align';
import { BasicTextNormalizer, type TextNormalizer } from './normalizers/basic';
import { EnglishTextNormalizer } from './normalizers/english';
import { PY_WS, pyStrip } from './normalizers/pyre';

export { BasicTextNormalizer, EnglishTextNormalizer, type TextNormalizer };
export { EnglishNumberNormalizer, EnglishSpellingNormalizer } from './normalizers/english';

export interface ErrorRate extends EditCounts {
  /** (S + D + I) / refTokens; jiwer's raw insertion count when refTokens is 0. */
  value: number;
  /** H + S + D: number of reference tokens. */
  refTokens: number;
  hypTokens: number;
}

export interface PairErrorRate extends ErrorRate {
  /** Normalized reference / hypothesis (equal to the input when normalize is false). */
  ref: string;
  hyp: string;
}

export interface CorpusErrorRate extends ErrorRate {
  pairs: PairErrorRate[];
}

export interface MetricOptions {
  /** Whisper language code or name; picks the normalizer. Default "en". */
  language?: string;
  /** true (default): normalizerFor(language); false: raw text; or a custom normalizer. */
  normalize?: boolean | TextNormalizer;
}

const ENGLISH = new Set(['en', 'english']);

/** Languages written without spaces between words; WER over whitespace words is meaningless. */
const MIXED_LANGUAGES = new Set(['zh', 'chinese', 'mandarin', 'yue', 'cantonese', 'ja', 'japanese']);
const CER_LANGUAGES = new Set(['th', 'thai', 'lo', 'lao', 'my', 'burmese', 'myanmar', 'km', 'khmer', 'bo', 'tibetan']);

function baseLanguage(language: string): string {
  return language.trim().toLowerCase().split(/[-_]/)[0];
}

const normalizerCache = new Map<string, TextNormalizer>();

/**
 * Whisper's evaluation normalizer for a language: EnglishTextNormalizer for English,
 * BasicTextNormalizer() (keep diacritics, no letter splitting) for everything else.
 * For Chinese/Japanese letter splitting is deliberately left off so embedded Latin
 * words survive; computeMixedErrorRate does the CJK splitting instead.
 */
export function normalizerFor(language = 'en'): TextNormalizer {
  const key = ENGLISH.has(baseLanguage(language)) ? 'en' : 'basic';
  let fn = normalizerCache.get(key);
  if (!fn) {
    fn = key === 'en' ? new EnglishTextNormalizer().fn : new BasicTextNormalizer().fn;
    normalizerCache.set(key, fn);
  }
  return fn;
}

/** The headline metric to report for a language. */
export function primaryMetricFor(language = 'en'): 'wer' | 'mer' | 'cer' {
  const base = baseLanguage(language);
  if (MIXED_LANGUAGES.has(base)) return 'mer';
  if (CER_LANGUAGES.has(base)) return 'cer';
  return 'wer';
}

// ---- tokenizers (jiwer default transforms) -------------------------------------------

const MULTI_WS_RE = new RegExp(`[${PY_WS}][${PY_WS}]+`, 'gu');

/** jiwer wer_default: RemoveMultipleSpaces, Strip, split on " " dropping empties. */
export function wordTokens(s: string): string[] {
  return pyStrip(s.replace(MULTI_WS_RE, ' '))
    .split(' ')
    .filter((w) => w.length >= 1);
}

/** jiwer cer_default: Strip, then one token per code point (spaces included). */
export function charTokens(s: string): string[] {
  return Array.from(pyStrip(s));
}

/**
 * Code points treated as one token each by the mixed error rate: Han ideographs
 * (URO, Ext. A-H, compatibility), Hiragana, Katakana (+ phonetic ext.), and 々〆〇.
 * Hangul is excluded: Korean separates words with spaces.
 * tools/wer_oracle.py uses the same ranges.
 */
export const CJK_RANGES =
  '\\u3005-\\u3007\\u3040-\\u309f\\u30a0-\\u30ff\\u31f0-\\u31ff\\u3400-\\u4dbf\\u4e00-\\u9fff' +
  '\\uf900-\\ufaff\\u{20000}-\\u{2fa1f}\\u{30000}-\\u{323af}';

const MIXED_TOKEN_RE = new RegExp(`[${CJK_RANGES}]|[^${PY_WS}${CJK_RANGES}]+`, 'gu');

/**
 * Mixed CJK/Latin tokens: every CJK character is a token, every maximal run of other
 * non-whitespace characters (a Latin word, a number) is a token.
 * "我用python写code" -> ["我", "用", "python", "写", "code"].
 */
export function mixedTokens(s: string): string[] {
  return s.match(MIXED_TOKEN_RE) ?? [];
}

// ---- scoring ------------------------------------------------------------------------

function resolveNormalizer(options: MetricOptions): TextNormalizer {
  const { normalize = true, language = 'en' } = options;
  if (typeof normalize === 'function') return normalize;
  return normalize ? normalizerFor(language) : (s) => s;
}

function rate(c: EditCounts, refTokens: number): number {
  // jiwer: float(S + D + I) / float(H + S + D), or the insertion count for empty refs.
  return refTokens === 0 ? c.insertions : (c.substitutions + c.deletions + c.insertions) / refTokens;
}

function score(
  refs: readonly string[],
  hyps: readonly string[],
  options: MetricOptions,
  tokenize: (s: string) => string[],
): CorpusErrorRate {
  if (refs.length !== hyps.length) {
    throw new Error(`refs and hyps must have the same length (got ${refs.length} and ${hyps.length})`);
  }
  const normalize = resolveNormalizer(options);
  const total = { substitutions: 0, deletions: 0, insertions: 0, hits: 0, refTokens: 0, hypTokens: 0 };
  const pairs: PairErrorRate[] = refs.map((rawRef, i) => {
    const ref = normalize(rawRef);
    const hyp = normalize(hyps[i]);
    const r = tokenize(ref);
    const h = tokenize(hyp);
    const c = editCounts(r, h);
    total.substitutions += c.substitutions;
    total.deletions += c.deletions;
    total.insertions += c.insertions;
    total.hits += c.hits;
    total.refTokens += r.length;
    total.hypTokens += h.length;
    return { ...c, value: rate(c, r.length), refTokens: r.length, hypTokens: h.length, ref, hyp };
  });
  return { ...total, value: rate(total, total.refTokens), pairs };
}

/** Word error rate over a corpus (jiwer.wer on normalized text). */
export function computeWer(refs: readonly string[], hyps: readonly string[], options: MetricOptions = {}): CorpusErrorRate {
  return score(refs, hyps, options, wordTokens);
}

/**
 * Character error rate over a corpus (jiwer.cer on normalized text). As in jiwer,
 * inner spaces count as characters and consecutive spaces are not collapsed.
 */
export function computeCer(refs: readonly string[], hyps: readonly string[], options: MetricOptions = {}): CorpusErrorRate {
  return score(refs, hyps, options, charTokens);
}

/**
 * Mixed error rate for code-switched Mandarin/English (also usable for Japanese):
 * the normalized text is split with mixedTokens() (one token per CJK character,
 * one per Latin word) and scored like WER. This is NOT jiwer.mer (match error rate,
 * (S+D+I)/(H+S+D+I)); it is jiwer.wer(" ".join(tokens(ref)), " ".join(tokens(hyp))).
 */
export function computeMixedErrorRate(refs: readonly string[], hyps: readonly string[], options: MetricOptions = {}): CorpusErrorRate {
  return score(refs, hyps, { ...options, language: options.language ?? 'zh' }, mixedTokens);
}

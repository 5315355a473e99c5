// PIER, the point-of-interest error rate, on the embedded-language words of code-switched speech
// (Ugan, Huber, Hussain, Waibel: "PIER: A Novel Metric for Evaluating What Matters in Code-Switching",
// ICASSP 2025; reference implementation github.com/enesyugan/PIER-CodeSwitching-Evaluation, a jiwer
// fork: jiwer/process.py process_pier / get_idsh). WER over a code-switched sentence is dominated by
// the matrix-language words; PIER scores only the words of the other (embedded) language, which is
// where a model adapted to code-switching should improve.
//
// Definition implemented here, per utterance:
//   1. Normalization and tokens exactly as computeWer (src/metrics/wer.ts): the same normalizer
//      (options.normalize / options.language, default normalizerFor("en")) and wordTokens()
//      (or mixedTokens() with tokens: "mixed"), on reference and hypothesis.
//   2. Every reference token carries a language tag. Tags are given per word of the reference as
//      written ({ words, langs }, or the text plus wordLangs aligned with its whitespace words, or a
//      "<tag …>" transcript as the reference implementation takes). They are carried over to the
//      normalized tokens by normalizing each tagged word alone; when the pieces do not join up to the
//      normalized whole (a normalizer that works across words, e.g. English numbers "twenty five" →
//      "25"), the pieces are aligned to the whole with editOps() and each whole token takes the tag
//      of the piece it is aligned to (a token with none takes its left neighbour's, else the right).
//      `projected` counts the utterances where that alignment was needed.
//   3. The matrix language is the utterance's `matrix` (the dataset's language column), else
//      options.matrix, else the most frequent tag (a tie: the first word's). Points of interest
//      (POI) are the reference tokens whose tag differs from the matrix language.
//   4. Reference and hypothesis tokens are aligned with editOps() (rapidfuzz's Levenshtein editops
//      with its tie-breaking, the alignment jiwer and the reference implementation use).
//      S = substitutions of POI tokens, D = deletions of POI tokens, H = POI tokens matched.
//      I = insertions attributed to a POI token. An insertion sits between two reference tokens;
//      insertions: "following" (default, as the reference implementation's get_idsh: an editop
//      `insert` with src_pos p counts when token p is a POI, and one after the last token counts
//      when the last token is a POI) or "adjacent" (our option: it counts when the token before OR
//      after it is a POI, so an insertion right after an embedded span counts too). Each edit is
//      counted at most once, so the PIER numerator never exceeds the WER numerator.
//   5. PIER = (S + D + I) / (H + S + D) — the number of POI tokens in the denominator.
//
// Corpus level, as the reference implementation and jiwer: S, D, I and POI tokens are summed over
// the utterances first. An utterance enters only when its reference has at least one POI token and
// at least one matrix-language token (the reference implementation skips the others, so
// monolingual sentences do not count); a pair that does not enter has value null and a reason, and
// when none enters the corpus PIER is null with a reason (not 0: it is undefined).
//
// Where this differs from the reference implementation (our choices): it finds POI indices on the
// whitespace words of the raw tagged text but aligns the transformed tokens, so a transform that
// changes the word count shifts the indices; here the tags are carried to the normalized tokens
// (step 2). It can tag by script (Latin vs not) when no tags are given; here tags are required.
// Its percentage is a fraction here, as WER in this project.
import { editOps, type EditOp } from './align';
import { mixedTokens, normalizerFor, wordTokens, type MetricOptions, type TextNormalizer } from './wer';

/** Reference words (as written, or already normalized with normalize: false) and one language tag each. */
export interface TaggedWords {
  words: readonly string[];
  langs: readonly string[];
}

export interface PierItem {
  /** The reference: tagged words, or the text (with wordLangs), or a "<tag …>" transcript (see parseTaggedTranscript). */
  reference: string | TaggedWords;
  /** With a string reference: one tag per whitespace-separated word of it. */
  wordLangs?: readonly string[];
  hypothesis: string;
  /** Matrix language of this utterance (e.g. the dataset's language column). */
  matrix?: string;
}

export interface PierOptions extends MetricOptions {
  /** Matrix language when an item has none (else: the most frequent tag of the utterance). */
  matrix?: string;
  /** Which insertions count against the embedded words (see the module header). Default "following". */
  insertions?: 'following' | 'adjacent';
  /** Tokens as computeWer ("words", default) or computeMixedErrorRate ("mixed", CJK characters). */
  tokens?: 'words' | 'mixed';
}

export interface PierCounts {
  substitutions: number;
  deletions: number;
  insertions: number;
  hits: number;
  /** H + S + D: embedded-language (POI) tokens in the reference. */
  poiTokens: number;
}

export interface PierPair extends PierCounts {
  /** (S + D + I) / poiTokens; null when the utterance does not enter (see reason). */
  value: number | null;
  reason?: string;
  matrix: string;
  /** Normalized reference tokens, their tags and the normalized hypothesis tokens. */
  refTokens: string[];
  refLangs: string[];
  hypTokens: string[];
  /** WER's edit count (S + D + I over all tokens) for the same pair, for comparison. */
  werErrors: number;
  /** true when the tags had to be aligned onto the normalized tokens (step 2 of the header). */
  projected: boolean;
}

export interface PierResult extends PierCounts {
  /** Corpus PIER; null when no utterance has embedded-language words (see reason). */
  value: number | null;
  reason?: string;
  /** Utterances that entered / did not. */
  utterances: number;
  skipped: number;
  projected: number;
  pairs: PierPair[];
}

const TAG_RE = /<tag\s+([^>]*?)\s*>/g;

/**
 * The reference implementation's tagged transcript: embedded words inside "<tag …>" (one or more
 * words per tag), e.g. "Hast du das <tag File> <tag gedownloadet>?". Words inside a tag get
 * `embedded`, the others `matrix`.
 */
export function parseTaggedTranscript(text: string, embedded = 'embedded', matrix = 'matrix'): TaggedWords {
  const words: string[] = [];
  const langs: string[] = [];
  const push = (s: string, lang: string) => {
    for (const w of s.split(/\s+/).filter(Boolean)) {
      words.push(w);
      langs.push(lang);
    }
  };
  let pos = 0;
  for (const m of text.matchAll(TAG_RE)) {
    const before = text.slice(pos, m.index);
    // "<tag File>?" : punctuation glued to the tag belongs to the tagged word.
    push(before, matrix);
    push(m[1], embedded);
    pos = m.index + m[0].length;
    const glued = /^[^\s<]+/.exec(text.slice(pos));
    if (glued && words.length) {
      words[words.length - 1] += glued[0];
      pos += glued[0].length;
    }
  }
  push(text.slice(pos), matrix);
  return { words, langs };
}

/**
 * Tags of a corpus row whose metadata lists its language segments in order ([[lang, text], …], as
 * tools/make_corpus.py writes in `segments`): one tag per whitespace word of the joined text.
 */
export function wordLangsFromSegments(segments: readonly (readonly [string, string])[]): TaggedWords {
  const words: string[] = [];
  const langs: string[] = [];
  for (const [lang, t] of segments) {
    for (const w of t.split(/\s+/).filter(Boolean)) {
      words.push(w);
      langs.push(lang);
    }
  }
  return { words, langs };
}

const baseLang = (l: string) => l.trim().toLowerCase().split(/[-_]/)[0];

function taggedOf(item: PierItem): TaggedWords {
  if (typeof item.reference !== 'string') return item.reference;
  if (item.wordLangs) return { words: item.reference.split(/\s+/).filter(Boolean), langs: item.wordLangs };
  if (/<tag\s/.test(item.reference)) return parseTaggedTranscript(item.reference);
  throw new Error('a PIER reference needs language tags: wordLangs, { words, langs } or a "<tag …>" transcript');
}

/** Normalized tokens of the tagged reference, each with its tag (step 2 of the header). */
export function tagNormalizedTokens(
  ref: TaggedWords,
  normalize: TextNormalizer,
  tokenize: (s: string) => string[] = wordTokens,
): { tokens: string[]; langs: string[]; projected: boolean } {
  if (ref.words.length !== ref.langs.length) {
    throw new Error(`${ref.words.length} reference words but ${ref.langs.length} language tags`);
  }
  const whole = tokenize(normalize(ref.words.join(' ')));
  const pieces: string[] = [];
  const pieceLangs: string[] = [];
  ref.words.forEach((w, i) => {
    for (const t of tokenize(normalize(w))) {
      pieces.push(t);
      pieceLangs.push(ref.langs[i]);
    }
  });
  if (pieces.length === whole.length && pieces.every((t, i) => t === whole[i])) {
    return { tokens: whole, langs: pieceLangs, projected: false };
  }
  // Align pieces (as the reference side) to the whole: matched and replaced tokens take the piece's tag.
  const langs: (string | undefined)[] = new Array(whole.length).fill(undefined);
  let i = 0;
  let j = 0;
  const ops = editOps(pieces, whole);
  const step = (op?: EditOp) => {
    const ri = op ? op.refPos : pieces.length;
    while (i < ri) langs[j++] = pieceLangs[i++]; // matches up to the next op
  };
  for (const op of ops) {
    step(op);
    if (op.tag === 'replace') langs[j++] = pieceLangs[i++];
    else if (op.tag === 'delete') i++;
    else j++; // insert: a whole token without a piece, filled below
  }
  step();
  for (let k = 0; k < langs.length; k++) if (langs[k] === undefined && k > 0) langs[k] = langs[k - 1];
  for (let k = langs.length - 1; k >= 0; k--) if (langs[k] === undefined) langs[k] = langs[k + 1] ?? ref.langs[0] ?? '';
  return { tokens: whole, langs: langs as string[], projected: true };
}

function matrixOf(langs: readonly string[], given?: string): string {
  if (given) return baseLang(given);
  const count = new Map<string, number>();
  for (const l of langs) count.set(baseLang(l), (count.get(baseLang(l)) ?? 0) + 1);
  let best = langs.length ? baseLang(langs[0]) : '';
  for (const [l, c] of count) if (c > (count.get(best) ?? 0)) best = l;
  return best;
}

function resolveNormalizer(options: MetricOptions): TextNormalizer {
  const { normalize = true, language = 'en' } = options;
  if (typeof normalize === 'function') return normalize;
  return normalize ? normalizerFor(language) : (s) => s;
}

/** PIER of one utterance from already normalized, tagged reference tokens (steps 3–5 of the header). */
export function pierCounts(
  refTokens: readonly string[],
  refLangs: readonly string[],
  hypTokens: readonly string[],
  matrix: string,
  insertions: 'following' | 'adjacent' = 'following',
): PierCounts & { werErrors: number } {
  const m = baseLang(matrix);
  const poi = refLangs.map((l) => baseLang(l) !== m);
  const n = refTokens.length;
  const c = { substitutions: 0, deletions: 0, insertions: 0, hits: 0, poiTokens: poi.filter(Boolean).length, werErrors: 0 };
  for (const op of editOps(refTokens, hypTokens)) {
    c.werErrors++;
    const p = op.refPos;
    if (op.tag === 'replace') {
      if (poi[p]) c.substitutions++;
    } else if (op.tag === 'delete') {
      if (poi[p]) c.deletions++;
    } else {
      const after = p < n ? poi[p] : false;
      const before = p > 0 ? poi[p - 1] : false;
      // following: the word the insertion precedes; after the last word, the last word.
      const counts = insertions === 'adjacent' ? after || before : p < n ? after : before;
      if (counts) c.insertions++;
    }
  }
  c.hits = c.poiTokens - c.substitutions - c.deletions;
  return c;
}

/** Corpus PIER over tagged references and hypotheses (see the module header for the definition). */
export function computePier(items: readonly PierItem[], options: PierOptions = {}): PierResult {
  const normalize = resolveNormalizer(options);
  const tokenize = options.tokens === 'mixed' ? mixedTokens : wordTokens;
  const total = { substitutions: 0, deletions: 0, insertions: 0, hits: 0, poiTokens: 0 };
  let utterances = 0;
  let projected = 0;
  const pairs = items.map((item): PierPair => {
    const tagged = tagNormalizedTokens(taggedOf(item), normalize, tokenize);
    const hypTokens = tokenize(normalize(item.hypothesis));
    const matrix = matrixOf(tagged.langs, item.matrix ?? options.matrix);
    const c = pierCounts(tagged.tokens, tagged.langs, hypTokens, matrix, options.insertions);
    if (tagged.projected) projected++;
    const base = { ...c, matrix, refTokens: tagged.tokens, refLangs: tagged.langs, hypTokens, projected: tagged.projected };
    if (c.poiTokens === 0)
      return { ...base, value: null, reason: `no embedded-language words (every reference word is ${matrix || 'untagged'})` };
    if (c.poiTokens === tagged.tokens.length)
      return { ...base, value: null, reason: `no matrix-language (${matrix}) words: not code-switched` };
    utterances++;
    total.substitutions += c.substitutions;
    total.deletions += c.deletions;
    total.insertions += c.insertions;
    total.hits += c.hits;
    total.poiTokens += c.poiTokens;
    return { ...base, value: (c.substitutions + c.deletions + c.insertions) / c.poiTokens };
  });
  const value = total.poiTokens ? (total.substitutions + total.deletions + total.insertions) / total.poiTokens : null;
  const result: PierResult = { ...total, value, utterances, skipped: items.length - utterances, projected, pairs };
  if (value === null) result.reason = items.length ? 'no reference has both embedded-language and matrix-language words' : 'no utterances';
  return result;
}

/**
 * PIER of an eval set's transcripts, as the trainer reports it next to WER: utterances grouped by
 * language, each group with that language's normalizer (as scoreTranscripts does for WER) and the
 * language as the matrix language; only utterances with wordLangs take part. undefined when no
 * utterance carries tags or none has both embedded and matrix words.
 */
export function pierOfTranscripts(
  ts: readonly { language: string; reference: string; hypothesis: string; wordLangs?: readonly string[] }[],
): { pier: number; pierWords: number } | undefined {
  const groups = new Map<string, PierItem[]>();
  for (const t of ts) {
    if (!t.wordLangs) continue;
    const g = groups.get(t.language) ?? [];
    g.push({ reference: t.reference, wordLangs: t.wordLangs, hypothesis: t.hypothesis, matrix: t.language });
    groups.set(t.language, g);
  }
  let errors = 0;
  let words = 0;
  for (const [language, items] of groups) {
    const r = computePier(items, { language });
    errors += r.substitutions + r.deletions + r.insertions;
    words += r.poiTokens;
  }
  return words ? { pier: errors / words, pierWords: words } : undefined;
}

// TypeScript port of OpenAI Whisper's `whisper/normalizers/basic.py`
// (openai-whisper 20250625, MIT License, Copyright (c) 2022 OpenAI; see
// third_party/whisper-normalizers/LICENSE). Behaviour is kept identical to the
// Python original (and to transformers' copy in models/whisper/english_normalizer.py);
// the parity test in test/metrics/wer.test.ts checks this against Python.

import { pyRegExp, pySub } from './pyre';

/** Non-ASCII letters that NFKD does not decompose. */
export const ADDITIONAL_DIACRITICS: ReadonlyMap<string, string> = new Map([
  ['œ', 'oe'],
  ['Œ', 'OE'],
  ['ø', 'o'],
  ['Ø', 'O'],
  ['æ', 'ae'],
  ['Æ', 'AE'],
  ['ß', 'ss'],
  ['ẞ', 'SS'],
  ['đ', 'd'],
  ['Đ', 'D'],
  ['ð', 'd'],
  ['Ð', 'D'],
  ['þ', 'th'],
  ['Þ', 'th'],
  ['ł', 'l'],
  ['Ł', 'L'],
]);

const IS_MN = /^\p{Mn}$/u;
const IS_MSP = /^[\p{M}\p{S}\p{P}]$/u;

/**
 * Replace markers, symbols and punctuation with a space and drop diacritics
 * (category Mn after NFKD, plus ADDITIONAL_DIACRITICS). Characters in `keep` survive.
 */
export function removeSymbolsAndDiacritics(s: string, keep = ''): string {
  let out = '';
  // for..of iterates code points, matching Python's per-character loop.
  for (const c of s.normalize('NFKD')) {
    if (keep.includes(c)) out += c;
    else if (ADDITIONAL_DIACRITICS.has(c)) out += ADDITIONAL_DIACRITICS.get(c);
    else if (IS_MN.test(c)) out += '';
    else if (IS_MSP.test(c)) out += ' ';
    else out += c;
  }
  return out;
}

/** Replace markers, symbols and punctuation with a space, keeping diacritics (NFKC). */
export function removeSymbols(s: string): string {
  let out = '';
  for (const c of s.normalize('NFKC')) out += IS_MSP.test(c) ? ' ' : c;
  return out;
}

export const BRACKETS_RE = pyRegExp(String.raw`[<\[][^>\]]*[>\]]`);
export const PARENS_RE = pyRegExp(String.raw`\(([^)]+?)\)`);
export const WHITESPACE_RE = pyRegExp(String.raw`\s+`);

export interface BasicTextNormalizerOptions {
  /** NFKD + drop combining marks instead of NFKC (default false, as upstream). */
  removeDiacritics?: boolean;
  /** Put a space between every extended grapheme cluster (default false). */
  splitLetters?: boolean;
}

export type TextNormalizer = (s: string) => string;

export class BasicTextNormalizer {
  private readonly clean: (s: string) => string;
  private readonly splitLetters: boolean;
  private segmenter: Intl.Segmenter | null = null;

  constructor(options: BasicTextNormalizerOptions = {}) {
    this.clean = options.removeDiacritics ? (s) => removeSymbolsAndDiacritics(s) : removeSymbols;
    this.splitLetters = options.splitLetters ?? false;
  }

  normalize(s: string): string {
    s = s.toLowerCase();
    s = pySub(BRACKETS_RE, '', s); // remove words between brackets
    s = pySub(PARENS_RE, '', s); // remove words between parenthesis
    s = this.clean(s).toLowerCase();

    if (this.splitLetters) {
      // Python uses regex.findall(r"\X"): extended grapheme clusters.
      this.segmenter ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
      s = Array.from(this.segmenter.segment(s), (g) => g.segment).join(' ');
    }

    return pySub(WHITESPACE_RE, ' ', s);
  }

  /** Bound function form, convenient for `refs.map(normalizer.fn)`. */
  readonly fn: TextNormalizer = (s) => this.normalize(s);
}

// TypeScript port of OpenAI Whisper's `whisper/normalizers/english.py`
// (openai-whisper 20250625, MIT License, Copyright (c) 2022 OpenAI; see
// third_party/whisper-normalizers/LICENSE). `english-spelling.json` is upstream's
// `english.json`, unmodified. Behaviour is kept identical to the Python original,
// including its quirks (e.g. "nineth", the unescaped "." in the cents regex);
// the parity test in test/metrics/wer.test.ts checks this against Python.
//
// Numbers are BigInt because Python ints are unbounded and the multiplier table
// goes up to 10^33.

import spellingJson from './english-spelling.json';
import { removeSymbolsAndDiacritics, BRACKETS_RE, PARENS_RE, WHITESPACE_RE } from './basic';
import { pyRegExp, pySplit, pyStrip, pySub } from './pyre';

type Value = bigint | string | null;

const NUMERIC_RE = pyRegExp(String.raw`^\d+(\.\d+)?$`, 'u');
// Python's fractions._RATIONAL_FORMAT restricted to what process_words can produce:
// Unicode digits with at most one ".", at least one digit.
const FRACTION_RE = /^(?=\p{Nd}|\.\p{Nd})(\p{Nd}*)(?:\.(\p{Nd}*))?$/u;
const IS_ND = /^\p{Nd}$/u;

/** Decimal value of a Unicode Nd character (Nd always comes in contiguous 0..9 runs). */
function digitValue(c: string): number {
  let cp = c.codePointAt(0)!;
  let run = 0;
  while (IS_ND.test(String.fromCodePoint(cp - 1))) {
    cp--;
    run++;
  }
  return run % 10;
}

/** Python int() of a string of Unicode decimal digits. */
function parseDigits(s: string): bigint {
  let ascii = '';
  for (const c of s) ascii += c >= '0' && c <= '9' ? c : String(digitValue(c));
  return ascii === '' ? 0n : BigInt(ascii);
}

interface Fraction {
  num: bigint;
  den: bigint;
}

/** Python `Fraction(s)` for the strings/ints process_words produces; null on ValueError. */
function toFraction(v: bigint | string): Fraction | null {
  if (typeof v === 'bigint') return { num: v, den: 1n };
  const m = FRACTION_RE.exec(v);
  if (!m) return null;
  const intPart = m[1];
  const decimals = m[2] ?? '';
  const den = 10n ** BigInt([...decimals].length);
  return { num: parseDigits(intPart) * den + parseDigits(decimals), den };
}

/** Python `str(value or "")`: None and int 0 are both falsy. */
function orEmpty(v: Value): string {
  return v === null || v === 0n ? '' : String(v);
}

function mapOf<V>(entries: Iterable<[string, V]>): Map<string, V> {
  return new Map(entries);
}

/**
 * Convert spelled-out numbers into arabic numbers, while handling:
 * - removing any commas
 * - keeping suffixes such as `1960s`, `274th`, `32nd`
 * - spelling out currency symbols after the number: `$20 million` -> `20000000 dollars`
 *   (in practice the symbol is moved in front: "twenty dollars" -> "$20")
 * - spelling out `one` and `ones`
 * - interpreting successive single-digit numbers as nominal: `one oh one` -> `101`
 */
export class EnglishNumberNormalizer {
  // Maps rather than object literals: words like "constructor" must not hit prototypes.
  readonly zeros = new Set(['o', 'oh', 'zero']);
  readonly ones: Map<string, bigint>;
  readonly onesSuffixed: Map<string, [bigint, string]>;
  readonly tens: Map<string, bigint>;
  readonly tensSuffixed: Map<string, [bigint, string]>;
  readonly multipliers: Map<string, bigint>;
  readonly multipliersSuffixed: Map<string, [bigint, string]>;
  readonly decimals: Set<string>;
  readonly precedingPrefixers = mapOf([
    ['minus', '-'],
    ['negative', '-'],
    ['plus', '+'],
    ['positive', '+'],
  ]);
  readonly followingPrefixers = mapOf([
    ['pound', '£'],
    ['pounds', '£'],
    ['euro', '€'],
    ['euros', '€'],
    ['dollar', '$'],
    ['dollars', '$'],
    ['cent', '¢'],
    ['cents', '¢'],
  ]);
  readonly prefixes: Set<string>;
  readonly suffixers = mapOf<string | ReadonlyMap<string, string>>([
    ['per', mapOf([['cent', '%']])],
    ['percent', '%'],
  ]);
  readonly specials = new Set(['and', 'double', 'triple', 'point']);
  readonly words: Set<string>;

  constructor() {
    const onesNames = [
      'one',
      'two',
      'three',
      'four',
      'five',
      'six',
      'seven',
      'eight',
      'nine',
      'ten',
      'eleven',
      'twelve',
      'thirteen',
      'fourteen',
      'fifteen',
      'sixteen',
      'seventeen',
      'eighteen',
      'nineteen',
    ];
    this.ones = mapOf(onesNames.map((name, i) => [name, BigInt(i + 1)]));
    const onesPlural = [...this.ones].map(([name, v]): [string, [bigint, string]] => [name === 'six' ? 'sixes' : name + 's', [v, 's']]);
    const onesOrdinal: [string, [bigint, string]][] = [
      ['zeroth', [0n, 'th']],
      ['first', [1n, 'st']],
      ['second', [2n, 'nd']],
      ['third', [3n, 'rd']],
      ['fifth', [5n, 'th']],
      ['twelfth', [12n, 'th']],
      ...[...this.ones]
        .filter(([, v]) => v > 3n && v !== 5n && v !== 12n)
        .map(([name, v]): [string, [bigint, string]] => [name + (name.endsWith('t') ? 'h' : 'th'), [v, 'th']]),
    ];
    this.onesSuffixed = mapOf([...onesPlural, ...onesOrdinal]);

    this.tens = mapOf([
      ['twenty', 20n],
      ['thirty', 30n],
      ['forty', 40n],
      ['fifty', 50n],
      ['sixty', 60n],
      ['seventy', 70n],
      ['eighty', 80n],
      ['ninety', 90n],
    ]);
    this.tensSuffixed = mapOf([
      ...[...this.tens].map(([n, v]): [string, [bigint, string]] => [n.replaceAll('y', 'ies'), [v, 's']]),
      ...[...this.tens].map(([n, v]): [string, [bigint, string]] => [n.replaceAll('y', 'ieth'), [v, 'th']]),
    ]);

    const multiplierNames = [
      'hundred',
      'thousand',
      'million',
      'billion',
      'trillion',
      'quadrillion',
      'quintillion',
      'sextillion',
      'septillion',
      'octillion',
      'nonillion',
      'decillion',
    ];
    this.multipliers = mapOf(multiplierNames.map((name, i) => [name, i === 0 ? 100n : 1000n ** BigInt(i)]));
    this.multipliersSuffixed = mapOf([
      ...[...this.multipliers].map(([n, v]): [string, [bigint, string]] => [n + 's', [v, 's']]),
      ...[...this.multipliers].map(([n, v]): [string, [bigint, string]] => [n + 'th', [v, 'th']]),
    ]);
    this.decimals = new Set([...this.ones.keys(), ...this.tens.keys(), ...this.zeros]);
    this.prefixes = new Set([...this.precedingPrefixers.values(), ...this.followingPrefixers.values()]);
    this.words = new Set<string>([
      ...this.zeros,
      ...this.ones.keys(),
      ...this.onesSuffixed.keys(),
      ...this.tens.keys(),
      ...this.tensSuffixed.keys(),
      ...this.multipliers.keys(),
      ...this.multipliersSuffixed.keys(),
      ...this.precedingPrefixers.keys(),
      ...this.followingPrefixers.keys(),
      ...this.suffixers.keys(),
      ...this.specials,
    ]);
  }

  processWords(words: string[]): string[] {
    const out: string[] = [];
    let prefix: string | null = null;
    let value: Value = null;
    let skip = false;

    const output = (result: bigint | string): string => {
      let r = String(result);
      if (prefix !== null) r = prefix + r;
      value = null;
      prefix = null;
      return r;
    };

    const has = (set: { has(k: string): boolean }, k: string | null) => k !== null && set.has(k);

    for (let i = 0; i < words.length; i++) {
      const current = words[i];
      const prev = i !== 0 ? words[i - 1] : null;
      const next = i !== words.length - 1 ? words[i + 1] : null;
      if (skip) {
        skip = false;
        continue;
      }

      const nextIsNumeric = next !== null && NUMERIC_RE.test(next);
      // Prefix symbols are all BMP, so a UTF-16 index equals Python's current[0].
      const hasPrefix = this.prefixes.has(current[0]);
      const currentWithoutPrefix = hasPrefix ? current.slice(1) : current;

      if (NUMERIC_RE.test(currentWithoutPrefix)) {
        // arabic numbers (potentially with signs and fractions)
        const f = toFraction(currentWithoutPrefix);
        if (f === null) throw new Error('Converting the fraction failed');

        if (value !== null) {
          if (typeof value === 'string' && value.endsWith('.')) {
            // concatenate decimals / ip address components
            value = value + current;
            continue;
          } else {
            out.push(output(value));
          }
        }

        prefix = hasPrefix ? current[0] : prefix;
        value = f.num % f.den === 0n ? f.num / f.den : currentWithoutPrefix;
      } else if (!this.words.has(current)) {
        // non-numeric words
        if (value !== null) out.push(output(value));
        out.push(output(current));
      } else if (this.zeros.has(current)) {
        value = orEmpty(value) + '0';
      } else if (this.ones.has(current)) {
        const ones = this.ones.get(current)!;
        if (value === null) {
          value = ones;
        } else if (typeof value === 'string' || has(this.ones, prev)) {
          if (has(this.tens, prev) && ones < 10n) {
            // replace the last zero with the digit
            value = String(value).slice(0, -1) + String(ones);
          } else {
            value = String(value) + String(ones);
          }
        } else if (ones < 10n) {
          value = value % 10n === 0n ? value + ones : String(value) + String(ones);
        } else {
          // eleven to nineteen
          value = value % 100n === 0n ? value + ones : String(value) + String(ones);
        }
      } else if (this.onesSuffixed.has(current)) {
        // ordinal or cardinal; yield the number right away
        const [ones, suffix] = this.onesSuffixed.get(current)!;
        if (value === null) {
          out.push(output(String(ones) + suffix));
        } else if (typeof value === 'string' || has(this.ones, prev)) {
          if (has(this.tens, prev) && ones < 10n) {
            out.push(output(String(value).slice(0, -1) + String(ones) + suffix));
          } else {
            out.push(output(String(value) + String(ones) + suffix));
          }
        } else if (ones < 10n) {
          out.push(output(value % 10n === 0n ? String(value + ones) + suffix : String(value) + String(ones) + suffix));
        } else {
          // eleven to nineteen
          out.push(output(value % 100n === 0n ? String(value + ones) + suffix : String(value) + String(ones) + suffix));
        }
        value = null;
      } else if (this.tens.has(current)) {
        const tens = this.tens.get(current)!;
        if (value === null) {
          value = tens;
        } else if (typeof value === 'string') {
          value = value + String(tens);
        } else {
          value = value % 100n === 0n ? value + tens : String(value) + String(tens);
        }
      } else if (this.tensSuffixed.has(current)) {
        // ordinal or cardinal; yield the number right away
        const [tens, suffix] = this.tensSuffixed.get(current)!;
        if (value === null) {
          out.push(output(String(tens) + suffix));
        } else if (typeof value === 'string') {
          out.push(output(value + String(tens) + suffix));
        } else {
          out.push(output(value % 100n === 0n ? String(value + tens) + suffix : String(value) + String(tens) + suffix));
        }
      } else if (this.multipliers.has(current)) {
        const multiplier = this.multipliers.get(current)!;
        if (value === null) {
          value = multiplier;
        } else if (typeof value === 'string' || value === 0n) {
          const f = toFraction(value);
          if (f !== null && (f.num * multiplier) % f.den === 0n) {
            value = (f.num * multiplier) / f.den;
          } else {
            out.push(output(value));
            value = multiplier;
          }
        } else {
          const before: bigint = (value / 1000n) * 1000n;
          const residual: bigint = value % 1000n;
          value = before + residual * multiplier;
        }
      } else if (this.multipliersSuffixed.has(current)) {
        const [multiplier, suffix] = this.multipliersSuffixed.get(current)!;
        if (value === null) {
          out.push(output(String(multiplier) + suffix));
        } else if (typeof value === 'string') {
          const f = toFraction(value);
          if (f !== null && (f.num * multiplier) % f.den === 0n) {
            out.push(output(String((f.num * multiplier) / f.den) + suffix));
          } else {
            out.push(output(value));
            out.push(output(String(multiplier) + suffix));
          }
        } else {
          const before: bigint = (value / 1000n) * 1000n;
          const residual: bigint = value % 1000n;
          value = before + residual * multiplier;
          out.push(output(String(value) + suffix));
        }
        value = null;
      } else if (this.precedingPrefixers.has(current)) {
        // apply prefix (positive, minus, etc.) if it precedes a number
        if (value !== null) out.push(output(value));
        if (has(this.words, next) || nextIsNumeric) {
          prefix = this.precedingPrefixers.get(current)!;
        } else {
          out.push(output(current));
        }
      } else if (this.followingPrefixers.has(current)) {
        // apply prefix (dollars, cents, etc.) only after a number
        if (value !== null) {
          prefix = this.followingPrefixers.get(current)!;
          out.push(output(value));
        } else {
          out.push(output(current));
        }
      } else if (this.suffixers.has(current)) {
        // apply suffix symbols (percent -> '%')
        if (value !== null) {
          const suffix = this.suffixers.get(current)!;
          if (typeof suffix !== 'string') {
            if (next !== null && suffix.has(next)) {
              out.push(output(String(value) + suffix.get(next)!));
              skip = true;
            } else {
              out.push(output(value));
              out.push(output(current));
            }
          } else {
            out.push(output(String(value) + suffix));
          }
        } else {
          out.push(output(current));
        }
      } else if (this.specials.has(current)) {
        if (!has(this.words, next) && !nextIsNumeric) {
          // apply special handling only if the next word can be numeric
          if (value !== null) out.push(output(value));
          out.push(output(current));
        } else if (current === 'and') {
          // ignore "and" after hundreds, thousands, etc.
          if (!has(this.multipliers, prev)) {
            if (value !== null) out.push(output(value));
            out.push(output(current));
          }
        } else if (current === 'double' || current === 'triple') {
          if (has(this.ones, next) || has(this.zeros, next)) {
            const repeats = current === 'double' ? 2 : 3;
            const ones = this.ones.get(next!) ?? 0n;
            value = orEmpty(value) + String(ones).repeat(repeats);
            skip = true;
          } else {
            if (value !== null) out.push(output(value));
            out.push(output(current));
          }
        } else if (current === 'point') {
          if (has(this.decimals, next) || nextIsNumeric) {
            value = orEmpty(value) + '.';
          }
        } else {
          throw new Error(`Unexpected token: ${current}`);
        }
      } else {
        throw new Error(`Unexpected token: ${current}`);
      }
    }

    if (value !== null) out.push(output(value));
    return out;
  }

  private static readonly AND_A_HALF_RE = pyRegExp(String.raw`\band\s+a\s+half\b`);
  private static readonly LETTER_DIGIT_RE = pyRegExp(String.raw`([a-z])([0-9])`);
  private static readonly DIGIT_LETTER_RE = pyRegExp(String.raw`([0-9])([a-z])`);
  private static readonly SUFFIX_RE = pyRegExp(String.raw`([0-9])\s+(st|nd|rd|th|s)\b`);
  private static readonly CENTS_RE = pyRegExp(String.raw`([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\b`);
  // The unescaped "." is upstream's; it matches any character but "\n".
  private static readonly ZERO_CENTS_RE = pyRegExp(String.raw`[€£$]0.([0-9]{1,2})\b`);
  private static readonly ONE_RE = pyRegExp(String.raw`\b1(s?)\b`);

  preprocess(s: string): string {
    // replace "<number> and a half" with "<number> point five"
    const results: string[] = [];
    const segments = s.split(EnglishNumberNormalizer.AND_A_HALF_RE);
    segments.forEach((segment, i) => {
      if (pyStrip(segment).length === 0) return;
      results.push(segment);
      if (i !== segments.length - 1) {
        const words = pySplit(segment);
        const lastWord = words[words.length - 1];
        results.push(this.decimals.has(lastWord) || this.multipliers.has(lastWord) ? 'point five' : 'and a half');
      }
    });
    s = results.join(' ');

    // put a space at number/letter boundary
    s = pySub(EnglishNumberNormalizer.LETTER_DIGIT_RE, '\\1 \\2', s);
    s = pySub(EnglishNumberNormalizer.DIGIT_LETTER_RE, '\\1 \\2', s);

    // but remove spaces which could be a suffix
    s = pySub(EnglishNumberNormalizer.SUFFIX_RE, '\\1\\2', s);
    return s;
  }

  postprocess(s: string): string {
    // apply currency postprocessing; "$2 and ¢7" -> "$2.07"
    s = pySub(EnglishNumberNormalizer.CENTS_RE, (_m, g) => `${g[0]}${g[1]}.${String(Number(g[2])).padStart(2, '0')}`, s);
    s = pySub(EnglishNumberNormalizer.ZERO_CENTS_RE, (_m, g) => `¢${Number(g[0])}`, s);

    // write "one(s)" instead of "1(s)", just for the readability
    s = pySub(EnglishNumberNormalizer.ONE_RE, 'one\\1', s);
    return s;
  }

  normalize(s: string): string {
    s = this.preprocess(s);
    s = this.processWords(pySplit(s)).join(' ');
    return this.postprocess(s);
  }
}

/** British -> American spellings (https://www.tysto.com/uk-us-spelling-list.html). */
export class EnglishSpellingNormalizer {
  private readonly mapping: ReadonlyMap<string, string>;

  constructor(mapping: Record<string, string> = spellingJson as Record<string, string>) {
    this.mapping = new Map(Object.entries(mapping));
  }

  normalize(s: string): string {
    return pySplit(s)
      .map((w) => this.mapping.get(w) ?? w)
      .join(' ');
  }
}

// Insertion order matters: the patterns are applied one after another. Each entry also
// keeps the pattern's literal text so the (slow, lookaround-heavy) regex only runs when
// that text occurs in the input.
const REPLACERS: [RegExp, string, string][] = (
  [
    // common contractions
    [String.raw`\bwon't\b`, 'will not'],
    [String.raw`\bcan't\b`, 'can not'],
    [String.raw`\blet's\b`, 'let us'],
    [String.raw`\bain't\b`, 'aint'],
    [String.raw`\by'all\b`, 'you all'],
    [String.raw`\bwanna\b`, 'want to'],
    [String.raw`\bgotta\b`, 'got to'],
    [String.raw`\bgonna\b`, 'going to'],
    [String.raw`\bi'ma\b`, 'i am going to'],
    [String.raw`\bimma\b`, 'i am going to'],
    [String.raw`\bwoulda\b`, 'would have'],
    [String.raw`\bcoulda\b`, 'could have'],
    [String.raw`\bshoulda\b`, 'should have'],
    [String.raw`\bma'am\b`, 'madam'],
    // contractions in titles/prefixes
    [String.raw`\bmr\b`, 'mister '],
    [String.raw`\bmrs\b`, 'missus '],
    [String.raw`\bst\b`, 'saint '],
    [String.raw`\bdr\b`, 'doctor '],
    [String.raw`\bprof\b`, 'professor '],
    [String.raw`\bcapt\b`, 'captain '],
    [String.raw`\bgov\b`, 'governor '],
    [String.raw`\bald\b`, 'alderman '],
    [String.raw`\bgen\b`, 'general '],
    [String.raw`\bsen\b`, 'senator '],
    [String.raw`\brep\b`, 'representative '],
    [String.raw`\bpres\b`, 'president '],
    [String.raw`\brev\b`, 'reverend '],
    [String.raw`\bhon\b`, 'honorable '],
    [String.raw`\basst\b`, 'assistant '],
    [String.raw`\bassoc\b`, 'associate '],
    [String.raw`\blt\b`, 'lieutenant '],
    [String.raw`\bcol\b`, 'colonel '],
    [String.raw`\bjr\b`, 'junior '],
    [String.raw`\bsr\b`, 'senior '],
    [String.raw`\besq\b`, 'esquire '],
    // perfect tenses, ideally it should be any past participles, but it's harder..
    [String.raw`'d been\b`, ' had been'],
    [String.raw`'s been\b`, ' has been'],
    [String.raw`'d gone\b`, ' had gone'],
    [String.raw`'s gone\b`, ' has gone'],
    [String.raw`'d done\b`, ' had done'], // "'s done" is ambiguous
    [String.raw`'s got\b`, ' has got'],
    // general contractions
    [String.raw`n't\b`, ' not'],
    [String.raw`'re\b`, ' are'],
    [String.raw`'s\b`, ' is'],
    [String.raw`'d\b`, ' would'],
    [String.raw`'ll\b`, ' will'],
    [String.raw`'t\b`, ' not'],
    [String.raw`'ve\b`, ' have'],
    [String.raw`'m\b`, ' am'],
  ] as [string, string][]
).map(([p, r]) => [pyRegExp(p), r, p.replaceAll('\\b', '')]);

const IGNORE_RE = pyRegExp(String.raw`\b(hmm|mm|mhm|mmm|uh|um)\b`);
const SPACE_APOSTROPHE_RE = pyRegExp(String.raw`\s+'`);
const DIGIT_COMMA_RE = pyRegExp(String.raw`(\d),(\d)`);
const PERIOD_RE = pyRegExp(String.raw`\.([^0-9]|$)`);
const LONE_PREFIX_RE = pyRegExp(String.raw`[.$¢€£]([^0-9])`);
const LONE_PERCENT_RE = pyRegExp(String.raw`([^0-9])%`);

export class EnglishTextNormalizer {
  readonly standardizeNumbers = new EnglishNumberNormalizer();
  readonly standardizeSpellings: EnglishSpellingNormalizer;

  constructor(spellingMapping?: Record<string, string>) {
    this.standardizeSpellings = new EnglishSpellingNormalizer(spellingMapping);
  }

  normalize(s: string): string {
    s = s.toLowerCase();

    s = pySub(BRACKETS_RE, '', s); // remove words between brackets
    s = pySub(PARENS_RE, '', s); // remove words between parenthesis
    s = pySub(IGNORE_RE, '', s);
    s = pySub(SPACE_APOSTROPHE_RE, "'", s); // standardize when there's a space before an apostrophe

    for (const [pattern, replacement, literal] of REPLACERS) {
      if (s.includes(literal)) s = pySub(pattern, replacement, s);
    }

    s = pySub(DIGIT_COMMA_RE, '\\1\\2', s); // remove commas between digits
    s = pySub(PERIOD_RE, ' \\1', s); // remove periods not followed by numbers
    s = removeSymbolsAndDiacritics(s, '.%$¢€£'); // keep some symbols for numerics

    s = this.standardizeNumbers.normalize(s);
    s = this.standardizeSpellings.normalize(s);

    // now remove prefix/suffix symbols that are not preceded/followed by numbers
    s = pySub(LONE_PREFIX_RE, ' \\1', s);
    s = pySub(LONE_PERCENT_RE, '\\1 ', s);

    return pySub(WHITESPACE_RE, ' ', s); // replace any successive whitespace characters with a space
  }

  readonly fn = (s: string): string => this.normalize(s);
}

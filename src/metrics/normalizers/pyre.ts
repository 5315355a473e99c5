// Python `re` / `str` compatibility helpers for the Whisper normalizer port.
//
// The upstream normalizers are written against Python 3 semantics, which differ
// from JavaScript in ways that change results on real text:
//   - `\s` / str.split() / str.strip() use str.isspace(): it includes U+001C..U+001F
//     and U+0085 but not U+FEFF (JS `\s` is the other way round).
//   - `\w` and `\b` are Unicode-aware in Python (letters + numbers + "_"); JS `\b`
//     is ASCII-only even with the `u` flag.
//   - `\d` is any Unicode decimal digit (category Nd).
//   - `.` excludes only "\n"; `$` also matches before a final "\n".
// `pyRegExp` translates those escapes so patterns can be copied verbatim from Python.

/** Characters for which Python's str.isspace() is true (checked against CPython 3.11). */
export const PY_WS = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** Python's Unicode `\w`: str.isalnum() or "_" (== categories L*, N* and "_"). */
export const PY_WORD = '\\p{L}\\p{N}_';

const PY_BOUNDARY = `(?:(?<=[${PY_WORD}])(?![${PY_WORD}])|(?<![${PY_WORD}])(?=[${PY_WORD}]))`;
const PY_NON_BOUNDARY = `(?:(?<=[${PY_WORD}])(?=[${PY_WORD}])|(?<![${PY_WORD}])(?![${PY_WORD}]))`;

/**
 * Compile a Python `re` pattern (no flags, str mode) into an equivalent JS RegExp.
 * Only the constructs used by the normalizers are translated; everything else is
 * passed through unchanged and must already mean the same thing in JS `u` mode.
 */
export function pyRegExp(pattern: string, flags = 'gu'): RegExp {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\') {
      const next = pattern[i + 1];
      i++;
      switch (next) {
        case 's':
          out += inClass ? PY_WS : `[${PY_WS}]`;
          break;
        case 'S':
          if (inClass) throw new Error('\\S inside a character class is not supported');
          out += `[^${PY_WS}]`;
          break;
        case 'w':
          out += inClass ? PY_WORD : `[${PY_WORD}]`;
          break;
        case 'W':
          if (inClass) throw new Error('\\W inside a character class is not supported');
          out += `[^${PY_WORD}]`;
          break;
        case 'd':
          out += '\\p{Nd}';
          break;
        case 'D':
          out += '\\P{Nd}';
          break;
        case 'b':
          if (inClass) throw new Error('\\b inside a character class is not supported');
          out += PY_BOUNDARY;
          break;
        case 'B':
          out += PY_NON_BOUNDARY;
          break;
        default:
          out += '\\' + next;
      }
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      // A leading "]" (or "^]") is a literal in Python; JS needs it escaped.
      if (pattern[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (pattern[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (ch === '.') out += '[^\\n]';
    else if (ch === '$') out += '(?=\\n?$)';
    else out += ch;
  }
  return new RegExp(out, flags);
}

type Replacement = string | ((match: string, groups: (string | undefined)[]) => string);

const jsReplacements = new Map<string, string>();

/**
 * Python re.sub. A string replacement may use `\1`..`\9`; it is translated once into
 * a native JS replacement ("$" escaped, `\N` -> `$N`; unmatched groups give "" in both).
 */
export function pySub(re: RegExp, repl: Replacement, s: string): string {
  if (typeof repl === 'function') {
    return s.replace(re, (match: string, ...rest: unknown[]) =>
      // rest = [g1..gN, offset, input] (no named groups are used).
      repl(match, rest.slice(0, -2) as (string | undefined)[]),
    );
  }
  let js = jsReplacements.get(repl);
  if (js === undefined) {
    js = repl.replaceAll('$', '$$$$').replace(/\\(\d)/g, '$$$1');
    jsReplacements.set(repl, js);
  }
  return s.replace(re, js);
}

const WS_RUN = new RegExp(`[${PY_WS}]+`, 'u');
const WS_LEADING = new RegExp(`^[${PY_WS}]+`, 'u');
const WS_TRAILING = new RegExp(`[${PY_WS}]+$`, 'u');

/** Python str.split() with no arguments. */
export function pySplit(s: string): string[] {
  return s.split(WS_RUN).filter((w) => w !== '');
}

/** Python str.strip() with no arguments. */
export function pyStrip(s: string): string {
  return s.replace(WS_LEADING, '').replace(WS_TRAILING, '');
}

// Text handling shared by the manifest readers: the typed error they throw, escaping of what they quote
// from a user's file, strict UTF-8 decoding, and a CSV parser that keeps line numbers and reports an
// unclosed quote instead of swallowing the rest of the file.

/** A manifest (or a file it names) that cannot be read as a dataset. The message starts with the file. */
export class DatasetError extends Error {
  /** The file, relative to the dataset root ('' for the dataset as a whole). */
  readonly file: string;
  /** 1-based line, when the problem is at one. */
  readonly line?: number;

  constructor(file: string, message: string, line?: number) {
    super(file ? `${file}${line ? `:${line}` : ''}: ${message}` : message);
    this.name = 'DatasetError';
    this.file = file;
    this.line = line;
  }
}

// Control characters, C1 controls, zero-width and bidirectional overrides: they could make a message
// lie about what it quotes (a path that "looks" different, a terminal escape), so they are escaped.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** `s` shortened to `max` characters and escaped, without quotes. */
export function plain(s: string, max = 80): string {
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return cut
    .replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/[\ud800-\udfff]/g, (c, i, all: string) => {
      // keep well-formed surrogate pairs, escape lone halves
      const code = c.charCodeAt(0);
      const pair = code < 0xdc00 ? /[\udc00-\udfff]/.test(all[i + 1] ?? '') : /[\ud800-\udbff]/.test(all[i - 1] ?? '');
      return pair ? c : `\\u${code.toString(16)}`;
    });
}

/** `s` as a short, escaped, double-quoted excerpt for a message: "clips/a.wav". */
export function excerpt(s: string, max = 80): string {
  return `"${plain(s, max).replace(/"/g, '\\"')}"`;
}

/** Length (in bytes) of the valid UTF-8 prefix of `b`; b.length when it is all valid. */
function validUtf8Prefix(b: Uint8Array): number {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) ((need = 1), (min = 0x80));
    else if (c >= 0xe0 && c <= 0xef) ((need = 2), (min = 0x800));
    else if (c >= 0xf0 && c <= 0xf4) ((need = 3), (min = 0x10000));
    else return i;
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return n;
}

/**
 * Bytes of a manifest → text: strict UTF-8 (a Latin-1 or UTF-16 file is an error naming the line of its
 * first bad byte, not silently turned into U+FFFD), a leading byte-order mark dropped (spreadsheet
 * programs write one), NUL bytes refused (a binary file named like a manifest).
 */
export function decodeManifest(bytes: Uint8Array, file: string): string {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw new DatasetError(file, 'the file is UTF-16 text; save it as UTF-8');
  }
  const ok = validUtf8Prefix(bytes);
  if (ok < bytes.length) {
    let line = 1;
    for (let i = 0; i < ok; i++) if (bytes[i] === 0x0a) line++;
    throw new DatasetError(
      file,
      `not UTF-8 text: byte 0x${bytes[ok].toString(16).padStart(2, '0')} cannot start or continue a UTF-8 character; save the file as UTF-8`,
      line,
    );
  }
  return checkText(new TextDecoder('utf-8').decode(bytes), file); // the decoder drops a leading BOM
}

/** Text from a reader that only gives strings (the browser's Blob.text()): BOM dropped, NUL refused. */
export function checkText(text: string, file: string): string {
  const t = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const nul = t.indexOf('\u0000');
  if (nul >= 0) {
    const line = t.slice(0, nul).split('\n').length;
    throw new DatasetError(file, 'contains NUL bytes: a binary file, not a text manifest', line);
  }
  return t;
}

export interface Line {
  text: string;
  /** 1-based */
  line: number;
}

/** Lines with their numbers (\n, \r\n or a lone \r end a line). */
export function splitLines(text: string): Line[] {
  return text.split(/\r\n|\n|\r/).map((t, i) => ({ text: t, line: i + 1 }));
}

export interface CsvRow {
  cells: string[];
  /** Line the row starts on (1-based); a quoted field may carry it over several lines. */
  line: number;
}

export interface CsvProblem {
  line: number;
  message: string;
}

const MAX_CSV_PROBLEMS = 100;

/**
 * RFC 4180 CSV (quotes, doubled quotes, newlines inside quotes), lenient where spreadsheets are (a quote
 * inside an unquoted field is a literal). A quote that is never closed is reported at the line it opens,
 * and parsing resumes on the next line, so one stray quote costs one row, not the rest of the file.
 */
export function parseCsvRows(text: string): { rows: CsvRow[]; problems: CsvProblem[]; gaveUp?: boolean } {
  const rows: CsvRow[] = [];
  const problems: CsvProblem[] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  let quoteAt = -1; // index of the opening quote of the current quoted field
  let quoteLine = 1;
  const endRow = () => {
    row.push(cell);
    if (!(row.length === 1 && row[0] === '')) rows.push({ cells: row, line: rowLine });
    row = [];
    cell = '';
  };
  // Drop the row being read and resume on the line after the one its quoted field opened on.
  const recover = (message: string): number => {
    problems.push({ line: quoteLine, message });
    let j = quoteAt;
    while (j < text.length && text[j] !== '\n' && text[j] !== '\r') j++;
    if (text[j] === '\r' && text[j + 1] === '\n') j++;
    line = quoteLine + 1;
    rowLine = line;
    row = [];
    cell = '';
    quoted = false;
    return j; // the loop's i++ moves past the line break
  };
  for (let i = 0; i < text.length; i++) {
    // Each recovery rescans from its quote: past 100 the file is not CSV, and rescanning would be quadratic.
    if (problems.length > MAX_CSV_PROBLEMS) return { rows, problems, gaveUp: true };
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else {
          quoted = false;
          const next = text[i + 1];
          // Text right after a closing quote means the quotes are not paired as the writer meant
          // (typically a stray quote earlier): reading on would merge lines into one field.
          if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
            i = recover(
              `malformed quoted field: the quote that opens on line ${quoteLine} closes on line ${line} before other text (a quote inside a field must be doubled)`,
            );
            continue;
          }
        }
      } else {
        if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) line++;
        cell += c;
      }
    } else if (c === '"' && cell === '') {
      quoted = true;
      quoteAt = i;
      quoteLine = line;
    } else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRow();
      line++;
      rowLine = line;
    } else cell += c;
    if (quoted && i >= text.length - 1) i = recover(`unclosed quote: the quoted field that opens on line ${quoteLine} never ends`);
  }
  if (!quoted && (cell !== '' || row.length)) endRow();
  return { rows, problems };
}

/** RFC 4180 CSV cells (see parseCsvRows); an unclosed quote throws. */
export function parseCsv(text: string): string[][] {
  const { rows, problems } = parseCsvRows(text);
  if (problems.length) throw new Error(`line ${problems[0].line}: ${problems[0].message}`);
  return rows.map((r) => r.cells);
}

/** Nesting depth of a JSON value, without recursion (a 100 000-deep array must not overflow the stack). */
export function jsonDepthExceeds(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d + 1 > max) return true;
    for (const y of Object.values(x as object)) if (y !== null && typeof y === 'object') stack.push([y, d + 1]);
  }
  return false;
}

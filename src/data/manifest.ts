// Dataset manifests in the formats people already have, read into one row type. Works on a map of
// relative paths (a dropped folder in the browser, a directory in Node): the reader only needs the
// list of paths and a way to read text. Bad rows are reported one by one; the rest of the set loads.
//
//   HF audiofolder   metadata.csv with file_name + transcription|text|sentence (+ language)
//   JSONL manifest   {"audio_filepath", "text", "duration"?, "language"?} per line (NeMo style)
//   Common Voice     *.tsv with path + sentence (+ locale), audio under clips/
//   Kaldi            wav.scp ("<utt> <path>") + text ("<utt> <transcript>")

export interface Utterance {
  id: string;
  /** Path of the audio file, relative to the dataset root. */
  audio: string;
  text: string;
  language?: string;
  duration?: number;
  /** Any other columns, as strings. */
  extra?: Record<string, string>;
}

export interface RowError {
  /** The manifest file and 1-based line. */
  file: string;
  line: number;
  message: string;
}

export type ManifestFormat = 'audiofolder' | 'jsonl' | 'commonvoice' | 'kaldi';

export interface Dataset {
  format: ManifestFormat;
  manifest: string;
  rows: Utterance[];
  errors: RowError[];
}

export interface DatasetFiles {
  paths: string[];
  readText(path: string): Promise<string>;
}

/** RFC 4180 CSV (quotes, doubled quotes, newlines inside quotes). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else cell += c;
    } else if (c === '"' && cell === '') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

const dirOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/') + 1) : '');
const stem = (p: string) => p.replace(/^.*\//, '').replace(/\.[^.]+$/, '');

/** Find the manifest among the files: metadata.csv, *.jsonl, wav.scp + text, Common Voice *.tsv. */
export function detectManifest(paths: string[]): { format: ManifestFormat; manifest: string } | null {
  const by = (re: RegExp) => paths.filter((p) => re.test(p)).sort((a, b) => a.split('/').length - b.split('/').length)[0];
  const meta = by(/(^|\/)metadata\.csv$/);
  if (meta) return { format: 'audiofolder', manifest: meta };
  // JSON Lines: *.jsonl, or NeMo's habit of naming them *manifest*.json.
  const jsonl = by(/\.jsonl$/i) ?? by(/(^|\/)[^/]*manifest[^/]*\.json$/i);
  if (jsonl) return { format: 'jsonl', manifest: jsonl };
  const scp = by(/(^|\/)wav\.scp$/);
  if (scp) return { format: 'kaldi', manifest: scp };
  const tsv = by(/(^|\/)(validated|train|dev|test|other)\.tsv$/) ?? by(/\.tsv$/);
  if (tsv) return { format: 'commonvoice', manifest: tsv };
  return null;
}

export async function readDataset(files: DatasetFiles): Promise<Dataset> {
  const found = detectManifest(files.paths);
  if (!found) {
    throw new Error('No dataset manifest found: expected metadata.csv (audiofolder), a .jsonl manifest, wav.scp + text (Kaldi) or a Common Voice .tsv');
  }
  const { format, manifest } = found;
  const base = dirOf(manifest);
  const have = new Set(files.paths);
  const rows: Utterance[] = [];
  const errors: RowError[] = [];
  const text = await files.readText(manifest);
  const add = (line: number, u: Omit<Utterance, 'audio'> & { audio: string }, audioDir = base) => {
    const audio = audioDir + u.audio.replace(/^\.\//, '');
    if (!u.text.trim()) errors.push({ file: manifest, line, message: `"${u.audio}": empty transcript` });
    else if (!have.has(audio)) errors.push({ file: manifest, line, message: `"${u.audio}": audio file not found (${audio})` });
    else rows.push({ ...u, audio });
  };

  if (format === 'audiofolder') {
    const [header, ...body] = parseCsv(text);
    const col = (...names: string[]) => names.map((n) => header.indexOf(n)).find((i) => i >= 0) ?? -1;
    const fi = col('file_name'), ti = col('transcription', 'text', 'sentence'), li = col('language', 'locale');
    if (fi < 0 || ti < 0) throw new Error(`${manifest}: needs a file_name column and a transcription/text column (has: ${header.join(', ')})`);
    body.forEach((r, k) => {
      if (r.length !== header.length) return errors.push({ file: manifest, line: k + 2, message: `${r.length} columns, the header has ${header.length}` });
      const extra = Object.fromEntries(header.map((h, j) => [h, r[j]]).filter(([h]) => !['file_name', header[ti], header[li]].includes(h)));
      add(k + 2, { id: stem(r[fi]), audio: r[fi], text: r[ti], language: li >= 0 ? r[li] || undefined : undefined, extra });
    });
  } else if (format === 'jsonl') {
    text.split(/\r?\n/).forEach((l, k) => {
      if (!l.trim()) return;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(l);
      } catch (e) {
        return errors.push({ file: manifest, line: k + 1, message: `not JSON (${(e as Error).message})` });
      }
      const audio = o.audio_filepath ?? o.audio ?? o.path ?? o.file_name;
      const t = o.text ?? o.transcription ?? o.sentence;
      if (typeof audio !== 'string') return errors.push({ file: manifest, line: k + 1, message: 'no "audio_filepath"' });
      if (typeof t !== 'string') return errors.push({ file: manifest, line: k + 1, message: `"${audio}": no "text"` });
      const extra: Record<string, string> = {};
      for (const [key, v] of Object.entries(o)) if (!['audio_filepath', 'audio', 'path', 'file_name', 'text', 'transcription', 'sentence', 'language', 'duration'].includes(key)) extra[key] = typeof v === 'string' ? v : JSON.stringify(v);
      add(k + 1, { id: stem(audio), audio, text: t, language: typeof o.language === 'string' ? o.language : undefined, duration: typeof o.duration === 'number' ? o.duration : undefined, extra });
    });
  } else if (format === 'commonvoice') {
    const lines = text.split(/\r?\n/).filter((l) => l.length);
    const header = lines[0].split('\t');
    const pi = header.indexOf('path'), si = header.indexOf('sentence'), li = header.indexOf('locale');
    if (pi < 0 || si < 0) throw new Error(`${manifest}: a Common Voice .tsv needs path and sentence columns (has: ${header.join(', ')})`);
    lines.slice(1).forEach((l, k) => {
      const r = l.split('\t');
      add(k + 2, { id: stem(r[pi]), audio: r[pi], text: r[si] ?? '', language: li >= 0 ? r[li] || undefined : undefined }, `${base}clips/`);
    });
  } else {
    const textFile = `${base}text`;
    if (!have.has(textFile)) throw new Error(`${manifest}: Kaldi data needs a "text" file beside wav.scp`);
    const transcripts = new Map<string, string>();
    (await files.readText(textFile)).split(/\r?\n/).forEach((l) => {
      const m = /^(\S+)\s*(.*)$/.exec(l.trim());
      if (m) transcripts.set(m[1], m[2]);
    });
    text.split(/\r?\n/).forEach((l, k) => {
      const m = /^(\S+)\s+(.+)$/.exec(l.trim());
      if (!m) return l.trim() && errors.push({ file: manifest, line: k + 1, message: 'expected "<utterance-id> <audio path>"' });
      const [, id, path] = m;
      if (/\|\s*$/.test(path)) return errors.push({ file: manifest, line: k + 1, message: `${id}: piped commands in wav.scp are not supported; give a file path` });
      const t = transcripts.get(id);
      if (t === undefined) return errors.push({ file: manifest, line: k + 1, message: `${id}: no transcript in ${textFile}` });
      add(k + 1, { id, audio: path, text: t });
    });
  }
  return { format, manifest, rows, errors };
}

/** Node: a directory as DatasetFiles. */
export async function directoryFiles(dir: string): Promise<DatasetFiles> {
  const { readdir, readFile } = await import('node:fs/promises');
  const { join, relative } = await import('node:path');
  const paths: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else paths.push(relative(dir, join(d, e.name)).split('\\').join('/'));
    }
  };
  await walk(dir);
  return { paths, readText: (p) => readFile(join(dir, p), 'utf8') };
}

// Dataset manifests in the formats people already have, read into one row type. Works on a map of
// relative paths (a dropped folder in the browser, a directory in Node): the reader only needs the
// list of paths and a way to read text. Bad rows are reported one by one; the rest of the set loads.
//
//   HF audiofolder   metadata.csv with file_name + transcription|text|sentence (+ language)
//   JSONL manifest   {"audio_filepath", "text", "duration"?, "language"?} per line (NeMo style)
//   Common Voice     *.tsv with path + sentence (+ locale), audio under clips/
//   Kaldi            wav.scp ("<utt> <path>") + text ("<utt> <transcript>")
//
// Hostile or broken input is expected: every problem is a DatasetError (the whole manifest) or a
// RowError (one row), both naming the file and line; nothing outside the dataset folder is read
// (absolute paths and ../ out of the root are refused, see paths.ts; Node's reader also refuses
// symbolic links out of the folder and anything that is not a regular file, see node-files.ts), and
// messages quote the user's text only as short escaped excerpts.
//
// Choices the reader makes are stated in `warnings`: which manifest it read when there were several
// (format order above, then the one nearest the root, then a training split: train/, train.tsv, …; a
// tie is an error listing them), and clips longer than Whisper's 30-s window.
import { FOLDER, resolveInDataset } from './paths';
import { checkText, DatasetError, decodeManifest, excerpt, jsonDepthExceeds, parseCsvRows, plain, splitLines } from './text';

export { DatasetError, parseCsv } from './text';

export interface Utterance {
  id: string;
  /** Path of the audio file, relative to the dataset root. */
  audio: string;
  text: string;
  language?: string;
  /** Seconds, when the manifest states it (JSONL duration, Common Voice clip_durations.tsv). */
  duration?: number;
  /** Any other columns, as strings. */
  extra?: Record<string, string>;
  /**
   * One language code per whitespace-separated word of `text` (code-switched corpora: the tags PIER
   * scores, src/metrics/pier.ts): from a `word_langs` column (space-separated, or a JSON array in
   * JSONL), else derived from a `segments` column ([[lang, text], …] joining to `text`, as
   * tools/make_corpus.py writes). Absent when neither is there or they do not fit the text.
   */
  wordLangs?: string[];
}

export interface RowError {
  /** The manifest file and 1-based line. */
  file: string;
  line: number;
  message: string;
}

/** Something the reader decided or noticed that does not drop a row. */
export interface DatasetWarning {
  file: string;
  line?: number;
  message: string;
}

export type ManifestFormat = 'audiofolder' | 'jsonl' | 'commonvoice' | 'kaldi';

export interface Dataset {
  format: ManifestFormat;
  manifest: string;
  rows: Utterance[];
  errors: RowError[];
  warnings: DatasetWarning[];
}

export interface DatasetFiles {
  paths: string[];
  readText(path: string): Promise<string>;
  /** Raw bytes, when available: manifests are then checked to be UTF-8 instead of silently repaired. */
  readBytes?(path: string): Promise<Uint8Array>;
  /** Entries that exist but are not read (not regular files, links out of the folder): path → why. */
  refused?: ReadonlyMap<string, string>;
}

/** Whisper's window: a clip longer than this is heard only in part. */
export const MAX_CLIP_SECONDS = 30;
/** No utterance needs a longer manifest line; a longer one is junk (or an attack on the parser). */
const MAX_LINE_CHARS = 1 << 20;
const MAX_JSON_DEPTH = 32;

const FORMAT_NAMES: Record<ManifestFormat, string> = {
  audiofolder: 'audiofolder',
  jsonl: 'JSONL',
  kaldi: 'Kaldi',
  commonvoice: 'Common Voice',
};
/** Common Voice .tsv files that do not list clips to train on. */
const CV_OTHER = /^(invalidated|reported|clip_durations|unvalidated_sentences|validated_sentences|times)\.tsv$/i;

/** Manifest kinds in the order they are preferred (tiers); the format each one is. */
const TIERS: { format: ManifestFormat; test: (name: string) => boolean }[] = [
  { format: 'audiofolder', test: (n) => n === 'metadata.csv' },
  { format: 'jsonl', test: (n) => /\.jsonl$/i.test(n) },
  // NeMo's habit of naming them *manifest*.json.
  { format: 'jsonl', test: (n) => /manifest[^/]*\.json$/i.test(n) },
  { format: 'kaldi', test: (n) => n === 'wav.scp' },
  { format: 'commonvoice', test: (n) => /^(validated|train|dev|test|other)\.tsv$/.test(n) },
  { format: 'commonvoice', test: (n) => /\.tsv$/i.test(n) && !CV_OTHER.test(n) },
];

const dirOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/') + 1) : '');
const baseName = (p: string) => p.slice(p.lastIndexOf('/') + 1);
const stem = (p: string) => baseName(p).replace(/\.[^.]+$/, '');
const depth = (p: string) => p.split('/').length;
/** 0: a training split (train/ folder, train.tsv, train_manifest.json, …), 1: Common Voice's validated.tsv, 2: other. */
const splitRank = (p: string) => (/(^|[/_.-])(train|training)([/_.-]|$)/i.test(p) ? 0 : baseName(p) === 'validated.tsv' ? 1 : 2);

export interface ManifestChoice {
  format: ManifestFormat;
  manifest: string;
  /** Why this one, when there were others (the others are listed). */
  warning?: string;
}

/**
 * Find the manifest among the files: metadata.csv, *.jsonl, wav.scp + text, Common Voice *.tsv.
 * null when there is none; throws a DatasetError when several are equally likely (listing them).
 */
export function detectManifest(paths: Iterable<string>): ManifestChoice | null {
  const all = [...new Set(paths)];
  const found = all.map((p) => ({ p, tier: TIERS.findIndex((t) => t.test(baseName(p))) })).filter((c) => c.tier >= 0);
  if (!found.length) return null;
  const key = (c: { p: string; tier: number }) => [c.tier, depth(c.p), splitRank(c.p)];
  const cmp = (a: number[], b: number[]) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
  found.sort((a, b) => cmp(key(a), key(b)) || (a.p < b.p ? -1 : 1));
  const best = found[0];
  const ties = found.filter((c) => cmp(key(c), key(best)) === 0);
  const list = (cs: typeof found) =>
    cs
      .slice(0, 8)
      .map((c) => plain(c.p, 120))
      .join(', ') + (cs.length > 8 ? `, … (${cs.length} in all)` : '');
  if (ties.length > 1) {
    throw new DatasetError(
      '',
      `several equally likely manifests: ${list(ties)}; open the folder of one of them, or pass the manifest file itself`,
    );
  }
  const format = TIERS[best.tier].format;
  const choice: ManifestChoice = { format, manifest: best.p };
  const others = found.slice(1);
  if (others.length) {
    const next = others[0];
    const why =
      next.tier !== best.tier
        ? `${FORMAT_NAMES[format]} (${baseName(best.p)}) is preferred over ${FORMAT_NAMES[TIERS[next.tier].format]} (${plain(baseName(next.p))})`
        : depth(next.p) !== depth(best.p)
          ? 'it is the manifest nearest the dataset folder'
          : splitRank(best.p) === 0
            ? 'it is the training split'
            : "Common Voice's validated.tsv holds every validated clip (there is no train.tsv)";
    choice.warning = `read ${plain(best.p, 120)} as ${FORMAT_NAMES[format]} because ${why}; also found ${list(others)} (not read; pass a manifest file itself to read that one instead)`;
    if (format === 'commonvoice' && baseName(best.p) === 'train.tsv' && others.some((o) => baseName(o.p) === 'validated.tsv')) {
      choice.warning += '; validated.tsv was not used because it also holds the dev and test clips';
    }
  }
  return choice;
}

async function readManifestText(files: DatasetFiles, path: string): Promise<string> {
  const why = files.refused?.get(path);
  if (why) throw new DatasetError(path, `refused: ${why}`);
  try {
    if (files.readBytes) return decodeManifest(await files.readBytes(path), path);
    return checkText(await files.readText(path), path);
  } catch (e) {
    if (e instanceof DatasetError) throw e;
    throw new DatasetError(path, `cannot read it (${plain((e as Error)?.message ?? String(e), 200)})`);
  }
}

interface Candidate {
  line: number;
  /** The audio path as written. */
  audio: string;
  /** Folder it is relative to ('' or ending in '/'). */
  base: string;
  text: string;
  id?: string;
  language?: string;
  duration?: number;
  extra?: Record<string, string>;
}

export async function readDataset(files: DatasetFiles): Promise<Dataset> {
  const refused = files.refused ?? new Map<string, string>();
  const found = detectManifest([...files.paths, ...refused.keys()]);
  if (!found) {
    throw new DatasetError(
      '',
      'No dataset manifest found: expected metadata.csv (audiofolder), a .jsonl manifest, wav.scp + text (Kaldi) or a Common Voice .tsv',
    );
  }
  const { format, manifest } = found;
  const base = dirOf(manifest);
  const have = new Set(files.paths);
  const rows: Utterance[] = [];
  const errors: RowError[] = [];
  const warnings: DatasetWarning[] = found.warning ? [{ file: manifest, message: found.warning }] : [];
  const text = await readManifestText(files, manifest);
  const err = (line: number, message: string, file = manifest) => {
    errors.push({ file, line, message });
  };

  let byName: Map<string, string[]> | null = null;
  const hintFor = (raw: string): string => {
    // An absolute path often ends in a path the dataset has: say so, the fix is then obvious.
    if (!byName) {
      byName = new Map();
      for (const p of files.paths) {
        const list = byName.get(baseName(p));
        if (list) list.push(p);
        else byName.set(baseName(p), [p]);
      }
    }
    const hit = (byName.get(baseName(raw.replace(/\\/g, '/'))) ?? []).find(
      (p) => raw.replace(/\\/g, '/').endsWith(`/${p}`) || baseName(p) === baseName(raw),
    );
    return hit ? ` (the dataset has ${plain(hit, 120)})` : '';
  };
  const seenAudio = new Map<string, number>();
  const seenId = new Set<string>();
  const add = (c: Candidate) => {
    const r = resolveInDataset(c.base, c.audio);
    if ('error' in r) return err(c.line, r.error + (/absolute paths/.test(r.error) ? hintFor(c.audio) : ''));
    const q = excerpt(c.audio);
    if (!c.text.trim()) return err(c.line, `${q}: empty transcript`);
    if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(c.text)) return err(c.line, `${q}: control characters in the transcript`);
    const audio = r.path;
    const why = refused.get(audio);
    if (why) return err(c.line, `${q}: refused: ${why}`);
    // A file under a refused folder link ("ext/x.wav" with ext → outside): name the link, not "not found".
    for (let k = audio.indexOf('/'); k > 0; k = audio.indexOf('/', k + 1)) {
      const up = refused.get(audio.slice(0, k));
      if (up && up !== FOLDER) return err(c.line, `${q}: refused: ${plain(audio.slice(0, k), 120)} is ${up}`);
    }
    if (!have.has(audio)) return err(c.line, `${q}: audio file not found (${plain(audio, 120)})`);
    const first = seenAudio.get(audio);
    if (first !== undefined) return err(c.line, `${q}: the same audio file as line ${first}; only the first is kept`);
    seenAudio.set(audio, c.line);
    // Ids must be unique (transcripts, encoder cache and reports key on them): a stem shared by two
    // folders falls back to the path without its extension.
    let id = c.id ?? stem(audio);
    if (seenId.has(id)) id = audio.replace(/\.[^./]+$/, '');
    if (seenId.has(id)) id = `${audio}#${c.line}`;
    seenId.add(id);
    const u: Utterance = { id, audio, text: c.text };
    if (c.language !== undefined) u.language = c.language;
    if (c.duration !== undefined) {
      u.duration = c.duration;
      if (c.duration > MAX_CLIP_SECONDS) {
        warnings.push({
          file: manifest,
          line: c.line,
          message: `${q}: ${c.duration.toFixed(1)} s, longer than Whisper's ${MAX_CLIP_SECONDS}-s window: the model hears only the first ${MAX_CLIP_SECONDS} s (not usable for training)`,
        });
      }
    }
    if (c.extra) u.extra = c.extra;
    if (c.extra && ('word_langs' in c.extra || 'segments' in c.extra)) {
      const tags = wordLangsOf(c.extra, c.text);
      if (typeof tags === 'string')
        warnings.push({ file: manifest, line: c.line, message: `${q}: ${tags}; no per-word language tags for this row` });
      else if (tags) u.wordLangs = tags;
    }
    rows.push(u);
  };
  const noRows = (what: string) => new DatasetError(manifest, `no rows: ${what}`);

  if (format === 'audiofolder') {
    const { rows: csv, problems, gaveUp } = parseCsvRows(text);
    if (gaveUp)
      throw new DatasetError(
        manifest,
        `more than ${problems.length - 1} malformed quoted fields (the first on line ${problems[0].line}): not a readable CSV file`,
      );
    if (!csv.length) throw noRows(problems.length ? `${problems[0].message} (line ${problems[0].line})` : 'the file is empty');
    const [headerRow, ...body] = csv;
    const header = headerRow.cells.map((h) => h.trim());
    const col = (...names: string[]) => names.map((n) => header.indexOf(n)).find((i) => i >= 0) ?? -1;
    const fi = col('file_name'),
      ti = col('transcription', 'text', 'sentence'),
      li = col('language', 'locale');
    if (fi < 0 || ti < 0) {
      const has =
        header
          .slice(0, 12)
          .map((h) => plain(h, 40))
          .join(', ') + (header.length > 12 ? `, … (${header.length} columns)` : '');
      throw new DatasetError(manifest, `needs a file_name column and a transcription/text column (has: ${has})`);
    }
    if (!body.length && !problems.length) throw noRows('a header line but no data rows');
    for (const p of problems) err(p.line, p.message);
    const skip = new Set([fi, ti, li]);
    for (const r of body) {
      let cells = r.cells;
      // Spreadsheets pad rows with empty trailing cells: those are not extra columns.
      if (cells.length > header.length && cells.slice(header.length).every((c) => c === '')) cells = cells.slice(0, header.length);
      if (cells.length !== header.length) {
        err(r.line, `${cells.length} columns, the header has ${header.length}`);
        continue;
      }
      const extra = Object.fromEntries(header.map((h, j) => [h, cells[j]] as const).filter((_, j) => !skip.has(j)));
      add({ line: r.line, audio: cells[fi], base, text: cells[ti], language: li >= 0 ? cells[li].trim() || undefined : undefined, extra });
    }
  } else if (format === 'jsonl') {
    const lines = splitLines(text).filter((l) => l.text.trim());
    if (!lines.length) throw noRows('the file is empty');
    const KNOWN = new Set(['audio_filepath', 'audio', 'path', 'file_name', 'text', 'transcription', 'sentence', 'language', 'duration']);
    for (const { text: l, line } of lines) {
      if (l.length > MAX_LINE_CHARS) {
        err(line, `line of ${l.length} characters: too long for one utterance; skipped`);
        continue;
      }
      let o: unknown;
      try {
        o = JSON.parse(l);
      } catch (e) {
        err(line, `not JSON (${plain((e as Error).message, 120)})`);
        continue;
      }
      if (o === null || typeof o !== 'object' || Array.isArray(o)) {
        err(line, `not a JSON object (${o === null ? 'null' : Array.isArray(o) ? 'an array' : `a ${typeof o}`})`);
        continue;
      }
      if (jsonDepthExceeds(o, MAX_JSON_DEPTH)) {
        err(line, `a value nested more than ${MAX_JSON_DEPTH} levels deep; skipped`);
        continue;
      }
      const rec = o as Record<string, unknown>;
      const a = rec.audio as unknown;
      // HF datasets write {"audio": {"path": …}}.
      const nested =
        a && typeof a === 'object' && typeof (a as { path?: unknown }).path === 'string' ? (a as { path: string }).path : undefined;
      const audio = [rec.audio_filepath, nested ?? rec.audio, rec.path, rec.file_name].find((v) => typeof v === 'string') as
        string | undefined;
      if (audio === undefined) {
        err(line, 'no "audio_filepath" (a string)');
        continue;
      }
      const t = [rec.text, rec.transcription, rec.sentence].find((v) => v !== undefined);
      if (typeof t !== 'string') {
        err(line, t === undefined ? `${excerpt(audio)}: no "text"` : `${excerpt(audio)}: "text" is not a string`);
        continue;
      }
      if (rec.language !== undefined && typeof rec.language !== 'string') {
        err(line, `${excerpt(audio)}: "language" is not a string`);
        continue;
      }
      let duration: number | undefined;
      if (rec.duration !== undefined && rec.duration !== null) {
        if (typeof rec.duration !== 'number' || !Number.isFinite(rec.duration) || rec.duration < 0) {
          err(line, `${excerpt(audio)}: "duration" is not a number of seconds ≥ 0`);
          continue;
        }
        duration = rec.duration;
      }
      const extra = Object.fromEntries(
        Object.entries(rec)
          .filter(([k]) => !KNOWN.has(k))
          .map(([k, v]) => [k, typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v))] as const),
      );
      add({
        line,
        audio,
        base,
        text: t,
        language: typeof rec.language === 'string' ? rec.language.trim() || undefined : undefined,
        duration,
        extra,
      });
    }
  } else if (format === 'commonvoice') {
    const lines = splitLines(text).filter((l) => l.text.length);
    if (!lines.length) throw noRows('the file is empty');
    const [h, ...body] = lines;
    const header = h.text.split('\t').map((x) => x.trim());
    const pi = header.indexOf('path'),
      si = header.indexOf('sentence'),
      li = header.indexOf('locale');
    if (pi < 0 || si < 0) {
      const has =
        header
          .slice(0, 12)
          .map((x) => plain(x, 40))
          .join(', ') + (header.length > 12 ? `, … (${header.length} columns)` : '');
      throw new DatasetError(manifest, `a Common Voice .tsv needs path and sentence columns (has: ${has})`);
    }
    if (!body.length) throw noRows('a header line but no data rows');
    const durations = await clipDurations(files, `${base}clip_durations.tsv`, have, refused, warnings);
    for (const { text: l, line } of body) {
      if (l.length > MAX_LINE_CHARS) {
        err(line, `line of ${l.length} characters: too long for one utterance; skipped`);
        continue;
      }
      let r = l.split('\t');
      if (r.length > header.length && r.slice(header.length).every((c) => c === '')) r = r.slice(0, header.length);
      if (r.length !== header.length) {
        err(line, `${r.length} tab-separated fields, the header has ${header.length}`);
        continue;
      }
      const ms = durations.get(r[pi]);
      add({
        line,
        audio: r[pi],
        base: `${base}clips/`,
        text: r[si],
        language: li >= 0 ? r[li].trim() || undefined : undefined,
        duration: ms === undefined ? undefined : ms / 1000,
      });
    }
  } else {
    const textFile = `${base}text`;
    if (!have.has(textFile) && !refused.has(textFile)) throw new DatasetError(manifest, 'Kaldi data needs a "text" file beside wav.scp');
    if (have.has(`${base}segments`)) {
      throw new DatasetError(
        `${base}segments`,
        'Kaldi segments (utterances cut out of longer recordings) are not supported: give one audio file per utterance in wav.scp',
      );
    }
    const transcripts = new Map<string, string>();
    const firstLine = new Map<string, number>();
    for (const { text: l, line } of splitLines(await readManifestText(files, textFile))) {
      const m = /^(\S+)\s*(.*)$/.exec(l.trim());
      if (!m) continue;
      if (firstLine.has(m[1])) {
        err(line, `${excerpt(m[1])}: duplicate utterance id (first on line ${firstLine.get(m[1])}); the first is used`, textFile);
        continue;
      }
      firstLine.set(m[1], line);
      transcripts.set(m[1], m[2]);
    }
    const lines = splitLines(text).filter((l) => l.text.trim());
    if (!lines.length) throw noRows('the file is empty');
    const seen = new Map<string, number>();
    for (const { text: l, line } of lines) {
      if (l.length > MAX_LINE_CHARS) {
        err(line, `line of ${l.length} characters: too long for one utterance; skipped`);
        continue;
      }
      const m = /^(\S+)\s+(.+)$/.exec(l.trim());
      if (!m) {
        err(line, 'expected "<utterance-id> <audio path>"');
        continue;
      }
      const [, uid, path] = m;
      const qid = plain(uid);
      if (/\|\s*$/.test(path)) {
        err(line, `${qid}: piped commands in wav.scp are not supported; give a file path`);
        continue;
      }
      if (/\.ark:\d+$/.test(path)) {
        err(line, `${qid}: archive offsets (.ark:N) are not supported; give a file path`);
        continue;
      }
      if (seen.has(uid)) {
        err(line, `${qid}: duplicate utterance id (first on line ${seen.get(uid)})`);
        continue;
      }
      seen.set(uid, line);
      const t = transcripts.get(uid);
      if (t === undefined) {
        err(line, `${qid}: no transcript in ${plain(textFile)}`);
        continue;
      }
      add({ line, id: uid, audio: path, base, text: t });
    }
  }
  return { format, manifest, rows, errors, warnings };
}

/** Per-word language tags of a row (see Utterance.wordLangs): the tags, undefined, or why they do not fit. */
function wordLangsOf(extra: Record<string, string>, text: string): string[] | string | undefined {
  const words = text.split(/\s+/).filter(Boolean).length;
  const raw = extra.word_langs?.trim();
  let tags: string[] | undefined;
  if (raw) {
    if (raw.startsWith('[')) {
      try {
        const a = JSON.parse(raw) as unknown;
        if (Array.isArray(a) && a.every((x) => typeof x === 'string')) tags = a as string[];
      } catch {
        /* reported below */
      }
      if (!tags) return 'word_langs is not a list of language codes';
    } else tags = raw.split(/\s+/);
    if (tags.length !== words) return `word_langs has ${tags.length} tags for ${words} words`;
    return tags;
  }
  if (extra.segments?.trim().startsWith('[')) {
    try {
      const segs = JSON.parse(extra.segments) as unknown;
      if (
        !Array.isArray(segs) ||
        !segs.every((g) => Array.isArray(g) && g.length === 2 && typeof g[0] === 'string' && typeof g[1] === 'string')
      )
        return undefined;
      const pairs = segs as [string, string][];
      if (
        pairs
          .map(([, t]) => t)
          .join(' ')
          .split(/\s+/)
          .filter(Boolean)
          .join(' ') !== text.split(/\s+/).filter(Boolean).join(' ')
      )
        return undefined;
      return pairs.flatMap(([lang, t]) =>
        t
          .split(/\s+/)
          .filter(Boolean)
          .map(() => lang),
      );
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Common Voice's clip_durations.tsv (clip → milliseconds), when present; a bad one is a warning, not fatal. */
async function clipDurations(
  files: DatasetFiles,
  path: string,
  have: Set<string>,
  refused: ReadonlyMap<string, string>,
  warnings: DatasetWarning[],
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!have.has(path) && !refused.has(path)) return out;
  try {
    const lines = splitLines(await readManifestText(files, path)).filter((l) => l.text.trim());
    for (const { text: l, line } of lines.slice(1)) {
      const [clip, ms] = l.split('\t');
      const v = Number(ms);
      if (clip && Number.isFinite(v) && v >= 0) out.set(clip, v);
      else warnings.push({ file: path, line, message: 'expected "<clip>\\t<duration in ms>"; line ignored' });
    }
  } catch (e) {
    const m = (e as Error).message;
    warnings.push({ file: path, message: `not used: ${m.startsWith(`${path}: `) ? m.slice(path.length + 2) : m}` });
  }
  return out;
}

/**
 * Node: a directory as DatasetFiles. Only regular files inside it are listed and read (symbolic links
 * are followed only when they stay inside); the rest is in `refused` with the reason (see node-files.ts).
 */
export async function directoryFiles(
  dir: string,
): Promise<DatasetFiles & { refused: ReadonlyMap<string, string>; readBytes(path: string): Promise<Uint8Array>; root: string }> {
  const { nodeDirectoryFiles } = await import('./node-files');
  return nodeDirectoryFiles(dir);
}

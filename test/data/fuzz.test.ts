// Fuzzing the dataset importers (audiofolder, JSONL, Common Voice, Kaldi) and the audio decoder with
// malformed input, as a hostile user would (issue 16). A seeded generator builds each dataset folder or
// audio file; each case runs in a worker thread (fuzz-worker.ts) under a 5-s limit, so a blocking read or
// a decoder loop is a failed case, not a hung suite. Every case asserts:
//   - no hang, and no exception but the typed ones (DatasetError, AudioDecodeError) or per-row errors;
//   - the problem is reported with the name of the file it is in;
//   - nothing outside the dataset folder is read: a canary file outside it (and a named pipe there, which
//     would block anything that opened it) never shows up in any message or result, and every row's
//     audio lies inside the folder;
//   - well-formed parts stay usable;
//   - no process is started: the importers and the decoder do not import child_process (source grep).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Outcome, Request } from './fuzz-worker';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const LIMIT_MS = 5000;
const SEED = 16;

// ------------------------------------------------------------------ seeded randomness

let state = SEED;
const rand = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const randInt = (n: number) => Math.floor(rand() * n);
const randBytes = (n: number) => Uint8Array.from({ length: n }, () => randInt(256));
const pick = <T>(xs: readonly T[]): T => xs[randInt(xs.length)];

// ------------------------------------------------------------------ audio builders

interface WavSpec {
  tag?: number;
  channels?: number;
  rate?: number;
  bits?: number;
  blockAlign?: number;
  fmtSize?: number;
  dataSize?: number;
  data?: Uint8Array;
  dataFirst?: boolean;
  before?: Uint8Array; // a chunk placed before fmt
}

function wav(s: WavSpec = {}): Uint8Array {
  const tag = s.tag ?? 1,
    ch = s.channels ?? 1,
    rate = s.rate ?? 16000,
    bits = s.bits ?? 16;
  const align = s.blockAlign ?? ch * Math.ceil(bits / 8);
  const data = s.data ?? sineI16(0.25, rate, ch);
  const fmtSize = s.fmtSize ?? 16;
  const fmt = Buffer.alloc(8 + Math.max(fmtSize, 16));
  fmt.write('fmt ', 0, 'ascii');
  fmt.writeUInt32LE(fmtSize, 4);
  fmt.writeUInt16LE(tag, 8);
  fmt.writeUInt16LE(ch & 0xffff, 10);
  fmt.writeUInt32LE(rate >>> 0, 12);
  fmt.writeUInt32LE((rate * align) >>> 0, 16);
  fmt.writeUInt16LE(align & 0xffff, 20);
  fmt.writeUInt16LE(bits & 0xffff, 22);
  const dh = Buffer.alloc(8);
  dh.write('data', 0, 'ascii');
  dh.writeUInt32LE((s.dataSize ?? data.length) >>> 0, 4);
  const parts = s.dataFirst ? [dh, data, fmt] : [s.before ?? new Uint8Array(0), fmt, dh, data];
  const body = Buffer.concat(parts.map((p) => Buffer.from(p)));
  const head = Buffer.alloc(12);
  head.write('RIFF', 0, 'ascii');
  head.writeUInt32LE(body.length + 4, 4);
  head.write('WAVE', 8, 'ascii');
  return new Uint8Array(Buffer.concat([head, body]));
}

function sineI16(seconds: number, rate: number, ch = 1): Uint8Array {
  const n = Math.max(1, Math.round(seconds * Math.min(rate, 48000)));
  const b = Buffer.alloc(n * ch * 2);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < ch; c++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)), (i * ch + c) * 2);
  return new Uint8Array(b);
}

function floats(values: number[], bits: 32 | 64 = 32): Uint8Array {
  const a = bits === 32 ? new Float32Array(values) : new Float64Array(values);
  return new Uint8Array(a.buffer);
}

/** fLaC + a STREAMINFO block (last) declaring rate / channels / bits / total samples, no frames. */
function flacHeader(rate: number, channels: number, bits: number, total: number): Uint8Array {
  const b = new Uint8Array(4 + 4 + 34);
  b.set([0x66, 0x4c, 0x61, 0x43], 0);
  b.set([0x80, 0, 0, 34], 4);
  const s = 8;
  b[s + 0] = 0x10;
  b[s + 2] = 0x10; // block sizes 4096
  b[s + 10] = (rate >> 12) & 0xff;
  b[s + 11] = (rate >> 4) & 0xff;
  b[s + 12] = ((rate & 0xf) << 4) | (((channels - 1) & 7) << 1) | (((bits - 1) >> 4) & 1);
  b[s + 13] = (((bits - 1) & 0xf) << 4) | (Math.floor(total / 2 ** 32) & 0xf);
  new DataView(b.buffer).setUint32(s + 14, total >>> 0);
  return b;
}

const GOOD = () => wav();

// ------------------------------------------------------------------ the cases

interface Case {
  name: string;
  /** Dataset: files to create (string or bytes), or callbacks for pipes and links. Audio: bytes. */
  files?: Record<string, string | Uint8Array | ((path: string) => void)>;
  bytes?: unknown;
  audioName?: string;
  options?: { maxSeconds?: number; allowTruncated?: boolean };
  /** At least one of these must appear in the reported problems (thrown error, row errors, audio errors, warnings). */
  names?: string[];
  /** 'problem': something must be reported; 'rows': at least `rows` usable rows and nothing thrown; 'decoded': the audio decodes. */
  expect?: 'problem' | 'rows' | 'decoded' | 'any';
  rows?: number;
  check?: (o: Outcome) => void;
}

let TMP = '';
let OUTSIDE = '';
const CANARY = `CANARY-${Date.now().toString(36)}-do-not-read`;
const fifos: string[] = [];
const mkfifo = (p: string) => {
  execFileSync('mkfifo', [p]);
  fifos.push(p);
};
const link = (target: () => string) => (p: string) => symlinkSync(target(), p);
const dirAt = (p: string) => mkdirSync(p, { recursive: true });

const audioCases: Case[] = [];
const datasetCases: Case[] = [];
const A = (c: Case) => audioCases.push({ audioName: 'clip.wav', expect: 'problem', ...c, names: c.names ?? [c.audioName ?? 'clip.wav'] });
const D = (c: Case) => datasetCases.push({ expect: 'problem', ...c });

// --- decoder: absurd and inconsistent headers
for (const rate of [0, 1, 7, 999, 384001, 1_000_000, 2 ** 31, 2 ** 32 - 1])
  A({ name: `WAV sample rate ${rate} Hz`, bytes: wav({ rate, data: new Uint8Array(10_000) }), check: reason('bad-header') });
A({
  name: 'a 10 KB WAV at 1000 Hz (lowest accepted rate) decodes quickly',
  bytes: wav({ rate: 1000, data: sineI16(5, 1000) }),
  expect: 'decoded',
});
A({ name: 'WAV at 384000 Hz decodes', bytes: wav({ rate: 384000, data: sineI16(0.05, 384000) }), expect: 'decoded' });
for (const channels of [0, 65, 1000, 65535])
  A({ name: `WAV with ${channels} channels`, bytes: wav({ channels, data: new Uint8Array(4000) }), check: reason('bad-header') });
for (const [bits, blockAlign] of [
  [16, 1],
  [16, 3],
  [16, 4000],
  [24, 2],
  [32, 0],
  [8, 2],
  [0, 0],
  [0, 2],
  [65, 9],
  [12, 7],
] as const) {
  A({
    name: `WAV PCM ${bits} bits with block alignment ${blockAlign}`,
    bytes: wav({ bits, blockAlign, data: new Uint8Array(4000) }),
    check: reason('bad-header'),
  });
}
A({ name: 'WAV float 16-bit', bytes: wav({ tag: 3, bits: 16, data: new Uint8Array(4000) }), check: reason('bad-header') });
A({ name: 'WAV µ-law with 16 bits', bytes: wav({ tag: 7, bits: 16, data: new Uint8Array(4000) }), check: reason('bad-header') });
A({ name: 'WAV data chunk before fmt', bytes: wav({ dataFirst: true }), check: reason('bad-header') });
A({ name: 'WAV fmt chunk of 2 bytes', bytes: wav({ fmtSize: 2 }) });
A({ name: 'WAV data size 4 GB in a 8 KB file', bytes: wav({ dataSize: 0xfffffff0 }), check: reason('truncated') });
A({ name: 'WAV data size 0xFFFFFFFF (streaming writer) decodes', bytes: wav({ dataSize: 0xffffffff }), expect: 'decoded' });
A({ name: 'WAV data size 0 with data (streaming writer) decodes', bytes: wav({ dataSize: 0 }), expect: 'decoded' });
A({
  name: 'WAV chunk of 4 GB before fmt',
  bytes: wav({ before: Uint8Array.from([0x4c, 0x49, 0x53, 0x54, 0xf0, 0xff, 0xff, 0xff, 1, 2, 3, 4]) }),
  check: reason('truncated'),
});
A({
  name: 'WAV with many tiny chunks before fmt',
  bytes: wav({ before: new Uint8Array(Buffer.concat(Array.from({ length: 20000 }, () => Buffer.from('junk\0\0\0\0', 'latin1')))) }),
  expect: 'decoded',
});
// --- decoder: samples that are not audio
for (const [what, v] of [
  ['NaN', NaN],
  ['+Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['1e10', 1e10],
  ['-65', -65],
] as const) {
  A({
    name: `float32 WAV with a ${what} sample`,
    bytes: wav({ tag: 3, bits: 32, data: floats([0, 0.5, v, 0.1, ...new Array(2000).fill(0.01)]) }),
    check: reason('invalid-samples'),
  });
  A({
    name: `float64 WAV with a ${what} sample`,
    bytes: wav({ tag: 3, bits: 64, data: floats([0.2, v, ...new Array(1000).fill(0)], 64) }),
    check: reason('invalid-samples'),
  });
}
A({
  name: 'float WAV slightly over full scale (1.5) decodes',
  bytes: wav({ tag: 3, bits: 32, data: floats(new Array(4000).fill(0).map((_, i) => 1.5 * Math.sin(i / 5))) }),
  expect: 'decoded',
});
A({ name: 'float WAV of random bytes', bytes: wav({ tag: 3, bits: 32, data: randBytes(8000) }), expect: 'any' });
// --- decoder: durations checked before decoding
A({
  name: 'FLAC header declaring 2^36 samples (19 h at 1 kHz) in 42 bytes',
  bytes: flacHeader(1000, 1, 16, 2 ** 36 - 1),
  audioName: 'long.flac',
  check: reason('too-long'),
});
A({
  name: 'FLAC header declaring 1 h at 48 kHz',
  bytes: flacHeader(48000, 2, 16, 48000 * 3600),
  audioName: 'hour.flac',
  check: reason('too-long'),
});
A({ name: 'FLAC header with sample rate 0', bytes: flacHeader(0, 1, 16, 1000), audioName: 'zero.flac', check: reason('bad-header') });
A({ name: 'FLAC header only (no frames)', bytes: flacHeader(16000, 1, 16, 16000), audioName: 'empty.flac' });
A({
  name: 'WAV over maxSeconds refused before decoding',
  bytes: wav({ data: sineI16(2, 16000) }),
  options: { maxSeconds: 1 },
  check: reason('too-long'),
});
// --- decoder: truncation, magic numbers, random bytes, not bytes at all
const good = GOOD();
for (const cut of [1, 4, 11, 12, 20, 36, 40, 43, 44, 45, 1001]) A({ name: `WAV cut to ${cut} bytes`, bytes: good.subarray(0, cut) });
A({
  name: 'WAV cut mid-data with allowTruncated decodes',
  bytes: good.subarray(0, 4000),
  options: { allowTruncated: true },
  expect: 'decoded',
});
for (const magic of [
  'RIFF\0\0\0\0WAVE',
  'RIFF',
  'fLaC',
  'OggS',
  'ID3\x04\0\0\0\0\0\x10',
  '\xff\xfb\x90\x64',
  '\xff\xf1',
  'FORM\0\0\0\0AIFF',
  '#!AMR\n',
  '\x1aE\xdf\xa3',
]) {
  for (let k = 0; k < 2; k++) {
    const head = Uint8Array.from(magic, (c) => c.charCodeAt(0));
    const b = new Uint8Array(head.length + 64 + randInt(3000));
    b.set(randBytes(b.length));
    b.set(head);
    A({
      name: `magic ${JSON.stringify(magic)} + ${b.length - head.length} random bytes (#${k + 1})`,
      bytes: b,
      audioName: `rnd${k}.bin`,
      expect: 'any',
    });
  }
}
for (let k = 0; k < 8; k++)
  A({ name: `random bytes #${k + 1}`, bytes: randBytes(1 + randInt(5000)), audioName: `noise${k}.wav`, expect: 'any' });
for (let k = 0; k < 20; k++) {
  // Header corruption: flip a few bytes of a valid file's first 48.
  const b = GOOD().slice();
  for (let j = 0; j < 1 + randInt(4); j++) b[randInt(48)] = randInt(256);
  A({ name: `valid WAV with corrupted header bytes #${k + 1}`, bytes: b, audioName: `flip${k}.wav`, expect: 'any' });
}
A({ name: 'empty file', bytes: new Uint8Array(0), audioName: 'empty.wav', check: reason('empty') });
A({
  name: 'HTML saved as .wav',
  bytes: new TextEncoder().encode('<!doctype html><html><body>404</body></html>'),
  audioName: 'page.wav',
  check: reason('unsupported-format'),
});
A({
  name: 'Git LFS pointer',
  bytes: new TextEncoder().encode('version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n'),
  audioName: 'lfs.wav',
});
for (const v of ['a string', null, 42, { length: 3 }])
  A({ name: `not bytes: ${JSON.stringify(v)}`, bytes: v, audioName: 'x.wav', check: reason('invalid-input') });
A({ name: 'valid 16 kHz WAV decodes', bytes: GOOD(), expect: 'decoded' });
A({ name: 'valid stereo 44.1 kHz WAV decodes', bytes: wav({ channels: 2, rate: 44100, data: sineI16(0.2, 44100, 2) }), expect: 'decoded' });
A({
  name: 'valid 8-bit 8 kHz WAV decodes',
  bytes: wav({ bits: 8, rate: 8000, data: randBytes(4000).map((x) => 128 + ((x % 64) - 32)) }),
  expect: 'decoded',
});

function reason(r: string) {
  return (o: Outcome) =>
    assert.equal(
      o.audio?.[0]?.error?.reason,
      r,
      `expected an AudioDecodeError of reason ${r}, got ${JSON.stringify(o.audio?.[0]?.error ?? o.audio?.[0])}`,
    );
}

// --- datasets: a well-formed base in each format, then one fault at a time
type Files = NonNullable<Case['files']>;
const csv = (rows: string[][]) => rows.map((r) => r.join(',')).join('\n') + '\n';
const CLIPS = (): Files => ({ 'a.wav': GOOD(), 'b.wav': GOOD() });
const AF = (
  extra: Files = {},
  meta = csv([
    ['file_name', 'transcription', 'language'],
    ['a.wav', 'hello there', 'en'],
    ['b.wav', 'hola amigo', 'es'],
  ]),
): Files => ({ ...CLIPS(), 'metadata.csv': meta, ...extra });
const JL = (lines: string[], extra: Files = {}): Files => ({ ...CLIPS(), 'manifest.jsonl': lines.join('\n') + '\n', ...extra });
const jl = (audio: unknown, text: unknown = 'hello', more: object = {}) => JSON.stringify({ audio_filepath: audio, text, ...more });
const CV = (rows: string[], extra: Files = {}, name = 'validated.tsv'): Files => ({
  'clips/a.wav': GOOD(),
  'clips/b.wav': GOOD(),
  [name]: ['client_id\tpath\tsentence\tup_votes\tlocale', ...rows].join('\n') + '\n',
  ...extra,
});
const KA = (scp: string, text = 'u1 hello there\nu2 hola amigo\n', extra: Files = {}): Files => ({
  'wav/a.wav': GOOD(),
  'wav/b.wav': GOOD(),
  'wav.scp': scp,
  text,
  ...extra,
});
const KSCP = 'u1 wav/a.wav\nu2 wav/b.wav\n';

// well-formed, to show the checks do not refuse good data
D({ name: 'audiofolder: well-formed', files: AF(), expect: 'rows', rows: 2 });
D({ name: 'JSONL: well-formed', files: JL([jl('a.wav'), jl('b.wav', 'hi', { duration: 0.25, language: 'en' })]), expect: 'rows', rows: 2 });
D({ name: 'Common Voice: well-formed', files: CV(['c1\ta.wav\thola\t2\tes', 'c2\tb.wav\tadiós\t1\tes']), expect: 'rows', rows: 2 });
D({ name: 'Kaldi: well-formed', files: KA(KSCP), expect: 'rows', rows: 2 });
D({
  name: 'audiofolder: CRLF line ends',
  files: AF({}, 'file_name,transcription\r\na.wav,hello\r\nb.wav,bye\r\n'),
  expect: 'rows',
  rows: 2,
});
// byte-order marks (what spreadsheet programs write)
const BOM = '\ufeff';
D({ name: 'audiofolder: UTF-8 BOM', files: AF({}, `${BOM}file_name,transcription\na.wav,hello\n`), expect: 'rows', rows: 1 });
D({ name: 'JSONL: UTF-8 BOM', files: { ...CLIPS(), 'manifest.jsonl': `${BOM}${jl('a.wav')}\n` }, expect: 'rows', rows: 1 });
D({
  name: 'Common Voice: UTF-8 BOM',
  files: { 'clips/a.wav': GOOD(), 'validated.tsv': `${BOM}path\tsentence\na.wav\thola\n` },
  expect: 'rows',
  rows: 1,
});
D({ name: 'Kaldi: UTF-8 BOM in wav.scp and text', files: KA(`${BOM}${KSCP}`, `${BOM}u1 hi\nu2 yo\n`), expect: 'rows', rows: 2 });
D({
  name: 'UTF-16 manifest',
  files: { ...CLIPS(), 'metadata.csv': new Uint8Array(Buffer.from(`\ufefffile_name,text\na.wav,hi\n`, 'utf16le')) },
  names: ['metadata.csv', 'UTF-16'],
});
// empty and header-only
for (const [fmt, files] of [
  ['audiofolder', AF({}, '')],
  ['audiofolder', AF({}, 'file_name,transcription\n')],
  ['audiofolder', AF({}, '\n\n\n')],
  ['JSONL', JL([])],
  ['JSONL', JL(['', '   '])],
  ['Common Voice', { 'clips/a.wav': GOOD(), 'validated.tsv': '' }],
  ['Common Voice', { 'clips/a.wav': GOOD(), 'validated.tsv': 'path\tsentence\n' }],
  ['Kaldi', KA('')],
  ['Kaldi', KA('\n \n')],
] as [string, Files][]) {
  const manifest = Object.keys(files).find((k) => /metadata|jsonl|tsv|scp/.test(k))!;
  D({
    name: `${fmt}: empty or header-only ${manifest} (${JSON.stringify(files[manifest]).slice(0, 30)})`,
    files,
    names: [manifest],
    check: (o) => assert.match(o.threw?.message ?? '', /no rows/),
  });
}
// CSV quoting and line numbers
D({
  name: 'audiofolder: unclosed quote is reported at its line, the other rows load',
  files: AF({}, 'file_name,transcription\na.wav,"hello there\nb.wav,bye\n'),
  names: ['metadata.csv'],
  check: (o) => {
    assert.ok(
      o.errors!.some((e) => e.line === 2 && /unclosed quote/.test(e.message)),
      JSON.stringify(o.errors),
    );
    assert.deepEqual(
      o.rows!.map((r) => r.audio),
      ['b.wav'],
    );
  },
});
D({
  name: 'audiofolder: stray quote closed by a later row is not a silent merge',
  files: AF({}, 'file_name,transcription\na.wav,"hello\nb.wav,"bye"\n'),
  names: ['metadata.csv'],
  check: (o) => {
    assert.ok(
      o.errors!.some((e) => e.line === 2),
      JSON.stringify(o.errors),
    );
    assert.ok(!o.rows!.some((r) => r.text.includes('\n')));
  },
});
D({
  name: 'audiofolder: line numbers stay right after an embedded newline',
  files: AF({}, 'file_name,transcription\na.wav,"two\nlines"\nmissing.wav,x\nb.wav,ok\n'),
  names: ['missing.wav'],
  check: (o) => {
    assert.deepEqual(
      o.errors!.map((e) => e.line),
      [4],
    );
    assert.equal(o.rows!.length, 2);
  },
});
D({
  name: 'audiofolder: quote at end of file',
  files: AF({}, 'file_name,transcription\na.wav,hi\nb.wav,"'),
  names: ['metadata.csv'],
  check: (o) => assert.equal(o.rows!.length, 1),
});
D({
  name: 'audiofolder: rows with too few / too many columns',
  files: AF({}, 'file_name,transcription\na.wav\nb.wav,hi,extra\n'),
  names: ['metadata.csv'],
  check: (o) =>
    assert.deepEqual(
      o.errors!.map((e) => e.line),
      [2, 3],
    ),
});
D({
  name: 'audiofolder: trailing empty cells are tolerated',
  files: AF({}, 'file_name,transcription\na.wav,hi,,\n'),
  expect: 'rows',
  rows: 1,
});
D({ name: 'audiofolder: no transcript column', files: AF({}, 'file_name,speaker\na.wav,s1\n'), names: ['metadata.csv'] });
D({
  name: 'audiofolder: a 200 000-column header is quoted briefly',
  files: AF({}, Array.from({ length: 200000 }, (_, i) => `c${i}`).join(',') + '\n'),
  names: ['metadata.csv'],
  check: (o) => assert.ok(o.threw!.message.length < 1000),
});
D({
  name: 'audiofolder: 100 unclosed quotes',
  files: AF({}, 'file_name,transcription\n' + Array.from({ length: 120 }, () => 'a.wav,"x').join('\n')),
  names: ['metadata.csv'],
});
// JSONL per-row faults: the rest of the set stays usable
for (const [what, line] of [
  ['null', 'null'],
  ['a number', '42'],
  ['a string', '"a.wav"'],
  ['an array', '["a.wav","hi"]'],
  ['true', 'true'],
  ['not JSON', '{"audio_filepath": "b.wav", '],
  ['no audio', '{"text":"hi"}'],
  ['audio a number', jl(7)],
  ['text a number', jl('b.wav', 12)],
  ['text null', jl('b.wav', null)],
  ['empty text', jl('b.wav', '  ')],
  ['duration a string', jl('b.wav', 'hi', { duration: 'long' })],
  ['duration 1e400', '{"audio_filepath":"b.wav","text":"hi","duration":1e400}'],
  ['negative duration', jl('b.wav', 'hi', { duration: -3 })],
  ['language a number', jl('b.wav', 'hi', { language: 5 })],
  ['control characters in the text', jl('b.wav', 'hi\u0007\u001b[31m')],
  ['control characters in the path', jl('b\u0000.wav')],
  ['deep nesting', `{"audio_filepath":"b.wav","text":"hi","meta":${'['.repeat(100000)}${']'.repeat(100000)}}`],
  ['deep nesting of a known key', `{"audio_filepath":${'['.repeat(5000)}${']'.repeat(5000)},"text":"hi"}`],
  ['a 2 MB line', jl('b.wav', 'x'.repeat(2 << 20))],
  ['__proto__ key', '{"audio_filepath":"b.wav","text":"hi","__proto__":{"polluted":1}}'],
] as const) {
  D({
    name: `JSONL: ${what} on line 2, line 1 still loads`,
    files: JL([jl('a.wav'), line]),
    names: ['manifest.jsonl'],
    check: (o) => {
      assert.equal(o.threw, undefined, o.threw?.message);
      assert.ok(
        o.rows!.some((r) => r.audio === 'a.wav'),
        'line 1 lost',
      );
      if (what !== '__proto__ key')
        assert.ok(
          o.errors!.some((e) => e.line === 2 && e.file === 'manifest.jsonl'),
          JSON.stringify(o.errors).slice(0, 300),
        );
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    },
    expect: what === '__proto__ key' ? 'rows' : 'problem',
    rows: 1,
  });
}
D({
  name: 'JSONL: non-UTF-8 byte on line 3',
  files: {
    ...CLIPS(),
    'manifest.jsonl': new Uint8Array(
      Buffer.concat([Buffer.from(`${jl('a.wav')}\n${jl('b.wav')}\n`), Buffer.from([0x7b, 0xe9, 0xff, 0x7d, 0x0a])]),
    ),
  },
  names: ['manifest.jsonl:3'],
});
D({
  name: 'JSONL: NUL bytes (a binary file)',
  files: { ...CLIPS(), 'manifest.jsonl': new Uint8Array([0x7b, 0, 0, 0x7d]) },
  names: ['manifest.jsonl'],
});
D({
  name: 'JSONL: HF-style nested {"audio": {"path"}}',
  files: JL([JSON.stringify({ audio: { path: 'a.wav' }, text: 'hi' })]),
  expect: 'rows',
  rows: 1,
});
D({
  name: 'JSONL: 20 000 rows of missing files, reported quickly',
  files: JL(Array.from({ length: 20000 }, (_, i) => jl(`m${i}.wav`))),
  names: ['m19999.wav'],
  check: (o) => assert.equal(o.errors!.length, 20000),
});
D({
  name: 'JSONL: duration 45 s is marked and warned about',
  files: JL([jl('a.wav', 'hi', { duration: 45 })]),
  expect: 'any',
  names: ['a.wav'],
  check: (o) => {
    assert.equal(o.rows![0].duration, 45);
    assert.match(o.warnings!.map((w) => w.message).join('\n'), /45\.0 s, longer than Whisper's 30-s window/);
  },
});
// Common Voice rows
D({
  name: 'Common Voice: one-field rows',
  files: CV(['a.wav', 'c2\tb.wav\thi\t1\tes']),
  names: ['validated.tsv'],
  check: (o) => {
    assert.equal(o.rows!.length, 1);
    assert.deepEqual(
      o.errors!.map((e) => e.line),
      [2],
    );
  },
});
D({
  name: 'Common Voice: too many fields',
  files: CV(['c1\ta.wav\thi\t1\tes\tx\ty', 'c2\tb.wav\thi\t1\tes']),
  names: ['validated.tsv'],
  check: (o) => assert.equal(o.rows!.length, 1),
});
D({
  name: 'Common Voice: blank lines keep line numbers right',
  files: CV(['', 'c1\tmissing.mp3\thi\t1\tes', '', 'c2\tb.wav\thi\t1\tes']),
  names: ['missing.mp3'],
  check: (o) =>
    assert.deepEqual(
      o.errors!.map((e) => e.line),
      [3],
    ),
});
D({
  name: 'Common Voice: no sentence column',
  files: { 'clips/a.wav': GOOD(), 'validated.tsv': 'client_id\tpath\nc\ta.wav\n' },
  names: ['validated.tsv'],
});
D({
  name: 'Common Voice: clips not under clips/',
  files: { 'a.wav': GOOD(), 'validated.tsv': 'path\tsentence\na.wav\thi\n' },
  names: ['clips/a.wav'],
});
D({
  name: 'Common Voice: train.tsv is read over validated.tsv, and it says so',
  files: { ...CV(['c\ta.wav\thi\t1\tes']), 'train.tsv': 'path\tsentence\nb.wav\thola\n', 'dev.tsv': 'path\tsentence\na.wav\thi\n' },
  expect: 'rows',
  rows: 1,
  check: (o) => {
    assert.equal(o.manifest, 'train.tsv');
    assert.match(o.warnings![0].message, /read train\.tsv .*training split.*validated\.tsv/);
  },
});
D({
  name: 'Common Voice: validated.tsv over dev/test, said so',
  files: { ...CV(['c\ta.wav\thi\t1\tes']), 'dev.tsv': 'path\tsentence\na.wav\thi\n', 'test.tsv': 'path\tsentence\nb.wav\thi\n' },
  expect: 'rows',
  rows: 1,
  check: (o) => {
    assert.equal(o.manifest, 'validated.tsv');
    assert.match(o.warnings![0].message, /validated\.tsv holds every validated clip/);
  },
});
D({
  name: 'Common Voice: dev.tsv and test.tsv only is a question, listing both',
  files: { 'clips/a.wav': GOOD(), 'dev.tsv': 'path\tsentence\na.wav\thi\n', 'test.tsv': 'path\tsentence\na.wav\thi\n' },
  names: ['dev.tsv'],
  check: (o) => assert.match(o.threw!.message, /several equally likely manifests: dev\.tsv, test\.tsv/),
});
D({
  name: 'Common Voice: clip_durations.tsv marks durations, long clip warned',
  files: CV(['c\ta.wav\thi\t1\tes'], { 'clip_durations.tsv': 'clip\tduration[ms]\na.wav\t41000\n' }),
  expect: 'any',
  names: ['a.wav'],
  check: (o) => assert.equal(o.rows![0].duration, 41),
});
D({
  name: 'Common Voice: random junk in clip_durations.tsv is a warning',
  files: CV(['c\ta.wav\thi\t1\tes'], { 'clip_durations.tsv': new Uint8Array([0xff, 0xfe, 0x00, 0x41]) }),
  expect: 'any',
  names: ['clip_durations.tsv'],
  check: (o) => assert.equal(o.rows!.length, 1),
});
// Kaldi
D({
  name: 'Kaldi: piped command',
  files: KA('u1 sox wav/a.wav -t wav - |\nu2 wav/b.wav\n'),
  names: ['wav.scp'],
  check: (o) => assert.equal(o.rows!.length, 1),
});
D({ name: 'Kaldi: ark offsets', files: KA('u1 feats.ark:1234\nu2 wav/b.wav\n'), names: ['wav.scp'] });
D({
  name: 'Kaldi: duplicate utterance ids',
  files: KA('u1 wav/a.wav\nu1 wav/b.wav\n'),
  names: ['wav.scp'],
  check: (o) => assert.equal(o.rows!.length, 1),
});
D({
  name: 'Kaldi: duplicate ids in text',
  files: KA(KSCP, 'u1 a\nu1 b\nu2 c\n'),
  names: ['text'],
  check: (o) => assert.equal(o.rows![0].text, 'a'),
});
D({ name: 'Kaldi: no text file', files: { 'wav/a.wav': GOOD(), 'wav.scp': KSCP }, names: ['wav.scp'] });
D({ name: 'Kaldi: segments file', files: KA(KSCP, undefined, { segments: 'u1 rec1 0 1\n' }), names: ['segments'] });
D({
  name: 'Kaldi: line without a path',
  files: KA('u1\nu2 wav/b.wav\n'),
  names: ['wav.scp'],
  check: (o) =>
    assert.deepEqual(
      o.errors!.map((e) => e.line),
      [1],
    ),
});
D({
  name: 'Kaldi: absolute paths are refused as such, with a hint',
  files: KA('u1 /corpus/data/wav/a.wav\nu2 wav/b.wav\n'),
  names: ['wav.scp'],
  check: (o) => assert.match(o.errors![0].message, /absolute paths are refused.*the dataset has wav\/a\.wav/),
});
D({
  name: 'Kaldi: Windows absolute path',
  files: KA('u1 C:\\corpus\\a.wav\nu2 wav/b.wav\n'),
  names: ['wav.scp'],
  check: (o) => assert.match(o.errors![0].message, /absolute paths are refused/),
});
// absolute paths and traversal, every format, pointing at the canary
const CANARY_REL = '../outside/canary.txt';
for (const [fmt, mk] of [
  [
    'audiofolder',
    (p: string) =>
      AF(
        {},
        csv([
          ['file_name', 'text'],
          [p, 'hi'],
          ['b.wav', 'ok'],
        ]),
      ),
  ],
  ['JSONL', (p: string) => JL([jl(p), jl('b.wav')])],
  ['Common Voice', (p: string) => CV([`c\t${p}\thi\t1\tes`, 'c\tb.wav\tok\t1\tes'])],
  ['Kaldi', (p: string) => KA(`u1 ${p}\nu2 wav/b.wav\n`)],
] as const) {
  D({
    name: `${fmt}: absolute path to a file outside`,
    files: mk('@ABS@'),
    names: ['absolute paths are refused'],
    check: (o) => assert.equal(o.rows!.length, 1),
  });
  D({
    name: `${fmt}: ../ out of the folder`,
    files: mk(fmt === 'Common Voice' ? `../${CANARY_REL}` : fmt === 'Kaldi' ? CANARY_REL : CANARY_REL),
    names: ['leads out of the dataset folder'],
    check: (o) => assert.equal(o.rows!.length, 1),
  });
  D({
    name: `${fmt}: sub/../../ out of the folder`,
    files: mk(`sub/../../../outside/canary.txt`),
    names: ['leads out of the dataset folder'],
  });
  D({ name: `${fmt}: file:// URL`, files: mk('file:///etc/passwd'), names: ['absolute paths are refused'] });
  D({
    name: `${fmt}: ./ and a/../ inside the folder are fine`,
    files: mk(fmt === 'Common Voice' ? './x/../a.wav' : fmt === 'Kaldi' ? './wav/x/../a.wav' : './x/../a.wav'),
    expect: 'rows',
    rows: 2,
  });
}
// files that are not regular files
D({
  name: 'audiofolder: a named pipe in place of a clip',
  files: AF({ 'b.wav': mkfifo }),
  names: ['b.wav'],
  check: (o) => {
    assert.equal(o.rows!.length, 1);
    assert.match(o.errors![0].message, /named pipe/);
  },
});
D({
  name: 'audiofolder: a named pipe in place of metadata.csv',
  files: AF({ 'metadata.csv': mkfifo }),
  names: ['metadata.csv'],
  check: (o) => assert.match(o.threw!.message, /named pipe/),
});
D({ name: 'JSONL: a named pipe in place of the manifest', files: { ...CLIPS(), 'manifest.jsonl': mkfifo }, names: ['manifest.jsonl'] });
D({
  name: 'Common Voice: a named pipe in place of validated.tsv',
  files: { 'clips/a.wav': GOOD(), 'validated.tsv': mkfifo },
  names: ['validated.tsv'],
});
D({
  name: 'Common Voice: a named pipe in place of a clip',
  files: CV(['c\ta.wav\thi\t1\tes', 'c\tb.wav\thi\t1\tes'], { 'clips/b.wav': mkfifo }),
  names: ['b.wav'],
});
D({
  name: 'Common Voice: a named pipe as clip_durations.tsv',
  files: CV(['c\ta.wav\thi\t1\tes'], { 'clip_durations.tsv': mkfifo }),
  expect: 'any',
  names: ['clip_durations.tsv'],
  check: (o) => assert.equal(o.rows!.length, 1),
});
D({ name: 'Kaldi: a named pipe as the text file', files: KA(KSCP, undefined, { text: mkfifo }), names: ['text'] });
D({ name: 'Kaldi: a named pipe as wav.scp', files: KA(KSCP, undefined, { 'wav.scp': mkfifo }), names: ['wav.scp'] });
D({ name: 'Kaldi: a named pipe as a clip', files: KA(KSCP, undefined, { 'wav/a.wav': mkfifo }), names: ['a.wav'] });
D({
  name: 'audiofolder: a folder named like a clip',
  files: AF({ 'b.wav': dirAt }),
  names: ['b.wav'],
  check: (o) => assert.match(o.errors![0].message, /a folder, not a file/),
});
D({ name: 'audiofolder: a folder named metadata.csv', files: AF({ 'metadata.csv': dirAt }), names: ['metadata.csv'] });
D({ name: 'JSONL: a folder named manifest.jsonl', files: { ...CLIPS(), 'manifest.jsonl': dirAt }, names: ['manifest.jsonl'] });
D({ name: 'Kaldi: a folder named text', files: KA(KSCP, undefined, { text: dirAt }), names: ['text'] });
D({
  name: 'audiofolder: a character device (/dev/null link) as a clip',
  files: AF({ 'b.wav': link(() => '/dev/null') }),
  names: ['b.wav'],
});
D({ name: 'audiofolder: /dev/zero as metadata.csv', files: AF({ 'metadata.csv': link(() => '/dev/zero') }), names: ['metadata.csv'] });
D({
  name: 'JSONL: /dev/urandom as a clip',
  files: JL([jl('a.wav'), jl('b.wav')], { 'b.wav': link(() => '/dev/urandom') }),
  names: ['b.wav'],
});
// symbolic links in and out of the root
for (const [fmt, base, clip, manifest] of [
  ['audiofolder', AF, 'b.wav', 'metadata.csv'],
  ['JSONL', () => JL([jl('a.wav'), jl('b.wav')]), 'b.wav', 'manifest.jsonl'],
  ['Common Voice', () => CV(['c\ta.wav\thi\t1\tes', 'c\tb.wav\thi\t1\tes']), 'clips/b.wav', 'validated.tsv'],
  ['Kaldi', () => KA(KSCP), 'wav/b.wav', 'wav.scp'],
] as const) {
  const f = base as (x?: Files) => Files;
  D({
    name: `${fmt}: clip linked to the canary outside`,
    files: { ...f(), [clip]: link(() => join(OUTSIDE, 'canary.txt')) },
    names: [clip.split('/').pop()!],
    check: (o) => assert.match(JSON.stringify(o.errors), /outside the dataset folder/),
  });
  D({
    name: `${fmt}: clip linked to a named pipe outside (a tripwire: opening it blocks)`,
    files: { ...f(), [clip]: link(() => join(OUTSIDE, 'tripwire')) },
    names: [clip.split('/').pop()!],
  });
  D({
    name: `${fmt}: manifest linked to the canary outside`,
    files: { ...f(), [manifest]: link(() => join(OUTSIDE, 'canary.txt')) },
    names: [manifest],
  });
  D({
    name: `${fmt}: manifest linked to /proc/self/environ`,
    files: { ...f(), [manifest]: link(() => '/proc/self/environ') },
    names: [manifest],
  });
  D({ name: `${fmt}: manifest linked to /etc/passwd`, files: { ...f(), [manifest]: link(() => '/etc/passwd') }, names: [manifest] });
  D({
    name: `${fmt}: clip linked to another clip inside (followed)`,
    files: { ...f(), [clip]: link(() => 'a.wav') },
    expect: 'rows',
    rows: fmt === 'Kaldi' || fmt === 'JSONL' || fmt === 'audiofolder' ? 2 : 2,
  });
  D({ name: `${fmt}: dangling link as a clip`, files: { ...f(), [clip]: link(() => 'nowhere.wav') }, names: [clip.split('/').pop()!] });
  D({
    name: `${fmt}: link loop as a clip`,
    files: { ...f(), [clip]: link(() => clip.split('/').pop()!) },
    names: [clip.split('/').pop()!],
  });
}
D({
  name: 'audiofolder: a folder linked to the outside is not walked',
  files: AF(
    { ext: link(() => OUTSIDE) },
    csv([
      ['file_name', 'text'],
      ['ext/canary.txt', 'hi'],
      ['a.wav', 'ok'],
    ]),
  ),
  names: ['ext/canary.txt'],
  check: (o) => {
    assert.equal(o.rows!.length, 1);
    assert.match(o.errors![0].message, /refused: ext is a symbolic link that leads outside/);
  },
});
D({ name: 'audiofolder: a folder linked to itself (cycle) is not walked', files: AF({ loop: link(() => '.') }), expect: 'rows', rows: 2 });
D({ name: 'audiofolder: the dataset root itself is a link (followed: the user named it)', files: AF(), expect: 'rows', rows: 2 });
// ambiguity: splits and several manifests
D({
  name: 'audiofolder: train/ and test/ splits: train read, and said so',
  files: {
    'train/metadata.csv': 'file_name,text\na.wav,hi\n',
    'train/a.wav': GOOD(),
    'test/metadata.csv': 'file_name,text\nb.wav,yo\n',
    'test/b.wav': GOOD(),
  },
  expect: 'rows',
  rows: 1,
  check: (o) => {
    assert.equal(o.manifest, 'train/metadata.csv');
    assert.match(o.warnings![0].message, /read train\/metadata\.csv .*training split; also found test\/metadata\.csv/);
  },
});
D({
  name: 'audiofolder: two folders, neither a training split: an error listing both',
  files: { 'a/metadata.csv': 'file_name,text\nx.wav,hi\n', 'b/metadata.csv': 'file_name,text\nx.wav,hi\n' },
  names: ['a/metadata.csv, b/metadata.csv'],
});
D({
  name: 'JSONL: train_manifest.json and dev_manifest.json',
  files: { ...CLIPS(), 'train_manifest.json': jl('a.wav') + '\n', 'dev_manifest.json': jl('b.wav') + '\n' },
  expect: 'rows',
  rows: 1,
  check: (o) => assert.equal(o.manifest, 'train_manifest.json'),
});
D({
  name: 'JSONL: two equally likely .jsonl files',
  files: { ...CLIPS(), 'x.jsonl': jl('a.wav') + '\n', 'y.jsonl': jl('b.wav') + '\n' },
  names: ['x.jsonl'],
});
D({
  name: 'metadata.csv and manifest.jsonl together: audiofolder read, said so',
  files: { ...AF(), 'manifest.jsonl': jl('a.wav') + '\n' },
  expect: 'rows',
  rows: 2,
  check: (o) => assert.match(o.warnings![0].message, /also found manifest\.jsonl/),
});
D({ name: 'no manifest at all', files: CLIPS(), names: ['No dataset manifest found'] });
// duplicates
D({
  name: 'audiofolder: the same clip twice',
  files: AF(
    {},
    csv([
      ['file_name', 'text'],
      ['a.wav', 'one'],
      ['./a.wav', 'two'],
      ['b.wav', 'x'],
    ]),
  ),
  names: ['metadata.csv'],
  check: (o) => {
    assert.equal(o.rows!.length, 2);
    assert.match(o.errors![0].message, /same audio file as line 2/);
  },
});
D({
  name: 'audiofolder: the same stem in two folders gets two ids',
  files: { 'x/a.wav': GOOD(), 'y/a.wav': GOOD(), 'metadata.csv': 'file_name,text\nx/a.wav,one\ny/a.wav,two\n' },
  expect: 'rows',
  rows: 2,
  check: (o) => assert.equal(new Set(o.rows!.map((r) => r.id)).size, 2),
});
// bad audio inside a good manifest: the decoder's errors name the clip
D({
  name: 'audiofolder: a clip at 1 Hz and a NaN clip among good ones',
  files: AF(
    { 'b.wav': wav({ rate: 1, data: new Uint8Array(10000) }), 'c.wav': wav({ tag: 3, bits: 32, data: floats([NaN, 0, 0, 0]) }) },
    csv([
      ['file_name', 'text'],
      ['a.wav', 'ok'],
      ['b.wav', 'slow'],
      ['c.wav', 'nan'],
    ]),
  ),
  names: ['b.wav', 'c.wav'],
  check: (o) => {
    assert.deepEqual(
      o.audio!.map((a) => a.error?.reason ?? 'ok'),
      ['ok', 'bad-header', 'invalid-samples'],
    );
  },
});
D({
  name: 'JSONL: an empty clip and an HTML clip',
  files: JL([jl('a.wav'), jl('b.wav')], { 'a.wav': new Uint8Array(0), 'b.wav': '<html>404</html>' }),
  names: ['a.wav', 'b.wav'],
});
// control characters, non-UTF-8, random bytes, long lines in every format
for (const m of ['metadata.csv', 'manifest.jsonl', 'validated.tsv', 'wav.scp']) {
  const extra: Files = m === 'wav.scp' ? { text: 'u1 hi\n' } : {};
  D({
    name: `${m}: Latin-1 bytes`,
    files: { ...CLIPS(), ...extra, [m]: new Uint8Array(Buffer.from('file_name,text\nx.wav,caf\xe9\n', 'latin1')) },
    names: [`${m}:2`],
  });
  D({
    name: `${m}: terminal escape sequences in every field`,
    files: {
      ...CLIPS(),
      ...extra,
      [m]: m === 'manifest.jsonl' ? jl('\u001b[2J.wav') + '\n' : `\u001b]0;x\u0007,\u001b[31m\n\u001b[2J.wav\t\u001b[1m,x\n`,
    },
    expect: 'any',
    check: (o) => assert.ok(!JSON.stringify([o.threw, o.errors, o.warnings]).includes('\u001b'), 'an escape sequence is echoed'),
  });
  for (let k = 0; k < 3; k++)
    D({ name: `${m}: random bytes #${k + 1}`, files: { ...CLIPS(), ...extra, [m]: randBytes(10 + randInt(2000)) }, names: [m] });
  D({ name: `${m}: one 3 MB line`, files: { ...CLIPS(), ...extra, [m]: 'a'.repeat(3 << 20) }, names: [m] });
}
// random mixes: a valid base in a random format, one random mutation of its manifest text
for (let k = 0; k < 12; k++) {
  const fmt = pick(['metadata.csv', 'manifest.jsonl', 'validated.tsv', 'wav.scp'] as const);
  const base =
    fmt === 'metadata.csv'
      ? AF()
      : fmt === 'manifest.jsonl'
        ? JL([jl('a.wav'), jl('b.wav')])
        : fmt === 'validated.tsv'
          ? CV(['c\ta.wav\thi\t1\tes', 'c\tb.wav\tyo\t1\tes'])
          : KA(KSCP);
  const text = String(base[fmt]);
  const junk = pick(['"', '\t', '\n', ',', '\r', '\u0000', '{', '}', '\\', '../', '/', '\ufeff', '\u202e', '\ud800']);
  const at = randInt(text.length);
  D({
    name: `${fmt}: ${JSON.stringify(junk)} inserted at ${at} (#${k + 1})`,
    files: { ...base, [fmt]: text.slice(0, at) + junk.repeat(1 + randInt(3)) + text.slice(at) },
    expect: 'any',
  });
}

// ------------------------------------------------------------------ the runner

let worker: Worker | null = null;
let nextId = 0;
const WORKER = new URL('./fuzz-worker.ts', import.meta.url).href;

function startWorker(): Worker {
  // tsx's loader is registered inside the worker (workers do not inherit --import hooks on Node 20).
  const w = new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(WORKER)}); })`, {
    eval: true,
    execArgv: [],
  });
  w.unref();
  return w;
}

type NoId<T> = T extends unknown ? Omit<T, 'id'> : never;

async function runInWorker(req: NoId<Request>): Promise<Outcome> {
  worker ??= startWorker();
  const w = worker;
  const id = ++nextId;
  return new Promise<Outcome>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      // A case that does not return in time: kill the worker (a fresh one runs the next case).
      worker = null;
      void w.terminate();
      reject(new Error(`no result within ${LIMIT_MS} ms (a hang)`));
    }, LIMIT_MS);
    const onMsg = (m: { id: number; outcome: Outcome }) => {
      if (m.id !== id) return;
      cleanup();
      resolve(m.outcome);
    };
    const onErr = (e: Error) => {
      cleanup();
      worker = null;
      reject(new Error(`the worker died: ${e.message}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      w.off('message', onMsg);
      w.off('error', onErr);
    };
    w.on('message', onMsg);
    w.on('error', onErr);
    w.postMessage({ ...req, id });
  });
}

const TYPED = new Set(['DatasetError', 'AudioDecodeError']);

function problemsText(o: Outcome): string {
  return [
    o.threw?.message,
    ...(o.errors ?? []).map((e) => `${e.file}:${e.line}: ${e.message}`),
    ...(o.audio ?? []).filter((a) => a.error).map((a) => a.error!.message),
    ...(o.warnings ?? []).map((w) => `${w.file}${w.line ? `:${w.line}` : ''}: ${w.message}`),
  ]
    .filter(Boolean)
    .join('\n');
}

function assertOutcome(c: Case, o: Outcome, root?: string): void {
  if (o.threw) assert.ok(TYPED.has(o.threw.type), `untyped ${o.threw.type}: ${o.threw.message}`);
  for (const a of o.audio ?? []) {
    if (a.error) {
      assert.ok(TYPED.has(a.error.type), `untyped ${a.error.type} decoding ${a.name}: ${a.error.message}`);
      assert.ok(a.error.message.includes(a.name.split('/').pop()!), `the audio error does not name ${a.name}: ${a.error.message}`);
    } else assert.ok(a.finite, `${a.name}: decoded samples are not finite`);
  }
  for (const e of o.errors ?? []) {
    assert.ok(e.file && Number.isInteger(e.line) && e.line >= 1, `a row error without file and line: ${JSON.stringify(e)}`);
  }
  const all = JSON.stringify(o);
  assert.ok(!all.includes(CANARY), 'the canary file outside the dataset folder was read');
  if (process.env.PATH) assert.ok(!all.includes(process.env.PATH), 'the environment was echoed');
  assert.ok(all.length < 4_000_000, `results of ${all.length} characters: file contents echoed?`);
  if (root) {
    const real = realpathSync(root);
    for (const r of o.rows ?? []) {
      const p = realpathSync(join(root, r.audio));
      assert.ok(p.startsWith(real + sep), `row audio ${r.audio} resolves outside the dataset folder (${p})`);
    }
  }
  const problems = problemsText(o);
  const failed = !!o.threw || !!o.errors?.length || !!o.audio?.some((a) => a.error);
  if (c.expect === 'problem') assert.ok(failed, `accepted without any error: ${all.slice(0, 400)}`);
  if (c.expect === 'rows') {
    assert.equal(o.threw, undefined, `threw: ${o.threw?.message}`);
    assert.ok(
      (o.rows?.length ?? 0) >= (c.rows ?? 1),
      `expected ${c.rows ?? 1} usable rows, got ${o.rows?.length}: ${problems.slice(0, 400)}`,
    );
    assert.ok(!o.audio?.some((a) => a.error), `a clip failed: ${problems.slice(0, 400)}`);
  }
  if (c.expect === 'decoded') assert.ok(o.audio?.[0] && !o.audio[0].error, `did not decode: ${problems}`);
  if (c.names && (failed || c.expect === 'problem' || (c.expect === 'any' && o.warnings?.length))) {
    assert.ok(
      c.names.some((n) => problems.includes(n)),
      `no reported problem names ${c.names.join(' or ')}:\n${problems.slice(0, 600)}`,
    );
  }
  c.check?.(o);
}

function materialise(dir: string, files: Files): void {
  mkdirSync(dir, { recursive: true });
  const later: [string, (p: string) => void][] = [];
  for (const [rel, v] of Object.entries(files)) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    if (typeof v === 'function') later.push([p, v]);
    else writeFileSync(p, typeof v === 'string' ? v.replace('@ABS@', join(OUTSIDE, 'canary.txt')) : v);
  }
  for (const [p, f] of later) {
    rmSync(p, { force: true, recursive: true });
    f(p);
  }
}

describe(`fuzzing the importers and the audio decoder (seed ${SEED})`, () => {
  const t0 = Date.now();
  let slowest = { name: '', ms: 0 };
  before(() => {
    TMP = mkdtempSync(join(tmpdir(), 'blora-fuzz-'));
    OUTSIDE = join(TMP, 'outside');
    mkdirSync(OUTSIDE);
    writeFileSync(join(OUTSIDE, 'canary.txt'), `${CANARY}\n`.repeat(20));
    mkfifo(join(OUTSIDE, 'tripwire'));
  });
  after(() => {
    // Unblock anything stuck opening a pipe (a failed case), so the process can exit.
    for (const f of fifos) {
      try {
        closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        /* no reader waiting */
      }
    }
    void worker?.terminate();
    rmSync(TMP, { recursive: true, force: true });
    const n = audioCases.length + datasetCases.length;
    console.log(
      `fuzz: ${n} cases (${datasetCases.length} datasets, ${audioCases.length} audio files), seed ${SEED}, ${((Date.now() - t0) / 1000).toFixed(1)} s; slowest ${slowest.name} (${slowest.ms} ms)`,
    );
  });

  test('at least 150 cases', () => {
    assert.ok(audioCases.length + datasetCases.length >= 150, `${audioCases.length + datasetCases.length} cases`);
  });

  test('the importers and the decoder start no process (no child_process import)', () => {
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
    const files = [...walk(join(REPO, 'src/data')), ...walk(join(REPO, 'src/audio'))].filter((f) => /\.tsx?$/.test(f));
    assert.ok(files.length >= 8);
    for (const f of files) {
      const src = readFileSync(f, 'utf8');
      assert.doesNotMatch(
        src,
        /child_process|\bexecSync\b|\bspawn\(|\bexecFile\(|process\.binding|worker_threads/,
        `${f} can start processes`,
      );
    }
  });

  describe('audio decoder', () => {
    for (const [i, c] of audioCases.entries()) {
      test(`#${i + 1} ${c.name}`, async () => {
        const t = Date.now();
        const o = await runInWorker({ kind: 'audio', bytes: c.bytes, name: c.audioName!, options: c.options });
        if (Date.now() - t > slowest.ms) slowest = { name: c.name, ms: Date.now() - t };
        if (process.env.BLORA_FUZZ_VERBOSE) console.log(`#${i + 1} ${c.name}\n  ${problemsText(o).split('\n').join('\n  ')}`);
        assertOutcome(c, o);
      });
    }
  });

  describe('dataset importers', () => {
    for (const [i, c] of datasetCases.entries()) {
      test(`#${i + 1} ${c.name}`, async () => {
        let root = join(TMP, `case${i}`, 'root');
        materialise(root, c.files!);
        if (/the dataset root itself is a link/.test(c.name)) {
          symlinkSync(root, join(TMP, `case${i}`, 'link'));
          root = join(TMP, `case${i}`, 'link');
        }
        const t = Date.now();
        const o = await runInWorker({ kind: 'dataset', root });
        if (Date.now() - t > slowest.ms) slowest = { name: c.name, ms: Date.now() - t };
        if (process.env.BLORA_FUZZ_VERBOSE)
          console.log(`#${i + 1} ${c.name} [${o.rows?.length ?? 0} rows]\n  ${problemsText(o).slice(0, 1500).split('\n').join('\n  ')}`);
        assertOutcome(c, o, root);
      });
    }
  });
});

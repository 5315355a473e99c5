// Dataset manifests: the shipped demo set in two formats, and small hand-made sets in Common Voice,
// Kaldi and audiofolder layouts with broken rows that are reported one by one.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { directoryFiles, parseCsv, readDataset } from '../../src/data/manifest';
import { DEMO_DIR } from '../support/env';

const tmp = mkdtempSync(join(tmpdir(), 'blora-data-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
function folder(name: string, files: Record<string, string>): string {
  const d = join(tmp, name);
  for (const [p, v] of Object.entries(files)) {
    mkdirSync(dirname(join(d, p)), { recursive: true });
    writeFileSync(join(d, p), v);
  }
  return d;
}

describe('dataset manifests', () => {
  test('the demo set reads as audiofolder and as JSONL, with the same rows', async () => {
    const files = await directoryFiles(DEMO_DIR);
    const a = await readDataset(files);
    assert.equal(a.format, 'audiofolder');
    assert.deepEqual(a.errors, []);
    assert.equal(a.rows.length, 12);
    const j = await readDataset({ ...files, paths: files.paths.filter((p) => p !== 'metadata.csv') });
    assert.equal(j.format, 'jsonl');
    assert.deepEqual(j.errors, []);
    assert.deepEqual(
      j.rows.map((r) => [r.audio, r.text, r.language]),
      a.rows.map((r) => [r.audio, r.text, r.language]),
    );
    assert.ok(j.rows.every((r) => typeof r.duration === 'number'));
  });

  test('CSV with quotes, commas and newlines in cells', () => {
    assert.deepEqual(parseCsv('a,b\r\n"x, ""y""",2\n"multi\nline",3\n'), [
      ['a', 'b'],
      ['x, "y"', '2'],
      ['multi\nline', '3'],
    ]);
  });

  test('Common Voice: clips/ folder, locale column; missing clips and empty sentences reported', async () => {
    const d = folder('cv', {
      'validated.tsv':
        'client_id\tpath\tsentence\tup_votes\tlocale\nc1\ta.mp3\tHola mundo\t2\tes\nc2\tb.mp3\t\t1\tes\nc3\tmissing.mp3\tAdiós\t1\tes\n',
      'clips/a.mp3': 'x',
      'clips/b.mp3': 'x',
    });
    const ds = await readDataset(await directoryFiles(d));
    assert.equal(ds.format, 'commonvoice');
    assert.deepEqual(
      ds.rows.map((r) => [r.audio, r.text, r.language]),
      [['clips/a.mp3', 'Hola mundo', 'es']],
    );
    assert.deepEqual(
      ds.errors.map((e) => [e.line, e.message]),
      [
        [3, '"b.mp3": empty transcript'],
        [4, '"missing.mp3": audio file not found (clips/missing.mp3)'],
      ],
    );
  });

  test('Kaldi: wav.scp + text; utterances without transcript and piped commands reported', async () => {
    const d = folder('kaldi', {
      'data/wav.scp': 'u1 wav/u1.wav\nu2 wav/u2.wav\nu3 sox x.wav -t wav - |\n',
      'data/text': 'u1 hello there\nu3 piped\n',
      'data/wav/u1.wav': 'x',
      'data/wav/u2.wav': 'x',
    });
    const ds = await readDataset(await directoryFiles(d));
    assert.equal(ds.format, 'kaldi');
    assert.deepEqual(
      ds.rows.map((r) => [r.id, r.audio, r.text]),
      [['u1', 'data/wav/u1.wav', 'hello there']],
    );
    assert.equal(ds.errors.length, 2);
    assert.match(ds.errors[0].message, /u2: no transcript/);
    assert.match(ds.errors[1].message, /piped commands/);
  });

  test('audiofolder without a transcript column is an error naming the file and its columns', async () => {
    const d = folder('bad', { 'metadata.csv': 'file_name,speaker\na.wav,s1\n', 'a.wav': 'x' });
    await assert.rejects(
      readDataset(await directoryFiles(d)),
      /metadata\.csv: needs a file_name column and a transcription\/text column \(has: file_name, speaker\)/,
    );
  });

  test('a folder without any manifest says which ones it looks for', async () => {
    const d = folder('none', { 'a.wav': 'x' });
    await assert.rejects(readDataset(await directoryFiles(d)), /No dataset manifest found: expected metadata\.csv/);
  });
});

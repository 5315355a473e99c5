/**
 * The shipped demo data (public/demo, made by tools/make_demo_data.py) is consistent and decodes:
 * manifest ↔ metadata.csv ↔ files, 16 kHz mono 16-bit WAV of 2–6 s, durations as stated, < 2 MB in
 * all, and the FLAC / MP3 / Ogg copies of en_01 decode to the same audio as the WAV.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { decodeAudio, loadAudio16k, probeAudio } from '../../src/audio/index';
import { bestLag, maxAbsDiff, snrDb } from './helpers';

const DEMO = fileURLToPath(new URL('../../public/demo/', import.meta.url));

interface Row {
  audio_filepath: string;
  text: string;
  language: string;
  duration: number;
  domain: 'base' | 'code-switched';
  languages?: string[];
}

const rows: Row[] = readFileSync(join(DEMO, 'manifest.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Row);

/** Minimal RFC 4180 CSV parser (quoted fields, doubled quotes). */
function parseCsv(text: string): string[][] {
  const out: string[][] = [];
  let row: string[] = [];
  let field = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') ((field += '"'), i++);
      else if (c === '"') q = false;
      else field += c;
    } else if (c === '"') q = true;
    else if (c === ',') (row.push(field), (field = ''));
    else if (c === '\n') (row.push(field), out.push(row), (row = []), (field = ''));
    else if (c !== '\r') field += c;
  }
  if (field || row.length) (row.push(field), out.push(row));
  return out;
}

describe('public/demo', () => {
  it('manifest: 12 clips — English, Spanish and code-switched Spanish–English', () => {
    assert.equal(rows.length, 12);
    const count = (f: (r: Row) => boolean) => rows.filter(f).length;
    assert.equal(
      count((r) => r.domain === 'base' && r.language === 'en'),
      5,
    );
    assert.equal(
      count((r) => r.domain === 'base' && r.language === 'es'),
      4,
    );
    assert.equal(
      count((r) => r.domain === 'code-switched'),
      3,
    );
    for (const r of rows) {
      assert.ok(r.text.trim().length > 0);
      if (r.domain === 'code-switched') assert.deepEqual(r.languages, [r.language, 'en']);
      else assert.equal(r.languages, undefined);
    }
    assert.equal(new Set(rows.map((r) => r.audio_filepath)).size, rows.length);
  });

  it('metadata.csv (audiofolder) has the same clips, texts and languages', () => {
    const [header, ...body] = parseCsv(readFileSync(join(DEMO, 'metadata.csv'), 'utf8'));
    assert.deepEqual(header, ['file_name', 'transcription', 'language']);
    assert.deepEqual(
      body,
      rows.map((r) => [r.audio_filepath, r.text, r.language]),
    );
  });

  it('every clip is 16 kHz mono 16-bit WAV of 2–6 s, with the duration the manifest states', async () => {
    for (const r of rows) {
      const bytes = new Uint8Array(readFileSync(join(DEMO, r.audio_filepath)));
      const p = probeAudio(bytes);
      assert.equal(p.format, 'wav');
      assert.equal(p.sampleRate, 16000);
      assert.equal(p.channels, 1);
      assert.equal(p.bitsPerSample, 16);
      const x = await loadAudio16k(bytes, r.audio_filepath);
      const secs = x.length / 16000;
      assert.ok(Math.abs(secs - r.duration) < 0.001, `${r.audio_filepath}: ${secs} s vs manifest ${r.duration}`);
      assert.ok(secs >= 2 && secs <= 6, `${r.audio_filepath}: ${secs} s`);
      let peak = 0;
      for (const v of x) peak = Math.max(peak, Math.abs(v));
      assert.ok(peak > 0.5 && peak < 0.75, `${r.audio_filepath}: peak ${peak} (normalised to −3 dBFS)`);
    }
  });

  it('the folder stays under 2 MB', () => {
    const size = (dir: string): number =>
      readdirSync(dir, { withFileTypes: true }).reduce(
        (s, e) => s + (e.isDirectory() ? size(join(dir, e.name)) : statSync(join(dir, e.name)).size),
        0,
      );
    const total = size(DEMO);
    assert.ok(total < 2_000_000, `${total} bytes`);
  });

  it('formats/en_01.{flac,mp3,ogg} decode to the same audio as en_01.wav', async () => {
    const formats = JSON.parse(readFileSync(join(DEMO, 'formats.json'), 'utf8')) as { source: string; copies: string[] };
    assert.deepEqual(formats.copies.map((c) => c.split('.').pop()).sort(), ['flac', 'mp3', 'ogg']);
    const ref = (await decodeAudio(readFileSync(join(DEMO, formats.source)), formats.source)).channels[0];
    for (const copy of formats.copies) {
      const d = await decodeAudio(readFileSync(join(DEMO, copy)), copy);
      assert.equal(d.sampleRate, 16000, copy);
      assert.equal(d.channels.length, 1, copy);
      const y = d.channels[0];
      if (copy.endsWith('.flac')) {
        assert.equal(y.length, ref.length);
        assert.equal(maxAbsDiff(y, ref), 0, 'FLAC is lossless');
      } else {
        const { lag, corr } = bestLag(ref.subarray(8000, 24000), y.subarray(8000), 2500);
        const snr = snrDb(ref, y, lag, 4000, ref.length - 4000);
        assert.ok(corr > 0.95 && snr > 10, `${copy}: corr ${corr.toFixed(3)}, SNR ${snr.toFixed(1)} dB at lag ${lag}`);
        assert.ok(y.length >= ref.length - 2 && y.length <= ref.length + 0.2 * 16000, `${copy}: ${y.length} vs ${ref.length}`);
      }
    }
  });
});

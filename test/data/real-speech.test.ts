// The real-speech base domain (tools/real_speech.py, Debian's Asterisk prompts) at --limit 4: built into a temp
// folder from the .deb files in $BLORA_CACHE/debs (fetched once from the Debian archive by apt-get download when
// missing; with them there nothing touches the network), read back with the studio's own dataset reader, and
// checked: disjoint splits, 16 kHz mono 16-bit audio as long as its metadata says, transcripts without editorial
// notes, one language tag per word, corpus.json counts. A rerun is skipped; a second build gives the same bytes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { directoryFiles, readDataset, type Dataset } from '../../src/data/manifest';
import { CACHE, REPO, requirePython } from '../support/env';
import { wavInfo } from '../support/wav';

const SCRIPT = join(REPO, 'tools/real_speech.py');
const SPLITS = ['real-dev', 'real-test'] as const;
const LANGS = ['en', 'es', 'fr'];
const LIMIT = 4;
const PACKAGES = LANGS.flatMap((l) => [`asterisk-core-sounds-${l}`, `asterisk-core-sounds-${l}-wav`]);
const DEBS = join(process.env.BLORA_CACHE ?? CACHE, 'debs');

function build(out: string, args: string[] = []): string {
  return execFileSync(requirePython(), [SCRIPT, '--limit', String(LIMIT), '--out', out, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 240_000,
  });
}
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const norm = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^\p{L}\p{N}' ]+/gu, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .join(' ');

describe(`real speech (tools/real_speech.py --limit ${LIMIT})`, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'blora-real-'));
  const dir = join(tmp, 'a');
  let log = '';
  let cached = false;
  const data = {} as Record<(typeof SPLITS)[number], Dataset>;
  after(() => rmSync(tmp, { recursive: true, force: true }));

  before(async () => {
    cached = PACKAGES.every((p) => existsSync(join(DEBS, `${p}_1.6.1-1_all.deb`)));
    log = build(dir);
    for (const s of SPLITS) data[s] = await readDataset(await directoryFiles(join(dir, s)));
  });

  test('prints its progress and counts; both splits read as audiofolders with LIMIT clips per language', () => {
    assert.match(log, /en \(en_US_f_Allison\): \d+ transcripts, \d+ kept/);
    assert.match(log, /clips resampled to 16 kHz/);
    assert.match(log, new RegExp(`${LIMIT * 6} clips, .* h of audio`));
    if (cached) assert.doesNotMatch(log, /fetching/, 'the .deb files were cached, yet it fetched');
    for (const s of SPLITS) {
      const d = data[s];
      assert.equal(d.format, 'audiofolder', s);
      assert.deepEqual(d.errors, [], `${s}: ${JSON.stringify(d.errors)}`);
      for (const l of LANGS) assert.equal(d.rows.filter((r) => r.language === l).length, LIMIT, `${s}/${l}`);
      assert.equal(d.rows.length, LIMIT * LANGS.length);
    }
  });

  test('metadata rows: base domain, the voice and template of the prompt, no notes, one language tag per word', () => {
    const header = readFileSync(join(dir, 'real-test/metadata.csv'), 'utf8').split('\n')[0];
    assert.equal(
      header,
      'file_name,transcription,language,languages,domain,pair,switch_type,duration,voice,rate_wpm,pitch,noise,snr_db,template,segments,word_langs',
    );
    for (const s of SPLITS) {
      for (const r of data[s].rows) {
        const x = r.extra ?? {},
          lang = r.language ?? '';
        assert.match(r.audio, new RegExp(`^${lang}-\\d{5}\\.wav$`));
        assert.doesNotMatch(r.text, /[[\]()<>]/, `${s}/${r.audio}: ${r.text}`);
        const words = r.text.split(/\s+/).filter(Boolean);
        assert.ok(words.filter((w) => /[\p{L}\p{N}]/u.test(w)).length >= 3, `${s}/${r.audio}: under 3 words`);
        assert.deepEqual(
          r.wordLangs,
          words.map(() => lang),
          `${s}/${r.audio}: word_langs`,
        );
        assert.equal(x.word_langs, words.map(() => lang).join(' '));
        assert.deepEqual(
          [x.languages, x.domain, x.pair, x.switch_type, x.voice, x.noise, x.snr_db, x.rate_wpm],
          [lang, 'base', '', 'none', `asterisk-${lang}`, 'none', '', ''],
          `${s}/${r.audio}`,
        );
        assert.match(x.template, /^asterisk:[\w./-]+$/);
        assert.deepEqual(JSON.parse(x.segments), [[lang, r.text]]);
      }
    }
  });

  test('no key and no sentence in both splits', () => {
    const keys = SPLITS.map((s) => new Set(data[s].rows.map((r) => r.extra?.template)));
    const texts = SPLITS.map((s) => new Set(data[s].rows.map((r) => norm(r.text))));
    for (const k of keys[0]) assert.ok(!keys[1].has(k), `${k} in both splits`);
    for (const t of texts[0]) assert.ok(!texts[1].has(t), `"${t}" in both splits`);
  });

  test('every clip is 16 kHz mono 16-bit PCM, at most 30 s, and as long as its metadata says', () => {
    for (const s of SPLITS) {
      for (const r of data[s].rows) {
        const w = wavInfo(join(dir, s, r.audio));
        assert.deepEqual([w.format, w.channels, w.rate, w.bits], [1, 1, 16000, 16], `${s}/${r.audio}`);
        assert.ok(w.seconds > 0.3 && w.seconds <= 30, `${s}/${r.audio}: ${w.seconds} s`);
        assert.ok(Math.abs(w.seconds - Number(r.extra?.duration)) < 1e-3, `${s}/${r.audio}: duration ${r.extra?.duration} vs ${w.seconds}`);
      }
      assert.deepEqual(
        readdirSync(join(dir, s))
          .filter((f) => f.endsWith('.wav'))
          .sort(),
        data[s].rows.map((r) => r.audio).sort(),
        `${s}: stray files`,
      );
    }
  });

  test('corpus.json: source packages, licence and attribution, counts that match the folders', () => {
    const meta = JSON.parse(readFileSync(join(dir, 'corpus.json'), 'utf8'));
    assert.equal(meta.licence, 'CC-BY-SA-3.0');
    assert.match(meta.attribution.en, /Allison Smith/);
    assert.match(meta.attribution.fr, /June Wallack/);
    assert.deepEqual(Object.keys(meta.packages).sort(), [...PACKAGES].sort());
    for (const p of Object.values(meta.packages) as { version: string; sha256: string }[]) {
      assert.equal(p.version, '1.6.1-1');
      assert.match(p.sha256, /^[0-9a-f]{64}$/);
    }
    assert.ok(existsSync(join(dir, 'LICENSE-asterisk-sounds.txt')));
    assert.match(readFileSync(join(dir, 'LICENSE-asterisk-sounds.txt'), 'utf8'), /License: CC-BY-SA-3\.0/);
    assert.equal(meta.limit, LIMIT);
    for (const s of SPLITS) {
      assert.equal(meta.splits[s].clips, data[s].rows.length, s);
      for (const l of LANGS) assert.equal(meta.splits[s].groups[l], data[s].rows.filter((r) => r.language === l).length, `${s}/${l}`);
      const secs = data[s].rows.reduce((a, r) => a + Number(r.extra?.duration), 0);
      assert.ok(Math.abs(meta.splits[s].seconds - secs) < 0.1, `${s}: ${meta.splits[s].seconds} vs ${secs}`);
    }
    assert.equal(meta.total.clips, LIMIT * 6);
    assert.ok(!existsSync(join(dir, '.partial.json')));
  });

  test('transcript cleaning: notes in [..], (..) and <..> removed, the spoken French parenthesis kept', () => {
    const code = [
      'import sys, json; sys.path.insert(0, "tools"); import real_speech as r',
      'print(json.dumps([r.clean("Please leave your message after the tone.  When done hang up or press the pound key. (simple tone sound plays)"),',
      '  r.clean("Sus saludos [temporales] estan actualmente en uso", "es", "vm-tempgreetactive"), r.clean("[ascending tones]"),',
      '  r.clean("<beep ascending>"), r.clean("IAX (note: does not say \\"2\\")"),',
      '  r.clean("au menu poli (ne m\'appelez plus, jamais), 4.", "fr", "screen-callee-options"),',
      '  r.clean("au menu poli (ne m\'appelez plus, jamais), 4.", "fr", "other")]))',
    ].join('\n');
    const got = JSON.parse(execFileSync(requirePython(), ['-c', code], { cwd: REPO, encoding: 'utf8' }));
    assert.deepEqual(got, [
      'Please leave your message after the tone. When done hang up or press the pound key.',
      'Sus saludos estan actualmente en uso',
      '',
      '',
      'IAX',
      "au menu poli ne m'appelez plus, jamais, 4.",
      'au menu poli, 4.',
    ]);
  });

  test('a rerun finds the folder complete; a second build elsewhere gives the same bytes', () => {
    assert.match(build(dir), /corpus complete at .*nothing to do/);
    const other = join(tmp, 'b');
    build(other);
    for (const s of SPLITS) {
      assert.equal(
        readFileSync(join(other, s, 'metadata.csv'), 'utf8'),
        readFileSync(join(dir, s, 'metadata.csv'), 'utf8'),
        `${s}/metadata.csv`,
      );
      for (const r of data[s].rows) assert.equal(sha(join(other, s, r.audio)), sha(join(dir, s, r.audio)), `${s}/${r.audio}`);
    }
  });

  test('a broken .deb fails with the package file and the cause, leaving no corpus', () => {
    const debs = join(tmp, 'bad-debs'),
      out = join(tmp, 'c');
    mkdirSync(debs);
    for (const p of PACKAGES) writeFileSync(join(debs, `${p}_1.6.1-1_all.deb`), 'not a deb');
    assert.throws(
      () => build(out, ['--debs', debs]),
      (e: { stderr?: string }) =>
        /real_speech: error: .*asterisk-core-sounds-en_1\.6\.1-1_all\.deb: dpkg-deb -f failed/.test(e.stderr ?? ''),
    );
    assert.ok(!existsSync(join(out, 'corpus.json')));
  });
});

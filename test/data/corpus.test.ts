// The synthetic corpus generator (tools/make_corpus.py) at its ci size, for each corpus version (a row of CORPORA):
// generated into the cache (skipped when already complete), read back with the studio's own dataset reader, checked
// for disjoint splits and valid audio, and generated a second time from scratch into a temp folder to show that the
// same seed gives the same bytes — for v2 also the neural voice's clips (Kokoro-82M on onnxruntime, one thread).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { directoryFiles, readDataset, type Dataset } from '../../src/data/manifest';
import { REPO, requirePython } from '../support/env';
import { wavInfo } from '../support/wav';

const SCRIPT = join(REPO, 'tools/make_corpus.py');
type Split = 'train' | 'dev' | 'test' | 'base-dev' | 'base-test';
const CS: Split[] = ['train', 'dev', 'test'];
// one row per corpus version: its ci size, its language pairs, and whether half the code-switched clips are neural
const CORPORA: { corpus: string; splits: Record<Split, number>; total: number; pairs: string[]; neural: boolean }[] = [
  {
    corpus: 'v1',
    splits: { train: 24, dev: 8, test: 8, 'base-dev': 12, 'base-test': 24 },
    total: 76,
    pairs: ['de-en', 'es-en'],
    neural: false,
  },
  {
    corpus: 'v2',
    splits: { train: 12, dev: 6, test: 6, 'base-dev': 3, 'base-test': 6 },
    total: 33,
    pairs: ['de-en', 'es-en', 'fr-en'],
    neural: true,
  },
];

for (const C of CORPORA) {
  const SPLITS = C.splits;
  const LANGS = ['de', 'en', 'es', ...(C.pairs.includes('fr-en') ? ['fr'] : [])];
  function make(args: string[]): string {
    return execFileSync(requirePython(), [SCRIPT, '--corpus', C.corpus, '--size', 'ci', ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    });
  }
  const norm = (s: string) =>
    s
      .toLowerCase()
      .replace(/[^\p{L}\p{N}' ]+/gu, ' ')
      .split(/\s+/)
      .filter(Boolean)
      .join(' ');
  const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

  describe(`synthetic corpus (tools/make_corpus.py --corpus ${C.corpus} --size ci)`, () => {
    let dir = '';
    const data = {} as Record<Split, Dataset>;
    const fresh = mkdtempSync(join(tmpdir(), 'blora-corpus-'));
    after(() => rmSync(fresh, { recursive: true, force: true }));

    before(async () => {
      const out = make([]); // default folder in the cache: generated once, then skipped
      dir = /corpus at (.+)\s*$/.exec(out)?.[1].trim() ?? '';
      assert.ok(dir, `no "corpus at" line in:\n${out}`);
      for (const s of Object.keys(SPLITS) as Split[]) data[s] = await readDataset(await directoryFiles(join(dir, s)));
    });

    test('a second run finds the corpus complete and does nothing', () => {
      assert.match(make([]), /corpus complete at .*nothing to do/);
    });

    test('every split reads as an audiofolder with the expected clips and columns, without row errors', () => {
      const meta = JSON.parse(readFileSync(join(dir, 'corpus.json'), 'utf8'));
      for (const [s, n] of Object.entries(SPLITS) as [Split, number][]) {
        const d = data[s];
        assert.equal(d.format, 'audiofolder');
        assert.deepEqual(d.errors, [], `${s}: ${JSON.stringify(d.errors)}`);
        assert.equal(d.rows.length, n, s);
        assert.equal(meta.splits[s].clips, n);
        for (const r of d.rows) {
          assert.ok(r.text.trim().length > 0, `${s}/${r.audio}: empty transcript`);
          assert.ok(LANGS.includes(r.language ?? ''), `${s}/${r.audio}: language ${r.language}`);
          const x = r.extra ?? {};
          const langs = x.languages.split(',');
          const segs = JSON.parse(x.segments) as [string, string][];
          assert.equal(segs.map(([, t]) => t).join(' '), r.text, `${s}/${r.audio}: segments do not make the transcript`);
          assert.equal(langs[0], r.language);
          // per-word language tags (PIER): one per word of the transcript, the segment's language
          assert.deepEqual(
            r.wordLangs,
            segs.flatMap(([l, t]) =>
              t
                .split(/\s+/)
                .filter(Boolean)
                .map(() => l),
            ),
            `${s}/${r.audio}: word_langs`,
          );
          assert.equal(x.word_langs, r.wordLangs?.join(' '));
          if (CS.includes(s)) {
            assert.equal(x.domain, 'code-switched');
            assert.ok(C.pairs.includes(x.pair), x.pair);
            assert.deepEqual([...langs].sort(), x.pair.split('-').sort(), `${s}/${r.audio}: languages ${x.languages}`);
            assert.ok(new Set(segs.map(([l]) => l)).size === 2, `${s}/${r.audio}: not code-switched`);
            assert.ok(['insertion', 'alternation', 'tag'].includes(x.switch_type));
          } else {
            assert.equal(x.domain, 'base');
            assert.deepEqual(langs, [r.language]);
            assert.equal(segs.length, 1);
          }
        }
      }
      // every pair and all three switch types occur in training
      const train = data.train.rows.map((r) => r.extra ?? {});
      assert.deepEqual([...new Set(train.map((x) => x.pair))].sort(), [...C.pairs]);
      assert.deepEqual([...new Set(train.map((x) => x.switch_type))].sort(), ['alternation', 'insertion', 'tag']);
      assert.deepEqual([...new Set(data['base-test'].rows.map((r) => r.language))].sort(), ['de', 'en', 'es']);
    });

    test('no sentence is shared between splits, nor an insertion template / first clause between code-switched splits', () => {
      const seen = new Map<string, string>();
      for (const s of Object.keys(SPLITS) as Split[]) {
        for (const r of data[s].rows) {
          const k = norm(r.text);
          assert.ok(!seen.has(k), `"${r.text}" in both ${seen.get(k)} and ${s}`);
          seen.set(k, s);
        }
      }
      const frame = (t: string) =>
        t.startsWith('alternation:') || t.startsWith('tag:') ? t.split(':').slice(0, 3).join(':').replace(/^tag:/, 'alternation:') : t;
      const frames = new Map<string, string>();
      for (const s of CS) {
        for (const f of new Set(data[s].rows.map((r) => frame(r.extra?.template ?? '')))) {
          assert.ok(!frames.has(f), `frame ${f} in both ${frames.get(f)} and ${s}`);
          frames.set(f, s);
        }
      }
    });

    test('every clip is 16 kHz mono 16-bit PCM and as long as its metadata says', () => {
      for (const s of Object.keys(SPLITS) as Split[]) {
        for (const r of data[s].rows) {
          const w = wavInfo(join(dir, s, r.audio));
          assert.deepEqual([w.format, w.channels, w.rate, w.bits], [1, 1, 16000, 16], `${s}/${r.audio}`);
          assert.ok(w.seconds > 0.8 && w.seconds < 20, `${s}/${r.audio}: ${w.seconds} s`);
          assert.ok(
            Math.abs(w.seconds - Number(r.extra?.duration)) < 1e-3,
            `${s}/${r.audio}: duration ${r.extra?.duration} vs ${w.seconds}`,
          );
        }
      }
    });

    test('the same seed regenerated from scratch gives identical metadata and audio', () => {
      const out = make(['--out', fresh]);
      assert.match(out, new RegExp(`${C.total} clips`));
      for (const s of Object.keys(SPLITS) as Split[]) {
        assert.equal(
          readFileSync(join(fresh, s, 'metadata.csv'), 'utf8'),
          readFileSync(join(dir, s, 'metadata.csv'), 'utf8'),
          `${s}/metadata.csv differs`,
        );
        const wavs = readdirSync(join(dir, s))
          .filter((f) => f.endsWith('.wav'))
          .sort();
        assert.deepEqual(
          readdirSync(join(fresh, s))
            .filter((f) => f.endsWith('.wav'))
            .sort(),
          wavs,
        );
        for (const f of wavs) assert.equal(sha(join(fresh, s, f)), sha(join(dir, s, f)), `${s}/${f} differs`);
      }
    });

    if (C.neural) {
      test("half of each pair's code-switched clips are spoken whole by one neural speaker; the rest by espeak-ng", () => {
        const speakers = new Set<string>();
        for (const s of CS) {
          for (const pair of C.pairs) {
            const rows = data[s].rows.filter((r) => r.extra?.pair === pair);
            const neural = rows.filter((r) => r.extra?.tts === 'kokoro');
            assert.equal(neural.length, Math.floor(rows.length / 2), `${s} ${pair}: ${neural.length} of ${rows.length} neural`);
            for (const r of neural) {
              const x = r.extra ?? {};
              assert.match(x.speaker, /^j[fm]_[a-z]+$/, `${s}/${r.audio}: speaker ${x.speaker}`);
              assert.equal(x.voice, `kokoro:${x.speaker}`);
              speakers.add(x.speaker);
            }
            for (const r of rows.filter((q) => q.extra?.tts !== 'kokoro')) {
              assert.equal(r.extra?.tts, 'espeak-ng');
              assert.equal(r.extra?.speaker, `espeak-ng:${r.extra?.voice}`);
            }
          }
        }
        assert.ok(speakers.size >= 2, `one neural speaker only: ${[...speakers]}`);
        // the voice is not confounded with the switch type: both voices speak insertions and the other types
        for (const tts of ['kokoro', 'espeak-ng']) {
          const kinds = new Set(
            data.train.rows.filter((r) => r.extra?.tts === tts).map((r) => (r.extra?.switch_type === 'insertion' ? 'insertion' : 'other')),
          );
          assert.deepEqual([...kinds].sort(), ['insertion', 'other'], `${tts} speaks only ${[...kinds]} clips in train`);
        }
        for (const r of [...data['base-dev'].rows, ...data['base-test'].rows]) assert.equal(r.extra?.tts, 'espeak-ng', r.audio);
      });
    }
  });
}

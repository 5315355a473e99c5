// PIER (src/metrics/pier.ts): hand-made cases, the normalization shared with WER, the bound
// PIER numerator ≤ WER numerator on seeded random cases, editOps() agreeing with editCounts(), and
// the counts against tools/pier_oracle.py (rapidfuzz editops + the counting rule of the authors'
// implementation; no PIER package exists on PyPI).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { editCounts, editOps } from '../../src/metrics/align';
import {
  computePier,
  parseTaggedTranscript,
  pierCounts,
  tagNormalizedTokens,
  wordLangsFromSegments,
  type PierItem,
} from '../../src/metrics/pier';
import { computeWer, normalizerFor, wordTokens } from '../../src/metrics/wer';
import { REPO, requirePython } from '../support/env';
import { mulberry32 } from '../support/random';

// "Ayer tuve un meeting con el team." — Spanish matrix, two English (embedded) words.
const REF = 'Ayer tuve un meeting con el team.';
const LANGS = ['es', 'es', 'es', 'en', 'es', 'es', 'en'];
const item = (hypothesis: string, extra: Partial<PierItem> = {}): PierItem => ({
  reference: REF,
  wordLangs: LANGS,
  hypothesis,
  matrix: 'es',
  ...extra,
});
const one = (hyp: string, opts = {}) => computePier([item(hyp)], { language: 'es', ...opts });

describe('PIER: hand-made cases', () => {
  test('all correct: 0 over the two embedded words', () => {
    const r = one('ayer tuve un meeting con el team');
    assert.equal(r.value, 0);
    assert.equal(r.poiTokens, 2);
    assert.equal(r.hits, 2);
    assert.equal(r.utterances, 1);
  });

  test('one embedded word substituted: 1/2, while WER is 1/7', () => {
    const r = one('ayer tuve un mitin con el team');
    assert.deepEqual([r.substitutions, r.deletions, r.insertions, r.hits], [1, 0, 0, 1]);
    assert.equal(r.value, 0.5);
    assert.equal(computeWer([REF], ['ayer tuve un mitin con el team'], { language: 'es' }).value, 1 / 7);
  });

  test('a matrix-language word substituted does not count', () => {
    const r = one('ayer tuvo un meeting con el team');
    assert.equal(r.value, 0);
    assert.equal(r.pairs[0].werErrors, 1);
  });

  test('a deleted embedded word', () => {
    const r = one('ayer tuve un con el team');
    assert.deepEqual([r.substitutions, r.deletions, r.insertions], [0, 1, 0]);
    assert.equal(r.value, 0.5);
  });

  test('insertions: before an embedded word, after it, inside the matrix language, after a final embedded word', () => {
    const counts = (hyp: string) => ['following', 'adjacent'].map((m) => one(hyp, { insertions: m }).insertions);
    assert.deepEqual(counts('ayer tuve un eh meeting con el team'), [1, 1]); // goes before "meeting"
    assert.deepEqual(counts('ayer tuve un meeting eh con el team'), [0, 1]); // after it, before "con" (matrix)
    assert.deepEqual(counts('ayer eh tuve un meeting con el team'), [0, 0]); // between two matrix words
    assert.deepEqual(counts('ayer tuve un meeting con el team eh'), [1, 1]); // after the last word, an embedded one
    assert.deepEqual(counts('eh ayer tuve un meeting con el team'), [0, 0]); // before the first word (matrix)
    assert.equal(one('ayer tuve un eh meeting con el team').value, 0.5);
  });

  test('a sentence with no embedded words: null with a reason, and it does not dilute the corpus', () => {
    const mono: PierItem = {
      reference: 'Ayer tuve una reunión.',
      wordLangs: ['es', 'es', 'es', 'es'],
      hypothesis: 'ayer tuve una reunión',
      matrix: 'es',
    };
    const r = computePier([mono], { language: 'es' });
    assert.equal(r.value, null);
    assert.match(r.reason ?? '', /no reference has both/);
    assert.equal(r.pairs[0].value, null);
    assert.match(r.pairs[0].reason ?? '', /no embedded-language words/);
    const both = computePier([mono, item('ayer tuve un mitin con el team')], { language: 'es' });
    assert.equal(both.value, 0.5);
    assert.deepEqual([both.utterances, both.skipped], [1, 1]);
    assert.equal(computePier([]).value, null);
  });

  test('a sentence all in the embedded language is not code-switched: skipped', () => {
    const r = computePier([{ reference: 'the team', wordLangs: ['en', 'en'], hypothesis: 'the', matrix: 'es' }], { language: 'es' });
    assert.equal(r.value, null);
    assert.match(r.pairs[0].reason ?? '', /not code-switched/);
  });

  test('normalization (case, punctuation) exactly as WER: same tokens, same edit count', () => {
    const ref = '¿Viste el Meeting, con el TEAM?';
    const langs = ['es', 'es', 'en', 'es', 'es', 'en'];
    const hyps = ['viste el meeting con el team', 'Viste el MEETING... con el Team!', 'viste el mitin con el tim'];
    for (const hyp of hyps) {
      const p = computePier([{ reference: ref, wordLangs: langs, hypothesis: hyp, matrix: 'es' }], { language: 'es' }).pairs[0];
      const w = computeWer([ref], [hyp], { language: 'es' }).pairs[0];
      assert.deepEqual(p.refTokens, wordTokens(w.ref));
      assert.deepEqual(p.hypTokens, wordTokens(w.hyp));
      assert.equal(p.werErrors, w.substitutions + w.deletions + w.insertions);
    }
    assert.equal(computePier([{ reference: ref, wordLangs: langs, hypothesis: hyps[1], matrix: 'es' }], { language: 'es' }).value, 0);
    assert.equal(computePier([{ reference: ref, wordLangs: langs, hypothesis: hyps[2], matrix: 'es' }], { language: 'es' }).value, 1);
  });

  test('tags follow the normalized tokens when the normalizer works across words (English numbers, contractions)', () => {
    const ref = { words: ['I', 'have', 'twenty', 'five', 'amigos,', "don't", 'you?'], langs: ['en', 'en', 'en', 'en', 'es', 'en', 'en'] };
    const t = tagNormalizedTokens(ref, normalizerFor('en'));
    assert.deepEqual(t.tokens, ['i', 'have', '25', 'amigos', 'do', 'not', 'you']);
    assert.deepEqual(t.langs, ['en', 'en', 'en', 'es', 'en', 'en', 'en']);
    assert.equal(t.projected, true);
    const r = computePier([{ reference: ref, hypothesis: 'I have 25 amigas, do not you', matrix: 'en' }], { language: 'en' });
    assert.deepEqual([r.value, r.substitutions, r.projected], [1, 1, 1]);
  });

  test('matrix language: given, else the most frequent tag', () => {
    const ref = 'Sin embargo, I think it works.';
    const langs = ['es', 'es', 'en', 'en', 'en', 'en'];
    const r = computePier([{ reference: ref, wordLangs: langs, hypothesis: 'sin embargue i think it works' }], { language: 'es' });
    assert.equal(r.pairs[0].matrix, 'en');
    assert.deepEqual([r.poiTokens, r.substitutions], [2, 1]);
    assert.equal(
      computePier([{ reference: ref, wordLangs: langs, hypothesis: 'sin embargo i thing it works', matrix: 'es' }], { language: 'es' })
        .value,
      1 / 4,
    );
    assert.equal(
      computePier([{ reference: ref, wordLangs: langs, hypothesis: 'sin embargo i thing it works' }], { language: 'es', matrix: 'es-ES' })
        .value,
      1 / 4,
    );
  });

  test('tagged transcripts ("<tag …>", as the reference implementation) and corpus segments', () => {
    const t = parseTaggedTranscript('Hast du das <tag File> <tag gedownloadet>?', 'en', 'de');
    assert.deepEqual(t, { words: ['Hast', 'du', 'das', 'File', 'gedownloadet?'], langs: ['de', 'de', 'de', 'en', 'en'] });
    // the authors' README example: File matched, "gedownloadet" substituted + "et" inserted at the end
    const r = computePier([{ reference: 'Hast du das <tag File> <tag gedownloadet>?', hypothesis: 'Hast du das File geload et' }], {
      language: 'de',
    });
    assert.deepEqual([r.substitutions, r.deletions, r.insertions, r.poiTokens], [1, 0, 1, 2]);
    assert.equal(r.value, 1);
    const s = wordLangsFromSegments([
      ['es', 'Ayer tuve un'],
      ['en', 'meeting'],
      ['es', 'con el'],
      ['en', 'team.'],
    ]);
    assert.deepEqual(s.langs, LANGS);
    assert.equal(s.words.join(' '), REF);
    assert.throws(() => computePier([{ reference: REF, hypothesis: REF }]), /needs language tags/);
    assert.throws(() => computePier([{ reference: REF, wordLangs: ['es'], hypothesis: REF }]), /7 reference words but 1 language tags/);
  });
});

// ---- seeded random cases -------------------------------------------------------------------------

const rng = mulberry32;

interface Case {
  ref: string[];
  langs: string[];
  hyp: string[];
  matrix: string;
}

/** Small vocabularies so that ties between alignments are frequent. */
function randomCase(r: () => number): Case {
  const es = ['la', 'de', 'el', 'con', 'que'];
  const en = ['team', 'meeting', 'the', 'deadline'];
  const n = 1 + Math.floor(r() * 10);
  const ref: string[] = [];
  const langs: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = r() < 0.35;
    ref.push((e ? en : es)[Math.floor(r() * (e ? en.length : es.length))]);
    langs.push(e ? 'en' : 'es');
  }
  const vocab = [...es, ...en, 'eh', 'x'];
  const hyp: string[] = [];
  for (const w of ref) {
    const u = r();
    if (u < 0.15) continue; // deletion
    hyp.push(u < 0.35 ? vocab[Math.floor(r() * vocab.length)] : w);
    if (r() < 0.15) hyp.push(vocab[Math.floor(r() * vocab.length)]);
  }
  if (r() < 0.2) hyp.unshift(vocab[Math.floor(r() * vocab.length)]);
  return { ref, langs, hyp, matrix: 'es' };
}

const CASES = (() => {
  const r = rng(20261203);
  return Array.from({ length: 600 }, () => randomCase(r));
})();

describe('PIER: seeded random cases', () => {
  test('editOps counts equal editCounts (the alignment behind WER is unchanged)', () => {
    for (const c of CASES) {
      const ops = editOps(c.ref, c.hyp);
      const k = editCounts(c.ref, c.hyp);
      const n = (t: string) => ops.filter((o) => o.tag === t).length;
      assert.deepEqual([n('replace'), n('delete'), n('insert')], [k.substitutions, k.deletions, k.insertions], JSON.stringify(c));
    }
  });

  test('PIER numerator ≤ WER numerator, POI hits + S + D = POI words (both insertion rules)', () => {
    for (const c of CASES) {
      const w = computeWer([c.ref.join(' ')], [c.hyp.join(' ')], { language: 'es' });
      const werErrors = w.substitutions + w.deletions + w.insertions;
      for (const insertions of ['following', 'adjacent'] as const) {
        const p = computePier([{ reference: { words: c.ref, langs: c.langs }, hypothesis: c.hyp.join(' '), matrix: c.matrix }], {
          language: 'es',
          insertions,
        });
        assert.ok(p.substitutions + p.deletions + p.insertions <= werErrors, JSON.stringify(c));
        assert.equal(p.pairs[0].werErrors, werErrors);
        const q = p.pairs[0];
        assert.equal(q.hits + q.substitutions + q.deletions, c.langs.filter((l) => l !== c.matrix).length);
        assert.ok(q.hits >= 0);
        assert.equal(q.value === null, q.poiTokens === 0 || q.poiTokens === c.ref.length);
      }
      const f = pierCounts(c.ref, c.langs, c.hyp, c.matrix, 'following');
      const a = pierCounts(c.ref, c.langs, c.hyp, c.matrix, 'adjacent');
      assert.ok(f.insertions <= a.insertions);
    }
  });

  test('texts: normalization, tag carry-over and counts agree with tools/pier_oracle.py (transformers normalizers)', () => {
    const SENTS: { ref: string; langs: string[]; matrix: string }[] = [
      { ref: REF, langs: LANGS, matrix: 'es' },
      { ref: '¿Viste el Meeting, con el TEAM?', langs: ['es', 'es', 'en', 'es', 'es', 'en'], matrix: 'es' },
      { ref: 'Ich habe heute um drei ein Interview.', langs: ['de', 'de', 'de', 'de', 'de', 'de', 'en'], matrix: 'de' },
      { ref: 'Das Meeting-Protokoll ist fertig, you know?', langs: ['de', 'de', 'de', 'de', 'en', 'en'], matrix: 'de' },
      { ref: "I have twenty five amigos, don't you?", langs: ['en', 'en', 'en', 'en', 'es', 'en', 'en'], matrix: 'en' },
      { ref: "We'll meet at 3 pm, ¿vale?", langs: ['en', 'en', 'en', 'en', 'en', 'es'], matrix: 'en' },
      { ref: 'Sin embargo, I think the colour is grey.', langs: ['es', 'es', 'en', 'en', 'en', 'en', 'en', 'en'], matrix: 'en' },
    ];
    const r = rng(7);
    const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
    const extra = ['eh', 'the', 'el', 'und', 'twenty', 'o.k.', '—', 'Team'];
    const texts = Array.from({ length: 150 }, () => {
      const s = pick(SENTS);
      const hyp: string[] = [];
      for (const w of s.ref.split(' ')) {
        const u = r();
        if (u < 0.12) continue;
        let x = u < 0.3 ? pick(extra) : w;
        if (r() < 0.3) x = r() < 0.5 ? x.toUpperCase() : x.toLowerCase();
        if (r() < 0.2) x += pick([',', '.', '!', '?']);
        hyp.push(x);
        if (r() < 0.12) hyp.push(pick(extra));
      }
      const language = r() < 0.8 ? s.matrix : 'en';
      return { ref: s.ref, word_langs: s.langs, hyp: hyp.join(' '), matrix: s.matrix, language };
    });
    const out = execFileSync(requirePython(), [join(REPO, 'tools/pier_oracle.py')], {
      input: JSON.stringify({ cases: [], texts }),
      encoding: 'utf8',
      timeout: 60_000,
    });
    const py = JSON.parse(out) as {
      texts: {
        S: number;
        D: number;
        I: number;
        H: number;
        poi: number;
        ops: number;
        ref_tokens: string[];
        ref_langs: string[];
        hyp_tokens: string[];
      }[];
    };
    let projected = 0;
    texts.forEach((t, i) => {
      const p = computePier([{ reference: t.ref, wordLangs: t.word_langs, hypothesis: t.hyp, matrix: t.matrix }], { language: t.language })
        .pairs[0];
      const o = py.texts[i];
      const what = JSON.stringify(t);
      assert.deepEqual(p.refTokens, o.ref_tokens, what);
      assert.deepEqual(p.refLangs, o.ref_langs, what);
      assert.deepEqual(p.hypTokens, o.hyp_tokens, what);
      assert.deepEqual(
        [p.substitutions, p.deletions, p.insertions, p.hits, p.poiTokens, p.werErrors],
        [o.S, o.D, o.I, o.H, o.poi, o.ops],
        what,
      );
      const w = computeWer([t.ref], [t.hyp], { language: t.language });
      assert.equal(p.werErrors, w.substitutions + w.deletions + w.insertions, what);
      if (p.projected) projected++;
    });
    assert.ok(projected > 0, 'some cases need the tag alignment (English numbers / contractions)');
  });

  test("counts agree with tools/pier_oracle.py (rapidfuzz editops + the authors' counting rule)", () => {
    const out = execFileSync(requirePython(), [join(REPO, 'tools/pier_oracle.py')], {
      input: JSON.stringify({ cases: CASES }),
      encoding: 'utf8',
      timeout: 60_000,
    });
    const py = JSON.parse(out) as { cases: { S: number; D: number; I: number; H: number; poi: number; ops: number }[] };
    assert.equal(py.cases.length, CASES.length);
    CASES.forEach((c, i) => {
      const t = pierCounts(c.ref, c.langs, c.hyp, c.matrix);
      const o = py.cases[i];
      assert.deepEqual(
        [t.substitutions, t.deletions, t.insertions, t.hits, t.poiTokens, t.werErrors],
        [o.S, o.D, o.I, o.H, o.poi, o.ops],
        JSON.stringify(c),
      );
    });
  });
});

describe('per-word language tags from a dataset (src/data/manifest.ts → Utterance.wordLangs)', () => {
  const files = (csv: string) => ({ paths: ['metadata.csv', 'a.wav', 'b.wav', 'c.wav'], readText: async () => csv });

  test('a word_langs column, a segments column (older corpora), and a word_langs that does not fit', async () => {
    const { readDataset } = await import('../../src/data/manifest');
    const segs = JSON.stringify([
      ['es', 'Ayer tuve un'],
      ['en', 'meeting'],
      ['es', 'con el'],
      ['en', 'team.'],
    ]).replace(/"/g, '""');
    const d = await readDataset(
      files(
        'file_name,transcription,language,word_langs,segments\n' +
          `a.wav,${REF},es,${LANGS.join(' ')},\n` +
          `b.wav,${REF},es,,"${segs}"\n` +
          `c.wav,${REF},es,es en,\n`,
      ),
    );
    assert.deepEqual(d.errors, []);
    assert.deepEqual(
      d.rows.map((r) => r.wordLangs),
      [LANGS, LANGS, undefined],
    );
    assert.equal(d.warnings.length, 1);
    assert.match(d.warnings[0].message, /word_langs has 2 tags for 7 words/);
    const r = computePier(
      d.rows
        .slice(0, 2)
        .map((u) => ({ reference: u.text, wordLangs: u.wordLangs, hypothesis: 'ayer tuve un mitin con el team', matrix: u.language })),
      { language: 'es' },
    );
    assert.equal(r.value, 0.5);
  });

  test('rows without tags have no wordLangs', async () => {
    const { readDataset } = await import('../../src/data/manifest');
    const d = await readDataset(files('file_name,transcription\na.wav,hola\n'));
    assert.equal(d.rows[0].wordLangs, undefined);
    assert.deepEqual(d.warnings, []);
  });
});

test("pierOfTranscripts (the trainer's eval records): per language group, tagged utterances only", async () => {
  const { pierOfTranscripts } = await import('../../src/metrics/pier');
  const ts = [
    { language: 'es', reference: REF, hypothesis: 'ayer tuve un mitin con el team', wordLangs: LANGS },
    { language: 'es', reference: REF, hypothesis: 'ayer tuve un meeting con el team' }, // no tags: not counted
    { language: 'de', reference: 'Ich habe ein Meeting.', hypothesis: 'ich habe ein mieting', wordLangs: ['de', 'de', 'de', 'en'] },
  ];
  assert.deepEqual(pierOfTranscripts(ts), { pier: 2 / 3, pierWords: 3 });
  assert.equal(pierOfTranscripts(ts.slice(1, 2)), undefined);
});

test("the run view's PIER (src/ui/runMetrics.ts pierAt): pooled over embedded words of the new-domain sets", async () => {
  const { pierAt } = await import('../../src/ui/runMetrics');
  const rec = (set: string, role: 'new' | 'base', step: number, extra: object = {}) => ({
    kind: 'eval' as const,
    step,
    set,
    role,
    wer: 0.3,
    utterances: 8,
    backend: 'engine' as const,
    ...extra,
  });
  const evals = [
    rec('cs-a', 'new', 0, { pier: 0.5, pierWords: 10 }),
    rec('cs-b', 'new', 0, { pier: 0.2, pierWords: 30 }),
    rec('base', 'base', 0),
    rec('cs-a', 'new', 5),
  ];
  assert.ok(Math.abs((pierAt(evals, 0) ?? NaN) - 0.275) < 1e-12);
  assert.equal(pierAt(evals, 5), undefined); // no tags at that step
  assert.equal(pierAt(evals, 0, 'base'), undefined);
});

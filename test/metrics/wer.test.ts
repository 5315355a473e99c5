// Parity of src/metrics (Whisper normalizers + jiwer-style WER/CER/mixed error rate)
// with Python: transformers' Whisper normalizers and jiwer 4, via tools/wer_oracle.py.
//
// Needs the oracle venv: $BLORA_PYTHON, else ${BLORA_CACHE:-~/.cache/blora-studio}/venv/bin/python.
// A missing interpreter is a test failure, not a skip.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { resultsDir } from '../support/env';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  computeCer,
  computeMixedErrorRate,
  computeWer,
  mixedTokens,
  normalizerFor,
  primaryMetricFor,
  BasicTextNormalizer,
  type CorpusErrorRate,
  type ErrorRate,
} from '../../src/metrics/wer';
import { editCounts } from '../../src/metrics/align';
import { generateCorpus, prng, type Pair } from './corpus';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SEED = 20240611;
const N_PAIRS = 320;
const TOL = 1e-12;

interface OracleMeasure {
  value: number;
  substitutions: number;
  deletions: number;
  insertions: number;
  hits: number;
  ref_tokens: number;
  hyp_tokens: number;
}
type Kind = 'wer' | 'cer' | 'mixed';
type OracleMeasures = Record<Kind, OracleMeasure>;
interface OracleResult {
  versions: Record<string, string>;
  pairs: ({ ref: string; hyp: string } & OracleMeasures)[];
  aggregate: { all: OracleMeasures; by_language: Record<string, OracleMeasures> };
  texts: string[];
  word_pairs: OracleMeasure[];
}

function pythonPath(): string {
  const cache = process.env.BLORA_CACHE ?? join(homedir(), '.cache', 'blora-studio');
  const candidates = [process.env.BLORA_PYTHON, join(cache, 'venv', 'bin', 'python')].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `metrics parity oracle needs a Python with transformers + jiwer; none found (tried ${candidates.join(', ')}). ` +
        'Set BLORA_PYTHON or create the venv at ${BLORA_CACHE:-~/.cache/blora-studio}/venv (see tools/requirements.txt).',
    );
  }
  return found;
}

function runOracle(request: unknown): OracleResult {
  const out = execFileSync(pythonPath(), [join(ROOT, 'tools', 'wer_oracle.py')], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out) as OracleResult;
}

const corpus: Pair[] = generateCorpus(SEED, N_PAIRS);

// Short sequences over tiny vocabularies have many equally cheap alignments, so they
// pin down rapidfuzz's tie-breaking (which decides S/D/I/H, not just the distance).
const wordPairs: [string, string][] = (() => {
  const rng = prng(SEED + 1);
  const seq = (vocab: number) => Array.from({ length: Math.floor(rng() * 10) }, () => 'abcdef'[Math.floor(rng() * vocab)]).join(' ');
  return Array.from({ length: 3000 }, () => {
    const vocab = 1 + Math.floor(rng() * 4);
    return [seq(vocab), seq(vocab)];
  });
})();

// Hand-written normalizer cases: [input, language, expected]. The expected strings are
// literals (readable documentation of upstream behaviour) and are also re-checked
// against transformers in the oracle run below.
const HAND_CASES: [string, string, string][] = [
  ["I'm", 'en', 'i am'],
  ['I am', 'en', 'i am'],
  ['$20', 'en', '$20'],
  ['20 dollars', 'en', '$20'],
  ['twenty dollars', 'en', '$20'],
  ['$20 million', 'en', '$20000000'],
  ['colour', 'en', 'color'],
  ["The colour of the theatre's centre.", 'en', 'the color of the theater is center'],
  ["Mr. Smith's 3rd car costs £5 million", 'en', 'mister smith is 3rd car costs £5000000'],
  ['one hundred and five', 'en', '105'],
  ['three and a half', 'en', '3.5'],
  ['fifty percent', 'en', '50%'],
  ['5 per cent', 'en', '5%'],
  ['two dollars and seven cents', 'en', '$2.07'],
  ['fifty cents', 'en', '¢50'],
  ['double oh seven', 'en', '007'],
  ['one oh one', 'en', '101'],
  ['the nineteen nineties', 'en', 'the 1990s'],
  ['twenty first', 'en', '21st'],
  ['Uh, hmm, yes. [laughter] (inaudible)', 'en', 'yes'],
  ['1,000,000', 'en', '1000000'],
  ["it's one", 'en', 'it is one'],
  ['Cristóbal Colón', 'en', 'cristobal colon'],
  ['constructor toString', 'en', 'constructor tostring'],
  ['¿Dónde está la estación?', 'es', ' dónde está la estación '],
  ['Über die Straße [Musik]', 'de', 'über die straße '],
  ['我们用Python写code。', 'zh', '我们用python写code '],
];

let cached: OracleResult | undefined;
function oracle(): OracleResult {
  cached ??= runOracle({
    pairs: corpus,
    word_pairs: wordPairs,
    texts: HAND_CASES.map(([text, language]) => ({ text, language })),
  });
  return cached;
}

const COMPUTE: Record<Kind, typeof computeWer> = {
  wer: computeWer,
  cer: computeCer,
  mixed: computeMixedErrorRate,
};

let maxDiff = 0;

/** Compare one TS result with one oracle measure; returns a description of mismatches. */
function diff(ts: ErrorRate, py: OracleMeasure): string[] {
  const problems: string[] = [];
  const counts: [keyof ErrorRate, keyof OracleMeasure][] = [
    ['substitutions', 'substitutions'],
    ['deletions', 'deletions'],
    ['insertions', 'insertions'],
    ['hits', 'hits'],
    ['refTokens', 'ref_tokens'],
    ['hypTokens', 'hyp_tokens'],
  ];
  for (const [t, p] of counts) if (ts[t] !== py[p]) problems.push(`${t}: ts=${ts[t]} py=${py[p]}`);
  const d = Math.abs(ts.value - py.value);
  maxDiff = Math.max(maxDiff, d);
  if (!(d <= TOL)) problems.push(`value: ts=${ts.value} py=${py.value}`);
  return problems;
}

test("metrics parity: normalized strings identical to transformers' Whisper normalizers", () => {
  const py = oracle();
  assert.equal(py.pairs.length, corpus.length);
  const mismatches: string[] = [];
  corpus.forEach((p, i) => {
    const normalize = normalizerFor(p.language);
    for (const side of ['ref', 'hyp'] as const) {
      const ts = normalize(p[side]);
      if (ts !== py.pairs[i][side]) {
        mismatches.push(
          `#${i} ${side} [${p.language}] ${JSON.stringify(p[side])}\n    ts=${JSON.stringify(ts)}\n    py=${JSON.stringify(py.pairs[i][side])}`,
        );
      }
    }
  });
  assert.deepEqual(mismatches, [], `${mismatches.length} normalization mismatches:\n${mismatches.slice(0, 15).join('\n')}`);
});

test('metrics parity: per-pair WER/CER/mixed identical to jiwer', () => {
  const py = oracle();
  const mismatches: string[] = [];
  corpus.forEach((p, i) => {
    for (const kind of ['wer', 'cer', 'mixed'] as const) {
      const ts = COMPUTE[kind]([p.ref], [p.hyp], { language: p.language });
      const problems = diff(ts, py.pairs[i][kind]);
      if (problems.length) {
        mismatches.push(`#${i} ${kind} ${JSON.stringify(py.pairs[i].ref)} | ${JSON.stringify(py.pairs[i].hyp)}: ${problems.join(', ')}`);
      }
    }
  });
  assert.deepEqual(mismatches, [], `${mismatches.length} per-pair mismatches:\n${mismatches.slice(0, 15).join('\n')}`);
});

test('metrics parity: corpus aggregates identical to jiwer', () => {
  const py = oracle();
  const mismatches: string[] = [];
  const ts: Record<Kind, CorpusErrorRate> = {} as Record<Kind, CorpusErrorRate>;

  // Per language through the public API (normalizes internally).
  const languages = [...new Set(corpus.map((p) => p.language))];
  for (const lang of languages) {
    const group = corpus.filter((p) => p.language === lang);
    for (const kind of ['wer', 'cer', 'mixed'] as const) {
      const r = COMPUTE[kind](
        group.map((p) => p.ref),
        group.map((p) => p.hyp),
        { language: lang },
      );
      const problems = diff(r, py.aggregate.by_language[lang][kind]);
      if (problems.length) mismatches.push(`[${lang}] ${kind}: ${problems.join(', ')}`);
    }
  }

  // Whole corpus, each pair normalized with its own language, then scored together.
  const refs = corpus.map((p) => normalizerFor(p.language)(p.ref));
  const hyps = corpus.map((p) => normalizerFor(p.language)(p.hyp));
  for (const kind of ['wer', 'cer', 'mixed'] as const) {
    ts[kind] = COMPUTE[kind](refs, hyps, { normalize: false });
    const problems = diff(ts[kind], py.aggregate.all[kind]);
    if (problems.length) mismatches.push(`[all] ${kind}: ${problems.join(', ')}`);
  }

  const a = py.aggregate.all;
  console.log(
    `metrics parity: ${corpus.length} pairs (${languages.join(',')}), ` +
      `WER ts=${ts.wer.value} jiwer=${a.wer.value}, CER ts=${ts.cer.value} jiwer=${a.cer.value}, ` +
      `MER(mixed) ts=${ts.mixed.value} jiwer=${a.mixed.value}, max |diff| = ${maxDiff} ` +
      `[jiwer ${py.versions.jiwer}, rapidfuzz ${py.versions.rapidfuzz}, transformers ${py.versions.transformers}]`,
  );
  writeFileSync(
    join(resultsDir('parity'), 'metrics.json'),
    JSON.stringify(
      {
        pairs: corpus.length,
        languages,
        mismatches: mismatches.length,
        maxAbsDiff: maxDiff,
        ts: { wer: ts.wer.value, cer: ts.cer.value, mixed: ts.mixed.value },
        jiwer: { wer: a.wer.value, cer: a.cer.value, mixed: a.mixed.value },
        versions: py.versions,
      },
      null,
      1,
    ),
  );
  assert.deepEqual(mismatches, [], mismatches.join('\n'));
});

test('metrics parity: S/D/I/H tie-breaking identical to jiwer (rapidfuzz) on 3000 short pairs', () => {
  const py = oracle();
  const mismatches: string[] = [];
  wordPairs.forEach(([ref, hyp], i) => {
    const problems = diff(computeWer([ref], [hyp], { normalize: false }), py.word_pairs[i]);
    if (problems.length) mismatches.push(`${JSON.stringify(ref)} | ${JSON.stringify(hyp)}: ${problems.join(', ')}`);
  });
  assert.deepEqual(mismatches, [], `${mismatches.length} alignment mismatches:\n${mismatches.slice(0, 15).join('\n')}`);
});

// ---- hand-written cases (expected values checked against transformers + jiwer) ------

test('Whisper normalizers: hand-checked cases', () => {
  for (const [input, language, expected] of HAND_CASES) {
    assert.equal(normalizerFor(language)(input), expected, `normalize(${JSON.stringify(input)}, ${language})`);
  }
});

test('BasicTextNormalizer options: hand-checked cases', () => {
  const strip = new BasicTextNormalizer({ removeDiacritics: true });
  assert.equal(strip.normalize('Über die Straße, ¿no?'), 'uber die strasse no ');
  const split = new BasicTextNormalizer({ splitLetters: true });
  assert.equal(split.normalize('Héllo 世界'), 'h é l l o 世 界');
});

test('computeWer/computeCer/computeMixedErrorRate: hand-checked cases', () => {
  // Normalization makes these equal.
  assert.equal(computeWer(["I'm paying $20 for the colour TV."], ['I am paying twenty dollars for the color tv']).value, 0);
  // Two optimal alignments (2 subs, or del + hit + ins); jiwer/rapidfuzz reports 2 substitutions.
  assert.deepEqual(editCounts(['a', 'b'], ['b', 'c']), { substitutions: 2, deletions: 0, insertions: 0, hits: 0 });
  const r = computeWer(['the cat sat on the mat', 'hello world'], ['the cat sat on mat', '']);
  assert.deepEqual(
    { v: r.value, s: r.substitutions, d: r.deletions, i: r.insertions, h: r.hits, n: r.refTokens },
    { v: 3 / 8, s: 0, d: 3, i: 0, h: 5, n: 8 },
  );
  // Empty reference: jiwer reports the insertion count, not a rate.
  assert.equal(computeWer([''], ['two words']).value, 2);
  assert.equal(computeWer([''], ['']).value, 0);
  // CER counts the inner space as a character.
  const c = computeCer(['ab cd'], ['abcd'], { normalize: false });
  assert.deepEqual({ v: c.value, d: c.deletions, n: c.refTokens }, { v: 0.2, d: 1, n: 5 });
  // Mixed: each CJK char and each Latin word is one token.
  assert.deepEqual(mixedTokens('我们用python写code 2.0版'), ['我', '们', '用', 'python', '写', 'code', '2.0', '版']);
  const m = computeMixedErrorRate(['我们用Python写code。'], ['我用python寫code'], { language: 'zh' });
  assert.deepEqual({ v: m.value, s: m.substitutions, d: m.deletions, n: m.refTokens }, { v: 2 / 6, s: 1, d: 1, n: 6 });
  assert.equal(primaryMetricFor('zh'), 'mer');
  assert.equal(primaryMetricFor('en-US'), 'wer');
});

test('hand-checked normalizer expectations agree with the Python oracle', () => {
  assert.deepEqual(
    oracle().texts,
    HAND_CASES.map(([, , expected]) => expected),
  );
});

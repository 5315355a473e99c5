// Uncertainty scores and their evaluation (src/metrics/uncertainty.ts) on hand-made cases, AUROC also against
// the pairwise definition (float64 brute force) on random data.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { auroc, disagreement, ece, meanEntropy, tokenCorrectness } from '../../src/metrics/uncertainty';
import { mulberry32 } from '../../src/engine/adapters';
import { REPO, requirePython } from '../support/env';

test('auroc: hand-made cases, ties, one class, and the pairwise definition on random scores', () => {
  assert.equal(auroc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 0.75); // 3 of 4 (pos, neg) pairs ordered
  assert.equal(auroc([1, 2, 3], [false, true, true]), 1);
  assert.equal(auroc([3, 2, 1], [false, true, true]), 0);
  assert.equal(auroc([5, 5, 5, 5], [true, false, true, false]), 0.5);
  assert.equal(auroc([1, 2], [true, true]), null);
  const rnd = mulberry32(4);
  for (let trial = 0; trial < 5; trial++) {
    const n = 40 + trial * 7;
    const s = Array.from({ length: n }, () => Math.round(rnd() * 10) / 10); // many ties
    const y = Array.from({ length: n }, () => rnd() < 0.4);
    let num = 0;
    let den = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++)
        if (y[i] && !y[j]) {
          den++;
          num += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
        }
    assert.ok(Math.abs(auroc(s, y)! - num / den) < 1e-12, `trial ${trial}`);
  }
});

test('ece: calibrated bins give 0, overconfidence its gap, confidence 1 in the last bin', () => {
  assert.equal(ece([0.75, 0.75, 0.75, 0.75], [true, true, true, false]).ece, 0);
  assert.ok(Math.abs(ece([0.9, 0.9], [false, false]).ece! - 0.9) < 1e-12);
  const r = ece([1, 0.05, 0.55], [true, false, true]);
  assert.equal(r.bins[9].n, 1);
  assert.equal(r.bins[0].n, 1);
  // (1/3)·|1 − 1| + (1/3)·|0 − 0.05| + (1/3)·|1 − 0.55|
  assert.ok(Math.abs(r.ece! - (0.05 + 0.45) / 3) < 1e-12, String(r.ece));
  assert.equal(ece([], []).ece, null);
  assert.throws(() => ece([1.5], [true]), /not in \[0, 1\]/);
});

test("disagreement: the samples' WER against the mean transcript (normalized words)", () => {
  assert.equal(disagreement('The cat sat.', ['the cat sat', 'The Cat sat!'], 'en'), 0);
  assert.equal(disagreement('the cat sat down', ['the cat sat down', 'the dog sat down'], 'en'), 0.125); // (0 + 1/4) / 2
  assert.equal(disagreement('', ['hola', ''], 'es'), 0.5);
  assert.throws(() => disagreement('x', [], 'en'), /no posterior samples/);
  assert.equal(meanEntropy([0.5, 1.5]), 1);
  assert.equal(meanEntropy([]), 0);
});

test("tokenCorrectness: tokens take their word's alignment; punctuation-only words are left out", () => {
  // " The" " cat" " sat" "." vs "the dog sat": "." belongs to "sat." (no leading space)
  assert.deepEqual(tokenCorrectness([' The', ' cat', ' sat', '.'], 'the dog sat', 'en'), [true, false, true, true]);
  // a word over two tokens is right or wrong as a whole; a lone "," normalizes to nothing
  assert.deepEqual(tokenCorrectness([' ca', 'sa', ' ,', ' grande'], 'la casa grande', 'es'), [true, true, null, true]);
  assert.deepEqual(tokenCorrectness([' ca', 'sas', ' ,', ' grande'], 'la casa grande', 'es'), [false, false, null, true]);
  // insertions are wrong; deleted reference words mark nothing
  assert.deepEqual(tokenCorrectness([' yes', ' yes'], 'yes', 'en'), [true, false]);
  assert.deepEqual(tokenCorrectness([' hello'], 'hello big world', 'en'), [true]);
});

test("tools/uncertainty_metrics.py (the torch backend's twin) gives the same values on the same cases", () => {
  const rnd = mulberry32(11);
  const scores = Array.from({ length: 50 }, () => Math.round(rnd() * 20) / 20);
  const labels = scores.map(() => rnd() < 0.5);
  const conf = Array.from({ length: 60 }, () => rnd());
  const ok = conf.map((c) => rnd() < c);
  const tc: [string[], string, string][] = [
    [[' The', ' cat', ' sat', '.'], 'the dog sat', 'en'],
    [[' ca', 'sas', ' ,', ' grande'], 'la casa grande', 'es'],
    [[' yes', ' yes'], 'yes', 'en'],
    [[' Hoy', ' tenemos', ' a', ' lot', ' of', ' dead', 'lines'], 'Hoy tenemos a lot of deadlines en la oficina.', 'es'],
  ];
  const dis: [string, string[], string][] = [
    ['the cat sat down', ['the cat sat down', 'the dog sat down'], 'en'],
    ['Hoy venemos a la Tantera', ['Hoy tenemos a la tantera', 'hoy venemos'], 'es'],
    ['', ['hola', ''], 'es'],
  ];
  const py = execFileSync(
    requirePython(),
    [
      '-c',
      `
import sys, json
sys.path.insert(0, ${JSON.stringify(join(REPO, 'tools'))})
import uncertainty_metrics as um, blora_train as bt
norm = bt.normalize_fn()
c = json.loads(sys.argv[1])
print(json.dumps({
  "auroc": um.auroc(c["scores"], c["labels"]), "ece": um.ece(c["conf"], c["ok"]),
  "tc": [um.token_correctness(p, r, lambda s, l=l: norm(s, l)) for p, r, l in c["tc"]],
  "dis": [um.disagreement(m, s, lambda x, l=l: norm(x, l)) for m, s, l in c["dis"]],
}))
`,
      JSON.stringify({ scores, labels, conf, ok, tc, dis }),
    ],
    { encoding: 'utf8' },
  );
  const got = JSON.parse(py);
  assert.ok(Math.abs(got.auroc - auroc(scores, labels)!) < 1e-12);
  assert.ok(Math.abs(got.ece - ece(conf, ok).ece!) < 1e-12);
  assert.deepEqual(
    got.tc,
    tc.map(([p, r, l]) => tokenCorrectness(p, r, l)),
  );
  got.dis.forEach((d: number, i: number) =>
    assert.ok(Math.abs(d - disagreement(...dis[i])) < 1e-12, `disagreement ${i}: ${d} vs ${disagreement(...dis[i])}`),
  );
});

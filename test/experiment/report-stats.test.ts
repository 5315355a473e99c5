/**
 * The experiment report's statistics (issue 14 item 3, "selection on dev, figures on test"), on hand-made sweeps:
 * tiny run folders written into a temp dir in the format the runner's backends write (metrics.jsonl TrainRecord /
 * EvalRecord, result.json, experiment.json, hyps-<set>-step<N>.jsonl per eval set, and out/base for the frozen model),
 * then tools/experiment_report.py's report() on them (no training, no model).
 *
 *   (a) the paired bootstrap's 95 % interval of the backward gain and the new-domain drop contains the point value
 *       (the per-seed mean of the table) and shrinks when every utterance is there 4 times (same point value);
 *   (b) every utterance with the same errors: a zero-width interval equal to the exact point value; and BLoRA
 *       with LoRA's errors on varied utterances: gain and drop 0 in every (paired) resample;
 *   (c) dev splits ("-dev" names, both roles): the report selects the BLoRA configuration best on dev although
 *       another one is best on test, says so, and its figures are on the test sets only.
 * Hypotheses are made from the references by substituting the first e words (one error each), in Spanish (basic
 * normalizer), so the word errors of every utterance are known exactly. Runtime: ~2 s (one Python process).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO, requirePython } from '../support/env';

/** Per utterance: reference words and word errors. */
interface SetData {
  role: 'new' | 'base';
  refWords: number[];
  frozen: number[];
  /** per config key, per seed: errors per utterance */
  runs: Record<string, number[][]>;
}

const VOCAB = ['casa', 'perro', 'gato', 'luna', 'sol', 'mar', 'rio', 'flor', 'pan', 'tren'];
const tmp = mkdtempSync(join(tmpdir(), 'blora-report-stats-'));
after(() => {
  if (!process.env.KEEP_REPORT_STATS) rmSync(tmp, { recursive: true, force: true });
});

function hypsLines(refWords: number[], errors: number[]): { lines: string; wer: number } {
  let e = 0;
  let n = 0;
  const lines = refWords.map((w, u) => {
    const ref = Array.from({ length: w }, (_, i) => VOCAB[(u + i) % VOCAB.length]);
    const hyp = ref.map((x, i) => (i < errors[u] ? 'zz' : x));
    e += errors[u];
    n += w;
    return JSON.stringify({
      id: `utt-${u}.wav`,
      language: 'es',
      reference: `${ref.join(' ')}.`,
      hypothesis: hyp.join(' '),
      wer: errors[u] / w,
    });
  });
  return { lines: lines.join('\n') + '\n', wer: e / n };
}

const beta = (key: string) => (key === 'lora' ? null : Number(/-b([0-9.e-]+)-sp/.exec(key)![1]));

/** Writes a sweep's out/ folder; returns what report() needs. */
function writeSweep(name: string, sets: Record<string, SetData>, seeds: number[]) {
  const out = join(tmp, name);
  const keys = Object.keys(Object.values(sets)[0].runs);
  const runs: { id: string; key: string; method: string; seed: number; config: object }[] = [];
  const write = (dir: string, step: number, model: (d: SetData) => number[]) => {
    mkdirSync(dir, { recursive: true });
    const recs: object[] = [];
    if (step > 0) recs.push({ kind: 'train', step, ce: 1.0, kl: 0.5, loss: 1.0, elapsedS: 2.0, backend: 'torch' });
    for (const [set, d] of Object.entries(sets)) {
      const h = hypsLines(d.refWords, model(d));
      writeFileSync(join(dir, `hyps-${set}-step${step}.jsonl`), h.lines);
      recs.push({ kind: 'eval', step, set, role: d.role, wer: h.wer, cer: h.wer, utterances: d.refWords.length, backend: 'torch' });
    }
    writeFileSync(join(dir, 'metrics.jsonl'), recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeFileSync(join(dir, 'result.json'), JSON.stringify({ backend: 'torch', seconds: 3 }));
  };
  write(join(out, 'base'), 0, (d) => d.frozen);
  for (const seed of seeds) {
    for (const key of keys) {
      const id = `${key}-s${seed}`;
      const method = key === 'lora' ? 'lora' : 'blora';
      const config = { method, seed, adapter: key === 'lora' ? { sigmaPrior: 0.01 } : { beta: beta(key), sigmaPrior: 0.01 } };
      write(join(out, 'runs', id), 2, (d) => d.runs[key][seed]);
      writeFileSync(join(out, 'runs', id, 'experiment.json'), JSON.stringify(config));
      runs.push({ id, key, method, seed, config });
    }
  }
  return {
    name,
    out,
    runs,
    sweep: { name, seeds, base: {}, report: { img: join(out, 'img'), prefix: name } },
    md: join(out, 'results.md'),
  };
}

const X = 'blora-b0.001-sp0.01';
const Y = 'blora-b0.01-sp0.01';
const x4 = (a: number[]) => a.flatMap((v) => [v, v, v, v]);
const mapSet = (d: SetData, f: (a: number[]) => number[]): SetData => ({
  role: d.role,
  refWords: f(d.refWords),
  frozen: f(d.frozen),
  runs: Object.fromEntries(Object.entries(d.runs).map(([k, v]) => [k, v.map(f)])),
});

// (a) 10 utterances per set, 2 seeds; LoRA forgets on every utterance (F_LoRA > 0 in every resample)
const varied: Record<string, SetData> = {
  'base-test': {
    role: 'base',
    refWords: [5, 6, 4, 7, 5, 6, 5, 4, 6, 5],
    frozen: [0, 1, 0, 1, 0, 0, 1, 0, 1, 0],
    runs: {
      lora: [
        [2, 2, 1, 3, 1, 2, 2, 1, 2, 1],
        [2, 3, 1, 2, 1, 2, 3, 1, 2, 2],
      ],
      [X]: [
        [1, 1, 1, 2, 0, 1, 1, 0, 2, 1],
        [1, 2, 0, 2, 1, 1, 1, 0, 1, 1],
      ],
    },
  },
  'cs-test': {
    role: 'new',
    refWords: [6, 5, 7, 4, 6, 5, 6, 7, 5, 6],
    frozen: [4, 3, 5, 3, 4, 4, 3, 5, 3, 4],
    runs: {
      lora: [
        [2, 1, 2, 1, 1, 2, 1, 3, 1, 2],
        [1, 1, 2, 1, 2, 2, 1, 2, 1, 2],
      ],
      [X]: [
        [2, 2, 2, 1, 2, 2, 1, 3, 2, 2],
        [2, 1, 3, 1, 2, 2, 2, 2, 1, 2],
      ],
    },
  },
};
const variedX4 = Object.fromEntries(Object.entries(varied).map(([k, d]) => [k, mapSet(d, x4)]));

// (b) identical utterances: base 4 words, frozen 1 / LoRA 3 / BLoRA 2 errors → F 0.5 vs 0.25, gain exactly 0.5;
// new 5 words, LoRA 1 / BLoRA 2 errors → WER 0.2 vs 0.4, drop exactly 1
const same = (v: number) => Array(6).fill(v);
const constant: Record<string, SetData> = {
  'base-test': { role: 'base', refWords: same(4), frozen: same(1), runs: { lora: [same(3), same(3)], [X]: [same(2), same(2)] } },
  'cs-test': { role: 'new', refWords: same(5), frozen: same(4), runs: { lora: [same(1), same(1)], [X]: [same(2), same(2)] } },
};

// (b') varied utterances, BLoRA's errors those of LoRA: a paired resample gives gain 0 and drop 0 every time
// (an unpaired one would not)
const twin: Record<string, SetData> = Object.fromEntries(
  Object.entries(varied).map(([k, d]) => [k, { ...d, runs: { lora: d.runs.lora, [X]: d.runs.lora } }]),
);

// (c) X is best on dev (WER_new + F lowest there) but worse on test; Y the other way round
const c8 = (v: number) => Array(8).fill(v);
const devTest: Record<string, SetData> = {
  'cs-dev': { role: 'new', refWords: c8(5), frozen: c8(4), runs: { lora: [c8(2)], [X]: [c8(1)], [Y]: [c8(3)] } },
  'base-dev': { role: 'base', refWords: c8(5), frozen: c8(1), runs: { lora: [c8(3)], [X]: [c8(1)], [Y]: [c8(2)] } },
  'cs-test': { role: 'new', refWords: c8(5), frozen: c8(4), runs: { lora: [c8(2)], [X]: [c8(3)], [Y]: [c8(1)] } },
  'base-test': { role: 'base', refWords: c8(5), frozen: c8(1), runs: { lora: [c8(3)], [X]: [c8(2)], [Y]: [c8(1)] } },
};

interface Ci {
  value: number | null;
  lo?: number;
  hi?: number;
  reason?: string;
}
interface Agg {
  best: string | null;
  selection: { split: string | null; selected: string | null; bestOnTest: string | null; devSets: string[]; testSets: string[] };
  configs: Record<
    string,
    {
      werNew: { mean: number };
      werBase: { mean: number };
      devScore: { mean: number | null };
      gainPaired: { mean: number } | null;
      dropPaired: { mean: number } | null;
      bootstrap: { backwardGain: Ci; newDomainDrop: Ci; utterances: Record<string, number>; seeds: number[] } | null;
    }
  >;
}

const t0 = Date.now();
const sweeps = [
  writeSweep('varied', varied, [0, 1]),
  writeSweep('varied-x4', variedX4, [0, 1]),
  writeSweep('constant', constant, [0, 1]),
  writeSweep('twin', twin, [0, 1]),
  writeSweep('dev', devTest, [0]),
];
const got = JSON.parse(
  execFileSync(
    requirePython(),
    [
      '-c',
      `
import sys, json
sys.path.insert(0, ${JSON.stringify(join(REPO, 'tools'))})
from pathlib import Path
import experiment_report as er
res = {}
for s in json.loads(sys.argv[1]):
    r = er.report(s["sweep"], Path(s["out"]) / "sweep.json", Path(s["out"]), s["runs"], "torch", Path(s["md"]))
    res[s["name"]] = json.loads((Path(s["out"]) / "aggregate.json").read_text())
print(json.dumps(res))
`,
      JSON.stringify(sweeps),
    ],
    { encoding: 'utf8' },
  )
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop()!,
) as Record<string, Agg>;
const md = Object.fromEntries(sweeps.map((s) => [s.name, readFileSync(s.md, 'utf8')]));
console.log(`# ${sweeps.length} reports in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

test('(a) the bootstrap interval contains the point value and shrinks with 4× the utterances', () => {
  const a = got.varied.configs[X];
  const a4 = got['varied-x4'].configs[X];
  assert.deepEqual(a.bootstrap!.utterances, { 'base-test': 10, 'cs-test': 10 });
  assert.deepEqual(a4.bootstrap!.utterances, { 'base-test': 40, 'cs-test': 40 });
  assert.deepEqual(a.bootstrap!.seeds, [0, 1]);
  for (const [m, table] of [
    ['backwardGain', 'gainPaired'],
    ['newDomainDrop', 'dropPaired'],
  ] as const) {
    const b = a.bootstrap![m];
    const b4 = a4.bootstrap![m];
    assert.ok(b.value !== null && b4.value !== null, `${m}: ${b.reason ?? b4.reason}`);
    // the point value is the table's per-seed mean (WER from the transcripts = WER of the eval records)
    assert.ok(Math.abs(b.value - a[table]!.mean) < 1e-12, `${m}: point ${b.value} vs table ${a[table]!.mean}`);
    assert.equal(b4.value, b.value, `${m}: duplicating the utterances changes the point value`);
    assert.ok(b.lo! <= b.value && b.value <= b.hi! && b.lo! < b.hi!, `${m}: [${b.lo}, ${b.hi}] ∌ ${b.value}`);
    assert.ok(b4.lo! <= b4.value && b4.value <= b4.hi!, `${m} ×4: [${b4.lo}, ${b4.hi}] ∌ ${b4.value}`);
    const w = b.hi! - b.lo!;
    const w4 = b4.hi! - b4.lo!;
    console.log(
      `# ${m}: ${b.value.toFixed(4)} [${b.lo!.toFixed(4)}, ${b.hi!.toFixed(4)}] (width ${w.toFixed(4)}); ×4: width ${w4.toFixed(4)}`,
    );
    assert.ok(w4 < 0.75 * w, `${m}: ×4 width ${w4} not clearly below ${w} (expected about half)`);
  }
  assert.match(md.varied, /backward gain \[95 % CI\]/);
  assert.match(
    md.varied,
    /\| BLoRA β 0\.001, σp 0\.01 \*\*\(best\)\*\* \(no dev split: best-on-test, not a fair selection\) \| torch \| 2 \|/,
  );
  assert.match(md.varied, /\| LoRA \| torch \| 2 \|/);
});

test('(b) known exact answers: identical utterances, and BLoRA ≡ LoRA under pairing: zero-width intervals at the point value', () => {
  const b = got.constant.configs[X].bootstrap!;
  assert.deepEqual([b.backwardGain.value, b.backwardGain.lo, b.backwardGain.hi], [0.5, 0.5, 0.5]);
  assert.deepEqual([b.newDomainDrop.value, b.newDomainDrop.lo, b.newDomainDrop.hi], [1, 1, 1]);
  assert.match(md.constant, /\+50\.0 % \(\+50\.0 ± 0\.0\) \[\+50\.0, \+50\.0\]/);
  assert.match(md.constant, /\+100\.0 % \(\+100\.0 ± 0\.0\) \[\+100\.0, \+100\.0\]/);
  const t = got.twin.configs[X].bootstrap!;
  assert.deepEqual(
    [t.backwardGain.value, t.backwardGain.lo, t.backwardGain.hi],
    [0, 0, 0],
    'paired: BLoRA ≡ LoRA → gain 0 in every resample',
  );
  assert.deepEqual(
    [t.newDomainDrop.value, t.newDomainDrop.lo, t.newDomainDrop.hi],
    [0, 0, 0],
    'paired: BLoRA ≡ LoRA → drop 0 in every resample',
  );
  assert.equal(got.constant.selection.selected, null);
  assert.match(md.constant, /no dev split: best-on-test, not a fair selection/);
});

test('(c) selection on dev: the configuration best on dev, not the one best on test; figures on test', () => {
  const g = got.dev;
  assert.equal(g.selection.split, 'dev');
  assert.equal(g.selection.selected, X, 'selected on dev');
  assert.equal(g.best, Y, 'best on test');
  assert.deepEqual(g.selection.devSets, ['base-dev', 'cs-dev']);
  assert.deepEqual(g.selection.testSets, ['base-test', 'cs-test']);
  // dev: X 0.2 + (0.2 − 0.2) = 0.2, Y 0.6 + (0.4 − 0.2) = 0.8; test figures from the test sets only
  assert.ok(Math.abs(g.configs[X].devScore.mean! - 0.2) < 1e-12 && Math.abs(g.configs[Y].devScore.mean! - 0.8) < 1e-12);
  assert.deepEqual([g.configs[X].werNew.mean, g.configs[X].werBase.mean], [0.6, 0.4]);
  assert.deepEqual([g.configs[Y].werNew.mean, g.configs[Y].werBase.mean], [0.2, 0.2]);
  assert.deepEqual(g.configs[X].bootstrap!.utterances, { 'base-test': 8, 'cs-test': 8 }, 'the bootstrap runs on the test sets');
  // X on test: F_LoRA 0.4, F_X 0.2 → gain 0.5; drop (0.6 − 0.4) / 0.4 = 0.5
  assert.ok(Math.abs(g.configs[X].bootstrap!.backwardGain.value! - 0.5) < 1e-12);
  const m = md.dev;
  assert.match(
    m,
    /\*\*LoRA vs the BLoRA configuration selected on dev \(BLoRA β 0\.001, σp 0\.01\)\*\* — selected on dev: among the BLoRA configurations, the one with the lowest mean over seeds of WER_new\(dev\) \+ F\(dev\)/,
  );
  assert.match(m, /\| BLoRA β 0\.001, σp 0\.01 \(selected on dev\) \| 60\.0 % \| [^|]+ \| 40\.0 % \|/);
  assert.match(m, /\| BLoRA β 0\.01, σp 0\.01 \(best on test: for comparison, not a fair selection\) \| 20\.0 % \| [^|]+ \| 20\.0 % \|/);
  assert.match(m, /### Selection on dev/);
  assert.match(m, /\| BLoRA β 0\.001, σp 0\.01 \*\*\(selected on dev\)\*\* \| torch \| 1 \|/);
  assert.match(m, /\| BLoRA β 0\.01, σp 0\.01 \(best on test\) \| torch \| 1 \|/);
  assert.doesNotMatch(m, /no dev split/);
});

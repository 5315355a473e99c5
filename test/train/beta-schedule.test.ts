// β as a schedule (issue 17, item 3), the parts without a GPU: experiment.json validation of
// adapter.betaSchedule (errors name the entry), β at step k (betaAt), a live change put into a schedule
// (withBetaEntry) and the schedule a restored run follows (mergeBetaSchedules); and the PyTorch backend
// (tools/blora_train.py parse_experiment / beta_at) reads the same schedule the same way. About 2 s.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PYTHON, REPO } from '../support/env';
import { betaAt, ExperimentConfigError, parseExperiment, withBetaEntry } from '../../src/train/config';
import { adapterConfigOf, mergeBetaSchedules } from '../../src/train/trainer';

const base = { data: { train: 'x' }, method: 'blora' };

test('betaSchedule: old configs stay valid, a schedule parses, β at step k', () => {
  const old = parseExperiment({ ...base, adapter: { beta: 2e-4 } });
  assert.equal(old.adapter.betaSchedule, undefined);
  assert.equal(betaAt(old, 1), 2e-4);
  assert.equal(betaAt(old, 1000), 2e-4);

  const c = parseExperiment({
    ...base,
    adapter: {
      beta: 1e-4,
      betaSchedule: [
        { step: 3, beta: 1 },
        { step: 10, beta: 0 },
      ],
    },
  });
  assert.deepEqual(
    [1, 2, 3, 4, 9, 10, 11].map((k) => betaAt(c, k)),
    [1e-4, 1e-4, 1, 1, 1, 0, 0],
  );
  // a step-1 entry is β from step 1 on (it wins over adapter.beta), and the engine's plan is built with it
  const s1 = parseExperiment({
    ...base,
    adapter: {
      beta: 5,
      betaSchedule: [
        { step: 1, beta: 1e-4 },
        { step: 3, beta: 1 },
      ],
    },
  });
  assert.deepEqual(
    [1, 2, 3].map((k) => betaAt(s1, k)),
    [1e-4, 1e-4, 1],
  );
  assert.equal(adapterConfigOf(s1).beta, 1e-4);
  // LoRA has no KL term: β 0 whatever the schedule says
  assert.equal(betaAt({ ...c, method: 'lora' }, 3), 0);
  // round trip through JSON (the exported experiment.json)
  assert.deepEqual(parseExperiment(JSON.parse(JSON.stringify(c))), c);
});

test('betaSchedule: errors name the field', () => {
  const bad: [unknown, RegExp][] = [
    [{ step: 1, beta: 1 }, /adapter\.betaSchedule must be an array of \{step, beta\}/],
    [[{ step: 0, beta: 1 }], /adapter\.betaSchedule\[0\]\.step must be an integer ≥ 1 \(got 0\)/],
    [[{ step: 2.5, beta: 1 }], /adapter\.betaSchedule\[0\]\.step must be an integer ≥ 1 \(got 2\.5\)/],
    [[{ beta: 1 }], /adapter\.betaSchedule\[0\]\.step must be an integer ≥ 1 \(got undefined\)/],
    [
      [
        { step: 3, beta: 1 },
        { step: 3, beta: 2 },
      ],
      /adapter\.betaSchedule\[1\]\.step must be above the previous entry's \(3; steps ascending, got 3\)/,
    ],
    [
      [
        { step: 5, beta: 1 },
        { step: 2, beta: 2 },
      ],
      /adapter\.betaSchedule\[1\]\.step must be above/,
    ],
    [[{ step: 1, beta: -1 }], /adapter\.betaSchedule\[0\]\.beta must be a finite number ≥ 0 \(got -1\)/],
    [[{ step: 1, beta: 'big' }], /adapter\.betaSchedule\[0\]\.beta must be a finite number ≥ 0 \(got "big"\)/],
    [[{ step: 1, beta: null }], /adapter\.betaSchedule\[0\]\.beta must be a finite number ≥ 0 \(got null\)/],
    [[{ step: 1, beta: 1, lr: 2 }], /adapter\.betaSchedule\[0\]\.lr: unknown key/],
    [[7], /adapter\.betaSchedule\[0\] must be an object \{step, beta\}/],
  ];
  for (const [sched, re] of bad) {
    assert.throws(
      () => parseExperiment({ ...base, adapter: { betaSchedule: sched } }, 'exp.json'),
      (e: Error) => e instanceof ExperimentConfigError && /^exp\.json: /.test(e.message) && re.test(e.message),
      JSON.stringify(sched),
    );
  }
});

test("a live change goes into the schedule; a restored run keeps the checkpoint's past and the newer future", () => {
  const s = withBetaEntry(undefined, { step: 4, beta: 1e-3 });
  assert.deepEqual(s, [{ step: 4, beta: 1e-3 }]);
  const s2 = withBetaEntry(
    [
      { step: 2, beta: 1 },
      { step: 4, beta: 1e-3 },
      { step: 9, beta: 0 },
    ],
    { step: 4, beta: 5e-2 },
  );
  assert.deepEqual(
    s2,
    [
      { step: 2, beta: 1 },
      { step: 4, beta: 5e-2 },
      { step: 9, beta: 0 },
    ],
    'same step replaced, later entries kept',
  );
  assert.deepEqual(
    withBetaEntry(s2, { step: 6, beta: 7 }).map((e) => e.step),
    [2, 4, 6, 9],
  );

  assert.equal(mergeBetaSchedules(undefined, undefined, 5), undefined);
  // the worker rebuilt from the start config (no schedule): the checkpoint's schedule is kept
  assert.deepEqual(mergeBetaSchedules([{ step: 3, beta: 1 }], undefined, 2), [{ step: 3, beta: 1 }]);
  // the page's config has a change made after the checkpoint (step 6 > 4): kept; its entry at a step ≤ 4
  // that the checkpoint lacks is not what the run did, so it is dropped
  assert.deepEqual(
    mergeBetaSchedules(
      [{ step: 3, beta: 1 }],
      [
        { step: 2, beta: 9 },
        { step: 3, beta: 1 },
        { step: 6, beta: 0.5 },
      ],
      4,
    ),
    [
      { step: 3, beta: 1 },
      { step: 6, beta: 0.5 },
    ],
  );
});

test(
  'the PyTorch backend reads the schedule: same β per step, same errors',
  { skip: !existsSync(PYTHON) && `no Python venv at ${PYTHON}` },
  () => {
    const cfg = {
      ...base,
      adapter: {
        beta: 1e-4,
        betaSchedule: [
          { step: 3, beta: 1 },
          { step: 10, beta: 0 },
        ],
      },
    };
    const bad = {
      ...base,
      adapter: {
        betaSchedule: [
          { step: 3, beta: 1 },
          { step: 3, beta: -1 },
        ],
      },
    };
    const py = `
import json, sys
sys.path.insert(0, ${JSON.stringify(join(REPO, 'tools'))})
import blora_train as bt
c = bt.parse_experiment(json.loads(sys.argv[1]), "exp.json")
out = {"betas": [bt.beta_at(c, k) for k in (1, 2, 3, 4, 9, 10, 11)], "lora": bt.beta_at({**c, "method": "lora"}, 3)}
try:
    bt.parse_experiment(json.loads(sys.argv[2]), "exp.json")
except bt.ConfigError as e:
    out["error"] = str(e)
print(json.dumps(out))
`;
    const got = JSON.parse(execFileSync(PYTHON, ['-c', py, JSON.stringify(cfg), JSON.stringify(bad)], { encoding: 'utf8' }));
    const ts = parseExperiment(cfg);
    assert.deepEqual(
      got.betas,
      [1, 2, 3, 4, 9, 10, 11].map((k) => betaAt(ts, k)),
    );
    assert.equal(got.lora, 0);
    assert.match(
      got.error,
      /^exp\.json: .*adapter\.betaSchedule\[1\]\.step must be above the previous entry's \(3; steps ascending, got 3\)/,
    );
    assert.match(got.error, /adapter\.betaSchedule\[1\]\.beta must be a finite number ≥ 0 \(got -1\)/);
  },
);

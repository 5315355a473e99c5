// The studio's training-set mixing rules (src/ui/mix.ts): which train datasets are concatenated, which are mixed in
// with their share, what goes to experiment.json and to the Trainer — and the refusals, by name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trainMixPlan } from '../../src/ui/mix';

test('one train dataset, or several without shares: one concatenated set, nothing mixed', () => {
  assert.deepEqual(trainMixPlan([{ name: 'cs', n: 10 }]), { order: [0], train: 'cs' });
  assert.deepEqual(
    trainMixPlan([
      { name: 'a', n: 3 },
      { name: 'b', n: 4 },
    ]),
    { order: [0, 1], train: 'a,b' },
  );
  // a share on the first dataset means nothing: it takes the rest
  assert.deepEqual(
    trainMixPlan([
      { name: 'a', n: 3, mix: 0.4 },
      { name: 'b', n: 4 },
    ]),
    { order: [0, 1], train: 'a,b' },
  );
});

test('a dataset with a share is its own set; the first (with the unshared ones) takes the rest', () => {
  const plan = trainMixPlan([
    { name: 'cs', n: 10 },
    { name: 'replay', n: 6, mix: 0.25 },
    { name: 'more-cs', n: 5 },
    { name: 'real', n: 2, mix: 0.1 },
  ]);
  assert.ok(typeof plan !== 'string', String(plan));
  assert.deepEqual(plan.order, [0, 2, 1, 3], 'concatenated sets first, then the mixed ones in panel order');
  assert.equal(plan.train, 'cs,more-cs');
  assert.deepEqual(plan.trainMix, [
    { path: 'replay', p: 0.25 },
    { path: 'real', p: 0.1 },
  ]);
  assert.equal(plan.trainSets!.length, 3);
  assert.deepEqual(
    plan.trainSets!.map((s) => s.n),
    [15, 6, 2],
  );
  assert.ok(Math.abs(plan.trainSets![0].p - 0.65) < 1e-12, `rest ${plan.trainSets![0].p}`);
  assert.equal(
    plan.trainSets!.reduce((a, s) => a + s.n, 0),
    23,
    'the sets cover every training utterance once',
  );
});

test('refusals name the dataset and the cause', () => {
  assert.equal(trainMixPlan([]), 'add a training dataset (role: train)');
  assert.match(
    String(
      trainMixPlan([
        { name: 'a', n: 3 },
        { name: 'b', n: 4, mix: 1 },
      ]),
    ),
    /^b: the mixing share must be between 0 and 100 % \(got 100 %\)/,
  );
  assert.match(
    String(
      trainMixPlan([
        { name: 'a', n: 3 },
        { name: 'b', n: 4, mix: 0 },
      ]),
    ),
    /^b: .*got 0 %/,
  );
  assert.match(
    String(
      trainMixPlan([
        { name: 'a', n: 3 },
        { name: 'b', n: 0, mix: 0.2 },
      ]),
    ),
    /^b: no encoded utterances/,
  );
  assert.match(
    String(
      trainMixPlan([
        { name: 'a', n: 3 },
        { name: 'b', n: 4, mix: 0.6 },
        { name: 'c', n: 4, mix: 0.4 },
      ]),
    ),
    /add up to 100 %: a needs the rest/,
  );
});

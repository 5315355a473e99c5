// experiment.json parsing: defaults fill missing keys, unknown keys and bad values are errors that
// name the key (src/train/config.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultExperiment, ExperimentConfigError, parseExperiment } from '../../src/train/config';

test('missing keys take the defaults; given keys override', () => {
  const c = parseExperiment({ data: { train: 'public/demo' }, adapter: { r: 8 }, optim: { lr: 1e-2 } });
  const d = defaultExperiment();
  assert.equal(c.adapter.r, 8);
  assert.equal(c.adapter.alpha, d.adapter.alpha);
  assert.equal(c.optim.lr, 1e-2);
  assert.deepEqual(c.optim.betas, d.optim.betas);
  assert.equal(c.data.train, 'public/demo');
  assert.deepEqual(c.adapter.targets, ['self_attn.q_proj', 'self_attn.v_proj']);
  assert.equal(c.adapter.rhoBInit, 'constant');
  assert.equal(parseExperiment({ data: { train: 'x' }, adapter: { rhoBInit: 'uniform' } }).adapter.rhoBInit, 'uniform');
});

test('errors name the key', () => {
  const bad: [unknown, RegExp][] = [
    [{ data: { train: 'x' }, adapter: { rr: 3 } }, /experiment\.adapter\.rr: unknown key/],
    [{ data: { train: 'x' }, optim: { lr: -1 } }, /optim\.lr must be > 0 \(got -1\)/],
    [{ data: { train: 'x' }, adapter: { targets: ['self_attn.z_proj'] } }, /adapter\.targets: unknown target "self_attn\.z_proj"/],
    [{ data: { train: 'x' }, optim: { schedule: 'linear' } }, /optim\.schedule must be inverse_sqrt, cosine or constant/],
    [{ data: { train: 'x', eval: [{ path: 'y', role: 'old' }] } }, /data\.eval\[0\]\.role must be "new" or "base"/],
    [{}, /data\.train is required/],
    [{ data: { train: 'x' }, optim: { steps: 1.5 } }, /optim\.steps must be an integer ≥ 1 \(got 1\.5\)/],
    [{ data: { train: 'x' }, seed: -2 }, /seed must be an integer ≥ 0/],
    [{ data: { train: 'x' }, method: 'qlora' }, /method must be "lora" or "blora"/],
    [{ data: { train: 'x' }, adapter: 5 }, /experiment\.adapter: expected an object/],
    [{ data: { train: 'x' }, adapter: { rhoBInit: 'random' } }, /adapter\.rhoBInit must be constant or uniform \(got "random"\)/],
  ];
  for (const [json, re] of bad) {
    assert.throws(() => parseExperiment(json, 'my.json'), (e: Error) => e instanceof ExperimentConfigError && /^my\.json: /.test(e.message) && re.test(e.message), JSON.stringify(json));
  }
});

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
  // the authors' defaults: q_proj, v_proj of self- and cross-attention, ρ_B drawn as ρ_A (the paper's date)
  assert.deepEqual(c.adapter.targets, ['self_attn.q_proj', 'self_attn.v_proj', 'encoder_attn.q_proj', 'encoder_attn.v_proj']);
  assert.equal(c.adapter.rhoBInit, 'uniform');
  assert.equal(parseExperiment({ data: { train: 'x' }, adapter: { rhoBInit: 'constant' } }).adapter.rhoBInit, 'constant');
});

test("adapter.klScale is the authors' kl_scale: β = klScale / gradAccum; the default agrees with theirs", () => {
  const x = { train: 'x' };
  // default: their kl_scale 1e-4 over the micro-batches (GA 2 → 5e-5, as their default run)
  assert.equal(parseExperiment({ data: x }).adapter.beta, 1e-4);
  assert.equal(parseExperiment({ data: x, optim: { gradAccum: 2 } }).adapter.beta, 5e-5);
  assert.equal(parseExperiment({ data: x, optim: { gradAccum: 2 } }).adapter.klScale, undefined);
  // an explicit β is β, whatever the accumulation
  assert.equal(parseExperiment({ data: x, adapter: { beta: 1e-3 }, optim: { gradAccum: 4 } }).adapter.beta, 1e-3);
  const k = parseExperiment({ data: x, adapter: { klScale: 1e-3 }, optim: { gradAccum: 4 } });
  assert.equal(k.adapter.beta, 2.5e-4);
  assert.equal(k.adapter.klScale, 1e-3);
  // a written record has both; reading it back gives the same config
  assert.deepEqual(parseExperiment(JSON.parse(JSON.stringify(k))), k);
  assert.throws(
    () => parseExperiment({ data: x, adapter: { klScale: 1e-3, beta: 1e-3 }, optim: { gradAccum: 4 } }),
    /adapter\.beta 0\.001 and adapter\.klScale 0\.001 disagree: .*β = klScale \/ optim\.gradAccum = 0\.00025/,
  );
  assert.throws(() => parseExperiment({ data: x, adapter: { klScale: -1 } }), /adapter\.klScale must be ≥ 0 \(got -1\)/);
});

test('adapter.klLogEps and adapter.freezeRho: defaults off, validated', () => {
  const c = parseExperiment({ data: { train: 'x' } });
  assert.equal(c.adapter.klLogEps, 0);
  assert.equal(c.adapter.freezeRho, false);
  const a = parseExperiment({ data: { train: 'x' }, adapter: { klLogEps: 1e-6, freezeRho: true } });
  assert.equal(a.adapter.klLogEps, 1e-6);
  assert.equal(a.adapter.freezeRho, true);
  assert.throws(() => parseExperiment({ data: { train: 'x' }, adapter: { klLogEps: 0.5 } }), /adapter\.klLogEps must be in \[0, 0\.01\]/);
  assert.throws(
    () => parseExperiment({ data: { train: 'x' }, adapter: { freezeRho: 'yes' } }),
    /adapter\.freezeRho must be true or false \(got "yes"\)/,
  );
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
    [{ data: { train: 'x' }, eval: { select: 'best' } }, /eval\.select must be last or dev-ce \(got "best"\)/],
    [{ data: { train: 'x' }, eval: { select: 'dev-ce', devInterval: 100 } }, /eval\.select 'dev-ce' needs a dev set \(data\.dev\)/],
    [{ data: { train: 'x', dev: [{ path: 'd' }] }, eval: { select: 'dev-ce' } }, /eval\.select 'dev-ce' needs eval\.devInterval ≥ 1/],
    [{ data: { train: 'x', dev: [{ name: 'd' }] } }, /data\.dev\[0\]\.path is required/],
    [{ data: { train: 'x', trainMix: [{ path: 'r', p: 0 }] } }, /data\.trainMix\[0\]\.p must be in \(0, 1\) \(got 0\)/],
    [
      {
        data: {
          train: 'x',
          trainMix: [
            { path: 'r', p: 0.5 },
            { path: 's', p: 0.5 },
          ],
        },
      },
      /data\.trainMix: the probabilities sum to 1\.00; data\.train needs the rest/,
    ],
  ];
  for (const [json, re] of bad) {
    assert.throws(
      () => parseExperiment(json, 'my.json'),
      (e: Error) => e instanceof ExperimentConfigError && /^my\.json: /.test(e.message) && re.test(e.message),
      JSON.stringify(json),
    );
  }
});

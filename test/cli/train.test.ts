/**
 * `blora-studio train` as a user runs it (src/cli/train.ts): clear usage errors (exit 2, naming the
 * flag / file / key), then a real BLoRA run on the demo data (2 clips, 2 steps, adapters on q, v of
 * the last two decoder layers): exit 0, valid metrics.jsonl, result.json, experiment.json and the
 * export; Python `peft` (tools/peft_transcribe.py: PeftModel.from_pretrained on the prepared
 * model's HF Whisper) transcribes the eval clips identically to the engine's merged model (issue 3
 * item 6: ≥ 99 % identical); importAdapter re-imports the export losslessly (re-export byte-identical).
 * WebGPU: gl-compat unless BLORA_WEBGPU_BACKEND is set. Budget ≤ 4 min — not met here: measured 23.5 min at
 * load average ~18 on the 2 cores (CLI 1004 s: prepare + 2 evals + 2 steps of 296 s; Python 323 s).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { exportAdapter, importAdapter } from '../../src/export/peft';
import { initAdapterTheta, planAdapters } from '../../src/engine/adapters';
import { parseExperiment } from '../../src/train/config';
import { adapterConfigOf } from '../../src/train/trainer';
import { DEMO_DIR, REPO, requireModel, requirePython } from '../support/env';

const tmp = mkdtempSync(join(tmpdir(), 'blora-train-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, BLORA_WEBGPU_BACKEND: process.env.BLORA_WEBGPU_BACKEND ?? 'gl-compat' };
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [join(REPO, 'bin/blora-studio.mjs'), ...args], { encoding: 'utf8', cwd: REPO, env });

describe('blora-studio train', () => {
  test('--help documents every train flag', () => {
    const r = cli('--help');
    assert.equal(r.status, 0);
    for (const f of [
      '--config',
      '--train',
      '--eval-new',
      '--eval-base',
      '--method',
      '--targets',
      '--r',
      '--alpha',
      '--beta',
      '--sigma-prior',
      '--estimator',
      '--rho-b-init',
      '--kl-scale',
      '--kl-log-eps',
      '--freeze-rho',
      '--train-mix',
      '--dev',
      '--dev-interval',
      '--select',
      '--posterior-samples',
      '--lr',
      '--steps',
      '--batch',
      '--grad-accum',
      '--warmup',
      '--schedule',
      '--seed',
      '--eval-interval',
      '--out',
      'BLORA_WEBGPU_BACKEND',
    ]) {
      assert.match(r.stdout, new RegExp(`${f}\\b`), f);
    }
  });

  test('wrong flags, bad values, bad paths and bad config keys: exit 2 with a message naming them', () => {
    const cases: [string[], RegExp][] = [
      [['train', '--bogus', '1'], /unknown option "--bogus" for train/],
      [['train', '--train', join(tmp, 'nope')], /--train .*nope: no such file or folder/],
      [['train', '--train', DEMO_DIR, '--eval-base', join(tmp, 'gone')], /--eval-base .*gone: no such file or folder/],
      [['train', '--train', DEMO_DIR, '--lr', 'fast'], /--lr must be a number, got "fast"/],
      [['train', '--train', DEMO_DIR, '--method', 'qlora'], /method must be "lora" or "blora"/],
      [['train', '--train', DEMO_DIR, '--rho-b-init', 'zero'], /adapter\.rhoBInit must be constant or uniform \(got "zero"\)/],
      [['train', '--train', DEMO_DIR, '--freeze-rho', 'yes'], /--freeze-rho must be true or false, got "yes"/],
      [['train', '--train', DEMO_DIR, '--beta', '1e-3', '--kl-scale', '1e-4'], /give --beta or --kl-scale, not both/],
      [['train', '--train', DEMO_DIR, '--kl-log-eps', '1'], /adapter\.klLogEps must be in \[0, 0\.01\]/],
      [['train', '--train', DEMO_DIR, '--train-mix', DEMO_DIR], /--train-mix must be PATH:P \(a probability\)/],
      [
        ['train', '--train', DEMO_DIR, '--train-mix', `${DEMO_DIR}:0.6`, '--train-mix', `${DEMO_DIR}:0.5`],
        /data\.trainMix: the probabilities sum to 1\.10; data\.train needs the rest/,
      ],
      [['train', '--train', DEMO_DIR, '--train-mix', `${join(tmp, 'nomix')}:0.3`], /--train-mix .*nomix: no such file or folder/],
      [['train', '--train', DEMO_DIR, '--select', 'dev-ce', '--dev-interval', '1'], /eval\.select 'dev-ce' needs a dev set/],
      [['train', '--train', DEMO_DIR, '--model', join(tmp, 'no-model')], /--model .*no-model: no such folder/],
      [['train', '--config', join(tmp, 'missing.json')], /--config .*missing\.json: no such file/],
    ];
    const badCfg = join(tmp, 'bad.json');
    writeFileSync(badCfg, JSON.stringify({ data: { train: DEMO_DIR }, optim: { lrr: 1 } }));
    cases.push([['train', '--config', badCfg], /bad\.json: experiment\.optim\.lrr: unknown key/]);
    for (const [args, re] of cases) {
      const r = cli(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
  });

  test('trains BLoRA on the demo data; PEFT loads the export and transcribes as the engine', () => {
    const model = requireModel();
    const out = join(tmp, 'run');
    const t0 = performance.now();
    const r = cli(
      'train',
      '--train',
      DEMO_DIR,
      '--train-limit',
      '2',
      '--eval-new',
      DEMO_DIR,
      '--eval-limit',
      '2',
      '--method',
      'blora',
      '--targets',
      'self_attn.q_proj,self_attn.v_proj',
      '--layers',
      '4,5',
      '--r',
      '4',
      '--alpha',
      '8',
      '--lr',
      '1e-2',
      '--warmup',
      '0',
      '--schedule',
      'constant',
      '--steps',
      '2',
      '--batch',
      '2',
      '--seed',
      '3',
      '--max-new-tokens',
      '40',
      '--rho-b-init',
      'uniform',
      '--freeze-rho',
      'true',
      '--kl-log-eps',
      '1e-6',
      '--train-mix',
      `${DEMO_DIR}:0.25`,
      '--posterior-samples',
      '2',
      '--out',
      out,
    );
    const cliS = (performance.now() - t0) / 1000;
    console.log(r.stdout.trim());
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /WebGPU adapter gl-compat/);
    assert.match(r.stderr, /train 2\/2 100% elapsed \S+ ETA/);
    assert.match(r.stdout + r.stderr, /ρ_B init uniform, ρ frozen, KL log\(σ \+ 0\.000001\)/);
    assert.match(r.stderr, /prepare train-mix \S+ \(p 0\.25\)/);
    const written = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')).adapter;
    assert.deepEqual([written.rhoBInit, written.freezeRho, written.klLogEps], ['uniform', true, 1e-6]);

    // metrics.jsonl: eval before, 2 train steps, eval after
    const recs = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      recs.map((x) => `${x.kind}@${x.step}`),
      ['eval@0', 'train@1', 'train@2', 'eval@2'],
    );
    for (const x of recs.filter((x) => x.kind === 'train')) {
      for (const k of ['ce', 'kl', 'loss', 'lr', 'gradNorm', 'tokens', 'tokensPerSec', 'sparsityA', 'sparsityB', 'elapsedS'])
        assert.ok(Number.isFinite(x[k]), `${k} = ${x[k]}`);
      assert.equal(x.backend, 'engine');
      assert.equal(x.lr, 1e-2);
      assert.ok(x.kl > 0 && x.ce > 0);
      assert.ok(Math.abs(x.loss - (x.ce + 1e-4 * x.kl)) < 1e-6 * x.loss);
    }
    for (const x of recs.filter((x) => x.kind === 'eval')) {
      assert.equal(x.role, 'new');
      assert.equal(x.utterances, 2);
      assert.ok(x.wer >= 0 && Number.isFinite(x.cer));
    }
    // experiment.json reproduces the run; result.json has the final metrics
    const exp = parseExperiment(JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')));
    assert.equal(exp.optim.steps, 2);
    assert.deepEqual(exp.adapter.layers, [4, 5]);
    const res = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
    assert.equal(res.backend, 'engine');
    assert.equal(res.steps, 2);
    for (const k of ['A', 'B', 'deltaW']) assert.ok(res.sparsity[k] >= 0 && res.sparsity[k] <= 1, k);
    assert.ok(Number.isFinite(res.kl) && res.trainTimeS > 0 && typeof res.adapter === 'string');
    assert.equal(res.forgetting, null); // no base-domain set given

    // --posterior-samples 2: per-utterance uncertainty of the final adapter; the mean decode is the final evaluation's
    const unc = readFileSync(join(out, 'uncertainty.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const finalHyps = readFileSync(join(out, 'transcripts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((x) => x.step === 2);
    assert.equal(unc.length, 2);
    for (const u of unc) {
      assert.equal(u.hypothesis, finalHyps.find((h) => h.id === u.id)?.hypothesis, `${u.id}: the mean adapter's transcript`);
      assert.equal(u.samples.length, 2);
      assert.ok(u.entropy >= 0 && u.disagreement >= 0 && u.wrong === u.errors > 0, JSON.stringify(u));
    }
    const ub = res.uncertainty.byRole.new;
    assert.equal(res.uncertainty.K, 2);
    assert.ok(ub.utterances === 2 && ub.tokens > 0 && ub.ece >= 0 && ub.ece <= 1, JSON.stringify(ub));
    assert.match(
      r.stderr,
      /uncertainty \(new, 2 utterances, \d with errors\): AUROC disagreement (n\/a|[\d.]+), entropy (n\/a|[\d.]+); token ECE [\d.]+ over \d+ tokens/,
    );

    // the export: PEFT files + BLoRA posterior; importAdapter re-imports it losslessly
    const files: Record<string, Uint8Array | string> = {};
    for (const f of ['adapter_model.safetensors', 'adapter_config.json', 'blora_posterior.safetensors']) {
      assert.ok(existsSync(join(out, 'adapter', f)), f);
      files[f] = f.endsWith('.json')
        ? readFileSync(join(out, 'adapter', f), 'utf8')
        : new Uint8Array(readFileSync(join(out, 'adapter', f)));
    }
    const imp = importAdapter(files);
    assert.equal(imp.method, 'blora');
    assert.equal(imp.modules.length, 4);
    // --freeze-rho: every ρ is the initial draw, bit for bit (initAdapterTheta of the run's plan), while μ trained
    const plan = planAdapters({ C: 512, F: 2048, L: 6 } as never, adapterConfigOf(exp));
    const theta0 = initAdapterTheta(plan, exp.seed);
    for (const m of plan.modules) {
      const got = imp.modules.find((x) => x.name === m.name)!;
      assert.deepEqual(got.rhoA, theta0.subarray(m.off.rhoA, m.off.rhoA + got.rhoA!.length), `${m.name} ρ_A moved`);
      assert.deepEqual(got.rhoB, theta0.subarray(m.off.rhoB, m.off.rhoB + got.rhoB!.length), `${m.name} ρ_B moved`);
      assert.ok(
        got.B.some((v) => v !== 0),
        `${m.name} μ_B did not train`,
      );
    }
    const again = exportAdapter(imp);
    for (const f of Object.keys(files)) assert.deepEqual(again[f], files[f], `${f} re-exported differently`);

    // PEFT transcripts vs the engine's merged-model transcripts of the final evaluation
    const engine = readFileSync(join(out, 'transcripts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((x) => x.step === 2);
    const manifest = readFileSync(join(DEMO_DIR, 'manifest.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const clips = engine.map((e) => ({
      id: e.id,
      audio: join(DEMO_DIR, manifest.find((m) => m.audio_filepath.replace(/\.wav$/, '') === e.id).audio_filepath),
      language: e.language,
    }));
    writeFileSync(join(tmp, 'clips.jsonl'), clips.map((c) => JSON.stringify(c)).join('\n') + '\n');
    const t1 = performance.now();
    execFileSync(
      requirePython(),
      [
        join(REPO, 'tools/peft_transcribe.py'),
        '--model',
        model,
        '--adapter',
        join(out, 'adapter'),
        '--clips',
        join(tmp, 'clips.jsonl'),
        '--out',
        join(tmp, 'peft.json'),
        '--max-new-tokens',
        '40',
      ],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
      },
    );
    const py = JSON.parse(readFileSync(join(tmp, 'peft.json'), 'utf8'));
    assert.equal(py.adapted_modules.length, 4, `PEFT adapted ${py.adapted_modules}`);
    const same = engine.filter((e, i) => py.clips[i].text === e.hypothesis).length;
    console.log(
      `PEFT vs engine merged: ${same}/${engine.length} identical transcripts (peft ${py.peft}, transformers ${py.transformers}); CLI ${cliS.toFixed(0)} s, python ${((performance.now() - t1) / 1000).toFixed(0)} s`,
    );
    for (const [i, e] of engine.entries())
      console.log(
        `  ${e.id}: engine ${JSON.stringify(e.hypothesis)} | peft ${JSON.stringify(py.clips[i].text)} | base ${JSON.stringify(py.clips[i].base)}`,
      );
    assert.ok(same / engine.length >= 0.99, `${same}/${engine.length} identical`);
  });
});

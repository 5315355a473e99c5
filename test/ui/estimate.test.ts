/**
 * The run's time estimate before Start (src/ui/estimate.ts) and the plain-language summaries of the Run and
 * Compare views (src/ui/summary.ts): hand-made run shapes and records, values worked out by hand.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultExperiment, type EvalRecord, type TrainRecord } from '../../src/train/config';
import {
  assumedSpeed,
  estimateRun,
  evaluationsOf,
  formatDuration,
  loadSpeed,
  measureSpeed,
  probeMsFromReason,
  saveSpeed,
  speedFromProbe,
  speedKey,
  studioShape,
  studioSpeed,
  trainStepFlops,
  type EstimateInputs,
  type RunShape,
} from '../../src/ui/estimate';
import type { RunState } from '../../src/ui/store';
import { compareSentence, runSentence } from '../../src/ui/summary';

const base: RunShape = {
  dims: { C: 512, F: 2048, L: 6, V: 51865 },
  method: 'blora',
  r: 8,
  targets: 2,
  steps: 10,
  batch: 4,
  trainTokens: 14,
  utterances: 12,
  evalUtterances: 8,
  evalTokens: 12,
  evaluations: 2,
};

/** a Storage over a Map (the page's localStorage API, in memory) */
function memoryStorage(): Pick<Storage, 'getItem' | 'setItem'> {
  const m = new Map<string, string>();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => void m.set(k, v) };
}

describe('time estimate before Start', () => {
  test("parts scale with steps, utterances and evaluations; BLoRA adapters cost twice LoRA's", () => {
    const s = speedFromProbe(20);
    const e1 = estimateRun(base, s);
    const e2 = estimateRun({ ...base, steps: 20, utterances: 24, evaluations: 4 }, s);
    assert.ok(Math.abs(e2.parts.train / e1.parts.train - 2) < 1e-12);
    assert.ok(Math.abs(e2.parts.prep / e1.parts.prep - 2) < 1e-12);
    assert.ok(Math.abs(e2.parts.eval / e1.parts.eval - 2) < 1e-12);
    assert.ok(Math.abs(e1.seconds - (e1.parts.prep + e1.parts.train + e1.parts.eval)) < 1e-9);
    const adapters = (m: 'lora' | 'blora') => trainStepFlops({ ...base, method: m }) - trainStepFlops({ ...base, method: m, targets: 0 });
    assert.ok(Math.abs(adapters('blora') / adapters('lora') - 2) < 1e-12);
    // a 10× faster probe: 10× less time
    assert.ok(Math.abs(estimateRun(base, speedFromProbe(2)).seconds * 10 - e1.seconds) < 1e-9 * e1.seconds);
  });

  test('evaluations: step 0, every interval, the last step', () => {
    assert.equal(evaluationsOf(10, 0), 2);
    assert.equal(evaluationsOf(10, 5), 3); // {0, 5, 10}
    assert.equal(evaluationsOf(10, 3), 5); // {0, 3, 6, 9, 10}
  });

  test('durations and the probe line of the Compute panel', () => {
    assert.equal(formatDuration(42), '40 s');
    assert.equal(formatDuration(600), '10 min');
    assert.equal(formatDuration(5400), '1 h 30 min');
    assert.equal(probeMsFromReason('WGSL matmul probe: GPU tiles 80.1 ms, CPU-tuned 20.3 ms → wasm'), 20.3);
    assert.equal(probeMsFromReason('no probe'), null);
  });

  test('a finished run measures the speed: its step times are explained exactly, and it is stored per adapter and model', () => {
    const prior = speedFromProbe(20);
    const rec = (step: number, sPerStep: number): TrainRecord =>
      ({ tokens: base.batch * base.trainTokens, tokensPerSec: (base.batch * base.trainTokens) / sPerStep, step }) as unknown as TrainRecord;
    const records = [rec(1, 3), rec(2, 5)];
    const m = measureSpeed(base, records, null, prior)!;
    assert.equal(m.source, 'measured');
    // the two steps took 8 s: the estimate of 2 steps at the measured speed is 8 s
    assert.ok(Math.abs(estimateRun({ ...base, steps: 2 }, m).parts.train - 8) < 1e-9);
    assert.equal(measureSpeed(base, [], null, prior), null);
    const st = memoryStorage();
    const inputs: EstimateInputs = {
      model: {
        info: {
          modelId: 'whisper-base',
          backendReason: 'WGSL matmul probe: GPU tiles 80.0 ms, CPU-tuned 40.0 ms',
          summary: { dModel: 512, layers: 6, vocab: 51865 },
        },
      },
      gpu: { caps: { adapter: { vendor: 'mesa', architecture: 'llvmpipe', description: '' } } },
      datasets: [{ role: 'train', utts: [{ text: 'hola my friend' }] }],
    };
    assert.equal(studioSpeed(inputs, st).source, 'probe'); // nothing measured yet: the probe
    assert.ok(Math.abs(studioSpeed(inputs, st).train - speedFromProbe(40).train) < 1e-6);
    saveSpeed(speedKey('mesa llvmpipe', 'whisper-base'), m, st);
    assert.deepEqual(loadSpeed(speedKey('mesa llvmpipe', 'whisper-base'), st), m);
    assert.equal(studioSpeed(inputs, st).source, 'measured');
    // another model on the same adapter: not measured
    assert.equal(studioSpeed({ ...inputs, model: { info: { ...inputs.model.info!, modelId: 'whisper-small' } } }, st).source, 'probe');
    // no probe line and a software adapter: assumed, and said so
    const none = studioSpeed(
      { ...inputs, model: { info: { ...inputs.model.info!, modelId: 'whisper-tiny', backendReason: 'llvmpipe' } } },
      st,
    );
    assert.equal(none.source, 'assumed');
    assert.deepEqual(none, assumedSpeed('software'));
  });

  test('the studio shape: tokens from transcripts, eval sets counted, no training data → null', () => {
    const cfg = defaultExperiment();
    const inputs: EstimateInputs = {
      model: { info: { modelId: 'm', backendReason: '', summary: { dModel: 384, layers: 4, vocab: 51865 } } },
      gpu: {},
      datasets: [
        { role: 'train', utts: [{ text: 'x'.repeat(35) }, { text: 'x'.repeat(7) }] },
        { role: 'new', utts: [{ text: 'x'.repeat(35) }] },
        { role: 'base', utts: [{ text: 'x'.repeat(35) }] },
      ],
    };
    const s = studioShape(inputs, cfg)!;
    assert.equal(s.trainTokens, 5 + 10); // the longer half: 35 characters / 3.5 + prompt and EOT
    assert.equal(s.utterances, 4);
    assert.equal(s.evalUtterances, 2);
    assert.equal(s.evalTokens, 11);
    assert.equal(s.dims.F, 4 * 384);
    assert.equal(studioShape({ ...inputs, datasets: inputs.datasets.slice(1) }, cfg), null);
  });
});

describe('plain-language summaries', () => {
  const ev = (step: number, role: 'new' | 'base', wer: number): EvalRecord => ({
    kind: 'eval',
    step,
    set: role,
    role,
    wer,
    utterances: 4,
    backend: 'engine',
  });
  const run = (id: string, method: 'lora' | 'blora', beta: number, werBase: number, werNew: number): RunState => {
    const config = defaultExperiment();
    config.method = method;
    config.adapter.beta = beta;
    return {
      id,
      name: id,
      config,
      createdAt: 0,
      status: 'done',
      train: [],
      evals: [ev(0, 'base', 0.33), ev(0, 'new', 0.98), ev(10, 'base', werBase), ev(10, 'new', werNew)],
      data: { train: [{ key: 'a' }, { key: 'b' }] } as unknown as RunState['data'],
    };
  };

  test('the Run view sentence', () => {
    assert.equal(
      runSentence(run('l', 'lora', 0, 0.5, 0.51)),
      'LoRA: base-domain WER 33 → 50 % (forgot 17 points); new-domain WER 98 → 51 %.',
    );
  });

  test('the Compare view sentence: BLoRA forgot less and learned as well; learned less; neither learned; LoRA did not forget; no LoRA run', () => {
    const s = compareSentence([run('l', 'lora', 0, 0.5, 0.51), run('b', 'blora', 0.01, 0.38, 0.52)]);
    assert.ok(s?.endsWith('BLoRA β 0.01 forgot 12 points less than LoRA, and it learned the new domain as well.'), s ?? 'null');
    const worse = compareSentence([run('l', 'lora', 0, 0.5, 0.3), run('b', 'blora', 0.01, 0.38, 0.6)]);
    assert.ok(worse?.includes('but learned the new domain less (60 vs 30 %)'), worse ?? 'null');
    // the demo's case: LoRA forgot and got worse on the new domain, BLoRA kept both where they were
    const neither = compareSentence([run('l', 'lora', 0, 0.5, 1.05), run('b', 'blora', 10, 0.33, 0.98)]);
    assert.ok(
      neither?.endsWith(
        'BLoRA β 10 forgot 17 points less than LoRA; neither learned the new domain here (new-domain WER 98 % frozen, 105 % LoRA, 98 % BLoRA β 10): few training clips show the forgetting, not the learning.',
      ),
      neither ?? 'null',
    );
    const none = compareSentence([run('l', 'lora', 0, 0.33, 0.5), run('b', 'blora', 0.01, 0.33, 0.5)]);
    assert.ok(none?.includes('LoRA did not forget here'), none ?? 'null');
    assert.equal(compareSentence([run('b', 'blora', 0.01, 0.38, 0.52)]), null);
  });
});

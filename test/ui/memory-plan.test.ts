/**
 * The studio's memory plan (src/ui/memoryPlan.ts) from what the UI knows before a run: the model's
 * config (ModelInfo summary + decoderConfig), the experiment, the datasets (utterances the K/V cache will
 * hold, longest transcript), the adapter's limits or WebGPU's defaults, and the budget setting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kvCacheBytesPerUtterance } from '../../src/engine/memory-plan';
import { defaultExperiment } from '../../src/train/config';
import { studioPlan } from '../../src/ui/memoryPlan';
import type { DatasetEntry, StudioState } from '../../src/ui/store';
import type { ModelInfo } from '../../src/worker/protocol';

const info = {
  summary: { layers: 6, dModel: 512, vocab: 51865, melBins: 80, multilingual: true, languages: 99 },
  decoderConfig: { heads: 8, ffn: 2048, positions: 448 },
} as ModelInfo;
const set = (role: DatasetEntry['role'], n: number, text = 'hola mundo hello world'): DatasetEntry =>
  ({
    id: role,
    name: role,
    role,
    issues: [],
    status: 'ready',
    utts: Array.from({ length: n }, (_, i) => ({ id: `${i}`, audio: `${i}.wav`, text, status: 'encoded' })),
  }) as DatasetEntry;

test('studio plan: model config, datasets, limits, budget', () => {
  const cfg = defaultExperiment();
  const state = (datasets: DatasetEntry[]): Pick<StudioState, 'model' | 'datasets' | 'gpu'> => ({
    model: { status: 'ready', info },
    datasets,
    gpu: { status: 'none' },
  });
  assert.equal(studioPlan({ model: { status: 'idle' }, datasets: [], gpu: { status: 'none' } }, cfg), null, 'no model: no plan');
  const p = studioPlan(state([set('train', 20), set('new', 3), set('base', 2)]), cfg, 4)!;
  assert.equal(p.utterances, 25, 'the K/V cache holds every train and eval utterance');
  assert.equal(p.kvBytesPerUtterance, kvCacheBytesPerUtterance({ C: 512, L: 6 }));
  assert.equal(p.tokens, 5 + Math.ceil('hola mundo hello world'.length / 2));
  assert.equal(p.limits.source, 'WebGPU defaults');
  assert.ok(p.fits && p.evalBytes > 0);
  // 0.5 GiB: does not fit; the fix is named (f16 storage, or fewer utterances)
  const small = studioPlan(state([set('train', 20), set('new', 3)]), cfg, 0.5)!;
  assert.equal(small.fits, false);
  assert.ok(small.fixes.length > 0 && !small.fixes[0].startsWith('no setting'), small.fixes.join('; '));
});

// CPU parts of the training data path and trainer helpers (seconds): tokenization with per-row
// errors, padded batches, the seeded sampler and its state, checkpoint bytes, sparsity/histogram.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { FsModelSource } from '../../src/model/source';
import { loadWhisperAssets, type WhisperAssets } from '../../src/model/whisperModel';
import {
  BatchSampler,
  MixSampler,
  makeBatch,
  prepareUtterances,
  tokenizeRow,
  WHISPER_MAX_SAMPLES,
  type PreparedUtterance,
} from '../../src/train/data';
import type { EncoderKvCache } from '../../src/engine/decoder';
import {
  adapterSparsity,
  decodeCheckpoint,
  encodeCheckpoint,
  muHistogram,
  scoreTranscripts,
  type Checkpoint,
} from '../../src/train/trainer';
import { planAdapters } from '../../src/engine/adapters';
import { defaultExperiment } from '../../src/train/config';
import { requireModel } from '../support/env';

let assets: WhisperAssets;
before(async () => {
  assets = await loadWhisperAssets(new FsModelSource(requireModel()));
});

test('tokenizeRow: prompt + " text" + EOT; rows without/with unknown language, empty or too long are errors', () => {
  const t = tokenizeRow({ id: 'a', audio: 'a.wav', text: 'I forgot my umbrella at the coffee shop again.', language: 'en' }, assets);
  assert.ok('seq' in t);
  // the Python oracle's greedy tokens of en_01 start 286 5298 452 (" I forgot my")
  assert.deepEqual(t.seq.slice(0, 7), [50258, 50259, 50359, 50363, 286, 5298, 452]);
  assert.equal(t.seq.at(-1), 50257);
  assert.equal(t.language, 'en');
  const err = (row: object, opts = {}) => {
    const r = tokenizeRow({ id: 'x', audio: 'x.wav', text: 'hola', ...row }, assets, opts);
    return 'error' in r ? r.error : '';
  };
  assert.match(err({}), /no language/);
  assert.equal(err({}, { language: 'es' }), '');
  assert.match(err({ language: 'xx' }), /Language "xx" is not one this model knows/);
  assert.match(err({ language: 'es', text: '   ' }), /empty transcript/);
  assert.match(err({ language: 'en', text: 'word '.repeat(500) }), /too long: \d+ tokens with the prompt > 448 decoder positions/);
});

test('makeBatch right-pads to S (EOT inputs, −100 labels) and counts the scored tokens', () => {
  const u = (id: string, seq: number[]): PreparedUtterance => ({ key: id, id, text: '', language: 'en', seq });
  const b = makeBatch([u('a', [1, 2, 3, 4]), u('b', [5, 6])], 4, 9);
  assert.deepEqual(Array.from(b.inputIds), [1, 2, 3, 9, 5, 9, 9, 9]);
  assert.deepEqual(Array.from(b.labels), [2, 3, 4, -100, 6, -100, -100, -100]);
  assert.deepEqual(b.lengths, [3, 1]);
  assert.equal(b.tokens, 4);
  assert.deepEqual(b.utterances, ['a', 'b']);
  assert.throws(() => makeBatch([u('c', [1, 2, 3, 4, 5, 6])], 4, 9), /5 input tokens > S = 4/);
});

test('BatchSampler: seeded per-epoch permutations across epoch boundaries; state restores the stream', () => {
  const s1 = new BatchSampler(5, 3, 42);
  const draws = Array.from({ length: 6 }, () => s1.next());
  const flat = draws.flat();
  for (let e = 0; e < 3; e++) assert.deepEqual([...flat.slice(5 * e, 5 * e + 5)].sort(), [0, 1, 2, 3, 4], `epoch ${e} is a permutation`);
  assert.notDeepEqual(flat.slice(0, 5), flat.slice(5, 10), 'epochs are shuffled differently');
  const s2 = new BatchSampler(5, 3, 42);
  assert.deepEqual(
    Array.from({ length: 6 }, () => s2.next()),
    draws,
    'same seed, same order',
  );
  const s3 = new BatchSampler(5, 3, 42);
  s3.next();
  s3.next();
  const st = s3.state;
  const rest = Array.from({ length: 4 }, () => s3.next());
  const s4 = new BatchSampler(5, 3, 7);
  s4.state = st;
  assert.notDeepEqual(new BatchSampler(5, 3, 7).next(), draws[0]);
  const s5 = new BatchSampler(5, 3, 42);
  s5.state = st;
  assert.deepEqual(
    Array.from({ length: 4 }, () => s5.next()),
    rest,
  );
});

test('MixSampler (data.trainMix): each slot draws its set with its probability; own streams; state restores; one set = BatchSampler', () => {
  const sizes = [5, 3, 4];
  const ps = [0.5, 0.3, 0.2];
  const m = new MixSampler(sizes, ps, 4, 9);
  const counts = [0, 0, 0];
  const seen: number[][] = [[], [], []];
  for (let k = 0; k < 2500; k++) {
    for (const i of m.next()) {
      const set = i < 5 ? 0 : i < 8 ? 1 : 2;
      counts[set]++;
      seen[set].push(i);
      assert.ok(Number.isInteger(i) && i >= 0 && i < 12, `index ${i}`);
    }
  }
  counts.forEach((c, i) => assert.ok(Math.abs(c / 10000 - ps[i]) < 0.02, `set ${i}: ${c / 10000} of the draws, p ${ps[i]}`));
  // each set's draws are its own epochs: every index once per epoch of that set
  seen.forEach((xs, i) => {
    const first = xs.slice(0, sizes[i]).sort((a, b) => a - b);
    assert.deepEqual(
      first,
      Array.from({ length: sizes[i] }, (_, j) => j + [0, 5, 8][i]),
      `set ${i}: first epoch`,
    );
  });
  // the state (draws + each set's position) continues the stream exactly
  const a = new MixSampler(sizes, ps, 4, 9);
  for (let k = 0; k < 7; k++) a.next();
  const b = new MixSampler(sizes, ps, 4, 9);
  b.state = JSON.parse(JSON.stringify(a.state));
  for (let k = 0; k < 5; k++) assert.deepEqual(b.next(), a.next());
  // one set: the same order as BatchSampler (its stream, B at a time)
  const one = new MixSampler([6], [1], 4, 3);
  const bs = new BatchSampler(6, 4, 3);
  for (let k = 0; k < 5; k++) assert.deepEqual(one.next(), bs.next());
  assert.throws(() => new MixSampler([2, 2], [0.5, 0.6], 2, 0), /sum to 1/);
});

test('checkpoint bytes round-trip; sparsity and log10|μ| histogram; WER per language group', () => {
  const plan = planAdapters(
    { C: 8, H: 2, D: 4, F: 16, L: 2, V: 10, NP: 8 },
    { kind: 'blora', r: 2, alpha: 4, dropout: 0, targets: ['fc1'], seed: 0 },
  );
  const theta = Float32Array.from({ length: plan.size }, (_, i) => (i % 3 === 0 ? 0 : 10 ** -(i % 7)));
  const ck: Checkpoint = {
    format: 'blora-studio-checkpoint',
    version: 1,
    step: 3,
    theta,
    m: theta.map((x) => x / 2),
    v: theta.map((x) => x * x),
    sampler: { epoch: 1, pos: 2 },
    config: defaultExperiment(),
    elapsedS: 1.5,
  };
  const back = decodeCheckpoint(encodeCheckpoint(ck));
  assert.deepEqual(back, ck);
  assert.throws(() => decodeCheckpoint(new Uint8Array(16)), /checkpoint|safetensors/);
  const sp = adapterSparsity(plan, theta);
  let za = 0,
    na = 0;
  for (const m of plan.modules)
    for (let i = m.off.muA; i < m.off.muA + 2 * m.nIn; i++) ((na += 1), (za += Math.abs(theta[i]) < 1e-3 ? 1 : 0));
  assert.equal(sp.a, za / na);
  const h = muHistogram(plan, theta, { lo: -8, hi: 1, binsPerDecade: 1 });
  assert.equal(h.edges.length, 10);
  const muCount = plan.modules.reduce((n, m) => n + 2 * m.nIn + 2 * m.nOut, 0);
  assert.equal(h.a.reduce((x, y) => x + y, 0) + h.b.reduce((x, y) => x + y, 0), muCount);
  const s = scoreTranscripts([
    { id: '1', language: 'en', reference: 'the cat sat', hypothesis: 'the cat sat' },
    { id: '2', language: 'es', reference: 'hola amigo mío', hypothesis: 'hola amigo' },
  ]);
  assert.equal(s.wer, 1 / 6);
});

test('prepareUtterances rejects a clip over 30 s with its duration, before any encoding', async () => {
  // Only the rejection path runs: reaching the cache or the encoder would be the bug, so both throw.
  const never = (what: string) => () => {
    throw new Error(`${what} reached for a clip over 30 s`);
  };
  const cache = { has: never('cache.has'), add: never('cache.add') } as unknown as EncoderKvCache;
  const r = await prepareUtterances([{ id: 'long', audio: 'long.wav', text: 'hello there', language: 'en' }], {
    assets,
    cache,
    encode: never('encode'),
    readAudio: async () => new Float32Array(WHISPER_MAX_SAMPLES + 16000),
  });
  assert.equal(r.utterances.length, 0);
  assert.equal(r.errors.length, 1);
  assert.match(r.errors[0].message, /31\.0 s of audio: longer than Whisper's 30-s window/);
  assert.equal(r.errors[0].audio, 'long.wav');
});

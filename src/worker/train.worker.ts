// The training worker: owns the WebGPU device (navigator.gpu inside the worker), the frozen decoder
// weights, the cross-attention K/V cache and the Trainer (src/train/trainer.ts); streams metric
// records to the UI, persists a checkpoint to IndexedDB every step (at most every CHECKPOINT_EVERY_S
// seconds) so a reload resumes, and exports adapters. The UI thread never blocks on training.
/// <reference lib="webworker" />
import '../runtime/transformersEnv.browser';
import { requestBestAdapter } from '../gpu/adapter';
import { acquireDevice, type GpuContext } from '../gpu/device';
import { probeRegisterTiled } from '../gpu/probe-variant';
import { GpuRuntime } from '../gpu/runtime';
import { EncoderKvCache } from '../engine/decoder';
import { uploadDecoderWeights, type DecoderWeights } from '../engine/weights';
import { exportAdapter as exportPeft } from '../export/peft';
import { pruneBySnr } from '../export/prune';
import { formatMiB, loadDecoderWeights } from '../model/decoder-weights';
import { SafetensorsFile, type TensorSource } from '../model/safetensors';
import type { ModelSource } from '../model/source';
import { loadWhisperAssets, type WhisperAssets } from '../model/whisperModel';
import type { EvalRecord, EvalRole, ExperimentConfig, TrainRecord } from '../train/config';
import { tokenizeRow, type PreparedUtterance } from '../train/data';
import {
  type Checkpoint,
  DEFAULT_MAX_RECOVERIES,
  encodeCheckpoint,
  pickCheckpoint,
  Trainer,
  type TrainerTestFaults,
  trainWithRecovery,
} from '../train/trainer';
import { encoderCacheKey, idbAtomic, idbGet, idbPut } from './idb';
import type { EvalTranscript, FromTrain, RunData, ToTrain, UttRef } from './train-protocol';
import { baseModelOf, modelSource, weightsRequest } from './model-source';

declare const self: DedicatedWorkerGlobalScope;
const post = (m: FromTrain) => self.postMessage(m);

/** Persist a checkpoint after a step when the last one is older than this (and always at eval steps / the end). */
const CHECKPOINT_EVERY_S = 10;

interface Model {
  id: string;
  ctx: GpuContext;
  rt: GpuRuntime;
  assets: WhisperAssets;
  weights: DecoderWeights;
  cache: EncoderKvCache;
  /** what an exported adapter names as its base model */
  baseModel: string;
}

let model: Model | null = null;
let modelLoading: Promise<Model> | null = null;
let trainer: { runId: string; t: Trainer } | null = null;
/**
 * The active run's config with its live β changes (adapter.betaSchedule): what a rebuild after a lost device
 * starts from (its checkpoint may be older than the last change).
 */
let liveConfig: { runId: string; config: ExperimentConfig } | null = null;
let control: 'run' | 'pause' | 'stop' = 'run';
/** read through a function: TypeScript would otherwise narrow `control` across awaits */
const ctl = () => control;
/** the run whose training loop is active (exports of other runs wait for it) */
let activeRun: string | null = null;
let wake: (() => void) | null = null;
/** serialises GPU work between the training loop and export requests */
let gpuChain: Promise<unknown> = Promise.resolve();
/**
 * Faults the E2E test injects (test/e2e/studio-faults.test.ts): null — every 'test-fault' refused — unless the
 * page was opened with ?test-hooks=1 and said so ('test-hooks' message). Never set in normal use.
 */
let testFaults: (TrainerTestFaults & { destroyAtStep?: number; pauseBeforeStep?: number }) | null = null;

function gpuTask<T>(f: () => Promise<T>): Promise<T> {
  const p = gpuChain.then(f);
  gpuChain = p.catch(() => {});
  return p;
}

function sourceOf(data: RunData): ModelSource {
  return modelSource(data.model, self.location.origin, data.modelId.replace(/^files:/, ''));
}

/** Posterior samples Try it decodes a clip with when the run's experiment names none (BLoRA only). */
const TRY_POSTERIOR_SAMPLES = 4;

async function loadModel(data: RunData, stage: (s: string) => void): Promise<Model> {
  if (model && model.id === data.modelId) return model;
  if (modelLoading) return modelLoading;
  modelLoading = (async () => {
    const gpu = self.navigator.gpu;
    if (!gpu) {
      throw new Error(
        'WebGPU is missing in this browser (navigator.gpu is undefined), and training runs on WebGPU. Use Chrome/Edge 113+ ' +
          '(or Chromium with --enable-unsafe-webgpu). The frozen model still transcribes on the wasm backend (Demo clips).',
      );
    }
    const best = await requestBestAdapter(gpu);
    if (!best) throw new Error('WebGPU is present but offered no adapter; training needs one. The frozen model still transcribes on wasm.');
    stage('opening the WebGPU device');
    const ctx = await acquireDevice({
      featureLevel: best.level,
      label: 'train-worker',
      onLost: (info) => {
        // A training run notices on its next GPU read and recovers in this worker (trainWithRecovery);
        // otherwise the UI restarts the worker. Either way the old model and trainer are gone with the device.
        model = null;
        if (!activeRun) trainer = null;
        if (!activeRun) post({ type: 'device-lost', runId: null, message: `GPU device lost (${info.reason}): ${info.message}` });
      },
    });
    const rt = new GpuRuntime(ctx.device);
    if (!rt.adapterKnown) {
      // The browser hides the adapter's vendor: time the two matmul variants instead (a CPU adapter such as
      // llvmpipe runs the register-tiled kernels 2.5–3.5× faster; results are bit-identical either way).
      stage('timing kernel variants on this adapter');
      const p = await probeRegisterTiled(rt);
      rt.setSoftwareAdapter(p.registerTiled);
      console.info(
        `[train-worker] adapter not disclosed; matmul main ${p.msMain.toFixed(1)} ms vs main_rt ${p.msRegisterTiled.toFixed(1)} ms → ${p.registerTiled ? 'CPU-tuned' : 'GPU'} kernels`,
      );
    }
    const source = sourceOf(data);
    stage('reading the model');
    const assets = await loadWhisperAssets(source);
    let st: TensorSource;
    if (assets.hasSafetensors && data.model.kind === 'url') {
      // The prepared default, served by the dev server: read whole (local; no second copy in the cache).
      const bytes = await source.read('model.safetensors', (l, t) =>
        stage(`reading model.safetensors ${(l / 2 ** 20).toFixed(0)}${t ? `/${(t / 2 ** 20).toFixed(0)}` : ''} MiB`),
      );
      st = new SafetensorsFile(bytes, 'model.safetensors');
    } else {
      // Only the decoder tensors: from the model's own model.safetensors, the weights the user named, or the
      // weights repo of src/model/hub.ts's table (onnx-community/* repos have none), cached per tensor in
      // Cache Storage so a reload resumes.
      stage('decoder weights: reading the safetensors header');
      st = await loadDecoderWeights({
        ...weightsRequest(data.model, assets, source),
        onProgress: (p) =>
          stage(
            `decoder weights ${formatMiB(p.loaded)} / ${formatMiB(p.total)} (${p.total ? Math.floor((100 * p.loaded) / p.total) : 100} %)` +
              `${p.rate > 0 ? `, ${formatMiB(p.rate)}/s` : ''}${p.etaS !== null && p.loaded < p.total ? `, ETA ${Math.ceil(p.etaS)} s` : ''}`,
          ),
      });
    }
    stage('uploading the decoder weights');
    const weights = uploadDecoderWeights(rt, st, assets.config.decoder_attention_heads);
    const cache = new EncoderKvCache(rt, weights);
    model?.cache.destroy();
    model = { id: data.modelId, ctx, rt, assets, weights, cache, baseModel: await baseModelOf(data.model, assets, source) };
    return model;
  })().finally(() => (modelLoading = null));
  return modelLoading;
}

/** The utterance's cross-attention K/V into the GPU cache, from its encoder states in IndexedDB. */
async function addKv(m: Model, data: RunData, u: UttRef): Promise<void> {
  if (m.cache.has(u.key)) return;
  const states = await idbGet<Float32Array>('encoder', encoderCacheKey(data.modelId, u.key));
  if (!states) throw new Error(`utterance ${u.id}: its encoder states are not in the cache (reload the dataset in the Data panel)`);
  await m.cache.add(u.key, states);
}

/** Tokenize references; with `kv`, also put the utterances' cross-attention K/V on the GPU. */
async function prepare(m: Model, data: RunData, utts: UttRef[], kv: boolean, stage: (s: string) => void): Promise<PreparedUtterance[]> {
  const out: PreparedUtterance[] = [];
  for (const [i, u] of utts.entries()) {
    const t = tokenizeRow({ id: u.id, audio: u.id, text: u.text, language: u.language }, m.assets);
    if ('error' in t) throw new Error(`utterance ${u.id}: ${t.error}`);
    if (kv && !m.cache.has(u.key)) {
      stage(`cross-attention keys/values ${i + 1}/${utts.length} (${u.id})`);
      await addKv(m, data, u);
    }
    out.push({ key: u.key, id: u.id, text: u.text, language: t.language, seq: t.seq });
  }
  return out;
}

/** A finished (or stopped) run's trainer at its last checkpoint, for export and Try it (no K/V of its data needed). */
async function runTrainer(runId: string, config: ExperimentConfig, data: RunData): Promise<Trainer> {
  const t = await createTrainer(runId, config, data, false, () => {});
  if (t.step === 0) {
    const ck = await loadCheckpoint(runId);
    if (ck) t.restore(ck);
  }
  return t;
}

async function createTrainer(
  runId: string,
  config: ExperimentConfig,
  data: RunData,
  kv: boolean,
  stage: (s: string) => void,
): Promise<Trainer> {
  if (trainer?.runId === runId) return trainer.t;
  const m = await loadModel(data, stage);
  trainer?.t.destroy();
  trainer = null;
  const train = await prepare(m, data, data.train, kv, stage);
  const evalSets = [];
  for (const s of data.eval) evalSets.push({ name: s.name, role: s.role, utterances: await prepare(m, data, s.utts, kv, stage) });
  const dev = data.dev?.length ? await prepare(m, data, data.dev, kv, stage) : undefined;
  stage('building the engine');
  const t = await Trainer.create(
    { rt: m.rt, weights: m.weights, cache: m.cache, assets: m.assets },
    config,
    { train, eval: evalSets, dev, trainSets: data.trainSets },
    {
      onRecord: (record) => {
        if (record.kind === 'train') trainRecords.get(runId)?.push(record as TrainRecord);
        post({ type: 'record', runId, record });
      },
      onProgress: (p) => p.phase === 'eval' && post({ type: 'status', runId, status: 'running', stage: p.message }),
    },
    { label: `run ${runId}`, baseModel: m.baseModel, testFaults: testFaults ?? undefined },
  );
  trainer = { runId, t };
  return t;
}

/**
 * The training records of the runs trained in this worker. They are saved next to each checkpoint (key
 * `${runId}|train`, written first): the UI stores its records a moment later, so a reload right after a
 * checkpoint would otherwise resume at step k without the record of step k.
 */
const trainRecords = new Map<string, TrainRecord[]>();
const recordsKey = (runId: string) => `${runId}|train`;
/** the generation before the newest (used when the newest does not verify) */
const previousKey = (runId: string) => `${runId}|prev`;

/**
 * The checkpoint as the newest generation, the newest so far becoming the previous one, and the records up
 * to it — one IndexedDB transaction: a full quota (StorageFullError: what to delete) leaves all as it was.
 */
async function saveCheckpoint(runId: string, ck: Checkpoint): Promise<void> {
  const recs = trainRecords.get(runId);
  const bytes = encodeCheckpoint(ck);
  await idbAtomic(
    'checkpoints',
    `the checkpoint of run ${runId} (step ${ck.step}, ${(bytes.byteLength / 2 ** 20).toFixed(1)} MiB)`,
    (s) => {
      if (recs)
        s.put(
          recs.filter((r) => r.step <= ck.step),
          recordsKey(runId),
        );
      const cur = s.get(runId);
      cur.onsuccess = () => {
        if (cur.result) s.put(cur.result, previousKey(runId));
        s.put(bytes, runId);
      };
    },
  );
  console.info(`[train-worker] checkpoint of ${runId} saved at step ${ck.step}`);
  post({ type: 'checkpoint', runId, step: ck.step });
}

/** The newest checkpoint generation of a run that verifies (checksum); a damaged one is reported and skipped. */
async function loadCheckpoint(runId: string): Promise<Checkpoint | null> {
  const got = pickCheckpoint([
    { name: `checkpoint of run ${runId}`, bytes: await idbGet<Uint8Array>('checkpoints', runId) },
    { name: `previous checkpoint of run ${runId}`, bytes: await idbGet<Uint8Array>('checkpoints', previousKey(runId)) },
  ]);
  for (const s of got?.skipped ?? []) {
    console.warn(`[train-worker] ${s}`);
    post({ type: 'status', runId, status: 'starting', stage: s });
  }
  return got?.ck ?? null;
}

/** What a frozen-model (step 0) evaluation depends on: the model, the eval sets' utterances, the decoding settings. */
async function frozenEvalKey(data: RunData, config: ExperimentConfig): Promise<string> {
  const what = JSON.stringify([
    data.modelId,
    config.eval.maxNewTokens,
    data.eval.map((s) => [s.name, s.role, s.utts.map((u) => [u.key, u.text, u.language ?? ''])]),
  ]);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(what)));
  return `frozen|${[...digest].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

interface FrozenEval {
  records: EvalRecord[];
  transcripts: Record<string, EvalTranscript[]>;
}

async function evaluate(runId: string, t: Trainer, data: RunData): Promise<void> {
  // Step 0 is the frozen model (ΔW = 0 for LoRA and BLoRA alike): the same for every run on these eval sets,
  // so it is computed once and reused — a β sweep or a LoRA baseline does not decode the eval sets again.
  const key = t.step === 0 ? await frozenEvalKey(data, t.config) : null;
  const cached = key ? await idbGet<FrozenEval>('evals', key) : undefined;
  if (cached) {
    post({ type: 'status', runId, status: 'running', stage: 'frozen-model WER reused from an earlier run on the same eval sets' });
    for (const record of cached.records) post({ type: 'record', runId, record });
    for (const [set, transcripts] of Object.entries(cached.transcripts)) post({ type: 'transcripts', runId, step: 0, set, transcripts });
    return;
  }
  const records = await t.evaluate();
  for (const [set, transcripts] of Object.entries(t.lastTranscripts)) post({ type: 'transcripts', runId, step: t.step, set, transcripts });
  if (key) await idbPut('evals', key, { records, transcripts: t.lastTranscripts } satisfies FrozenEval);
}

async function histogram(runId: string, t: Trainer): Promise<void> {
  const h = await t.histogram();
  post({ type: 'hist', runId, hist: { step: t.step, ...h } });
}

async function run(runId: string, config: ExperimentConfig, data: RunData, resume: boolean): Promise<void> {
  const t0 = performance.now();
  let lastKind = '';
  let lastAt = 0;
  const stage = (s: string) => {
    // Byte-progress callbacks fire per network chunk (thousands): post at most 4 per second per kind of
    // message, or the UI thread drowns in re-renders.
    const kind = s.replace(/[\d/.]+/g, '#');
    const now = performance.now();
    if (kind === lastKind && now - lastAt < 250) return;
    lastKind = kind;
    lastAt = now;
    console.info(`[train-worker ${((now - t0) / 1000).toFixed(1)} s] ${s}`);
    post({ type: 'status', runId, status: 'starting', stage: s });
  };
  control = 'run';
  trainRecords.set(runId, []);
  liveConfig = { runId, config };
  const t = await createTrainer(runId, config, data, true, stage);
  const steps = config.optim.steps;
  const interval = config.eval.interval;
  const isEvalStep = (s: number) => s === 0 || s === steps || (interval > 0 && s % interval === 0);
  // dev CE (a dataset of role dev, eval.devInterval > 0): every devInterval steps and at the end; with eval.select
  // 'dev-ce' the final evaluation and the export use the adapter of the lowest (the run's last checkpoint keeps the
  // last step's: a resumed run restarts the search there)
  const devEvery = data.dev?.length ? config.eval.devInterval : 0;
  const isDevStep = (s: number) => devEvery > 0 && (s % devEvery === 0 || s === steps);
  const devStep = async (tr: Trainer) => {
    await tr.devLoss();
    if (tr.step === steps) {
      const sel = tr.selectAdapter();
      if (sel !== tr.step) {
        // the stored checkpoint becomes the selected adapter: export and Try it read the run from it
        await saveCheckpoint(runId, await tr.checkpoint());
        post({
          type: 'status',
          runId,
          status: 'running',
          stage: `the adapter of step ${sel} (lowest dev CE ${tr.bestDev!.ce.toFixed(4)}) is the run's result`,
        });
      }
    }
  };
  if (resume) {
    const ck = await loadCheckpoint(runId);
    let saved: TrainRecord[] = [];
    if (ck) {
      t.restore(ck);
      saved = ((await idbGet<TrainRecord[]>('checkpoints', recordsKey(runId))) ?? []).filter((r) => r.step <= t.step);
      console.info(`[train-worker] ${runId} resumed from its checkpoint at step ${t.step}`);
    }
    trainRecords.set(runId, saved);
    liveConfig = { runId, config: t.config };
    post({ type: 'resumed', runId, step: t.step, records: saved, betaSchedule: t.config.adapter.betaSchedule });
    if (ck) post({ type: 'checkpoint', runId, step: t.step });
  }
  post({ type: 'status', runId, status: 'running', stage: `resumed at step ${t.step}` });
  // The UI dropped the eval records at the checkpoint's step (a reload may have cut that evaluation short).
  if (isDevStep(t.step) && t.step < steps) await gpuTask(() => devStep(t));
  if (isEvalStep(t.step)) await gpuTask(() => evaluate(runId, t, data));
  await gpuTask(() => histogram(runId, t));
  let lastSave = performance.now();
  await trainWithRecovery(t, steps, {
    maxRecoveries: DEFAULT_MAX_RECOVERIES,
    shouldContinue: async (tr) => {
      if (testFaults?.pauseBeforeStep === tr.step + 1) {
        testFaults.pauseBeforeStep = undefined; // once
        control = 'pause';
      }
      if (ctl() === 'pause') {
        await saveCheckpoint(runId, await tr.checkpoint());
        post({ type: 'status', runId, status: 'paused' });
        await new Promise<void>((res) => (wake = res));
        if (ctl() === 'run') post({ type: 'status', runId, status: 'running' });
      }
      // A line per step: the studio E2E acts on it (the tab's DOM can lag a whole step behind on a software adapter).
      if (ctl() !== 'stop') console.info(`[train-worker] ${runId}: step ${tr.step + 1} begins`);
      return ctl() !== 'stop';
    },
    shouldSave: (tr) => isEvalStep(tr.step) || (performance.now() - lastSave) / 1000 >= CHECKPOINT_EVERY_S,
    // NaN/Inf: trainWithRecovery keeps the trainer's rolled-back last good state as the run's checkpoint.
    save: async (ck) => {
      await saveCheckpoint(runId, ck);
      lastSave = performance.now();
    },
    load: () => loadCheckpoint(runId),
    afterStep: async (tr) => {
      if (isDevStep(tr.step) && ctl() !== 'stop') await gpuTask(() => devStep(tr));
      await gpuTask(() => histogram(runId, tr));
      if (isEvalStep(tr.step) && ctl() !== 'stop') await gpuTask(() => evaluate(runId, tr, data));
      if (tr.step === steps && config.eval.posteriorSamples > 0 && data.eval.length && ctl() !== 'stop') {
        await gpuTask(async () => {
          const result = await tr.uncertainty(config.eval.posteriorSamples, config.seed, (m) =>
            post({ type: 'status', runId, status: 'running', stage: m }),
          );
          post({ type: 'uncertainty', runId, result });
        });
      }
    },
    rebuild: async (lost, attempt) => {
      post({
        type: 'status',
        runId,
        status: 'starting',
        stage: `${lost.message}; recovering (${attempt} of at most ${DEFAULT_MAX_RECOVERIES}): new device, model and cache`,
      });
      model = null;
      trainer = null;
      return createTrainer(runId, liveConfig?.runId === runId ? liveConfig.config : config, data, true, stage);
    },
    onRecovered: async (tr, r) => {
      const saved = (trainRecords.get(runId) ?? []).filter((x) => x.step <= tr.step);
      trainRecords.set(runId, saved);
      post({ type: 'recovered', runId, step: tr.step, attempt: r.attempt, max: r.max, message: r.message, records: saved });
      post({ type: 'status', runId, status: 'running', stage: r.message });
      if (isEvalStep(tr.step)) await gpuTask(() => evaluate(runId, tr, data));
      await gpuTask(() => histogram(runId, tr));
      lastSave = performance.now();
    },
    exclusive: gpuTask,
    log: (m) => console.warn(`[train-worker] ${runId}: ${m}`),
  }).then(async ({ trainer: tr }) => {
    if (ctl() === 'stop') {
      await saveCheckpoint(runId, await tr.checkpoint());
      post({ type: 'status', runId, status: 'stopped' });
    } else post({ type: 'status', runId, status: 'done' });
  });
}

self.onmessage = async (ev: MessageEvent<ToTrain>) => {
  const msg = ev.data;
  switch (msg.type) {
    case 'start':
      activeRun = msg.runId;
      try {
        await run(msg.runId, msg.config, msg.data, msg.resume);
      } catch (e) {
        post({ type: 'status', runId: msg.runId, status: 'error', error: (e as Error).message });
      } finally {
        activeRun = null;
        if (testFaults) testFaults = {}; // faults are armed for one run
      }
      break;
    case 'pause':
      control = 'pause';
      break;
    case 'set-beta': {
      // From the next step not yet begun (Trainer.setBeta): a uniform of the KL kernels, no rebuild. The entry is
      // in the trainer's config, so every checkpoint from now on carries it; the UI keeps it in the run's config.
      const t = trainer?.runId === msg.runId ? trainer.t : null;
      try {
        if (!t || activeRun !== msg.runId)
          throw new Error('β can be changed while the run trains (not while it starts, recovers or after it ended)');
        const { entry, schedule } = t.setBeta(msg.beta);
        if (liveConfig?.runId === msg.runId) liveConfig = { runId: msg.runId, config: t.config };
        console.info(`[train-worker] ${msg.runId}: β = ${entry.beta} from step ${entry.step}`);
        post({ type: 'beta', runId: msg.runId, step: entry.step, beta: entry.beta, schedule });
      } catch (e) {
        post({
          type: 'beta',
          runId: msg.runId,
          step: 0,
          beta: msg.beta,
          schedule: t?.config.adapter.betaSchedule ?? [],
          error: (e as Error).message,
        });
      }
      break;
    }
    case 'test-hooks':
      testFaults ??= {};
      break;
    case 'test-fault': {
      // Only with ?test-hooks=1 (see testFaults): a fault armed for step `atStep` of the training run.
      if (!testFaults) {
        console.warn('[train-worker] test-fault refused: the page was not opened with ?test-hooks=1');
        break;
      }
      const f = testFaults;
      if (msg.fault === 'nan') f.nanLossAtStep = msg.atStep;
      else if (msg.fault === 'pause') f.pauseBeforeStep = msg.atStep;
      else {
        f.destroyAtStep = msg.atStep;
        f.afterBackward = (step) => {
          if (step !== f.destroyAtStep || !model) return;
          f.destroyAtStep = undefined; // once
          console.warn(`[train-worker] test hook: destroying the GPU device in step ${step}`);
          model.ctx.device.destroy();
        };
      }
      break;
    }
    case 'resume':
      control = 'run';
      wake?.();
      wake = null;
      break;
    case 'stop':
      control = 'stop';
      wake?.();
      wake = null;
      break;
    case 'try':
      try {
        if (activeRun && activeRun !== msg.runId)
          throw new Error(`run ${activeRun} is training; try clips on this run when it has finished (or stop it)`);
        const r = await gpuTask(async () => {
          const t = await runTrainer(msg.runId, msg.config, msg.data);
          const m = await loadModel(msg.data, () => {});
          await addKv(m, msg.data, { id: 'your clip', key: msg.clip.key, text: '' });
          // with the adapter's uncertainty: K posterior samples (the run's eval.posteriorSamples, else 4) for BLoRA
          const out = await t.tryUtterance(
            { key: msg.clip.key, language: msg.clip.language },
            msg.config.eval.posteriorSamples || TRY_POSTERIOR_SAMPLES,
          );
          return { step: t.step, ...out };
        });
        post({ type: 'tried', id: msg.id, ...r });
      } catch (e) {
        post({ type: 'request-error', id: msg.id, message: (e as Error).message });
      }
      break;
    case 'export':
      try {
        if (activeRun && activeRun !== msg.runId)
          throw new Error(`run ${activeRun} is training; export this run when it has finished (or stop it)`);
        const files = await gpuTask(async () => {
          const t = await runTrainer(msg.runId, msg.config, msg.data);
          const theta = await t.readTheta();
          const p = msg.config.method === 'blora' && msg.snr > 0 ? pruneBySnr(t.plan, theta, msg.snr) : { theta, pruned: 0, elements: 0 };
          const { adapter } = await t.exportAdapter(p.theta);
          let prunedWer: { set: string; role: EvalRole; wer: number; utterances: number }[] | undefined;
          if (msg.measure && p.pruned > 0) {
            // The WER the pruning costs: the eval sets decoded with the pruned means (their K/V first).
            const m = await loadModel(msg.data, () => {});
            for (const s of msg.data.eval) for (const u of s.utts) await addKv(m, msg.data, u);
            prunedWer = await t.evaluateValues(p.theta);
          }
          return { files: exportPeft(adapter), pruned: p.pruned, elements: p.elements, prunedWer };
        });
        post({ type: 'exported', id: msg.id, ...files });
      } catch (e) {
        post({ type: 'request-error', id: msg.id, message: (e as Error).message });
      }
      break;
  }
};

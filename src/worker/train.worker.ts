// The training worker: owns the WebGPU device (navigator.gpu inside the worker), the frozen decoder
// weights, the cross-attention K/V cache and the Trainer (src/train/trainer.ts); streams metric
// records to the UI, persists a checkpoint to IndexedDB every step (at most every CHECKPOINT_EVERY_S
// seconds) so a reload resumes, and exports adapters. The UI thread never blocks on training.
/// <reference lib="webworker" />
import '../runtime/transformersEnv.browser';
import { requestBestAdapter } from '../gpu/adapter';
import { acquireDevice, type GpuContext } from '../gpu/device';
import { GpuRuntime } from '../gpu/runtime';
import { EncoderKvCache } from '../engine/decoder';
import { uploadDecoderWeights, type DecoderWeights } from '../engine/weights';
import { exportAdapter as exportPeft, type AdapterExport } from '../export/peft';
import { SafetensorsFile } from '../model/safetensors';
import { hubModelSource, UrlModelSource, type ModelSource } from '../model/source';
import { loadWhisperAssets, type WhisperAssets } from '../model/whisperModel';
import type { ExperimentConfig } from '../train/config';
import { tokenizeRow, type PreparedUtterance } from '../train/data';
import { decodeCheckpoint, encodeCheckpoint, Trainer, TrainingDivergedError, type Checkpoint } from '../train/trainer';
import { encoderCacheKey, idbGet, idbPut } from './idb';
import type { FromTrain, RunData, ToTrain, UttRef } from './train-protocol';

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
}

let model: Model | null = null;
let modelLoading: Promise<Model> | null = null;
let trainer: { runId: string; t: Trainer } | null = null;
let control: 'run' | 'pause' | 'stop' = 'run';
/** read through a function: TypeScript would otherwise narrow `control` across awaits */
const ctl = () => control;
/** the run whose training loop is active (exports of other runs wait for it) */
let activeRun: string | null = null;
let wake: (() => void) | null = null;
/** serialises GPU work between the training loop and export requests */
let gpuChain: Promise<unknown> = Promise.resolve();

function gpuTask<T>(f: () => Promise<T>): Promise<T> {
  const p = gpuChain.then(f);
  gpuChain = p.catch(() => {});
  return p;
}

function sourceOf(data: RunData): ModelSource {
  const loc = data.model;
  if (loc.kind === 'url') return new UrlModelSource(new URL(loc.baseUrl, self.location.origin).href, loc.label);
  if (loc.kind === 'hub') return hubModelSource(loc.repoId, loc.revision);
  throw new Error('training needs a model served by URL or the Hub; a dropped folder cannot be reopened by the training worker yet');
}

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
        model = null;
        post({ type: 'device-lost', runId: activeRun, message: `GPU device lost (${info.reason}): ${info.message}` });
      },
    });
    const rt = new GpuRuntime(ctx.device);
    const source = sourceOf(data);
    stage('reading the model');
    const assets = await loadWhisperAssets(source);
    if (!assets.hasSafetensors) throw new Error(`${source.label}: model.safetensors is missing; the WGSL engine trains from it`);
    const bytes = await source.read('model.safetensors', (l, t) => stage(`reading model.safetensors ${(l / 2 ** 20).toFixed(0)}${t ? `/${(t / 2 ** 20).toFixed(0)}` : ''} MiB`));
    stage('uploading the decoder weights');
    const weights = uploadDecoderWeights(rt, new SafetensorsFile(bytes, 'model.safetensors'), assets.config.decoder_attention_heads);
    const cache = new EncoderKvCache(rt, weights);
    model?.cache.destroy();
    model = { id: data.modelId, ctx, rt, assets, weights, cache };
    return model;
  })().finally(() => (modelLoading = null));
  return modelLoading;
}

/** Tokenize references; with `kv`, also put the utterances' cross-attention K/V on the GPU. */
async function prepare(m: Model, data: RunData, utts: UttRef[], kv: boolean, stage: (s: string) => void): Promise<PreparedUtterance[]> {
  const out: PreparedUtterance[] = [];
  for (const [i, u] of utts.entries()) {
    const t = tokenizeRow({ id: u.id, audio: u.id, text: u.text, language: u.language }, m.assets);
    if ('error' in t) throw new Error(`utterance ${u.id}: ${t.error}`);
    if (kv && !m.cache.has(u.key)) {
      stage(`cross-attention keys/values ${i + 1}/${utts.length} (${u.id})`);
      const states = await idbGet<Float32Array>('encoder', encoderCacheKey(data.modelId, u.key));
      if (!states) throw new Error(`utterance ${u.id}: its encoder states are not in the cache (reload the dataset in the Data panel)`);
      await m.cache.add(u.key, states);
    }
    out.push({ key: u.key, id: u.id, text: u.text, language: t.language, seq: t.seq });
  }
  return out;
}

async function createTrainer(runId: string, config: ExperimentConfig, data: RunData, kv: boolean, stage: (s: string) => void): Promise<Trainer> {
  if (trainer?.runId === runId) return trainer.t;
  const m = await loadModel(data, stage);
  trainer?.t.destroy();
  trainer = null;
  const train = await prepare(m, data, data.train, kv, stage);
  const evalSets = [];
  for (const s of data.eval) evalSets.push({ name: s.name, role: s.role, utterances: await prepare(m, data, s.utts, kv, stage) });
  stage('building the engine');
  const t = await Trainer.create({ rt: m.rt, weights: m.weights, cache: m.cache, assets: m.assets }, config, { train, eval: evalSets }, {
    onRecord: (record) => post({ type: 'record', runId, record }),
    onProgress: (p) => p.phase === 'eval' && post({ type: 'status', runId, status: 'running', stage: p.message }),
  }, { label: `run ${runId}`, baseModel: 'openai/whisper-base' });
  trainer = { runId, t };
  return t;
}

async function saveCheckpoint(runId: string, ck: Checkpoint): Promise<void> {
  await idbPut('checkpoints', runId, encodeCheckpoint(ck));
  post({ type: 'checkpoint', runId, step: ck.step });
}

async function evaluate(runId: string, t: Trainer): Promise<void> {
  await t.evaluate();
  for (const [set, transcripts] of Object.entries(t.lastTranscripts)) post({ type: 'transcripts', runId, step: t.step, set, transcripts });
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
  const t = await createTrainer(runId, config, data, true, stage);
  const steps = config.optim.steps;
  const interval = config.eval.interval;
  const isEvalStep = (s: number) => s === 0 || s === steps || (interval > 0 && s % interval === 0);
  if (resume) {
    const bytes = await idbGet<Uint8Array>('checkpoints', runId);
    if (bytes) {
      t.restore(decodeCheckpoint(bytes, `checkpoint of run ${runId}`));
      post({ type: 'checkpoint', runId, step: t.step });
    }
  }
  post({ type: 'status', runId, status: 'running', stage: `resumed at step ${t.step}` });
  // The UI dropped the eval records at the checkpoint's step (a reload may have cut that evaluation short).
  if (isEvalStep(t.step)) await gpuTask(() => evaluate(runId, t));
  await gpuTask(() => histogram(runId, t));
  let lastSave = performance.now();
  while (t.step < steps) {
    if (ctl() === 'pause') {
      await saveCheckpoint(runId, await t.checkpoint());
      post({ type: 'status', runId, status: 'paused' });
      await new Promise<void>((res) => (wake = res));
      if (ctl() === 'run') post({ type: 'status', runId, status: 'running' });
    }
    if (ctl() === 'stop') break;
    try {
      await gpuTask(() => t.trainStep());
    } catch (e) {
      // NaN/Inf: the trainer rolled back; keep that last good state as the run's checkpoint.
      if (e instanceof TrainingDivergedError) await saveCheckpoint(runId, e.lastGood);
      throw e;
    }
    await gpuTask(() => histogram(runId, t));
    const evalNow = isEvalStep(t.step);
    if (evalNow || t.step === steps || (performance.now() - lastSave) / 1000 >= CHECKPOINT_EVERY_S) {
      await saveCheckpoint(runId, await t.checkpoint());
      lastSave = performance.now();
    }
    if (evalNow && ctl() !== 'stop') await gpuTask(() => evaluate(runId, t));
  }
  if (ctl() === 'stop') {
    await saveCheckpoint(runId, await t.checkpoint());
    post({ type: 'status', runId, status: 'stopped' });
  } else post({ type: 'status', runId, status: 'done' });
}

/** Zero μ elements with |μ|/σ < snr (σ = softplus(ρ), exp(ρ) below −20); returns the fraction zeroed. */
function pruneBySnr(a: AdapterExport, snr: number): { pruned: number; elements: number } {
  let z = 0, n = 0;
  const sigma = (r: number) => (r < -20 ? Math.exp(r) : Math.log1p(Math.exp(r)));
  for (const m of a.modules) {
    for (const [mu, rho] of [[m.A, m.rhoA], [m.B, m.rhoB]] as const) {
      n += mu.length;
      if (!rho || snr <= 0) continue;
      for (let i = 0; i < mu.length; i++) {
        if (Math.abs(mu[i]) / sigma(rho[i]) < snr) {
          mu[i] = 0;
          z++;
        }
      }
    }
  }
  return { pruned: n ? z / n : 0, elements: n };
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
      }
      break;
    case 'pause':
      control = 'pause';
      break;
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
    case 'export':
      try {
        if (activeRun && activeRun !== msg.runId) throw new Error(`run ${activeRun} is training; export this run when it has finished (or stop it)`);
        const stage = () => {};
        const files = await gpuTask(async () => {
          const t = await createTrainer(msg.runId, msg.config, msg.data, false, stage);
          if (trainer?.runId === msg.runId && t.step === 0) {
            const bytes = await idbGet<Uint8Array>('checkpoints', msg.runId);
            if (bytes) t.restore(decodeCheckpoint(bytes, `checkpoint of run ${msg.runId}`));
          }
          const { adapter } = await t.exportAdapter();
          const p = msg.config.method === 'blora' ? pruneBySnr(adapter, msg.snr) : { pruned: 0, elements: 0 };
          return { files: exportPeft(adapter), ...p };
        });
        post({ type: 'exported', id: msg.id, files: files.files, pruned: files.pruned, elements: files.elements });
      } catch (e) {
        post({ type: 'request-error', id: msg.id, message: (e as Error).message });
      }
      break;
  }
};

// `blora-studio train` (Node only): the studio's Trainer (src/train/trainer.ts) headless on WebGPU
// (Dawn). Reads experiment.json and/or flags (flags win), prepares the data (frozen encoder on
// onnxruntime-web wasm → cross K/V cache), evaluates before, trains with a progress bar, evaluates
// after, exports the adapter, and writes into --out:
//   metrics.jsonl      one TrainRecord / EvalRecord per line (src/train/config.ts)
//   transcripts.jsonl  every eval utterance's reference and hypothesis per evaluation
//   experiment.json    the resolved config (re-run it with --config)
//   result.json        final metrics (WER before/after per set, forgetting, sparsity, KL, time, backend)
//   adapter/           adapter_model.safetensors + adapter_config.json (PEFT) [+ blora_posterior.safetensors]
//   checkpoint.safetensors, checkpoint.prev.safetensors   the newest two checkpoints (src/cli/checkpoints.ts);
//                      a lost GPU device is survived from them (src/train/trainer.ts trainWithRecovery)
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadAudio16k, WHISPER_WINDOW_SECONDS } from '../audio';
import { englishOnlyLanguage, languageToken } from '../decoder/generate';
import { type Dataset, directoryFiles, readDataset } from '../data/manifest';
import { WhisperEncoder } from '../encoder/encoder';
import { EncoderKvCache } from '../engine/decoder';
import { uploadDecoderWeights } from '../engine/weights';
import { LogMelExtractor } from '../features/logmel';
import { acquireDevice, type GpuContext, type NodeBackend } from '../gpu/device';
import { GpuRuntime } from '../gpu/runtime';
import {
  CachedHubSource,
  DecoderWeightsError,
  formatMiB,
  loadDecoderWeights,
  NodeFsByteCache,
  planDecoderFetch,
  type DecoderFetchPlan,
} from '../model/decoder-weights';
import { hubEndpoint, isHubRepoId } from '../model/hub';
import { SafetensorsError, SafetensorsFile, type TensorSource } from '../model/safetensors';
import { FsModelSource, ModelFileError, type ModelSource } from '../model/source';
import { loadWhisperAssets, type WhisperAssets } from '../model/whisperModel';
import {
  type DevRecord,
  type EvalRecord,
  type ExperimentConfig,
  ExperimentConfigError,
  parseExperiment,
  type TrainRecord,
  trainMixProbabilities,
} from '../train/config';
import { type PreparedUtterance, prepareUtterances } from '../train/data';
import {
  deltaWSparsity,
  Trainer,
  TrainingDivergedError,
  adapterSparsity,
  trainWithRecovery,
  type Recovery,
  type UncertaintyResult,
} from '../train/trainer';
import { RunFolderCheckpoints } from './checkpoints';
import { ProgressBar } from './progress';
import { isDevSplit } from '../metrics/experiment';

export class TrainUsageError extends Error {}

export const TRAIN_FLAGS = [
  'config',
  'model',
  'weights',
  'train',
  'train-limit',
  'eval-new',
  'eval-base',
  'eval-limit',
  'language',
  'name',
  'method',
  'targets',
  'layers',
  'r',
  'alpha',
  'dropout',
  'beta',
  'sigma-prior',
  'estimator',
  'rho-b-init',
  'kl-scale',
  'kl-log-eps',
  'freeze-rho',
  'bayesian-a-only',
  'lr',
  'weight-decay',
  'max-grad-norm',
  'steps',
  'batch',
  'grad-accum',
  'warmup',
  'schedule',
  'seed',
  'eval-interval',
  'max-new-tokens',
  'train-mix',
  'dev',
  'dev-limit',
  'dev-interval',
  'select',
  'posterior-samples',
  'out',
] as const;

export const TRAIN_HELP = `
  blora-studio train [--config experiment.json] [flags]
      Train a LoRA / BLoRA adapter on the WGSL engine (WebGPU via Dawn), evaluate WER before and
      after, export the adapter. Flags override the config file; missing values take the defaults
      of src/train/config.ts (README "Training").

Options (train):
  --config FILE        experiment.json (schema: src/train/config.ts; the studio's Export writes one)
  --model DIR|ID       model folder (transformers.js layout + model.safetensors; default: the prepared Whisper base)
                       or a Hub repo id (e.g. onnx-community/whisper-base): its ONNX encoder and config files are
                       downloaded into $BLORA_CACHE/hub, the decoder tensors alone from its weights repo
                       (src/model/hub.ts: onnx-community/whisper-small → openai/whisper-small)
  --weights REPO|FILE  where the decoder weights come from when the model has no model.safetensors: a Hub repo id
                       (e.g. openai/whisper-small), a model.safetensors file or a folder with it
  --train PATH         training set: a dataset folder (audiofolder metadata.csv, *.jsonl, Common Voice, Kaldi)
                       or a manifest file (metadata.csv / *.jsonl)
  --train-limit N      only the first N training utterances
  --train-mix PATH:P   another training set, drawn with probability P per utterance (repeatable; --train takes
                       the rest): e.g. replay of base-domain data; the authors interleave their training sets
  --eval-new PATH      new-domain eval set (repeatable)
  --eval-base PATH     base-domain eval set, where forgetting is measured (repeatable)
  --eval-limit N       only the first N utterances of each eval set
  --language CODE      language of rows without a "language" column (default: such rows are rejected)
  --name NAME          run name (default: from the config, "blora")
  --method lora|blora  (default blora)
  --targets LIST       comma list of decoder Linears: self_attn.{q,k,v,out}_proj, encoder_attn.{q,k,v,out}_proj,
                       fc1, fc2 (default self_attn.q_proj,self_attn.v_proj,encoder_attn.q_proj,encoder_attn.v_proj:
                       the authors' q_proj,v_proj in the decoder's self- and cross-attention)
  --layers LIST        comma list of decoder layers carrying adapters (default: all)
  --r N                rank (default 32)          --alpha X        scaling α, s = α/r (default 64)
  --dropout P          adapter input dropout (default 0.05)
  --beta X             KL weight β on the mean CE (default 1e-4 / grad-accum)  --sigma-prior X  prior σ_p (default 0.01)
  --kl-scale X         the authors' kl_scale instead of --beta: β = X / grad-accum (continual-asr default 1e-4)
  --kl-log-eps X       ε in the KL's log(σ + ε): 0 = exact (default), the authors' code 1e-6
  --freeze-rho true|false  ρ (σ) not trained, μ only (default false; the authors' bf16 adapters never move ρ)
  --estimator E        flipout|bbb|lrt (default flipout)
  --rho-b-init I       uniform|constant: initial ρ_B U(−5.5, −4.5) like ρ_A (default: the paper's) or −50 (B noiseless at first)
  --bayesian-a-only true|false   only A is Bayesian (default false)
  --lr X               AdamW learning rate (default 1e-3)
  --weight-decay X     (default 5e-4)             --max-grad-norm X  global-norm clip, 0 = off (default 1)
  --steps N            optimizer steps (default 100)
  --batch N            utterances per micro-batch (default 8)
  --grad-accum N       micro-batches per optimizer step (default 1)
  --warmup N           linear warmup steps (default 10)
  --schedule S         inverse_sqrt|cosine|constant (default inverse_sqrt)
  --seed N             one seed for init, data order and adapter noise (default 0)
  --eval-interval N    evaluate every N steps (default 0: before and after only)
  --dev PATH           dev set for selection (repeatable): teacher-forced CE with the posterior means, no WER
  --dev-limit N        only the first N utterances of each dev set
  --dev-interval N     dev CE every N steps and at the end (default 0: none; the authors evaluate every 100)
  --select S           last|dev-ce: the adapter the run ends with — the last step's, or the lowest dev CE's
                       (the authors' load_best_model_at_end on eval_loss); default last
  --posterior-samples K  after training, decode every eval set with K posterior samples of the adapter too:
                       uncertainty per utterance (uncertainty.jsonl), AUROC for "has an error" and token ECE
                       per domain in result.json (default 0: off)
  --max-new-tokens N   greedy decoding cap in evaluation (default 128)
  --out DIR            output folder (default runs/<name>): metrics.jsonl, transcripts.jsonl, experiment.json,
                       result.json, adapter/

Environment: BLORA_WEBGPU_BACKEND=vulkan|gl-compat picks the Dawn backend (default: a hardware GPU
through the system Vulkan driver when one is found, else gl-compat = Mesa llvmpipe on the CPU).
HF_ENDPOINT: the Hub's address (default https://huggingface.co); HF_TOKEN: a token for gated / private repos;
BLORA_CACHE: where Hub downloads are kept (default ~/.cache/blora-studio; files under hub/<repo>/<rev>/<etag>/).
`;

type Opts = Record<string, string[]>;

/**
 * Numbers from flags, strictly: Number() would take "0x10", "1e3" for a step count, "" and " 12 ".
 * Counts are plain decimal digits; real values plain decimals with an optional exponent (1e-3).
 */
const INT_FLAGS: Record<string, number> = {
  // flag → least allowed value
  'train-limit': 1,
  'eval-limit': 1,
  layers: 0,
  r: 1,
  steps: 1,
  batch: 1,
  'grad-accum': 1,
  warmup: 0,
  seed: 0,
  'eval-interval': 0,
  'max-new-tokens': 1,
};
export function strictNumber(k: string, v: string, Err: new (m: string) => Error = TrainUsageError): number {
  if (k in INT_FLAGS) {
    const min = INT_FLAGS[k];
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
      throw new Err(`--${k} must be ${min > 0 ? 'a positive' : 'a non-negative'} integer (decimal digits), got "${v}"`);
    }
    return Number(v);
  }
  if (!/^(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v) || !Number.isFinite(Number(v))) {
    throw new Err(`--${k} must be a number${v.startsWith('-') ? ' ≥ 0' : ''}, got "${v}"`);
  }
  return Number(v);
}
const num = (k: string, v: string): number => strictNumber(k, v);
const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** A model argument: an existing folder (resolved), else a Hub repo id as given, else the path (reported missing later). */
function modelArg(resolved: string, given: string): string {
  return !existsSync(resolved) && isHubRepoId(given) ? given : resolved;
}

/** experiment.json (if any) with the flags applied, validated (errors name the key / flag). */
export function resolveConfig(opts: Opts): ExperimentConfig {
  let json: Record<string, any> = {};
  const cfgPath = opts.config?.[0];
  if (cfgPath) {
    if (!existsSync(cfgPath)) throw new TrainUsageError(`--config ${cfgPath}: no such file`);
    try {
      json = JSON.parse(readFileSync(cfgPath, 'utf8'));
    } catch (e) {
      throw new TrainUsageError(`--config ${cfgPath}: not JSON (${(e as Error).message})`);
    }
    // relative data/model paths in a config file are relative to the file
    const rel = (p: string) => (p && !p.startsWith('/') ? resolve(dirname(cfgPath), p) : p);
    if (json.data?.train) json.data.train = rel(json.data.train);
    if (Array.isArray(json.data?.eval)) for (const e of json.data.eval) if (e?.path) e.path = rel(e.path);
    if (Array.isArray(json.data?.dev)) for (const e of json.data.dev) if (e?.path) e.path = rel(e.path);
    if (Array.isArray(json.data?.trainMix)) for (const e of json.data.trainMix) if (e?.path) e.path = rel(e.path);
    if (json.model) json.model = modelArg(rel(json.model), json.model);
  }
  const set = (path: string[], v: unknown) => {
    let o = json;
    for (const k of path.slice(0, -1)) o = o[k] ??= {};
    o[path[path.length - 1]] = v;
  };
  const one = (k: string) => opts[k]?.[opts[k].length - 1];
  const flag = (k: string, path: string[], conv: (v: string) => unknown = (v) => num(k, v)) => {
    const v = one(k);
    if (v !== undefined) set(path, conv(v));
  };
  flag('model', ['model'], (v) => modelArg(resolve(v), v));
  flag('name', ['name'], String);
  flag('train', ['data', 'train'], (v) => resolve(v));
  flag('train-limit', ['data', 'trainLimit']);
  if (opts['train-mix']) {
    set(
      ['data', 'trainMix'],
      opts['train-mix'].map((v) => {
        const m = /^(.+):([0-9.eE+-]+)$/.exec(v);
        if (!m) throw new TrainUsageError(`--train-mix must be PATH:P (a probability), got "${v}"`);
        return { path: resolve(m[1]), p: num('train-mix', m[2]) };
      }),
    );
  }
  if (opts['eval-new'] || opts['eval-base']) {
    const ev = [
      ...(opts['eval-new'] ?? []).map((p) => ({ path: resolve(p), role: 'new' })),
      ...(opts['eval-base'] ?? []).map((p) => ({ path: resolve(p), role: 'base' })),
    ];
    set(['data', 'eval'], ev);
  }
  const evalLimit = one('eval-limit');
  if (evalLimit !== undefined) for (const e of json.data?.eval ?? []) e.limit = num('eval-limit', evalLimit);
  flag('method', ['method'], String);
  flag('targets', ['adapter', 'targets'], list);
  flag('layers', ['adapter', 'layers'], (v) => list(v).map((x) => num('layers', x)));
  flag('r', ['adapter', 'r']);
  flag('alpha', ['adapter', 'alpha']);
  flag('dropout', ['adapter', 'dropout']);
  // --beta and --kl-scale are two spellings of one value: a flag replaces the config's other spelling
  if (one('beta') !== undefined && json.adapter) delete json.adapter.klScale;
  if (one('kl-scale') !== undefined && json.adapter) delete json.adapter.beta;
  if (one('beta') !== undefined && one('kl-scale') !== undefined)
    throw new TrainUsageError('give --beta or --kl-scale, not both (β = kl-scale / grad-accum)');
  flag('beta', ['adapter', 'beta']);
  flag('kl-scale', ['adapter', 'klScale']);
  flag('kl-log-eps', ['adapter', 'klLogEps']);
  flag('freeze-rho', ['adapter', 'freezeRho'], (v) => {
    if (v !== 'true' && v !== 'false') throw new TrainUsageError(`--freeze-rho must be true or false, got "${v}"`);
    return v === 'true';
  });
  flag('sigma-prior', ['adapter', 'sigmaPrior']);
  flag('estimator', ['adapter', 'estimator'], String);
  flag('rho-b-init', ['adapter', 'rhoBInit'], String);
  flag('bayesian-a-only', ['adapter', 'bayesianAOnly'], (v) => {
    if (v !== 'true' && v !== 'false') throw new TrainUsageError(`--bayesian-a-only must be true or false, got "${v}"`);
    return v === 'true';
  });
  flag('lr', ['optim', 'lr']);
  flag('weight-decay', ['optim', 'weightDecay']);
  flag('max-grad-norm', ['optim', 'maxGradNorm']);
  flag('steps', ['optim', 'steps']);
  flag('batch', ['optim', 'batchSize']);
  flag('grad-accum', ['optim', 'gradAccum']);
  flag('warmup', ['optim', 'warmupSteps']);
  flag('schedule', ['optim', 'schedule'], String);
  flag('seed', ['seed']);
  flag('eval-interval', ['eval', 'interval']);
  if (opts.dev)
    set(
      ['data', 'dev'],
      opts.dev.map((p) => ({ path: resolve(p) })),
    );
  const devLimit = one('dev-limit');
  if (devLimit !== undefined) for (const e of json.data?.dev ?? []) e.limit = num('dev-limit', devLimit);
  flag('dev-interval', ['eval', 'devInterval']);
  flag('select', ['eval', 'select'], String);
  flag('posterior-samples', ['eval', 'posteriorSamples']);
  flag('max-new-tokens', ['eval', 'maxNewTokens']);
  try {
    return parseExperiment(json, cfgPath ?? 'flags');
  } catch (e) {
    if (e instanceof ExperimentConfigError) throw new TrainUsageError(e.message);
    throw e;
  }
}

/** A dataset folder or one manifest file inside it (other manifests of that folder ignored). */
export async function openDataset(
  path: string,
  what: string,
  Err: new (m: string) => Error = TrainUsageError,
): Promise<{ root: string; ds: Dataset; files: Awaited<ReturnType<typeof directoryFiles>> }> {
  if (!existsSync(path)) throw new Err(`${what} ${path}: no such file or folder`);
  const st = statSync(path);
  if (!st.isFile() && !st.isDirectory()) throw new Err(`${what} ${path}: neither a dataset folder nor a manifest file`);
  const isFile = st.isFile();
  const root = isFile ? dirname(path) : path;
  try {
    const files = await directoryFiles(root);
    if (isFile) {
      const keep = basename(path);
      const manifestLike = /(^|\/)(metadata\.csv|wav\.scp|[^/]*\.jsonl|[^/]*manifest[^/]*\.json|[^/]*\.tsv)$/i;
      if (!manifestLike.test(keep)) {
        throw new Err(
          `${what} ${path}: a file that is not a manifest (give the dataset folder, or its metadata.csv, *.jsonl, *manifest*.json, wav.scp or *.tsv)`,
        );
      }
      files.paths = files.paths.filter((p) => p === keep || !manifestLike.test(p));
    }
    return { root, ds: await readDataset(files), files };
  } catch (e) {
    if (e instanceof Err) throw e;
    throw new Err(`${what} ${path}: ${(e as Error).message}`);
  }
}

/** Row errors and the reader's warnings (manifest chosen among several, clips over 30 s, refused files), one line each. */
export function reportDataset(root: string, ds: Dataset, log: (s: string) => void): void {
  for (const w of ds.warnings) log(`warning: ${join(root, w.file)}${w.line ? `:${w.line}` : ''}: ${w.message}`);
  for (const e of ds.errors) log(`warning: ${join(root, e.file)}:${e.line}: ${e.message}`);
}

/**
 * --out checked before any long work (a bad one used to fail after training, losing the results):
 * not an existing file, and the nearest existing folder on its path writable. Nothing is created here.
 */
export function checkOutPath(out: string, flag: string, kind: 'folder' | 'file', Err: new (m: string) => Error = TrainUsageError): void {
  if (existsSync(out)) {
    const isDir = statSync(out).isDirectory();
    if (kind === 'folder' && !isDir) throw new Err(`${flag} ${out}: exists and is not a folder`);
    if (kind === 'file' && isDir) throw new Err(`${flag} ${out}: is a folder (give a file name)`);
  }
  let p = kind === 'file' ? dirname(out) : out;
  if (kind === 'file' && !existsSync(p)) throw new Err(`${flag} ${out}: the folder ${p} does not exist`);
  while (!existsSync(p)) p = dirname(p);
  if (!statSync(p).isDirectory()) throw new Err(`${flag} ${out}: ${p} is a file, not a folder`);
  try {
    accessSync(p, constants.W_OK);
  } catch {
    throw new Err(`${flag} ${out}: ${p} is not writable`);
  }
}

/** Adapter layers and --language against the model's config (read before the weights and the encoder load). */
function checkAgainstModel(cfg: ExperimentConfig, assets: WhisperAssets, language: string | null): void {
  const L = assets.config.decoder_layers;
  for (const l of cfg.adapter.layers ?? []) {
    if (!(Number.isInteger(l) && l >= 0 && l < L))
      throw new TrainUsageError(`--layers ${l}: this model has ${L} decoder layers (0…${L - 1})`);
  }
  if (language === null) return;
  try {
    if (assets.generation.is_multilingual) languageToken(assets, language);
    else englishOnlyLanguage(language);
  } catch (e) {
    throw new TrainUsageError(`--language ${language}: ${(e as Error).message}`);
  }
}

/** Dawn device: BLORA_WEBGPU_BACKEND, else a hardware GPU (system Vulkan driver) if any, else gl-compat. */
export async function pickNodeGpu(label: string): Promise<{ ctx: GpuContext; why: string }> {
  const env = process.env.BLORA_WEBGPU_BACKEND as NodeBackend | undefined;
  if (env) {
    if (env !== 'vulkan' && env !== 'gl-compat')
      throw new TrainUsageError(`BLORA_WEBGPU_BACKEND must be vulkan or gl-compat, got "${env}"`);
    return { ctx: await acquireDevice({ label, node: { backend: env } }), why: `BLORA_WEBGPU_BACKEND=${env}` };
  }
  try {
    const ctx = await acquireDevice({ label, node: { backend: 'vulkan', icd: 'system' } });
    const a = ctx.caps.adapter;
    const software =
      ctx.caps.isFallbackAdapter ||
      /swiftshader|llvmpipe|lavapipe|software|cpu/i.test(`${a.vendor} ${a.architecture} ${a.description} ${a.device}`);
    if (!software) return { ctx, why: 'hardware GPU found (system Vulkan driver)' };
    await ctx.destroy();
  } catch {
    /* no Vulkan driver: fall through to the CPU */
  }
  return {
    ctx: await acquireDevice({ label, node: { backend: 'gl-compat' } }),
    why: 'no hardware GPU: gl-compat (Mesa llvmpipe, the fastest software WebGPU here)',
  };
}

/**
 * The model and where its decoder weights come from, checked before any long work: a folder (as before),
 * or a Hub repo id whose config files are read now (small) and whose weights' headers are read now
 * (a few KB) — the ONNX encoder and the tensors download later, with progress bars.
 */
async function openModel(
  modelIn: string,
  weights: string | null,
  log: (s: string) => void,
): Promise<{
  model: string;
  hub: boolean;
  source: ModelSource;
  assets: WhisperAssets;
  plan: DecoderFetchPlan | null;
}> {
  const hub = !existsSync(modelIn) && isHubRepoId(modelIn);
  const model = hub ? modelIn : resolve(modelIn);
  if (weights && !existsSync(weights) && !isHubRepoId(weights) && !/^https?:\/\//.test(weights)) {
    throw new TrainUsageError(`--weights ${weights}: neither a file or folder here nor a Hub repo id (owner/name)`);
  }
  if (!hub) {
    if (!existsSync(model)) {
      throw new TrainUsageError(
        `--model ${model}: no such folder (run "npm run setup" for the default model, or give a Hub repo id such as onnx-community/whisper-base)`,
      );
    }
    if (!weights && !existsSync(join(model, 'model.safetensors'))) {
      throw new TrainUsageError(
        `--model ${model}: no model.safetensors (the WGSL engine reads the weights from it; tools/prepare_model.py writes it) — or name them with --weights <repo id|path to model.safetensors>`,
      );
    }
  }
  const source: ModelSource = hub ? new CachedHubSource(model, { cache: new NodeFsByteCache() }) : new FsModelSource(model);
  const fail = (e: unknown, flag: string): never => {
    if (e instanceof ModelFileError || e instanceof DecoderWeightsError) {
      throw new TrainUsageError(`${flag} ${flag === '--weights' ? weights : model}: ${e.message}`);
    }
    throw e;
  };
  if (hub) log(`model ${model} from the Hub at ${hubEndpoint()} (cache ${new NodeFsByteCache().root})`);
  const assets = await loadWhisperAssets(source).catch((e) => fail(e, '--model'));
  let plan: DecoderFetchPlan | null = null;
  if (hub || weights || !assets.hasSafetensors) {
    plan = await planDecoderFetch({ config: assets.config, model: source, modelId: hub ? model : null, weights }).catch((e) =>
      fail(e, weights ? '--weights' : '--model'),
    );
    log(
      `decoder weights from ${plan.from}: ${formatMiB(plan.tensorBytes)} of ${plan.dtypes.join('/')} tensors, ${formatMiB(plan.fetchBytes)} to download`,
    );
  }
  return { model, hub, source, assets, plan };
}

/** Byte progress as a ProgressBar in MiB (one decimal). */
function mibBar(total: number, label: string) {
  const m = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  const bar = new ProgressBar(m(total), `${label} (MiB)`);
  let last = -1;
  return (loaded: number, note = '') => {
    const v = m(loaded);
    if (v !== last) bar.update(v, note);
    last = v;
  };
}

export async function trainCommand(opts: Opts, defaultModel: string): Promise<void> {
  const cfg = resolveConfig(opts);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const weightsArg = opts.weights?.at(-1) ?? null;
  const language = opts.language?.at(-1) ?? null;
  // Everything a user can get wrong is checked before the model loads: a mistake must not cost the
  // encoding and the training, nor their results.
  const out = resolve(opts.out?.at(-1) ?? join('runs', cfg.name));
  checkOutPath(out, '--out', 'folder');
  const train = await openDataset(cfg.data.train, '--train');
  const evals: ({ cfg: ExperimentConfig['data']['eval'][number] } & Awaited<ReturnType<typeof openDataset>>)[] = [];
  for (const e of cfg.data.eval) evals.push({ cfg: e, ...(await openDataset(e.path, e.role === 'new' ? '--eval-new' : '--eval-base')) });
  const mixes: ({ cfg: NonNullable<ExperimentConfig['data']['trainMix']>[number] } & Awaited<ReturnType<typeof openDataset>>)[] = [];
  for (const m of cfg.data.trainMix ?? []) mixes.push({ cfg: m, ...(await openDataset(m.path, '--train-mix')) });
  const devs: ({ cfg: NonNullable<ExperimentConfig['data']['dev']>[number] } & Awaited<ReturnType<typeof openDataset>>)[] = [];
  for (const e of cfg.data.dev ?? []) devs.push({ cfg: e, ...(await openDataset(e.path, '--dev')) });
  const { model, hub, source, assets, plan } = await openModel(cfg.model ?? defaultModel, weightsArg, log);
  checkAgainstModel(cfg, assets, language);
  // A local model.safetensors is parsed (and its header validated) now, before the device and the encoder.
  let localWeights: TensorSource | null = null;
  if (!plan) {
    const file = join(model, 'model.safetensors');
    try {
      localWeights = new SafetensorsFile(new Uint8Array(readFileSync(file)), file);
    } catch (e) {
      if (e instanceof SafetensorsError) throw new TrainUsageError(`--model ${model}: ${e.message}`);
      throw e;
    }
  }
  const metricsPath = join(out, 'metrics.jsonl');
  const transcriptsPath = join(out, 'transcripts.jsonl');
  // The output folder is created only once the model, the data and the trainer are ready, so a failed
  // load leaves nothing behind (and a user's existing folder untouched); from then on what is written
  // stays, records as they come.
  let outReady = false;
  const ensureOut = () => {
    if (outReady) return;
    mkdirSync(join(out, 'adapter'), { recursive: true });
    writeFileSync(metricsPath, '');
    writeFileSync(transcriptsPath, '');
    writeFileSync(join(out, 'experiment.json'), JSON.stringify({ ...cfg, model }, null, 2) + '\n');
    outReady = true;
  };

  let { ctx, why } = await pickNodeGpu('blora-train');
  const a = ctx.caps.adapter;
  const adapterName = `${ctx.caps.backend}: ${a.vendor}/${a.architecture} ${a.description || a.device}${ctx.caps.isFallbackAdapter ? ' (fallback)' : ''}`;
  log(`WebGPU adapter ${adapterName} — ${why}`);
  let rt = new GpuRuntime(ctx.device);
  const tStart = performance.now();
  try {
    let st: TensorSource | null = localWeights;
    if (plan) {
      const bar = mibBar(plan.tensorBytes, `decoder weights ← ${plan.from}`);
      st = await loadDecoderWeights({
        config: assets.config,
        model: source,
        modelId: hub ? model : null,
        weights: weightsArg,
        cache: new NodeFsByteCache(),
        onProgress: (p) => bar(p.loaded, p.etaS !== null && p.rate > 0 ? `${formatMiB(p.rate)}/s` : ''),
      });
    }
    let weights = uploadDecoderWeights(rt, st!, assets.config.decoder_attention_heads);
    let cache = new EncoderKvCache(rt, weights);
    let encBar: ((loaded: number) => void) | null = null;
    let encoder = await WhisperEncoder.create(
      assets,
      'wasm',
      hub ? (loaded, total) => (encBar ??= mibBar(total ?? loaded, `${assets.encoderFile} ← ${source.label}`))(loaded) : undefined,
    );
    const mel = new LogMelExtractor(assets.preprocessor);
    type Opened = Awaited<ReturnType<typeof openDataset>>;
    const prepare = async ({ root, ds, files }: Opened, limit: number | undefined, label: string): Promise<PreparedUtterance[]> => {
      reportDataset(root, ds, log);
      const rows = ds.rows.slice(0, limit);
      const bar = new ProgressBar(rows.length, `prepare ${label} (encoder + cross K/V)`);
      const r = await prepareUtterances(rows, {
        assets,
        cache,
        language,
        // Through the dataset's reader: links out of the folder and pipes are refused at read time too.
        // Clips over Whisper's window are refused from the header, before they are decoded.
        readAudio: async (row) =>
          loadAudio16k(await files.readBytes(row.audio), join(root, row.audio), { maxSeconds: WHISPER_WINDOW_SECONDS }),
        encode: async (samples) => (await encoder.encode(await mel.compute(samples))).data,
        onProgress: (d) => bar.update(d),
      });
      if (!rows.length) bar.update(0);
      for (const e of r.errors)
        log(
          `warning: ${join(root, ds.manifest)}: row "${e.id}"${e.audio ? ` (${join(root, e.audio)})` : ''} skipped (${label}): ${e.message}`,
        );
      return r.utterances;
    };
    const prepareAll = async () => {
      const trainUtts = await prepare(train, cfg.data.trainLimit, 'train');
      if (!trainUtts.length) throw new TrainUsageError(`--train ${cfg.data.train}: no usable utterances (see the warnings above)`);
      // data.trainMix: the mixed-in sets after data.train, with their sizes and probabilities (MixSampler)
      const ps = trainMixProbabilities(cfg);
      const trainSets = [{ n: trainUtts.length, p: ps[0] }];
      for (const [i, m] of mixes.entries()) {
        const u = await prepare(m, m.cfg.limit, `train-mix ${basename(m.root) || m.root} (p ${m.cfg.p})`);
        if (!u.length) throw new TrainUsageError(`--train-mix ${m.cfg.path}: no usable utterances (see the warnings above)`);
        trainUtts.push(...u);
        trainSets.push({ n: u.length, p: ps[i + 1] });
      }
      const evalData = [];
      for (const e of evals) {
        const name = e.cfg.name ?? (basename(e.root) || e.root);
        evalData.push({ name, role: e.cfg.role, utterances: await prepare(e, e.cfg.limit, `${e.cfg.role} ${name}`) });
      }
      const devUtts: PreparedUtterance[] = [];
      for (const e of devs) devUtts.push(...(await prepare(e, e.cfg.limit, `dev ${e.cfg.name ?? (basename(e.root) || e.root)}`)));
      if (devs.length && !devUtts.length)
        throw new TrainUsageError(`--dev ${devs.map((d) => d.root).join(', ')}: no usable utterances (see the warnings above)`);
      await encoder.release();
      return { trainUtts, evalData, devUtts, trainSets };
    };
    const { trainUtts, evalData, devUtts, trainSets } = await prepareAll();

    const records: (TrainRecord | EvalRecord | DevRecord)[] = [];
    const makeTrainer = (d: Awaited<ReturnType<typeof prepareAll>>) =>
      Trainer.create(
        { rt, weights, cache, assets },
        cfg,
        { train: d.trainUtts, eval: d.evalData, dev: d.devUtts, trainSets: d.trainSets },
        {
          onRecord: (rec) => {
            ensureOut();
            records.push(rec);
            appendFileSync(metricsPath, JSON.stringify(rec) + '\n');
          },
        },
        { baseModel: model, label: 'train' },
      );
    let trainer = await makeTrainer({ trainUtts, evalData, devUtts, trainSets });
    ensureOut();
    log(
      `${cfg.method}${cfg.method === 'blora' ? ` (ρ_B init ${trainer.plan.config.rhoBInit}${trainer.plan.config.freezeRho ? ', ρ frozen' : ''}${trainer.plan.config.klLogEps ? `, KL log(σ + ${trainer.plan.config.klLogEps})` : ''})` : ''} ${cfg.adapter.targets.join(',')} r=${cfg.adapter.r}: ${trainer.plan.size} adapter values; ${trainUtts.length} training utterances, B=${cfg.optim.batchSize} × S=${trainer.S} tokens, ${cfg.optim.gradAccum} micro-batch(es) per step`,
    );
    const evaluate = async () => {
      const recs = await trainer.evaluate();
      for (const [set, ts] of Object.entries(trainer.lastTranscripts)) {
        for (const t of ts) appendFileSync(transcriptsPath, JSON.stringify({ step: trainer.step, set, ...t }) + '\n');
      }
      for (const r of recs)
        log(
          `eval step ${r.step} ${r.set} (${r.role}): WER ${(r.wer * 100).toFixed(1)} %, CER ${((r.cer ?? 0) * 100).toFixed(1)} % over ${r.utterances} utterances`,
        );
      return recs;
    };
    const before = await evaluate();
    const devEval = async () => {
      const d = await trainer.devLoss();
      if (d)
        log(
          `dev step ${d.step}: CE ${d.ce.toFixed(4)} over ${d.utterances} utterances (${d.tokens} tokens)${trainer.bestDev?.step === d.step ? ' — the lowest so far' : ''}`,
        );
    };
    const devDue = (step: number) => cfg.eval.devInterval > 0 && (step % cfg.eval.devInterval === 0 || step === cfg.optim.steps);
    if (cfg.eval.devInterval > 0) await devEval();
    const bar = new ProgressBar(cfg.optim.steps, 'train');
    let evaluatedAt = 0;
    // Two checkpoint generations in --out (a damaged newest falls back to the previous one); a lost GPU
    // device is survived: new device, weights and data uploaded again, the newest good checkpoint restored.
    const checkpoints = new RunFolderCheckpoints(out, log);
    checkpoints.clear(); // metrics.jsonl starts empty too: an earlier run's checkpoints in --out are not this run's
    let recoveries: Recovery[] = [];
    try {
      ({ trainer, recoveries } = await trainWithRecovery(trainer, cfg.optim.steps, {
        save: (ck) => checkpoints.save(ck),
        load: () => checkpoints.load(),
        afterStep: async (_t, r) => {
          bar.update(
            r.step,
            `ce ${r.ce.toFixed(4)} kl ${r.kl.toExponential(2)} lr ${r.lr.toExponential(2)} |g| ${r.gradNorm.toFixed(3)} ${r.tokensPerSec.toFixed(1)} tok/s`,
          );
          if (devDue(r.step)) await devEval();
          if (cfg.eval.interval > 0 && r.step % cfg.eval.interval === 0 && r.step < cfg.optim.steps) {
            await evaluate();
            evaluatedAt = r.step;
          }
        },
        rebuild: async () => {
          cache.destroy();
          weights.destroy();
          await ctx.destroy();
          ({ ctx } = await pickNodeGpu('blora-train'));
          rt = new GpuRuntime(ctx.device);
          weights = uploadDecoderWeights(rt, st!, assets.config.decoder_attention_heads);
          cache = new EncoderKvCache(rt, weights);
          encoder = await WhisperEncoder.create(assets, 'wasm');
          return (trainer = await makeTrainer(await prepareAll()));
        },
        onRecovered: async (_t, r) => {
          // metrics.jsonl holds what the run keeps: the records up to the checkpoint (later ones are redone).
          const keep = records.filter((x) => x.step <= r.step);
          records.splice(0, records.length, ...keep);
          writeFileSync(metricsPath, keep.map((x) => JSON.stringify(x) + '\n').join(''));
          const evalDue = cfg.eval.interval > 0 && r.step > 0 && r.step % cfg.eval.interval === 0 && r.step < cfg.optim.steps;
          if (evalDue && !keep.some((x) => x.kind === 'eval' && x.step === r.step)) await evaluate();
        },
        log,
      }));
    } catch (e) {
      if (e instanceof TrainingDivergedError) {
        log(`${e.message}`);
        log(`last good checkpoint (step ${e.lastGood.step}) kept in ${checkpoints.newest}`);
      }
      throw e;
    }
    // eval.select 'dev-ce': the final evaluation and the export use the adapter of the lowest dev CE. (A recovery
    // from a lost device restarts the search at its checkpoint: the best before it is not in the checkpoint.)
    const selectedStep = trainer.selectAdapter();
    if (selectedStep !== trainer.step) {
      log(
        `selected the adapter of step ${selectedStep} (dev CE ${trainer.bestDev!.ce.toFixed(4)}, the lowest of the dev evaluations) over step ${trainer.step}'s`,
      );
      evaluatedAt = -1; // the last step's evaluation was of another adapter
    }
    const after = evaluatedAt === cfg.optim.steps ? [] : await evaluate();
    let uncertainty: UncertaintyResult | null = null;
    if (cfg.eval.posteriorSamples > 0 && evalData.length) {
      // the test splits only: a "-dev" eval set is for selection (isDevSplit), its uncertainty is never reported
      uncertainty = await trainer.uncertainty(cfg.eval.posteriorSamples, cfg.seed, log, (name) => !isDevSplit(name));
      writeFileSync(join(out, 'uncertainty.jsonl'), uncertainty.rows.map((x) => JSON.stringify(x)).join('\n') + '\n');
      for (const [role, u] of Object.entries(uncertainty.byRole)) {
        const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
        log(
          `uncertainty (${role}, ${u.utterances} utterances, ${u.wrong} with errors): AUROC disagreement ${f(u.aurocDisagreement)}, entropy ${f(u.aurocEntropy)}; token ECE ${f(u.ece)} over ${u.tokens} tokens`,
        );
      }
    }
    const { files } = await trainer.exportAdapter();
    for (const [f, data] of Object.entries(files)) writeFileSync(join(out, 'adapter', f), data);
    const theta = await trainer.readTheta();
    const sp = adapterSparsity(trainer.plan, theta);
    const spW = deltaWSparsity(trainer.plan, theta);
    const lastTrain = records.filter((r): r is TrainRecord => r.kind === 'train').at(-1)!;
    const sets: Record<
      string,
      { role: string; utterances: number; werBefore: number; werAfter: number; cerBefore?: number; cerAfter?: number }
    > = {};
    for (const b of before) {
      const aft =
        after.find((x) => x.set === b.set) ?? records.filter((x): x is EvalRecord => x.kind === 'eval' && x.set === b.set).at(-1)!;
      sets[b.set] = { role: b.role, utterances: b.utterances, werBefore: b.wer, werAfter: aft.wer, cerBefore: b.cer, cerAfter: aft.cer };
    }
    const base = Object.values(sets).filter((s) => s.role === 'base');
    const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
    const c = cfg.adapter;
    const result = {
      name: cfg.name,
      backend: 'engine',
      webgpuAdapter: adapterName,
      model,
      adapter: `${cfg.method === 'blora' ? `BLoRA (${c.estimator}${c.bayesianAOnly ? ', A only' : ''}, β ${c.beta}, σ_p ${c.sigmaPrior}, ρ_B init ${c.rhoBInit}${c.freezeRho ? ', ρ frozen' : ''}${c.klLogEps ? `, KL log(σ + ${c.klLogEps})` : ''})` : 'LoRA'} r=${c.r} α=${c.alpha} on ${c.targets.join(',')} of layers ${trainer.plan.config.layers.join(',')}; ${trainer.plan.size} values`,
      steps: trainer.step,
      // the step whose adapter the final evaluation and export use (eval.select), and its dev CE
      selectedStep,
      devCe: records.find((x): x is DevRecord => x.kind === 'dev' && x.step === selectedStep)?.ce ?? null,
      seed: cfg.seed,
      eval: sets,
      forgetting: base.length ? mean(base.map((s) => s.werAfter)) - mean(base.map((s) => s.werBefore)) : null,
      forgettingDefinition: 'WER_base(after) − WER_base(before), mean over the base-domain eval sets (fraction, not %)',
      sparsity: { A: sp.a, B: sp.b, deltaW: spW, threshold: 1e-3 },
      kl: lastTrain.kl,
      finalCe: lastTrain.ce,
      trainTimeS: trainer.elapsedS,
      totalTimeS: (performance.now() - tStart) / 1000,
      // posterior uncertainty (eval.posteriorSamples; definitions: src/metrics/uncertainty.ts), per domain
      uncertainty: uncertainty ? { K: uncertainty.K, byRole: uncertainty.byRole } : null,
      // GPU device losses survived (empty when none)
      recoveries: recoveries.map((r) => r.message),
    };
    writeFileSync(join(out, 'result.json'), JSON.stringify(result, null, 2) + '\n');
    console.log(`\n${cfg.name}: ${trainer.step} steps in ${trainer.elapsedS.toFixed(1)} s on ${adapterName}`);
    for (const [n, s] of Object.entries(sets))
      console.log(`  ${n} (${s.role}): WER ${(s.werBefore * 100).toFixed(1)} % → ${(s.werAfter * 100).toFixed(1)} %`);
    if (result.forgetting !== null) console.log(`  forgetting ${(result.forgetting * 100).toFixed(1)} points`);
    console.log(
      `  sparsity |μ| < 1e-3: A ${(sp.a * 100).toFixed(1)} %, B ${(sp.b * 100).toFixed(1)} %, ΔW ${(spW * 100).toFixed(1)} %; KL ${lastTrain.kl.toExponential(3)}`,
    );
    console.log(`  wrote ${out}/{metrics.jsonl,transcripts.jsonl,experiment.json,result.json,adapter/}`);
    trainer.destroy();
    cache.destroy();
    weights.destroy();
  } finally {
    await ctx.destroy();
  }
}

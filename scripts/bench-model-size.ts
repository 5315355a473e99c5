/**
 * `npm run bench -- --model random:<size> [--storage auto|f16|f32]` — per-size numbers on this machine
 * (issue 13 item 5): random decoder weights of a real shape of the model table (src/model/random-decoder.ts),
 * every layer, B random "encoder outputs" of 1500 frames through EncoderKvCache.add, B random token rows of
 * S tokens (all real), BLoRA flipout (or --methods) r 32 on the default targets; measured against the memory
 * plan of the same setting (src/engine/memory-plan.ts, eval decoder left out: none is built here):
 *
 *   weights          GpuRuntime live bytes after uploadDecoderWeights          plan.weightsBytes
 *   per utterance    live bytes added per EncoderKvCache.add                   plan.kvBytesPerUtterance
 *   batch of B       peak over K/V + engine build + --warmup + --steps steps,  plan.totalBytes − weights
 *                    beyond the weights
 *   step             median wall ms of the timed steps (forward + backward + AdamW, awaited once)
 *
 *   flags: [--B 8] [--S 16] [--steps 1] [--warmup 1] [--r 32] [--methods blora] [--layers N (fewer, for a
 *          quick try; recorded)] [--no-write]
 *
 * Device: BLORA_WEBGPU_BACKEND if set; else Vulkan through VK_ICD_FILENAMES if set; else setup's lavapipe-bpo
 * (Mesa 25, has shader-f16, so f16 and f32 rows come from one adapter); else gl-compat. Each result is one
 * record in docs/data/models-measured.json (a rerun of the same size × storage × method replaces it) and
 * docs/models.md is regenerated from it (scripts/models-docs.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, homedir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_TARGETS } from '../src/engine/adapters';
import { EncoderKvCache, prepareDecoder } from '../src/engine/decoder';
import { decoderDimsFromConfig, fmtBytes, planMemory } from '../src/engine/memory-plan';
import { chooseStorage, uploadDecoderWeights } from '../src/engine/weights';
import { acquireDevice, type GpuContext, type NodeBackend } from '../src/gpu/device';
import { GpuRuntime } from '../src/gpu/runtime';
import { decoderParams } from '../src/model/hub';
import { fillUniform, modelRow, randomDecoderSafetensors, randomTokenBatch } from '../src/model/random-decoder';
import { timedSteps } from './bench-steps';
import { SafetensorsFile } from '../src/model/safetensors';

export const MEASURED_JSON = 'docs/data/models-measured.json';

/** One measured row of docs/models.md. */
export interface SizeRecord {
  model: string;
  storage: 'f32' | 'f16';
  method: 'lora' | 'blora';
  layers: number;
  realLayers: number;
  B: number;
  S: number;
  r: number;
  targets: string[];
  decoderParams: number;
  weights: { planned: number; measured: number };
  perUtterance: { planned: number; measured: number };
  batch: { planned: number; measured: number };
  total: { planned: number; measured: number };
  stepMs: number;
  steps: number;
  warmup: number;
  loss: number;
  adapter: string;
  cpu: string;
  loadAvg: number[];
  date: string;
}

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const KNOWN = ['model', 'storage', 'B', 'S', 'steps', 'warmup', 'r', 'methods', 'layers', 'no-write'];
for (const a of argv) {
  if (a.startsWith('--') && !KNOWN.includes(a.slice(2)))
    throw new Error(`bench --model random:<size>: unknown flag ${a} (known: ${KNOWN.map((k) => '--' + k).join(' ')})`);
}
const int = (k: string, dflt: string, min: number): number => {
  const v = opt(k, dflt);
  if (!/^\d+$/.test(v) || Number(v) < min) throw new Error(`bench --model random:<size>: --${k} must be an integer ≥ ${min}, got "${v}"`);
  return Number(v);
};
const size = opt('model', '').replace(/^random:/, '');
const row = modelRow(size, 'bench --model random:<size>');
const B = int('B', '8', 1);
const S = int('S', '16', 1);
const steps = int('steps', '1', 1);
const warmup = int('warmup', '1', 0);
const r = int('r', '32', 1);
const L = int('layers', String(row.decoderLayers), 1);
const methods = opt('methods', 'blora').split(',') as ('lora' | 'blora')[];
for (const m of methods) if (m !== 'lora' && m !== 'blora') throw new Error(`bench: --methods takes lora and/or blora, got ${m}`);
const storageAsked = opt('storage', process.env.BLORA_STORAGE || 'auto') as 'auto' | 'f16' | 'f32';
if (!['auto', 'f16', 'f32'].includes(storageAsked)) throw new Error(`bench: --storage takes auto, f16 or f32, got ${storageAsked}`);
const FRAMES = 1500;

async function device(): Promise<GpuContext> {
  const env = process.env.BLORA_WEBGPU_BACKEND as NodeBackend | undefined;
  if (env) return acquireDevice({ label: 'bench-size', node: { backend: env } });
  const bpo = join(process.env.BLORA_CACHE ?? join(homedir(), '.cache/blora-studio'), 'lavapipe-bpo/lvp_icd.json');
  if (!process.env.VK_ICD_FILENAMES && existsSync(bpo)) process.env.VK_ICD_FILENAMES = bpo;
  if (process.env.VK_ICD_FILENAMES) return acquireDevice({ label: 'bench-size', node: { backend: 'vulkan', icd: 'system' } });
  return acquireDevice({ label: 'bench-size', node: { backend: 'gl-compat' } });
}

const ctx = await device();
const ad = ctx.caps.adapter;
const adapterName = `${ctx.caps.backend}: ${ad.vendor}/${ad.architecture} ${ad.description || ad.device}${ctx.caps.isFallbackAdapter ? ' (fallback)' : ''}`;
const choice = chooseStorage(ctx.device, storageAsked);
console.log(`adapter ${adapterName}; storage: ${choice.reason}`);
const rt = new GpuRuntime(ctx.device);
const dims = decoderDimsFromConfig({
  d_model: row.dModel,
  decoder_layers: L,
  decoder_attention_heads: row.heads,
  decoder_ffn_dim: row.ffn,
  vocab_size: row.vocab,
  max_target_positions: row.maxTargetPositions,
});
const records: SizeRecord[] = [];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

let t = performance.now();
const bytes = randomDecoderSafetensors(dims.C, dims.F, L, dims.V, dims.NP);
await rt.sync();
const base = rt.memory().liveBytes;
const weights = uploadDecoderWeights(rt, new SafetensorsFile(bytes, `random:${size}`), dims.H, { storage: choice.storage });
await rt.sync();
const weightsMeasured = rt.memory().liveBytes - base;
console.log(
  `${row.name}, ${L} layers, ${choice.storage} storage: weights ${fmtBytes(weightsMeasured)} in ${((performance.now() - t) / 1000).toFixed(1)} s`,
);
for (const method of methods) {
  rt.resetPeak();
  const cache = new EncoderKvCache(rt, weights);
  const cacheRt = (cache as unknown as { rt: GpuRuntime }).rt;
  const keys: string[] = [];
  const before = rt.memory().liveBytes;
  for (let b = 0; b < B; b++) {
    keys.push(`rand${b}`);
    await cache.add(keys[b], fillUniform(FRAMES * dims.C, -1, 1, 777 + b));
  }
  await cacheRt.sync();
  const perUtt = (rt.memory().liveBytes - before) / B;
  const adapters = { kind: method, estimator: 'flipout' as const, r, alpha: 2 * r, dropout: 0.05, seed: 1, targets: [...DEFAULT_TARGETS] };
  t = performance.now();
  const dec = await prepareDecoder(rt, weights, { B, S }, adapters, cache, { maxGradNorm: 1, label: `bench-size-${method}` });
  const drt = (dec as unknown as { rt: GpuRuntime }).rt;
  dec.setBatch(randomTokenBatch(B, S, keys));
  console.log(`  ${method}: K/V of ${B} utterances + engine built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  let loss = NaN;
  const times = await timedSteps(dec, drt, warmup, steps, async (s, ms, warm) => {
    loss = (await dec.readLoss()).loss;
    console.log(`  ${method} step ${s}${warm ? ' (warm-up)' : ''}: ${(ms / 1000).toFixed(1)} s, loss ${loss.toFixed(3)}`);
  });
  const measuredPeak = rt.memory().peakBytes - base;
  const plan = planMemory({
    dims,
    adapters: { kind: method, r, targets: adapters.targets },
    batch: B,
    tokens: S,
    storage: choice.storage,
    eval: null,
  });
  const rec: SizeRecord = {
    model: row.name,
    storage: choice.storage,
    method,
    layers: L,
    realLayers: row.decoderLayers,
    B,
    S,
    r,
    targets: adapters.targets,
    decoderParams: decoderParams(dims.C, L, dims.F, dims.V),
    weights: { planned: plan.weightsBytes, measured: weightsMeasured },
    perUtterance: { planned: plan.kvBytesPerUtterance, measured: perUtt },
    batch: { planned: plan.totalBytes - plan.weightsBytes, measured: measuredPeak - weightsMeasured },
    total: { planned: plan.totalBytes, measured: measuredPeak },
    stepMs: median(times),
    steps,
    warmup,
    loss,
    adapter: adapterName,
    cpu: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    loadAvg: loadavg().map((x) => Math.round(x * 10) / 10),
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
  };
  const pct = (p: number, m: number) => `${((100 * (p - m)) / m).toFixed(2)} %`;
  console.log(
    `${row.name} ${method} (${choice.storage}): step ${(rec.stepMs / 1000).toFixed(1)} s (B ${B} × S ${S}); ` +
      `plan ${fmtBytes(plan.totalBytes)} vs measured peak ${fmtBytes(measuredPeak)} (${pct(plan.totalBytes, measuredPeak)}); ` +
      `per utterance ${fmtBytes(plan.kvBytesPerUtterance)} vs ${fmtBytes(perUtt)}`,
  );
  records.push(rec);
  dec.destroy();
  cache.destroy();
}
weights.destroy();
await ctx.destroy();

if (!argv.includes('--no-write')) {
  const file = resolve(MEASURED_JSON);
  const old: SizeRecord[] = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : [];
  const key = (x: SizeRecord) => `${x.model}|${x.storage}|${x.method}`;
  const fresh = new Set(records.map(key));
  const all = [...old.filter((x) => !fresh.has(key(x))), ...records];
  writeFileSync(file, JSON.stringify(all, null, 1) + '\n');
  console.log(`${MEASURED_JSON}: ${all.length} records; regenerating docs/models.md`);
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/models-docs.ts'], { stdio: 'inherit' });
}

// blora-studio plan: the GPU memory a training run would need (src/engine/memory-plan.ts), checked
// against the limits of this machine's Dawn adapter or WebGPU's defaults, without loading any weights:
// only the model's config (a folder's config.json, or the model table of src/model/hub.ts) is read.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ADAPTER_TARGETS, type AdapterTarget, DEFAULT_TARGETS } from '../engine/adapters';
import {
  DEFAULT_BUDGET_BYTES,
  decoderDimsFromConfig,
  deviceLimits,
  formatPlan,
  planMemory,
  type PlanLimits,
  type StorageType,
  WEBGPU_DEFAULT_LIMITS,
} from '../engine/memory-plan';
import type { WhisperDecoderDims } from '../engine/weights';
import { WHISPER_MODELS, whisperModelFor } from '../model/hub';

export class PlanUsageError extends Error {}

export const PLAN_FLAGS = [
  'model',
  'method',
  'targets',
  'r',
  'batch',
  'tokens',
  'utterances',
  'storage',
  'budget',
  'limits',
  'json',
] as const;

export const PLAN_HELP = `
  blora-studio plan [--model DIR|ID|random:SIZE] [--targets a,b] [--r N] [--batch N] [--tokens N]
                    [--storage f32|f16] [--json] [options]
      The GPU memory a training run needs — frozen weights, K/V cache per utterance, activations,
      vocabulary tiles, adapter state, eval decoder, staging — and whether it fits the adapter's
      maxBufferSize / maxStorageBufferBindingSize and a memory budget; if not, the fix. No weights are read.
      --model           a model folder (its config.json), a Hub id or random:SIZE of the model table
                        (${WHISPER_MODELS.map((m) => m.name.replace(/^whisper-/, '')).join(', ')}); default: the prepared base
      --method          lora | blora (default blora)          --targets  comma list (default ${DEFAULT_TARGETS.join(',')})
      --r N             adapter rank (default 32)              --batch N  sequences per batch (default 8)
      --tokens N        longest token sequence (default 64)    --utterances N  train + eval utterances cached (default: batch)
      --storage         f32 | f16 storage of weights and K/V (default f32; the engine uses f16 where the adapter has shader-f16)
      --budget GIB      device-memory budget (default ${DEFAULT_BUDGET_BYTES / 2 ** 30}; WebGPU does not report the GPU's memory)
      --limits          adapter (this machine's Dawn adapter; WebGPU defaults if none) | defaults (WebGPU's:
                        256 MiB per buffer, 128 MiB per binding; no GPU touched). Default: adapter, or defaults with --json
      --json            print the plan as JSON (weightsBytes, kvBytesPerUtterance, activationBytes, adapterStateBytes,
                        totalBytes, fits, limits, problems, fixes, …)
`;

type Opts = Record<string, string[]>;
const last = (o: Opts, k: string): string | undefined => o[k]?.at(-1);

function posInt(o: Opts, k: string, dflt: number): number {
  const v = last(o, k);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new PlanUsageError(`--${k} must be a positive integer, got "${v}"`);
  return Number(v);
}

/** Decoder dimensions of --model: a folder's config.json, random:SIZE or a Hub id of the model table. */
export function planModelDims(model: string): { dims: WhisperDecoderDims; name: string; multilingual: boolean } {
  const rnd = /^random:(.+)$/.exec(model);
  const row = rnd
    ? WHISPER_MODELS.find((m) => m.name === rnd[1] || m.name === `whisper-${rnd[1]}`)
    : !existsSync(model)
      ? whisperModelFor(model)
      : undefined;
  if (rnd && !row)
    throw new PlanUsageError(
      `--model ${model}: unknown size (one of ${WHISPER_MODELS.map((m) => m.name.replace(/^whisper-/, '')).join(', ')})`,
    );
  if (row) {
    return {
      dims: decoderDimsFromConfig({
        d_model: row.dModel,
        decoder_layers: row.decoderLayers,
        decoder_attention_heads: row.heads,
        decoder_ffn_dim: row.ffn,
        vocab_size: row.vocab,
        max_target_positions: row.maxTargetPositions,
      }),
      name: rnd ? `${row.name} (random weights, table shape)` : row.name,
      multilingual: !row.englishOnly,
    };
  }
  const dir = resolve(model);
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new PlanUsageError(`--model ${model}: no config.json there, and not a model of the table (try random:base)`);
  const cfg = JSON.parse(readFileSync(file, 'utf8'));
  return { dims: decoderDimsFromConfig(cfg), name: dir, multilingual: cfg.vocab_size >= 51865 };
}

async function adapterLimits(budget: number): Promise<PlanLimits> {
  try {
    const { pickNodeGpu } = await import('./train');
    const { ctx, why } = await pickNodeGpu('blora-plan');
    const a = ctx.caps.adapter;
    const lim = deviceLimits(ctx.device, budget, `the Dawn adapter ${a.description || a.device || a.vendor} (${why})`);
    await ctx.destroy();
    return lim;
  } catch (e) {
    return {
      ...WEBGPU_DEFAULT_LIMITS,
      budgetBytes: budget,
      source: `WebGPU defaults (no Dawn adapter: ${(e as Error).message.split('\n')[0]})`,
    };
  }
}

export async function planCommand(opts: Opts, defaultModel: string): Promise<void> {
  const json = last(opts, 'json') !== undefined && last(opts, 'json') !== 'false';
  const { dims, name, multilingual } = planModelDims(last(opts, 'model') ?? defaultModel);
  const method = last(opts, 'method') ?? 'blora';
  if (method !== 'lora' && method !== 'blora') throw new PlanUsageError(`--method must be lora or blora, got "${method}"`);
  const targets = (opts.targets?.join(',') ?? DEFAULT_TARGETS.join(','))
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of targets)
    if (!ADAPTER_TARGETS.includes(t as AdapterTarget))
      throw new PlanUsageError(`--targets: unknown target "${t}" (one of ${ADAPTER_TARGETS.join(', ')})`);
  const storage = (last(opts, 'storage') ?? 'f32') as StorageType;
  if (storage !== 'f32' && storage !== 'f16') throw new PlanUsageError(`--storage must be f32 or f16, got "${storage}"`);
  const budgetV = last(opts, 'budget');
  const budgetGiB = budgetV === undefined ? DEFAULT_BUDGET_BYTES / 2 ** 30 : Number(budgetV);
  if (!(Number.isFinite(budgetGiB) && budgetGiB > 0))
    throw new PlanUsageError(`--budget must be a positive number of GiB, got "${budgetV}"`);
  const budget = Math.round(budgetGiB * 2 ** 30);
  const limitsKind = last(opts, 'limits') ?? (json ? 'defaults' : 'adapter');
  if (limitsKind !== 'adapter' && limitsKind !== 'defaults')
    throw new PlanUsageError(`--limits must be adapter or defaults, got "${limitsKind}"`);
  const batch = posInt(opts, 'batch', 8);
  const tokens = posInt(opts, 'tokens', 64);
  if (tokens > dims.NP) throw new PlanUsageError(`--tokens ${tokens} > the decoder's ${dims.NP} positions`);
  const limits = limitsKind === 'adapter' ? await adapterLimits(budget) : { ...WEBGPU_DEFAULT_LIMITS, budgetBytes: budget };
  const plan = planMemory({
    dims,
    batch,
    tokens,
    storage,
    limits,
    adapters: { kind: method, r: posInt(opts, 'r', 32), targets: targets as AdapterTarget[] },
    utterances: posInt(opts, 'utterances', batch),
    eval: { batch: 8, maxNewTokens: 128, multilingual },
  });
  if (json) {
    process.stdout.write(JSON.stringify({ model: name, dims, method, targets, ...plan }, null, 1) + '\n');
    return;
  }
  console.log(
    `${name}: ${method}, r ${posInt(opts, 'r', 32)}, targets ${targets.join(', ')}, batch ${batch} × ${tokens} tokens, ${storage} storage`,
  );
  console.log(formatPlan(plan));
}

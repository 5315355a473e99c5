// The memory plan of the studio's next run (src/engine/memory-plan.ts) from what the UI knows before
// the training worker starts: the model's config (ModelInfo), the experiment, the datasets (utterances
// the K/V cache will hold, longest transcript) and the adapter's limits from the WebGPU probe.
import { chooseStorageFor } from '../gpu/storage-choice';
import type { AdapterTarget } from '../engine/adapters';
import {
  DEFAULT_BUDGET_BYTES,
  decoderDimsFromConfig,
  type MemoryPlan,
  planMemory,
  type PlanLimits,
  WEBGPU_DEFAULT_LIMITS,
} from '../engine/memory-plan';
import type { ExperimentConfig } from '../train/config';
import type { StudioState } from './store';

const BUDGET_KEY = 'blora.memoryBudgetGiB';

/** The device-memory budget setting (GiB): WebGPU does not report the GPU's memory, so the user says. */
export function memoryBudgetGiB(): number {
  const v = Number(globalThis.localStorage?.getItem(BUDGET_KEY));
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_BUDGET_BYTES / 2 ** 30;
}

export function setMemoryBudgetGiB(v: number): void {
  if (Number.isFinite(v) && v > 0) globalThis.localStorage?.setItem(BUDGET_KEY, String(v));
}

/**
 * Longest token sequence, estimated from the transcripts: the 4-token prompt + EOT and one token per
 * 2 characters — above Whisper's BPE rate for Latin text (≈ 4 chars/token), so the plan errs on the large side.
 */
function longestTokens(s: Pick<StudioState, 'datasets'>, positions: number): number {
  let chars = 0;
  for (const d of s.datasets) if (d.role === 'train') for (const u of d.utts) chars = Math.max(chars, u.text.length);
  return Math.min(positions, chars ? 5 + Math.ceil(chars / 2) : 64);
}

/** Plan of a run with `cfg` in the current studio state; null until a model is loaded. */
export function studioPlan(
  s: Pick<StudioState, 'model' | 'datasets' | 'gpu'>,
  cfg: ExperimentConfig,
  budgetGiB = memoryBudgetGiB(),
): MemoryPlan | null {
  const info = s.model.info;
  if (!info) return null;
  const sum = info.summary;
  const dc = info.decoderConfig;
  const dims = decoderDimsFromConfig({
    d_model: sum.dModel,
    decoder_layers: sum.layers,
    vocab_size: sum.vocab,
    // older ModelInfo (a saved session) has no decoderConfig: Whisper's heads are C/64, FFN 4·C
    decoder_attention_heads: dc?.heads ?? sum.dModel / 64,
    decoder_ffn_dim: dc?.ffn,
    max_target_positions: dc?.positions,
  });
  const caps = s.gpu.caps;
  const limits: PlanLimits = caps
    ? {
        maxBufferSize: caps.limits.maxBufferSize,
        maxStorageBufferBindingSize: caps.limits.maxStorageBufferBindingSize,
        minStorageBufferOffsetAlignment: caps.limits.minStorageBufferOffsetAlignment,
        budgetBytes: budgetGiB * 2 ** 30,
        source: 'this adapter',
      }
    : { ...WEBGPU_DEFAULT_LIMITS, budgetBytes: budgetGiB * 2 ** 30 };
  const count = (roles: string[]) => s.datasets.filter((d) => roles.includes(d.role)).reduce((n, d) => n + d.utts.length, 0);
  const evalUtts = count(['new', 'base']);
  const batch = Math.max(1, Math.floor(cfg.optim.batchSize) || 1);
  return planMemory({
    dims,
    adapters: {
      kind: cfg.method,
      r: Math.max(1, Math.floor(cfg.adapter.r) || 1),
      targets: cfg.adapter.targets as AdapterTarget[],
      estimator: cfg.adapter.estimator,
      bayesianAOnly: cfg.adapter.bayesianAOnly,
    },
    batch,
    tokens: longestTokens(s, dims.NP),
    storage: chooseStorageFor(caps?.hasF16 ?? false).storage, // what the worker's engine picks (weights.ts chooseStorage)
    utterances: Math.max(batch, count(['train']) + evalUtts),
    eval: evalUtts ? { batch: Math.min(8, evalUtts), maxNewTokens: cfg.eval.maxNewTokens, multilingual: sum.multilingual } : null,
    limits,
  });
}

/**
 * The GPU memory a training run needs, predicted before anything is allocated, and checked against the
 * adapter's limits and a device-memory budget (issue 13, item 2).
 *
 * The plan walks the buffers the engine creates (decoder.ts WhisperDecoderEngine.prepare,
 * EncoderKvCache, weights.ts, logits_ce / lora / attention / kl / adamw kernels, generate.ts for eval).
 * The size tables the engine allocates from live HERE and the engine calls them
 * (layerActivationSpecs, activationGradSpecs, kvCacheBytesPerUtterance, logitsCeLayout in logits_ce.ts,
 * loraAdapterBufferElems in lora.ts), so a buffer added there is counted here. What is not shared
 * (uniforms, reduction partials, 4-byte dummies: a few KB per layer) is estimated.
 * test/engine/memory-plan.test.ts checks plan vs GpuRuntime's measured peak (≤ 10 %).
 *
 * Storage type (issue 13 item 1; weights.ts, decoder.ts EncoderKvCache): 'f16' stores the frozen weight
 * matrices (E, P, every Linear W) and the cross-attention K/V (cache and the batch's shared copies) as
 * f16; biases and layer-norm vectors stay f32 (small), and so do the per-utterance encoder states (the
 * input of adapted encoder_attn k/v), activations, adapter state, gradients. A decoder with adapted
 * encoder_attn k/v widens the cached K/V into f32 per-layer batch buffers. Measured: memory-plan.test.ts.
 */
import { type AdapterConfig, type AdapterTarget, planAdapters } from './adapters';
import { logitsCeLayout } from './kernels/logits_ce';
import { loraAdapterBufferElems } from './kernels/lora';
import { rowSplitRows, type VocabTileLimits } from './kernels/vocab_tiles';
import type { WhisperDecoderDims } from './weights';

export type StorageType = 'f32' | 'f16';
export const STORAGE_BYTES: Record<StorageType, number> = { f32: 4, f16: 2 };

/** Whisper's encoder output length (30 s of audio); = decoder.ts WHISPER_ENCODER_FRAMES. */
const FRAMES = 1500;

// ---------------------------------------------------------------- tables shared with the engine

/** Buffer of the engine: a label (as the GPU buffer is named) and its f32 element count. */
export interface BufferSpec<K extends string = string> {
  key: K;
  label: string;
  elems: number;
}

export type LayerActKey =
  | 'x'
  | 'h1'
  | 'mean1'
  | 'rstd1'
  | 'q'
  | 'k'
  | 'v'
  | 'o1'
  | 'st1'
  | 'x1'
  | 'h2'
  | 'mean2'
  | 'rstd2'
  | 'q2'
  | 'o2'
  | 'st2'
  | 'x2'
  | 'h3'
  | 'mean3'
  | 'rstd3'
  | 'f1'
  | 'g';

/** Saved activations of ONE decoder layer, T = B·S rows (decoder.ts allocates these per layer). */
export function layerActivationSpecs(d: { C: number; H: number; F: number }, B: number, S: number): BufferSpec<LayerActKey>[] {
  const T = B * S;
  const TC = T * d.C;
  const st = B * d.H * S * 2; // attention (m, l) per row and head
  const s = (key: LayerActKey, label: string, elems: number): BufferSpec<LayerActKey> => ({ key, label, elems });
  return [
    s('x', 'x (T,C)', TC),
    s('h1', 'h1 (T,C)', TC),
    s('mean1', 'mean1 (T,)', T),
    s('rstd1', 'rstd1 (T,)', T),
    s('q', 'q (T,C)', TC),
    s('k', 'k (T,C)', TC),
    s('v', 'v (T,C)', TC),
    s('o1', 'o1 (T,C)', TC),
    s('st1', 'stats1 (B,H,S,2)', st),
    s('x1', 'x1 (T,C)', TC),
    s('h2', 'h2 (T,C)', TC),
    s('mean2', 'mean2 (T,)', T),
    s('rstd2', 'rstd2 (T,)', T),
    s('q2', 'q2 (T,C)', TC),
    s('o2', 'o2 (T,C)', TC),
    s('st2', 'stats2 (B,H,S,2)', st),
    s('x2', 'x2 (T,C)', TC),
    s('h3', 'h3 (T,C)', TC),
    s('mean3', 'mean3 (T,)', T),
    s('rstd3', 'rstd3 (T,)', T),
    s('f1', 'f1 (T,F)', T * d.F),
    s('g', 'g (T,F)', T * d.F),
  ];
}

export type ActGradKey = 'dres' | 'dH' | 'dQ' | 'dK' | 'dV' | 'dO' | 'dQ2' | 'dF' | 'dG' | 'dhF';

/** Activation gradients, shared by all layers (the backward walks layers one by one). */
export function activationGradSpecs(d: { C: number; F: number }, T: number): BufferSpec<ActGradKey>[] {
  const TC = T * d.C;
  const s = (key: ActGradKey, label: string, elems: number): BufferSpec<ActGradKey> => ({ key, label, elems });
  return [
    s('dres', 'd residual (T,C)', TC),
    s('dH', 'dH (T,C) LN output grad', TC),
    s('dQ', 'dQ (T,C)', TC),
    s('dK', 'dK (T,C)', TC),
    s('dV', 'dV (T,C)', TC),
    s('dO', 'dO (T,C)', TC),
    s('dQ2', 'dQ2 (T,C)', TC),
    s('dF', 'dF (T,F)', T * d.F),
    s('dG', 'dG (T,F)', T * d.F),
    s('dhF', 'dhF (T,C)', TC),
  ];
}

/**
 * Whether the batch's cross K/V is ONE pair of (B·E, C) buffers re-filled per layer from the cache
 * (no adapter on encoder_attn k/v), else one pair per layer plus the encoder states and their gradients.
 */
export function crossKvShared(targets: readonly AdapterTarget[]): boolean {
  return !targets.includes('encoder_attn.k_proj') && !targets.includes('encoder_attn.v_proj');
}

/** K/V cache bytes per utterance: encoder states + K and V of every layer, (2L + 1)·E·C values. */
export function kvCacheBytesPerUtterance(dims: Pick<WhisperDecoderDims, 'C' | 'L'>, frames = FRAMES, storage: StorageType = 'f32'): number {
  // 2L K/V tensors in the storage type + the encoder states (E, C), always f32
  return (2 * dims.L * STORAGE_BYTES[storage] + 4) * frames * dims.C;
}

/** Frozen decoder tensors the engine uploads (weights.ts): name and element count. */
/** One GPU buffer per tensor (weights.ts); `vector`: a bias / layer-norm vector, f32 in every storage type. */
export function decoderWeightSpecs(dims: WhisperDecoderDims, kBias = false): (BufferSpec & { vector?: boolean })[] {
  const { C, F, L, V, NP } = dims;
  const out: (BufferSpec & { vector?: boolean })[] = [];
  const t = (label: string, elems: number, vector = false) => out.push({ key: label, label, elems, ...(vector ? { vector } : {}) });
  const ln = (label: string) => {
    t(`${label}.weight`, C, true);
    t(`${label}.bias`, C, true);
  };
  t('embed_tokens (V,C)', V * C);
  t('embed_positions (NP,C)', NP * C);
  for (let l = 0; l < L; l++) {
    for (const a of ['self_attn', 'encoder_attn']) {
      ln(`L${l}.${a}_layer_norm`);
      for (const p of ['q', 'k', 'v', 'out']) {
        t(`L${l}.${a}.${p}_proj.weight`, C * C);
        if (p !== 'k' || kBias) t(`L${l}.${a}.${p}_proj.bias`, C, true);
      }
    }
    ln(`L${l}.final_layer_norm`);
    t(`L${l}.fc1.weight`, F * C);
    t(`L${l}.fc1.bias`, F, true);
    t(`L${l}.fc2.weight`, C * F);
    t(`L${l}.fc2.bias`, C, true);
  }
  ln('layer_norm');
  return out;
}

/** Decoder dimensions from a Whisper config.json (HF WhisperConfig names). */
export function decoderDimsFromConfig(cfg: {
  d_model: number;
  decoder_layers: number;
  decoder_attention_heads: number;
  decoder_ffn_dim?: number;
  vocab_size: number;
  max_target_positions?: number;
}): WhisperDecoderDims {
  const C = cfg.d_model;
  const H = cfg.decoder_attention_heads;
  if (!(C > 0 && H > 0 && C % H === 0)) throw new Error(`config: d_model ${C} is not a multiple of decoder_attention_heads ${H}`);
  return { C, H, D: C / H, F: cfg.decoder_ffn_dim ?? 4 * C, L: cfg.decoder_layers, V: cfg.vocab_size, NP: cfg.max_target_positions ?? 448 };
}

// ---------------------------------------------------------------- limits

export interface PlanLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  minStorageBufferOffsetAlignment: number;
  /** device-memory budget: WebGPU does not report the adapter's memory, so a setting */
  budgetBytes: number;
  /** where the limits come from, e.g. "WebGPU defaults" or the adapter's name */
  source: string;
}

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** Default device-memory budget: what a mid-range laptop GPU (or an integrated GPU's share) gives a tab. */
export const DEFAULT_BUDGET_BYTES = 4 * GiB;
/** The limits every WebGPU adapter supports (spec defaults): 256 MiB per buffer, 128 MiB per binding. */
export const WEBGPU_DEFAULT_LIMITS: PlanLimits = {
  maxBufferSize: 256 * MiB,
  maxStorageBufferBindingSize: 128 * MiB,
  minStorageBufferOffsetAlignment: 256,
  budgetBytes: DEFAULT_BUDGET_BYTES,
  source: 'WebGPU defaults',
};

/** Limits of a device (what the engine's kernels see), with a budget setting. */
export function deviceLimits(device: GPUDevice, budgetBytes = DEFAULT_BUDGET_BYTES, source = 'adapter'): PlanLimits {
  const l = device.limits;
  return {
    maxBufferSize: l.maxBufferSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
    budgetBytes,
    source,
  };
}

// ---------------------------------------------------------------- the plan

export interface MemoryPlanInput {
  dims: WhisperDecoderDims;
  adapters: Pick<AdapterConfig, 'kind' | 'r'> & Partial<Pick<AdapterConfig, 'targets' | 'layers' | 'estimator' | 'bayesianAOnly'>>;
  /** sequences per batch (B) */
  batch: number;
  /** longest token sequence (S: the batch is padded to it) */
  tokens: number;
  storage: StorageType;
  /** utterances whose K/V the cache holds (the trainer caches every train + eval utterance; default batch) */
  utterances?: number;
  /** encoder frames per utterance (default 1500 = 30 s) */
  frames?: number;
  /** eval decoding (generate.ts): utterances per batch (≤ 8 in the trainer) and new tokens; null = no eval */
  eval?: { batch: number; maxNewTokens: number; multilingual?: boolean } | null;
  /** k_proj carries a bias (never in OpenAI's Whisper) */
  kBias?: boolean;
  limits?: PlanLimits;
}

export interface MemoryPlan {
  storage: StorageType;
  batch: number;
  tokens: number;
  utterances: number;
  frames: number;
  /** frozen decoder weights */
  weightsBytes: number;
  /** encoder states + cross K/V of every layer, per utterance (EncoderKvCache) */
  kvBytesPerUtterance: number;
  /** utterances · kvBytesPerUtterance */
  kvBytes: number;
  /** saved activations, activation gradients, the batch's cross K/V copies, adapter scratch */
  activationBytes: number;
  /** activationBytes without the cross K/V copies, per token of the batch */
  activationBytesPerToken: number;
  /** the batch's cross K/V (B·E, C) copies (part of activationBytes) */
  crossBatchBytes: number;
  /** adapter parameters + gradients + AdamW m, v (4 × P f32) */
  adapterStateBytes: number;
  adapterParams: number;
  /** logits / dlogits scratch of one vocabulary tile and the split-K partials (logits_ce) */
  vocabTileBytes: number;
  vocabTiles: number;
  /** readback staging (the largest read: theta at a checkpoint) and kernel uniforms / partials (estimated) */
  stagingBytes: number;
  /** greedy eval decoder (generate.ts): self-attention K/V caches, logits, merged weights */
  evalBytes: number;
  totalBytes: number;
  largestBuffer: { label: string; bytes: number };
  /** largest buffer bound whole (the embedding is bound in vocab tiles, so it is not one) */
  largestBinding: { label: string; bytes: number };
  limits: PlanLimits;
  fits: boolean;
  /** what does not fit, one sentence each */
  problems: string[];
  /** how to make it fit */
  fixes: string[];
}

/** Bytes of a buffer as GpuRuntime allocates it (padded to 4, at least 4). */
const pad = (bytes: number) => Math.max(4, Math.ceil(bytes / 4) * 4);
/** Uniforms and reduction partials the plan does not walk one by one (measured ≈ 2–3 KB per layer). */
const KERNEL_BYTES_PER_LAYER = 4096;
const KERNEL_BYTES_PER_MODULE = 2048;

function planOnce(inp: MemoryPlanInput): Omit<MemoryPlan, 'fits' | 'problems' | 'fixes'> {
  const { dims } = inp;
  const { C, H, F, L, V, NP } = dims;
  const B = inp.batch;
  const S = inp.tokens;
  const T = B * S;
  const E = inp.frames ?? FRAMES;
  const sb = STORAGE_BYTES[inp.storage];
  const limits = inp.limits ?? WEBGPU_DEFAULT_LIMITS;
  const utterances = inp.utterances ?? B;
  const f32 = (elems: number) => pad(elems * 4);
  const big: { label: string; bytes: number; tiled?: boolean }[] = [];

  // frozen weights (the embedding is bound in vocab tiles, every other tensor whole)
  let weightsBytes = 0;
  for (const w of decoderWeightSpecs(dims, inp.kBias)) {
    const bytes = pad(w.elems * (w.vector ? 4 : sb));
    weightsBytes += bytes;
    // E is uploaded in row parts of at most one buffer and one binding (vocab_tiles.ts uploadRowSplit)
    const embed = w.key.startsWith('embed_tokens');
    const part = embed
      ? Math.min(bytes, pad(rowSplitRows(C, sb, Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize)) * C * sb))
      : bytes;
    big.push({ label: embed && part < bytes ? `${w.label} row part` : w.label, bytes: part, tiled: embed });
  }
  const kvBytesPerUtterance = kvCacheBytesPerUtterance(dims, E, inp.storage);
  big.push({ label: 'K/V cache layer (E,C)', bytes: pad(E * C * sb) });

  // adapters
  const plan = planAdapters(dims, { alpha: 1, dropout: 0, seed: 0, ...inp.adapters });
  const P = Math.max(1, plan.size);
  const adapterStateBytes = 4 * f32(P); // theta, grads, m, v
  big.push({ label: 'theta (P,)', bytes: f32(P) });
  let adapterScratch = 0;
  for (const m of plan.modules) {
    const cross = m.target === 'encoder_attn.k_proj' || m.target === 'encoder_attn.v_proj';
    const Tm = cross ? B * E : T;
    // a training adapter and a posterior-mean (eval) adapter per module, each with its own scratch
    const train = loraAdapterBufferElems({ T: Tm, nIn: m.nIn, r: plan.config.r, nOut: m.nOut, modeA: m.modeA, modeB: m.modeB });
    const mean = loraAdapterBufferElems({ T: Tm, nIn: m.nIn, r: plan.config.r, nOut: m.nOut, modeA: 'det', modeB: 'det' });
    for (const e of [...Object.values(train), ...Object.values(mean)]) if (e > 0) adapterScratch += f32(e);
  }

  // activations: per layer, shared gradients, batch inputs, final LN, cross K/V copies
  let acts = 0;
  for (const s of layerActivationSpecs(dims, B, S)) acts += L * f32(s.elems);
  for (const s of activationGradSpecs(dims, T)) acts += f32(s.elems);
  acts += 4 * f32(T); // tokens, positions, targets, key mask
  acts += 3 * f32(T * C) + 2 * f32(T); // x_L, hF, tmp; meanF, rstdF
  acts += L * 2 * f32(B * H * S); // attention backward's per-row D (self + cross)
  big.push({ label: 'f1 (T,F)', bytes: f32(T * F) });
  const shared = crossKvShared(plan.config.targets);
  // shared: one K, V pair copied from the cache (storage type); adapted k/v: an f32 pair per layer
  // (the adapters add into them) + enc batch + dK2, dV2, dEnc (all f32)
  const crossPair = shared ? pad(B * E * C * sb) : f32(B * E * C);
  const crossBatchBytes = shared ? 2 * crossPair : 2 * L * crossPair + 4 * f32(B * E * C);
  big.push({ label: 'cross K (B·E,C)', bytes: crossPair });
  if (!shared) big.push({ label: 'dK2 (B·E,C)', bytes: f32(B * E * C) });
  const activationBytes = acts + crossBatchBytes + adapterScratch;

  // vocabulary tiles (logits_ce: the same layout function the kernel uses)
  const tileLim: VocabTileLimits = {
    maxBindingBytes: limits.maxStorageBufferBindingSize,
    offsetAlignment: limits.minStorageBufferOffsetAlignment,
    elemBytes: sb,
  };
  const ce = logitsCeLayout({ T, C, V }, tileLim);
  const vocabTileBytes = f32(ce.scratchElems) + f32(ce.partialElems) + 7 * f32(T); // + running (T,3), argmax, rowLoss, lse2 (T,2)
  big.push(
    { label: 'logits tile scratch (T,R)', bytes: f32(ce.scratchElems) },
    { label: 'dh partials (S,T,C)', bytes: f32(ce.partialElems) },
  );

  // staging: the largest readback (theta / m / v at a checkpoint, one at a time) + kernel params
  const stagingBytes = f32(P) + L * KERNEL_BYTES_PER_LAYER + 2 * plan.modules.length * KERNEL_BYTES_PER_MODULE;

  // eval: generate.ts WgslGreedyDecoder (maxBatch rows, self-attention K/V caches of maxLen tokens)
  let evalBytes = 0;
  if (inp.eval) {
    const Be = inp.eval.batch;
    const prompt = inp.eval.multilingual === false ? 2 : 4;
    const maxLen = prompt + Math.min(inp.eval.maxNewTokens, NP - prompt) - 1;
    evalBytes += 2 * f32(Be) + f32(maxLen) + 9 * f32(Be * C) + 2 * f32(Be * F) + 2 * f32(Be) + f32(Be * H * 2) + 2 * f32(C) + f32(H * 2);
    evalBytes += f32(Be * V); // logits (B, V)
    evalBytes += 2 * L * f32(maxLen * Be * C); // self-attention K/V caches
    for (const m of plan.modules) evalBytes += f32(m.nOut * m.nIn); // merged weights of the adapted Linears
    if (!shared) evalBytes += 2 * L * Be * f32(E * C); // per-row cross K/V with merged k/v
    big.push({ label: 'eval logits (B,V)', bytes: f32(Be * V) });
  }

  const totalBytes =
    weightsBytes + utterances * kvBytesPerUtterance + activationBytes + adapterStateBytes + vocabTileBytes + stagingBytes + evalBytes;
  big.sort((a, b) => b.bytes - a.bytes);
  const largestBuffer = { label: big[0].label, bytes: big[0].bytes };
  const bound = big.find((b) => !b.tiled)!;
  return {
    storage: inp.storage,
    batch: B,
    tokens: S,
    utterances,
    frames: E,
    weightsBytes,
    kvBytesPerUtterance,
    kvBytes: utterances * kvBytesPerUtterance,
    activationBytes,
    activationBytesPerToken: Math.round((activationBytes - crossBatchBytes) / T),
    crossBatchBytes,
    adapterStateBytes,
    adapterParams: plan.size,
    vocabTileBytes,
    vocabTiles: ce.tiles.length,
    stagingBytes,
    evalBytes,
    totalBytes,
    largestBuffer,
    largestBinding: { label: bound.label, bytes: bound.bytes },
    limits,
  };
}

function check(p: Omit<MemoryPlan, 'fits' | 'problems' | 'fixes'>): string[] {
  const l = p.limits;
  const out: string[] = [];
  if (p.totalBytes > l.budgetBytes) out.push(`needs ${fmtBytes(p.totalBytes)}, over the ${fmtBytes(l.budgetBytes)} budget`);
  if (p.largestBuffer.bytes > l.maxBufferSize)
    out.push(`${p.largestBuffer.label} is ${fmtMiB(p.largestBuffer.bytes)}, over maxBufferSize ${fmtMiB(l.maxBufferSize)}`);
  if (
    p.largestBinding.bytes > l.maxStorageBufferBindingSize &&
    !(p.largestBinding.label === p.largestBuffer.label && p.largestBuffer.bytes > l.maxBufferSize)
  ) {
    out.push(
      `${p.largestBinding.label} is ${fmtMiB(p.largestBinding.bytes)}, over maxStorageBufferBindingSize ${fmtMiB(l.maxStorageBufferBindingSize)}`,
    );
  }
  return out;
}

/**
 * Predict a run's GPU bytes and check them against the limits; when it does not fit, say what would:
 * for each of {storage as asked, f16} × {targets as asked, without encoder_attn k/v, the first target only},
 * the largest batch that fits (and, with a K/V cache of more utterances than the batch, how many utterances
 * fit), fewest changes first.
 */
export function planMemory(inp: MemoryPlanInput): MemoryPlan {
  const p = planOnce(inp);
  const problems = check(p);
  const fixes: string[] = [];
  if (problems.length) {
    const targets = planAdapters(inp.dims, { alpha: 1, dropout: 0, seed: 0, ...inp.adapters }).config.targets;
    const noCross = targets.filter((x) => x !== 'encoder_attn.k_proj' && x !== 'encoder_attn.v_proj');
    const storages: [string[], Partial<MemoryPlanInput>][] = [[[], {}]];
    if (inp.storage === 'f32') storages.push([['f16 storage (needs an adapter with shader-f16)'], { storage: 'f16' }]);
    const targetSets: [string[], AdapterTarget[]][] = [[[], targets]];
    if (noCross.length && noCross.length < targets.length)
      targetSets.push([['fewer targets: without encoder_attn.k_proj / v_proj (per-layer cross K/V copies of the batch)'], noCross]);
    if (targets.length > 1) targetSets.push([[`fewer targets: ${targets[0]} only`], [targets[0]]]);
    const found: { changes: string[]; cost: number }[] = [];
    for (const [sd, so] of storages) {
      for (const [td, t] of targetSets) {
        for (let b = inp.batch; b >= 1; b--) {
          const q = planOnce({ ...inp, ...so, adapters: { ...inp.adapters, targets: t }, batch: b, utterances: b });
          if (check(q).length) continue;
          // utterances the budget leaves room for (the cache holds every train + eval utterance)
          const want = inp.utterances ?? b; // a K/V cache of more utterances than the batch only when asked for
          const uMax = Math.min(want, b + Math.floor((q.limits.budgetBytes - q.totalBytes) / q.kvBytesPerUtterance));
          const changes = [...sd, ...td];
          if (b < inp.batch) changes.push(`smaller batch: ${b}`);
          if (uMax < want)
            changes.push(`fewer utterances: at most ${uMax} in the train + eval sets (K/V cache ${fmtBytes(q.kvBytesPerUtterance)} each)`);
          if (changes.length) found.push({ changes, cost: changes.length });
          break;
        }
      }
    }
    found.sort((x, y) => x.cost - y.cost);
    for (const f of found.slice(0, 3)) fixes.push(f.changes.join(' + '));
    if (!fixes.length) fixes.push('no setting fits these limits: a GPU with more memory (or larger buffer limits) is needed');
  }
  return { ...p, fits: problems.length === 0, problems, fixes };
}

/** "1.9 GiB", "69 MB" — binary units above 1 GiB, decimal MB below (as the numbers). */
export function fmtBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(n >= 10 * GiB ? 0 : 1)} GiB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

/** MiB, as WebGPU limits are stated (256 MiB per buffer, 128 MiB per binding). */
export function fmtMiB(n: number): string {
  return `${(n / MiB).toFixed(n >= 100 * MiB ? 0 : 1)} MiB`;
}

/** One line: "needs 1.9 GiB: weights 0.4 GiB, K/V 8 × 69 MB, activations …; fits (…)". */
export function formatPlan(p: MemoryPlan): string {
  const parts = [
    `weights ${fmtBytes(p.weightsBytes)}`,
    `K/V ${p.utterances} × ${fmtBytes(p.kvBytesPerUtterance)}`,
    `activations ${fmtBytes(p.activationBytes)}`,
    `vocab tiles ${fmtBytes(p.vocabTileBytes)}`,
    `adapter state ${fmtBytes(p.adapterStateBytes)}`,
    ...(p.evalBytes ? [`eval ${fmtBytes(p.evalBytes)}`] : []),
    `staging ${fmtBytes(p.stagingBytes)}`,
  ];
  const l = p.limits;
  const verdict = p.fits
    ? `fits ${l.source} (budget ${fmtBytes(l.budgetBytes)}, largest buffer ${fmtMiB(p.largestBuffer.bytes)} ≤ ${fmtMiB(l.maxBufferSize)}, largest binding ${fmtMiB(p.largestBinding.bytes)} ≤ ${fmtMiB(l.maxStorageBufferBindingSize)})`
    : `does not fit ${l.source}: ${p.problems.join('; ')} — fix: ${p.fixes.join(', or ')}`;
  return `needs ${fmtBytes(p.totalBytes)} (${p.storage}): ${parts.join(', ')}; ${verdict}`;
}

/**
 * Adapter configuration and the flat parameter layout of the engine (README "Conventions"):
 * every trainable value lives in ONE f32 buffer `theta`; `grads`, AdamW's `m`, `v` share its indexing.
 *
 * Modules are ordered by layer, then by ADAPTER_TARGETS order; module i has RNG module id i
 * (factor A → tensor 2i, factor B → tensor 2i + 1). Layout of module i at theta[base_i ..]:
 *   LoRA:                  A (r, in) | B (out, r)
 *   BLoRA:                 μ_A (r, in) | ρ_A (r, in) | μ_B (out, r) | ρ_B (out, r)
 *   BLoRA bayesianAOnly:   μ_A (r, in) | ρ_A (r, in) | B (out, r)
 * The HF / PEFT name of module i is `model.decoder.layers.N.<target>`.
 *
 * Initialization (spec "LoRA" / "BLoRA"): A, μ_A ~ U(−1/√in, 1/√in) (kaiming-uniform a = √5);
 * B, μ_B = 0; ρ_A ~ U(−5.5, −4.5); ρ_B = −50. The uniform draws come from a seeded JS generator
 * (mulberry32), not the GPU RNG: initialization happens once, on the CPU.
 */
import type { LoraMode } from './reference/lora';
import type { WhisperDecoderDims } from './weights';

import TABLE from './adapter-targets.json';

/** The literal names, for the type; their order and shapes come from adapter-targets.json (checked below). */
export const ADAPTER_TARGETS = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.out_proj',
  'encoder_attn.q_proj',
  'encoder_attn.k_proj',
  'encoder_attn.v_proj',
  'encoder_attn.out_proj',
  'fc1',
  'fc2',
] as const;
export type AdapterTarget = (typeof ADAPTER_TARGETS)[number];
if (TABLE.targets.map((t) => t.name).join() !== ADAPTER_TARGETS.join()) {
  throw new Error(
    `src/engine/adapter-targets.json lists ${TABLE.targets.map((t) => t.name).join(', ')}; src/engine/adapters.ts knows ${ADAPTER_TARGETS.join(', ')}`,
  );
}
export type BayesEstimator = 'flipout' | 'bbb' | 'lrt';

export const DEFAULT_TARGETS: AdapterTarget[] = TABLE.default as AdapterTarget[];

export interface AdapterConfig {
  kind: 'lora' | 'blora';
  /** BLoRA noise estimator (default 'flipout'); ignored for LoRA. */
  estimator?: BayesEstimator;
  r: number;
  alpha: number;
  /** Dropout on the adapter input in training (spec default 0.05). */
  dropout: number;
  /** Default: q_proj, v_proj of self-attention. */
  targets?: AdapterTarget[];
  /** Decoder layers carrying adapters (default all). */
  layers?: number[];
  /** BLoRA: B deterministic (the BLoB variant). */
  bayesianAOnly?: boolean;
  /** Prior σ_p (default 0.01). */
  sigmaPrior?: number;
  /** BLoRA: initial ρ_B (default 'constant'); see RhoBInit. */
  rhoBInit?: RhoBInit;
  /** KL weight β (default 1e-4). */
  beta?: number;
  /** BLoRA: ε in the KL's log(σ + ε) (default 0 = exact; the authors' code 1e-6). */
  klLogEps?: number;
  /** BLoRA: ρ not updated by AdamW (σ stays at its initial value; ρ's gradient still counts in the clip norm). */
  freezeRho?: boolean;
  /** 64-bit RNG seed of the noise (Philox key). */
  seed: number | bigint;
}

export interface AdapterModule {
  /** module index = RNG module id */
  id: number;
  layer: number;
  target: AdapterTarget;
  /** HF name, e.g. model.decoder.layers.0.self_attn.q_proj */
  name: string;
  nIn: number;
  nOut: number;
  modeA: LoraMode;
  modeB: LoraMode;
  /** element offsets into theta (= into grads, m, v). rho* = −1 when the factor is deterministic. */
  off: { muA: number; rhoA: number; muB: number; rhoB: number };
  /** first element and element count of the module in theta */
  base: number;
  size: number;
}

export interface AdapterPlan {
  config: Required<Omit<AdapterConfig, 'estimator'>> & { estimator: BayesEstimator };
  modules: AdapterModule[];
  /** theta length */
  size: number;
  /** Bayesian factor matrices (KL terms): one slot each, in module order (A before B). */
  klFactors: { module: number; factor: 'A' | 'B'; n: number; muOff: number; rhoOff: number }[];
}

export function targetShape(dims: WhisperDecoderDims, t: AdapterTarget): { nIn: number; nOut: number } {
  const row = TABLE.targets[ADAPTER_TARGETS.indexOf(t)];
  if (!row) throw new Error(`unknown adapter target ${t}`);
  const width = (w: string) => (w === 'F' ? dims.F : dims.C);
  return { nIn: width(row.in), nOut: width(row.out) };
}

export function planAdapters(dims: WhisperDecoderDims, cfg: AdapterConfig): AdapterPlan {
  const targets = cfg.targets ?? DEFAULT_TARGETS;
  for (const t of targets) if (!ADAPTER_TARGETS.includes(t)) throw new Error(`unknown adapter target ${t}`);
  const layers = cfg.layers ?? Array.from({ length: dims.L }, (_, l) => l);
  for (const l of layers) if (!(Number.isInteger(l) && l >= 0 && l < dims.L)) throw new Error(`bad adapter layer ${l}`);
  if (!(Number.isInteger(cfg.r) && cfg.r >= 1)) throw new Error(`bad LoRA rank r=${cfg.r}`);
  const estimator = cfg.estimator ?? 'flipout';
  const config = {
    kind: cfg.kind,
    estimator,
    r: cfg.r,
    alpha: cfg.alpha,
    dropout: cfg.dropout,
    targets: ADAPTER_TARGETS.filter((t) => targets.includes(t)),
    layers: [...new Set(layers)].sort((a, b) => a - b),
    bayesianAOnly: cfg.bayesianAOnly ?? false,
    sigmaPrior: cfg.sigmaPrior ?? 0.01,
    rhoBInit: cfg.rhoBInit ?? 'constant',
    beta: cfg.beta ?? 1e-4,
    klLogEps: cfg.klLogEps ?? 0,
    freezeRho: cfg.freezeRho ?? false,
    seed: cfg.seed,
  };
  const bayes = cfg.kind === 'blora';
  const modeA: LoraMode = bayes ? estimator : 'det';
  const modeB: LoraMode = bayes && !config.bayesianAOnly ? estimator : 'det';
  const modules: AdapterModule[] = [];
  const klFactors: AdapterPlan['klFactors'] = [];
  let p = 0;
  for (const layer of config.layers) {
    for (const target of config.targets) {
      const { nIn, nOut } = targetShape(dims, target);
      const nA = cfg.r * nIn;
      const nB = nOut * cfg.r;
      const base = p;
      const muA = p;
      p += nA;
      const rhoA = modeA !== 'det' ? p : -1;
      if (modeA !== 'det') p += nA;
      const muB = p;
      p += nB;
      const rhoB = modeB !== 'det' ? p : -1;
      if (modeB !== 'det') p += nB;
      const id = modules.length;
      if (rhoA >= 0) klFactors.push({ module: id, factor: 'A', n: nA, muOff: muA, rhoOff: rhoA });
      if (rhoB >= 0) klFactors.push({ module: id, factor: 'B', n: nB, muOff: muB, rhoOff: rhoB });
      modules.push({
        id,
        layer,
        target,
        name: `model.decoder.layers.${layer}.${target}`,
        nIn,
        nOut,
        modeA,
        modeB,
        off: { muA, rhoA, muB, rhoB },
        base,
        size: p - base,
      });
    }
  }
  return { config, modules, size: p, klFactors };
}

/**
 * AdamW's parameter groups over theta: [offset, offset + n) runs in theta order, `frozen` for the ρ of the
 * Bayesian factors when plan.config.freezeRho (adjacent runs of one kind merged). Without freezeRho: one run.
 */
export function optimizerRuns(plan: AdapterPlan): { offset: number; n: number; frozen: boolean }[] {
  if (!plan.config.freezeRho || !plan.klFactors.length) return [{ offset: 0, n: plan.size, frozen: false }];
  const rho = plan.klFactors.map((f) => [f.rhoOff, f.n] as const).sort((a, b) => a[0] - b[0]);
  const runs: { offset: number; n: number; frozen: boolean }[] = [];
  const push = (offset: number, n: number, frozen: boolean) => {
    if (n <= 0) return;
    const last = runs[runs.length - 1];
    if (last && last.frozen === frozen && last.offset + last.n === offset) last.n += n;
    else runs.push({ offset, n, frozen });
  };
  let p = 0;
  for (const [off, n] of rho) {
    push(p, off - p, false);
    push(off, n, true);
    p = off + n;
  }
  push(p, plan.size - p, false);
  return runs;
}

/**
 * One draw from the posterior in theta's layout: every Bayesian factor's μ replaced by μ + softplus(ρ)·ε, ε ~ N(0, 1)
 * (Box–Muller on mulberry32(seed)); ρ and deterministic factors unchanged. Merged like the means (the decoder reads
 * μ), it is one sample adapter — what the uncertainty scores decode with (src/metrics/uncertainty.ts).
 */
export function posteriorSample(plan: AdapterPlan, theta: Float32Array, seed: number): Float32Array {
  const out = theta.slice();
  const rnd = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const softplus = (r: number) => (r < -20 ? Math.exp(r) : Math.max(r, 0) + Math.log1p(Math.exp(-Math.abs(r))));
  for (const f of plan.klFactors)
    for (let i = 0; i < f.n; i++) out[f.muOff + i] = theta[f.muOff + i] + softplus(theta[f.rhoOff + i]) * gauss();
  return out;
}

/** mulberry32: a small seeded uniform generator in [0, 1) for initialization. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Initial ρ_B of BLoRA (μ_B is 0 either way). 'constant': −50, so σ_B ≈ 2e-22 and B carries no noise until ρ_B
 * is trained up (enesyugan/continual-asr loras/bnn_lora.py:536, added by commit 46826e7 of 2025-10-31). 'uniform':
 * drawn as ρ_A, U(−5.5, −4.5), so B's noise is live from step 0 (before that commit ρ_B kept the draw of
 * reset_parameters, bnn_lora.py:148, uniform_(log_sigma, init_log_sigma, init_log_sigma + 1), init −5.5; issue 14).
 */
export type RhoBInit = 'constant' | 'uniform';
export const RHO_B_INITS: readonly RhoBInit[] = ['constant', 'uniform'];

/** The spec's initialization of theta (see the header); ρ_B as plan.config.rhoBInit says. */
export function initAdapterTheta(plan: AdapterPlan, seed: number): Float32Array {
  return drawAdapterTheta(plan, seed, { muB: 'zero', rhoB: plan.config.rhoBInit === 'uniform' ? 'uniform' : -50 }); // μ_B = B = 0
}

/**
 * Theta drawn from one mulberry32 stream in module order — μ_A ~ U(±1/√in), ρ_A ~ U(−5.5, −4.5), then μ_B and ρ_B:
 * μ_B 'zero' (no draws) or U(±muB); ρ_B a constant or 'uniform' U(−5.5, −4.5). The spec init above and the
 * tests' non-zero values (every gradient path exercised) share it.
 */
export function drawAdapterTheta(plan: AdapterPlan, seed: number, o: { muB: 'zero' | number; rhoB: 'uniform' | number }): Float32Array {
  const rnd = mulberry32(seed);
  const theta = new Float32Array(plan.size);
  const uni = (off: number, n: number, lo: number, hi: number) => {
    for (let i = 0; i < n; i++) theta[off + i] = lo + (hi - lo) * rnd();
  };
  const r = plan.config.r;
  for (const m of plan.modules) {
    const bound = 1 / Math.sqrt(m.nIn);
    uni(m.off.muA, r * m.nIn, -bound, bound);
    if (m.off.rhoA >= 0) uni(m.off.rhoA, r * m.nIn, -5.5, -4.5);
    if (o.muB !== 'zero') uni(m.off.muB, m.nOut * r, -o.muB, o.muB);
    if (m.off.rhoB >= 0) {
      if (o.rhoB === 'uniform') uni(m.off.rhoB, m.nOut * r, -5.5, -4.5);
      else theta.fill(o.rhoB, m.off.rhoB, m.off.rhoB + m.nOut * r);
    }
  }
  return theta;
}

/** Views of one module's tensors in a theta-indexed array (theta, grads, m, v, …). */
export type ModuleTensorKey = 'A' | 'B' | 'muA' | 'rhoA' | 'muB' | 'rhoB';

export function moduleTensors<Arr extends Float32Array | Float64Array>(
  plan: AdapterPlan,
  m: AdapterModule,
  arr: Arr,
): { name: string; key: ModuleTensorKey; shape: [number, number]; data: Arr }[] {
  const r = plan.config.r;
  const out: { name: string; key: ModuleTensorKey; shape: [number, number]; data: Arr }[] = [];
  const view = (off: number, n: number) => arr.subarray(off, off + n) as Arr;
  const bayesA = m.off.rhoA >= 0;
  const bayesB = m.off.rhoB >= 0;
  if (plan.config.kind === 'lora') {
    out.push({ name: m.name, key: 'A', shape: [r, m.nIn], data: view(m.off.muA, r * m.nIn) });
    out.push({ name: m.name, key: 'B', shape: [m.nOut, r], data: view(m.off.muB, m.nOut * r) });
    return out;
  }
  out.push({ name: m.name, key: 'muA', shape: [r, m.nIn], data: view(m.off.muA, r * m.nIn) });
  if (bayesA) out.push({ name: m.name, key: 'rhoA', shape: [r, m.nIn], data: view(m.off.rhoA, r * m.nIn) });
  out.push({ name: m.name, key: bayesB ? 'muB' : 'B', shape: [m.nOut, r], data: view(m.off.muB, m.nOut * r) });
  if (bayesB) out.push({ name: m.name, key: 'rhoB', shape: [m.nOut, r], data: view(m.off.rhoB, m.nOut * r) });
  return out;
}

/**
 * The Whisper decoder, forward and backward, assembled from the engine's WGSL kernels, with LoRA /
 * BLoRA adapters on chosen Linear layers. Hugging Face WhisperDecoder semantics (pre-LN):
 *
 *   x = E[ids] + P[pos]                                        (T, C)   no embedding scale
 *   per layer l:
 *     h = LN1(x);  q,k,v = h·Wᵀ (+b) [+ adapter]               (T, C)   q scaled by D^-½ inside attention
 *     o = causal-SDPA(q, k, v; key mask)                        (T, C)
 *     x = x + (o·Woᵀ + bo [+ adapter])
 *     h = LN2(x);  q = h·Wqᵀ + bq [+ adapter]
 *     K, V = enc·Wkᵀ, enc·Wvᵀ + bv [+ adapters]                 (B, E, C) cached per utterance (frozen part)
 *     x = x + (SDPA(q, K, V)·Woᵀ + bo [+ adapter])
 *     h = LN3(x);  f = h·W1ᵀ + b1 [+ adapter];  g = GELU(f)     (T, F)   exact erf GELU
 *     x = x + (g·W2ᵀ + b2 [+ adapter])
 *   h = LN_f(x);  logits = h·Eᵀ (tied);  CE = mean over labels ≥ 0 (HF −100 = ignored)
 *   loss = CE + β·KL,  KL = Σ over Bayesian factor matrices of the per-element mean KL
 *
 * Batch: B right-padded sequences of S tokens, T = B·S rows, row t = b·S + s, positions s.
 * Encoder states per utterance: (E, C), E = 1500 frames (from onnxruntime-web in the studio).
 *
 * Backward: reverse order; only activation gradients flow through frozen parts (linear_backward,
 * layernorm/gelu/attention backward); adapters accumulate dμ/dρ into `grads`; the residual
 * gradient `dres` (T, C) is updated in place by the layernorm backward's accumulate mode. Work below
 * the lowest adapted module is skipped (frozen embedding, nothing to train there).
 *
 * All GPU work of a phase (forward, backward, optimizer step) is recorded into ONE command buffer
 * (BatchingRuntime). Memory: activations per layer ≈ (14·C + 2·F)·T floats; cross K/V batch
 * buffers (B·E, C): one shared pair re-filled per layer from the cache when encoder_attn k/v carry no
 * adapter, else one pair per layer.
 */
import { convertCall, convertKernel, prepareMatmulBias } from '../gpu/kernels/matmul';
import { STORAGE_BYTES, type StorageType, tagStorage } from '../gpu/wgsl-variants';
import type { GpuRuntime } from '../gpu/runtime';
import { type AdamHyper, prepareAdamW, prepareGradNorm } from './kernels/adamw';
import { prepareAttention, type AttentionCall } from './kernels/attention';
import { prepareEmbedding } from './kernels/embedding';
import { prepareGeluBackward, prepareGeluForward } from './kernels/gelu';
import { prepareKl } from './kernels/kl';
import { prepareLayernormBackward, prepareLayernormForward } from './kernels/layernorm';
import { prepareLinearBackward } from './kernels/linear_backward';
import { prepareLogitsCe, type LogitsCeCall } from './kernels/logits_ce';
import { prepareLoraAdapter, type LoraAdapterCall } from './kernels/lora';
import { BatchingRuntime, prepareAdd } from './batch';
import { type AdapterConfig, type AdapterPlan, type AdapterTarget, initAdapterTheta, optimizerRuns, planAdapters } from './adapters';
import { type ActGradKey, activationGradSpecs, crossKvShared, kvCacheBytesPerUtterance, layerActivationSpecs } from './memory-plan';
import type { DecoderWeights, LinearWeights } from './weights';

export const WHISPER_ENCODER_FRAMES = 1500;

type Call = { run(): void; destroy(): void };

const batchingByDevice = new WeakMap<GPUDevice, BatchingRuntime>();

/**
 * The device's BatchingRuntime (one per device, so compiled pipelines are shared by all decoders: the
 * training engine and WgslGreedyDecoder of every run compile each kernel once per device).
 */
export function batching(rt: GpuRuntime): BatchingRuntime {
  if (rt instanceof BatchingRuntime) return rt;
  let b = batchingByDevice.get(rt.device);
  if (!b) {
    b = new BatchingRuntime(rt.device, 'engine-batch');
    batchingByDevice.set(rt.device, b);
  }
  return b;
}

/**
 * Cross-attention keys/values of utterances, computed once from the frozen encoder_attn k/v
 * projections and kept on the GPU: per utterance enc (E, C) and, per layer, K = enc·Wkᵀ (E, C),
 * V = enc·Wvᵀ + bv (E, C) — (2L + 1)·E·C floats, 39 MB for Whisper base. Several decoders (e.g.
 * different adapter configs) can share one cache. `capacity` bounds the utterances kept (least
 * recently used evicted first; a batch needs all its utterances present).
 * Storage: K and V in the weights' storage type (f16 storage: the matmul stores f16, 2 bytes each —
 * 21 MB per utterance for base); enc stays f32 (it is the input of adapted encoder_attn k/v).
 */
export class EncoderKvCache {
  private readonly entries = new Map<string, { enc: GPUBuffer; k: GPUBuffer[]; v: GPUBuffer[] }>();
  private readonly rt: BatchingRuntime;
  readonly frames: number;
  readonly capacity: number;
  /** element type of the cached K and V (= the weights' storage type) */
  readonly storage: StorageType;

  constructor(
    rt: GpuRuntime,
    readonly weights: DecoderWeights,
    opts: { frames?: number; capacity?: number } = {},
  ) {
    this.rt = batching(rt);
    this.storage = weights.storage;
    this.frames = opts.frames ?? WHISPER_ENCODER_FRAMES;
    this.capacity = opts.capacity ?? Infinity;
    if (!(this.capacity >= 1)) throw new Error(`EncoderKvCache: capacity must be ≥ 1`);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Bytes held per utterance. */
  get bytesPerUtterance(): number {
    return kvCacheBytesPerUtterance(this.weights.dims, this.frames, this.storage);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): { enc: GPUBuffer; k: GPUBuffer[]; v: GPUBuffer[] } {
    const e = this.entries.get(key);
    if (!e) throw new Error(`EncoderKvCache: utterance '${key}' not in the cache (add it first)`);
    this.entries.delete(key); // most recently used last
    this.entries.set(key, e);
    return e;
  }

  delete(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.rt.flush(); // buffers may be destroyed once the work using them is submitted
    [e.enc, ...e.k, ...e.v].forEach((b) => b.destroy());
    this.entries.delete(key);
  }

  /** Upload encoder states (E, C) of an utterance and compute its K, V for every layer. */
  async add(key: string, states: Float32Array): Promise<void> {
    if (this.entries.has(key)) return;
    const { C, L } = this.weights.dims;
    const E = this.frames;
    if (states.length !== E * C) throw new Error(`EncoderKvCache: states of '${key}' have ${states.length} ≠ ${E}·${C} values`);
    while (this.entries.size >= this.capacity) this.delete(this.entries.keys().next().value!);
    const rt = this.rt;
    const enc = rt.upload(`enc[${key}] (E,C)`, states);
    const k: GPUBuffer[] = [];
    const v: GPUBuffer[] = [];
    const calls: Call[] = [];
    for (let l = 0; l < L; l++) {
      const ca = this.weights.layers[l].crossAttn;
      for (const [lin, out] of [
        [ca.k, k],
        [ca.v, v],
      ] as const) {
        const y = tagStorage(rt.storage(`${lin.name}[${key}] (E,C)`, E * C * STORAGE_BYTES[this.storage]), this.storage);
        out.push(y);
        const call = await prepareMatmulBias(rt, { M: E, N: C, K: C }, { x: enc, w: lin.w, bias: lin.b, y }, `${lin.name}[${key}]`);
        call.run();
        calls.push(call);
      }
    }
    await rt.sync();
    calls.forEach((c) => c.destroy());
    this.entries.set(key, { enc, k, v });
  }

  destroy(): void {
    for (const key of [...this.entries.keys()]) this.delete(key);
  }
}

export interface DecoderShape {
  /** sequences per batch */
  B: number;
  /** tokens per (padded) sequence */
  S: number;
}

export interface DecoderOptions {
  /** initial theta (adapter values in the plan's layout); default: the spec init with initSeed */
  theta?: Float32Array;
  initSeed?: number;
  /** AdamW hyper-parameters (default lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 5e-4 — spec) */
  hyper?: AdamHyper;
  /** global-norm clipping threshold (0 / undefined: none; the norm is still computed, see readGradNorm) */
  maxGradNorm?: number;
  /**
   * Micro-batches per optimizer step (default 1). Each backward() then adds the gradient of
   * CE/gradAccum (lossScale) and of (β/gradAccum)·KL, so gradAccum micro-batches sum to the gradient
   * of mean-of-micro-batch-CE + β·KL — HF Trainer's convention.
   */
  gradAccum?: number;
  label?: string;
}

export interface DecoderBatch {
  /** (B·S) token ids, right-padded */
  inputIds: ArrayLike<number>;
  /** (B·S) target ids; < 0 (HF −100) = not scored */
  labels: ArrayLike<number>;
  /** (B) real lengths: keys ≥ length are masked in self-attention (right padding). Default S. */
  lengths?: number[];
  /** (B) EncoderKvCache keys of the utterances */
  utterances: string[];
}

export interface DecoderLoss {
  /** mean CE over scored tokens */
  ce: number;
  /** scored tokens */
  count: number;
  /** Σ of the per-factor mean KLs (unscaled; 0 for LoRA) */
  kl: number;
  /** ce + β·kl */
  loss: number;
}

const SPEC_ADAMW: AdamHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 5e-4 };

type Block = 'sa' | 'ca' | 'ffn';
const BLOCK_OF: Record<AdapterTarget, Block> = {
  'self_attn.q_proj': 'sa',
  'self_attn.k_proj': 'sa',
  'self_attn.v_proj': 'sa',
  'self_attn.out_proj': 'sa',
  'encoder_attn.q_proj': 'ca',
  'encoder_attn.k_proj': 'ca',
  'encoder_attn.v_proj': 'ca',
  'encoder_attn.out_proj': 'ca',
  fc1: 'ffn',
  fc2: 'ffn',
};
const BLOCK_INDEX: Record<Block, number> = { sa: 0, ca: 1, ffn: 2 };

interface LayerActs {
  x: GPUBuffer; // (T, C) layer input (residual stream)
  h1: GPUBuffer; // (T, C) LN1(x)
  mean1: GPUBuffer; // (T,)
  rstd1: GPUBuffer; // (T,)
  q: GPUBuffer; // (T, C)
  k: GPUBuffer; // (T, C)
  v: GPUBuffer; // (T, C)
  o1: GPUBuffer; // (T, C) self-attention output (before out_proj)
  st1: GPUBuffer; // (B, H, S, 2)
  x1: GPUBuffer; // (T, C) after the self-attention residual
  h2: GPUBuffer;
  mean2: GPUBuffer;
  rstd2: GPUBuffer;
  q2: GPUBuffer; // (T, C)
  o2: GPUBuffer; // (T, C)
  st2: GPUBuffer; // (B, H, S, 2)
  x2: GPUBuffer; // (T, C) after the cross-attention residual
  h3: GPUBuffer;
  mean3: GPUBuffer;
  rstd3: GPUBuffer;
  f1: GPUBuffer; // (T, F) fc1 output (GELU input)
  g: GPUBuffer; // (T, F) GELU output (fc2 input)
  kc: GPUBuffer; // (B·E, C) cross K of the batch (shared between layers when not adapted)
  vc: GPUBuffer; // (B·E, C)
}

interface LayerCalls {
  ln1: Call;
  ln2: Call;
  ln3: Call;
  ln1B: Call;
  ln2B: Call;
  ln3B: Call;
  mm: Record<'saq' | 'sak' | 'sav' | 'sao' | 'caq' | 'cao' | 'fc1' | 'fc2', Call>;
  lb: Record<'saq' | 'sak' | 'sav' | 'sao' | 'caq' | 'cao' | 'fc1' | 'fc2', Call>;
  attnS: AttentionCall;
  attnC: AttentionCall;
  gelu: Call;
  geluB: Call;
  add1: Call;
  add2: Call;
  add3: Call;
  /** training adapters and posterior-mean (eval) adapters by target */
  ad: Partial<Record<AdapterTarget, LoraAdapterCall>>;
  adEval: Partial<Record<AdapterTarget, LoraAdapterCall>>;
}

export class WhisperDecoderEngine {
  /** theta (P,), grads (P,), AdamW m, v (P,) */
  readonly theta: GPUBuffer;
  readonly grads: GPUBuffer;
  readonly m: GPUBuffer;
  readonly v: GPUBuffer;
  readonly T: number;
  private batch: DecoderBatch | null = null;
  private trainedForward = -1;
  private layers: LayerCalls[] = [];
  private acts: LayerActs[] = [];
  private owned: GPUBuffer[] = [];
  private calls: { destroy(): void }[] = [];
  private embedding!: Call;
  private lnF!: Call;
  private lnFB!: Call;
  private ce!: LogitsCeCall;
  private kl: (Call & { setBeta(beta: number): void })[] = [];
  private klValue: Call[] = [];
  /** the KL weight β now (the adapter config's at creation; setBeta changes it between steps) */
  private betaNow = 0;
  private gradNorm!: Call;
  private adamw!: { step(t: number, lr?: number): void; destroy(): void };
  private clip!: GPUBuffer;
  /** micro-batches per optimizer step (CE and KL gradients scaled by 1/gradAccum) */
  readonly gradAccum: number;
  private tokens!: GPUBuffer;
  private targets!: GPUBuffer;
  private keyMask!: GPUBuffer;
  private klOut!: GPUBuffer;
  private encB: GPUBuffer | null = null;
  private crossShared: boolean;

  private constructor(
    readonly rt: BatchingRuntime,
    readonly weights: DecoderWeights,
    readonly shape: DecoderShape,
    readonly plan: AdapterPlan,
    readonly cache: EncoderKvCache,
    readonly label: string,
    gradAccum: number,
  ) {
    this.T = shape.B * shape.S;
    this.gradAccum = gradAccum;
    if (!(Number.isInteger(gradAccum) && gradAccum >= 1)) throw new Error(`${label}: gradAccum must be an integer ≥ 1 (got ${gradAccum})`);
    const P = Math.max(1, plan.size);
    this.theta = this.buf('theta (P,)', P);
    this.grads = this.buf('grads (P,)', P);
    this.m = this.buf('adamw m (P,)', P);
    this.v = this.buf('adamw v (P,)', P);
    const t = plan.config.targets;
    this.crossShared = crossKvShared(t);
  }

  private buf(name: string, elems: number, storage: StorageType = 'f32'): GPUBuffer {
    const b = tagStorage(this.rt.storage(`${this.label}:${name}`, elems * STORAGE_BYTES[storage]), storage);
    this.owned.push(b);
    return b;
  }

  private own<C extends { destroy(): void }>(c: C): C {
    this.calls.push(c);
    return c;
  }

  static async create(
    rt: GpuRuntime,
    weights: DecoderWeights,
    shape: DecoderShape,
    adapters: AdapterConfig,
    cache: EncoderKvCache,
    opts: DecoderOptions = {},
  ): Promise<WhisperDecoderEngine> {
    const label = opts.label ?? 'decoder';
    if (cache.weights !== weights) throw new Error(`${label}: the EncoderKvCache was built from other weights`);
    const plan = planAdapters(weights.dims, adapters);
    const d = new WhisperDecoderEngine(batching(rt), weights, shape, plan, cache, label, opts.gradAccum ?? 1);
    await d.prepare(opts);
    return d;
  }

  private async prepare(opts: DecoderOptions): Promise<void> {
    const { rt, weights, plan, shape } = this;
    const { C, H, D, F, L, V, NP } = weights.dims;
    const { B, S } = shape;
    const T = this.T;
    const E = this.cache.frames;
    if (S > NP) throw new Error(`${this.label}: S=${S} > ${NP} positions`);
    const cfg = plan.config;

    // ---- parameters
    const theta0 = opts.theta ?? initAdapterTheta(plan, opts.initSeed ?? 0);
    if (theta0.length !== plan.size) throw new Error(`${this.label}: theta has ${theta0.length} ≠ ${plan.size} values`);
    if (plan.size) rt.device.queue.writeBuffer(this.theta, 0, new Float32Array(theta0));

    // ---- batch inputs
    this.tokens = this.buf('tokens (T,) u32', T);
    const positions = this.buf('positions (T,) u32', T);
    rt.device.queue.writeBuffer(
      positions,
      0,
      Uint32Array.from({ length: T }, (_, t) => t % S),
    );
    this.targets = this.buf('targets (T,) i32', T);
    this.keyMask = this.buf('self-attn key mask (B,S) u32', T);
    rt.device.queue.writeBuffer(this.keyMask, 0, new Uint32Array(T).fill(1));

    // ---- activations
    const TC = T * C;
    // buffer tables shared with the memory plan (memory-plan.ts): what is allocated is what is planned
    const actSpecs = layerActivationSpecs(weights.dims, B, S);
    const acts = (l: number): LayerActs => {
      const a = { kc: null as unknown as GPUBuffer, vc: null as unknown as GPUBuffer } as LayerActs;
      for (const sp of actSpecs) a[sp.key] = this.buf(`L${l}.${sp.label}`, sp.elems);
      return a;
    };
    // shared (no adapter on encoder_attn k/v): byte copies of the cache, in its storage type; adapted:
    // f32 per layer (the adapters add into them), widened from an f16 cache by prepareConvert
    const kvs = this.cache.storage;
    if (kvs !== 'f32' && !this.crossShared) this.widenPipeline = await rt.pipeline(convertKernel(kvs, 'f32'));
    const sharedK = this.crossShared ? this.buf('cross K (B·E,C)', B * E * C, kvs) : null;
    const sharedV = this.crossShared ? this.buf('cross V (B·E,C)', B * E * C, kvs) : null;
    for (let l = 0; l < L; l++) {
      const a = acts(l);
      a.kc = sharedK ?? this.buf(`L${l}.cross K (B·E,C)`, B * E * C);
      a.vc = sharedV ?? this.buf(`L${l}.cross V (B·E,C)`, B * E * C);
      this.acts.push(a);
    }
    const xL = this.buf(`L${L}.x (T,C) final residual`, TC);
    const hF = this.buf('hF (T,C) final LN', TC);
    const meanF = this.buf('meanF (T,)', T);
    const rstdF = this.buf('rstdF (T,)', T);
    const tmp = this.buf('tmp (T,C) sublayer output', TC);
    if (!this.crossShared) this.encB = this.buf('enc batch (B·E,C)', B * E * C);

    // ---- gradients of activations
    const grad = {} as Record<ActGradKey, GPUBuffer>;
    for (const sp of activationGradSpecs(weights.dims, T)) grad[sp.key] = this.buf(sp.label, sp.elems);
    const { dres, dH, dQ, dK, dV, dO, dQ2, dF, dG, dhF } = grad;
    const dK2 = this.crossShared ? null : this.buf('dK2 (B·E,C)', B * E * C);
    const dV2 = this.crossShared ? null : this.buf('dV2 (B·E,C)', B * E * C);
    const dEnc = this.crossShared ? null : this.buf('dEnc (B·E,C) scratch', B * E * C);

    // ---- embedding, final LN, logits + CE
    this.embedding = this.own(
      await prepareEmbedding(
        rt,
        { T, C, V, NP },
        { tokens: this.tokens, positions, E: weights.embedTokens, P: weights.embedPositions, x: this.acts[0]?.x ?? xL },
        { label: `${this.label}.embedding` },
      ),
    );
    const lnW = weights.layerNorm;
    this.lnF = this.own(
      await prepareLayernormForward(
        rt,
        { T, C },
        { x: xL, gamma: lnW.gamma, beta: lnW.beta, y: hF, mean: meanF, rstd: rstdF },
        { label: `${this.label}.layer_norm` },
      ),
    );
    this.lnFB = this.own(
      await prepareLayernormBackward(
        rt,
        { T, C },
        { dy: dhF, x: xL, gamma: lnW.gamma, mean: meanF, rstd: rstdF, dx: dres },
        { accumulate: false, label: `${this.label}.layer_norm.bwd` },
      ),
    );
    this.ce = await prepareLogitsCe(
      rt,
      { T, C, V },
      { h: hF, E: weights.embedTokens, targets: this.targets, dh: dhF },
      { label: `${this.label}.logits_ce`, lossScale: 1 / this.gradAccum },
    );

    // ---- layers
    const mods = new Map(plan.modules.map((m) => [`${m.layer}:${m.target}`, m]));
    for (let l = 0; l < L; l++) {
      const w = weights.layers[l];
      const a = this.acts[l];
      const xNext = l + 1 < L ? this.acts[l + 1].x : xL;
      const p = `${this.label}.L${l}`;
      const mm = async (lin: LinearWeights, x: GPUBuffer, y: GPUBuffer, M: number) =>
        this.own(await prepareMatmulBias(rt, { M, N: lin.nOut, K: lin.nIn }, { x, w: lin.w, bias: lin.b, y }, `${p}:${lin.name}`));
      const lb = async (lin: LinearWeights, dy: GPUBuffer, dx: GPUBuffer, accumulate: boolean) =>
        this.own(
          await prepareLinearBackward(rt, { M: T, N: lin.nOut, K: lin.nIn }, { dy, w: lin.w, dx }, { accumulate }, `${p}:${lin.name}.bwd`),
        );
      const lnf = async (ln: typeof w.selfAttnLn, x: GPUBuffer, y: GPUBuffer, mean: GPUBuffer, rstd: GPUBuffer) =>
        this.own(
          await prepareLayernormForward(rt, { T, C }, { x, gamma: ln.gamma, beta: ln.beta, y, mean, rstd }, { label: `${p}:${ln.name}` }),
        );
      const lnb = async (ln: typeof w.selfAttnLn, x: GPUBuffer, mean: GPUBuffer, rstd: GPUBuffer) =>
        this.own(
          await prepareLayernormBackward(
            rt,
            { T, C },
            { dy: dH, x, gamma: ln.gamma, mean, rstd, dx: dres },
            { accumulate: true, label: `${p}:${ln.name}.bwd` },
          ),
        );
      const add = async (x: GPUBuffer, y: GPUBuffer, out: GPUBuffer, what: string) =>
        this.own(await prepareAdd(rt, TC, { a: x, b: y, y: out }, `${p}:residual ${what}`));

      // adapter wiring: x = frozen layer input, y = its output (Δy added), dy = ∂L/∂y, dx = ∂L/∂x (+=)
      const wiring: Record<AdapterTarget, { x: GPUBuffer; y: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer; T: number }> = {
        'self_attn.q_proj': { x: a.h1, y: a.q, dy: dQ, dx: dH, T },
        'self_attn.k_proj': { x: a.h1, y: a.k, dy: dK, dx: dH, T },
        'self_attn.v_proj': { x: a.h1, y: a.v, dy: dV, dx: dH, T },
        'self_attn.out_proj': { x: a.o1, y: tmp, dy: dres, dx: dO, T },
        'encoder_attn.q_proj': { x: a.h2, y: a.q2, dy: dQ2, dx: dH, T },
        'encoder_attn.k_proj': { x: this.encB!, y: a.kc, dy: dK2!, dx: dEnc!, T: B * E },
        'encoder_attn.v_proj': { x: this.encB!, y: a.vc, dy: dV2!, dx: dEnc!, T: B * E },
        'encoder_attn.out_proj': { x: a.o2, y: tmp, dy: dres, dx: dO, T },
        fc1: { x: a.h3, y: a.f1, dy: dF, dx: dH, T },
        fc2: { x: a.g, y: tmp, dy: dres, dx: dG, T },
      };
      const ad: LayerCalls['ad'] = {};
      const adEval: LayerCalls['adEval'] = {};
      for (const target of cfg.targets) {
        const m = mods.get(`${l}:${target}`);
        if (!m) continue;
        const wr = wiring[target];
        const spec = {
          T: wr.T,
          nIn: m.nIn,
          r: cfg.r,
          nOut: m.nOut,
          alpha: cfg.alpha,
          seed: cfg.seed,
          moduleId: m.id,
          off: { muA: m.off.muA, rhoA: Math.max(0, m.off.rhoA), muB: m.off.muB, rhoB: Math.max(0, m.off.rhoB) },
          gradOff: { muA: m.off.muA, rhoA: Math.max(0, m.off.rhoA), muB: m.off.muB, rhoB: Math.max(0, m.off.rhoB) },
        };
        const bufs = { theta: this.theta, grads: this.grads, x: wr.x, y: wr.y, dy: wr.dy, dx: wr.dx };
        ad[target] = this.own(
          await prepareLoraAdapter(rt, { ...spec, modeA: m.modeA, modeB: m.modeB, dropout: cfg.dropout }, bufs, `${p}:${m.name}.adapter`),
        );
        adEval[target] = this.own(
          await prepareLoraAdapter(rt, { ...spec, modeA: 'det', modeB: 'det', dropout: 0 }, bufs, `${p}:${m.name}.adapter(mean)`),
        );
      }

      const sa = w.selfAttn;
      const ca = w.crossAttn;
      this.layers.push({
        ln1: await lnf(w.selfAttnLn, a.x, a.h1, a.mean1, a.rstd1),
        ln2: await lnf(w.crossAttnLn, a.x1, a.h2, a.mean2, a.rstd2),
        ln3: await lnf(w.finalLn, a.x2, a.h3, a.mean3, a.rstd3),
        ln1B: await lnb(w.selfAttnLn, a.x, a.mean1, a.rstd1),
        ln2B: await lnb(w.crossAttnLn, a.x1, a.mean2, a.rstd2),
        ln3B: await lnb(w.finalLn, a.x2, a.mean3, a.rstd3),
        mm: {
          saq: await mm(sa.q, a.h1, a.q, T),
          sak: await mm(sa.k, a.h1, a.k, T),
          sav: await mm(sa.v, a.h1, a.v, T),
          sao: await mm(sa.out, a.o1, tmp, T),
          caq: await mm(ca.q, a.h2, a.q2, T),
          cao: await mm(ca.out, a.o2, tmp, T),
          fc1: await mm(w.fc1, a.h3, a.f1, T),
          fc2: await mm(w.fc2, a.g, tmp, T),
        },
        lb: {
          sao: await lb(sa.out, dres, dO, false),
          saq: await lb(sa.q, dQ, dH, false),
          sak: await lb(sa.k, dK, dH, true),
          sav: await lb(sa.v, dV, dH, true),
          cao: await lb(ca.out, dres, dO, false),
          caq: await lb(ca.q, dQ2, dH, false),
          fc2: await lb(w.fc2, dres, dG, false),
          fc1: await lb(w.fc1, dF, dH, false),
        },
        attnS: this.own(
          await prepareAttention(
            rt,
            { B, S, Skv: S, H, D, causal: true },
            { q: a.q, k: a.k, v: a.v, mask: this.keyMask, o: a.o1, stats: a.st1, dO, dq: dQ, dk: dK, dv: dV },
            `${p}:self_attn.sdpa`,
          ),
        ),
        attnC: this.own(
          await prepareAttention(
            rt,
            { B, S, Skv: E, H, D, causal: false },
            { q: a.q2, k: a.kc, v: a.vc, mask: null, o: a.o2, stats: a.st2, dO, dq: dQ2, dk: dK2 ?? undefined, dv: dV2 ?? undefined },
            `${p}:encoder_attn.sdpa`,
          ),
        ),
        gelu: this.own(await prepareGeluForward(rt, T * F, { x: a.f1, y: a.g }, `${p}:gelu`)),
        geluB: this.own(await prepareGeluBackward(rt, T * F, { x: a.f1, dy: dG, dx: dF }, `${p}:gelu.bwd`)),
        add1: await add(a.x, tmp, a.x1, 'self_attn'),
        add2: await add(a.x1, tmp, a.x2, 'encoder_attn'),
        add3: await add(a.x2, tmp, xNext, 'ffn'),
        ad,
        adEval,
      });
    }

    // ---- KL, optimizer
    this.klOut = this.buf('kl (factors,)', Math.max(1, plan.klFactors.length));
    this.betaNow = cfg.beta;
    for (const [slot, f] of plan.klFactors.entries()) {
      for (const writeGrads of [true, false]) {
        const call = this.own(
          await prepareKl(
            rt,
            {
              n: f.n,
              muOff: f.muOff,
              rhoOff: f.rhoOff,
              gradMuOff: f.muOff,
              gradRhoOff: f.rhoOff,
              slot,
              sigmaPrior: cfg.sigmaPrior,
              logEps: plan.config.klLogEps,
              beta: cfg.beta / this.gradAccum,
              writeGrads,
            },
            { theta: this.theta, grads: this.grads, klOut: this.klOut },
            `${this.label}:kl[${slot}]${writeGrads ? '' : '(value)'}`,
          ),
        );
        if (writeGrads) this.kl.push(call);
        else this.klValue.push(call);
      }
    }
    const P = plan.size;
    // The global norm is always computed (the training record reports it); threshold ≤ 0 = the
    // kernel's no-clipping mode (coefficient exactly 1).
    const clip = this.buf('clip (norm, coef)', 2);
    this.clip = clip;
    const maxNorm = opts.maxGradNorm && opts.maxGradNorm > 0 ? opts.maxGradNorm : 0;
    this.gradNorm = this.own(await prepareGradNorm(rt, { n: P, offset: 0, maxNorm }, { grad: this.grads, clip }, `${this.label}:gradnorm`));
    // One AdamW group over theta, or (freezeRho) groups of μ runs and ρ runs; a ρ run steps with lr 0 and no
    // weight decay, so ρ stays bit-exact while its gradient is still zeroed (and counted in the norm above).
    const hyper = opts.hyper ?? SPEC_ADAMW;
    const runs = optimizerRuns(plan);
    const groups = await Promise.all(
      runs.map(async (g, i) => ({
        frozen: g.frozen,
        call: await prepareAdamW(
          rt,
          { n: g.n, offset: g.offset, hyper: g.frozen ? { ...hyper, lr: 0, weightDecay: 0 } : hyper, zeroGrad: true },
          { param: this.theta, grad: this.grads, m: this.m, v: this.v, clip },
          runs.length === 1 ? `${this.label}:adamw` : `${this.label}:adamw[${i}${g.frozen ? ', ρ frozen' : ''}]`,
        ),
      })),
    );
    this.adamw = {
      step: (t, lr) => {
        for (const g of groups) g.call.step(t, g.frozen ? 0 : lr);
      },
      destroy: () => {
        for (const g of groups) g.call.destroy();
      },
    };
    await rt.sync();
  }

  /** Set the batch (token ids, labels, lengths, utterance keys of the encoder cache). */
  setBatch(batch: DecoderBatch): void {
    const { B, S } = this.shape;
    const T = this.T;
    const { V } = this.weights.dims;
    if (batch.inputIds.length !== T || batch.labels.length !== T)
      throw new Error(`${this.label}: inputIds/labels must have B·S = ${T} values`);
    if (batch.utterances.length !== B) throw new Error(`${this.label}: ${B} utterances needed`);
    for (const u of batch.utterances) this.cache.get(u);
    const ids = Uint32Array.from(batch.inputIds, (v) => {
      if (!(Number.isInteger(v) && v >= 0 && v < V)) throw new Error(`${this.label}: token id ${v} out of range`);
      return v;
    });
    const tg = Int32Array.from(batch.labels, (v) => (v >= 0 && v < V ? v : -1));
    const mask = new Uint32Array(T).fill(1);
    if (batch.lengths) {
      batch.lengths.forEach((len, b) => {
        if (!(Number.isInteger(len) && len >= 1 && len <= S)) throw new Error(`${this.label}: length ${len} not in [1, ${S}]`);
        mask.fill(0, b * S + len, (b + 1) * S);
      });
    }
    this.rt.flush();
    const q = this.rt.device.queue;
    q.writeBuffer(this.tokens, 0, ids);
    q.writeBuffer(this.targets, 0, tg);
    q.writeBuffer(this.keyMask, 0, mask);
    this.batch = { ...batch };
    this.trainedForward = -1;
  }

  /** Copy the batch's cached cross K/V of layer l (and its encoder states) into the batch buffers. */
  private fillCross(l: number, withEnc: boolean): void {
    const { C } = this.weights.dims;
    const n = this.cache.frames * C;
    const bytes = n * 4;
    const a = this.acts[l];
    const widen = this.cache.storage !== 'f32' && !this.crossShared;
    const kvBytes = widen ? bytes : n * STORAGE_BYTES[this.cache.storage];
    this.batch!.utterances.forEach((u, b) => {
      const e = this.cache.get(u);
      if (widen) {
        // f16 cache → the f32 per-layer buffers the encoder_attn k/v adapters add into
        this.widen(e.k[l], a.kc, b, n);
        this.widen(e.v[l], a.vc, b, n);
      } else {
        this.rt.copy(e.k[l], 0, a.kc, b * kvBytes, kvBytes);
        this.rt.copy(e.v[l], 0, a.vc, b * kvBytes, kvBytes);
      }
      if (withEnc && this.encB) this.rt.copy(e.enc, 0, this.encB, b * bytes, bytes);
    });
  }

  /**
   * f16 cache → f32 row b of dst (adapted encoder_attn k/v under f16 storage). Bind groups per (dst, row)
   * are kept and rebuilt when the row's source changes (another utterance); the pipeline is compiled in
   * prepare().
   */
  private readonly widenCalls = new Map<string, { src: GPUBuffer; call: Call }>();
  private widenPipeline: GPUComputePipeline | null = null;
  private widen(src: GPUBuffer, dst: GPUBuffer, b: number, n: number): void {
    const key = `${dst.label}#${b}`;
    let hit = this.widenCalls.get(key);
    if (!hit || hit.src !== src) {
      if (hit) {
        this.rt.flush(); // its uniform may still be used by recorded work
        hit.call.destroy();
      }
      const call = convertCall(
        this.rt,
        this.widenPipeline!,
        n,
        src,
        { buffer: dst, offset: b * n * 4, size: n * 4 },
        `${this.label}:widen ${key}`,
      );
      hit = { src, call };
      this.widenCalls.set(key, hit);
    }
    hit.call.run();
  }

  /**
   * Forward pass at RNG step `step` (the adapters' noise); eval = posterior means / plain LoRA, no
   * dropout, no noise (then backward() is not allowed). Computes CE and the KL values (readLoss).
   */
  forward(step: number, o: { eval?: boolean } = {}): void {
    if (!this.batch) throw new Error(`${this.label}: setBatch() first`);
    const ev = o.eval ?? false;
    this.embedding.run(); // x (T,C) = E[ids] + P[pos]
    for (let l = 0; l < this.layers.length; l++) {
      const c = this.layers[l];
      const ad = ev ? c.adEval : c.ad;
      const adapt = (t: AdapterTarget) => ad[t]?.forward(step);
      // self-attention block
      c.ln1.run(); // h1 = LN1(x)
      c.mm.saq.run();
      adapt('self_attn.q_proj'); // q (T,C)
      c.mm.sak.run();
      adapt('self_attn.k_proj'); // k (T,C)
      c.mm.sav.run();
      adapt('self_attn.v_proj'); // v (T,C)
      c.attnS.forward(); // o1 (T,C), stats
      c.mm.sao.run();
      adapt('self_attn.out_proj'); // tmp (T,C)
      c.add1.run(); // x1 = x + tmp
      // cross-attention block
      c.ln2.run(); // h2 = LN2(x1)
      c.mm.caq.run();
      adapt('encoder_attn.q_proj'); // q2 (T,C)
      this.fillCross(l, !this.crossShared && l === 0); // K, V (B·E,C) of the batch from the cache (+ enc once)
      adapt('encoder_attn.k_proj');
      adapt('encoder_attn.v_proj');
      c.attnC.forward(); // o2 (T,C)
      c.mm.cao.run();
      adapt('encoder_attn.out_proj'); // tmp
      c.add2.run(); // x2 = x1 + tmp
      // MLP block
      c.ln3.run(); // h3 = LN3(x2)
      c.mm.fc1.run();
      adapt('fc1'); // f1 (T,F)
      c.gelu.run(); // g = GELU(f1)
      c.mm.fc2.run();
      adapt('fc2'); // tmp (T,C)
      c.add3.run(); // x_{l+1} = x2 + tmp
    }
    this.lnF.run(); // hF = LN_f(x_L)
    this.ce.forward(); // CE over the tied-embedding logits, tile by tile
    for (const k of this.klValue) k.run(); // kl[slot] = mean KL (depends on theta only)
    this.rt.flush();
    this.trainedForward = ev ? -1 : step;
  }

  /** Backward of the last training forward (same step): adapter gradients accumulate into grads. */
  backward(step: number): void {
    if (this.trainedForward !== step)
      throw new Error(`${this.label}: backward(${step}) needs forward(${step}) in training mode just before`);
    const has = (l: number, t: AdapterTarget) => this.layers[l].ad[t] !== undefined;
    // block b = 3l + {sa 0, ca 1, ffn 2}; work is needed down to the lowest adapted block
    let lowest = Infinity;
    for (const m of this.plan.modules) lowest = Math.min(lowest, 3 * m.layer + BLOCK_INDEX[BLOCK_OF[m.target]]);
    this.ce.backward(); // dhF (T,C)
    this.lnFB.run(); // dres = LN_fᵀ(dhF)
    for (let l = this.layers.length - 1; l >= 0 && 3 * l + 2 >= lowest; l--) {
      const c = this.layers[l];
      const bwd = (t: AdapterTarget, accumulateDx: boolean) => c.ad[t]?.backward(step, { accumulateDx });
      // ---- MLP block: dres = ∂L/∂x_{l+1}
      {
        const need = 3 * l + 2 > lowest;
        const hasFc1 = has(l, 'fc1');
        const hasFc2 = has(l, 'fc2');
        const needF = need || hasFc1;
        if (needF) c.lb.fc2.run(); // dG (T,F) = dres·W2
        if (hasFc2) bwd('fc2', needF);
        if (needF) {
          c.geluB.run(); // dF = dG ⊙ GELU'(f1)
          if (need) c.lb.fc1.run(); // dH = dF·W1
          if (hasFc1) bwd('fc1', need);
          if (need) c.ln3B.run(); // dres += LN3ᵀ(dH)  → ∂L/∂x2
        }
        if (!need) break;
      }
      // ---- cross-attention block: dres = ∂L/∂x2
      {
        const need = 3 * l + 1 > lowest;
        const hasQ = has(l, 'encoder_attn.q_proj');
        const hasK = has(l, 'encoder_attn.k_proj');
        const hasV = has(l, 'encoder_attn.v_proj');
        const needAttn = need || hasQ || hasK || hasV;
        if (needAttn) c.lb.cao.run(); // dO (T,C) = dres·Wo
        bwd('encoder_attn.out_proj', needAttn);
        if (needAttn) {
          if (this.crossShared) this.fillCross(l, false); // shared K/V buffers hold the last layer's
          c.attnC.backward({ computeDkv: hasK || hasV }); // dQ2 (T,C) [dK2, dV2 (B·E,C)]
          bwd('encoder_attn.k_proj', false);
          bwd('encoder_attn.v_proj', false);
          if (need) c.lb.caq.run(); // dH = dQ2·Wq
          bwd('encoder_attn.q_proj', need);
          if (need) c.ln2B.run(); // dres += LN2ᵀ(dH)  → ∂L/∂x1
        }
        if (!need) break;
      }
      // ---- self-attention block: dres = ∂L/∂x1
      {
        const need = 3 * l > lowest;
        const hasQ = has(l, 'self_attn.q_proj');
        const hasK = has(l, 'self_attn.k_proj');
        const hasV = has(l, 'self_attn.v_proj');
        const needAttn = need || hasQ || hasK || hasV;
        if (needAttn) c.lb.sao.run(); // dO = dres·Wo
        bwd('self_attn.out_proj', needAttn);
        if (needAttn) {
          c.attnS.backward({ computeDkv: need || hasK || hasV }); // dQ, dK, dV (T,C)
          if (need) c.lb.saq.run(); // dH = dQ·Wq
          bwd('self_attn.q_proj', need);
          if (need) c.lb.sak.run(); // dH += dK·Wk
          bwd('self_attn.k_proj', need);
          if (need) c.lb.sav.run(); // dH += dV·Wv
          bwd('self_attn.v_proj', need);
          if (need) c.ln1B.run(); // dres += LN1ᵀ(dH)  → ∂L/∂x_l
        }
        if (!need) break;
      }
    }
    for (const k of this.kl) k.run(); // grads += β·∂KL (kl[slot] rewritten, same value)
    this.rt.flush();
    this.trainedForward = -1;
  }

  /**
   * The KL weight β of the next micro-batches (a β schedule, the studio's live control): the KL kernels'
   * uniforms are rewritten — no pipeline is rebuilt. Call between steps: work recorded so far is submitted
   * first, so it keeps the β it was recorded with.
   */
  setBeta(beta: number): void {
    if (!(Number.isFinite(beta) && beta >= 0)) throw new Error(`${this.label}: β must be finite and ≥ 0 (got ${beta})`);
    if (beta === this.betaNow) return;
    this.rt.flush();
    for (const k of this.kl) k.setBeta(beta / this.gradAccum);
    this.betaNow = beta;
  }

  get beta(): number {
    return this.betaNow;
  }

  /** One optimizer step t ≥ 1: global grad norm (clip coefficient), AdamW over theta; zeroes grads. */
  optimizerStep(t: number, lr?: number): void {
    this.gradNorm.run();
    this.adamw.step(t, lr);
    this.rt.flush();
  }

  /** Global L2 norm of the gradient of the last optimizer step, before clipping. */
  async readGradNorm(): Promise<number> {
    return (await this.rt.readF32(this.clip, 1))[0];
  }

  /** CE and KL of the last forward (KL: at the theta of that forward), loss = CE + β·KL. */
  async readLoss(): Promise<DecoderLoss> {
    const { loss: ce, count } = await this.ce.readLoss();
    let kl = 0;
    if (this.plan.klFactors.length) {
      const k = await this.rt.readF32(this.klOut, this.plan.klFactors.length);
      for (const v of k) kl += v;
    }
    return { ce, count, kl, loss: ce + this.betaNow * kl };
  }

  readTheta(): Promise<Float32Array> {
    return this.rt.readF32(this.theta, this.plan.size);
  }

  readGrads(): Promise<Float32Array> {
    return this.rt.readF32(this.grads, this.plan.size);
  }

  /** Replace the adapter values (and reset AdamW's moments). */
  setTheta(theta: Float32Array): void {
    if (theta.length !== this.plan.size) throw new Error(`${this.label}: theta has ${theta.length} ≠ ${this.plan.size} values`);
    this.rt.flush();
    const q = this.rt.device.queue;
    q.writeBuffer(this.theta, 0, new Float32Array(theta));
    const z = new Float32Array(this.plan.size);
    q.writeBuffer(this.m, 0, z);
    q.writeBuffer(this.v, 0, z);
    q.writeBuffer(this.grads, 0, z);
  }

  /** Optimizer state (theta and AdamW's m, v), for checkpoints. Call between optimizer steps (grads are 0 then). */
  async readState(): Promise<{ theta: Float32Array; m: Float32Array; v: Float32Array }> {
    const n = this.plan.size;
    return { theta: await this.rt.readF32(this.theta, n), m: await this.rt.readF32(this.m, n), v: await this.rt.readF32(this.v, n) };
  }

  /** Restore readState()'s values bit for bit (grads zeroed): a resumed run continues exactly. */
  setState(s: { theta: Float32Array; m: Float32Array; v: Float32Array }): void {
    const n = this.plan.size;
    for (const [k, a] of Object.entries(s)) if (a.length !== n) throw new Error(`${this.label}: state ${k} has ${a.length} ≠ ${n} values`);
    this.rt.flush();
    const q = this.rt.device.queue;
    q.writeBuffer(this.theta, 0, new Float32Array(s.theta));
    q.writeBuffer(this.m, 0, new Float32Array(s.m));
    q.writeBuffer(this.v, 0, new Float32Array(s.v));
    q.writeBuffer(this.grads, 0, new Float32Array(n));
  }

  destroy(): void {
    this.rt.flush();
    this.calls.forEach((c) => c.destroy());
    this.widenCalls.forEach((w) => w.call.destroy());
    this.ce.destroy();
    this.adamw.destroy();
    this.owned.forEach((b) => b.destroy());
  }
}

/** Convenience: plan + prepare a decoder engine. */
export function prepareDecoder(
  rt: GpuRuntime,
  weights: DecoderWeights,
  shape: DecoderShape,
  adapters: AdapterConfig,
  cache: EncoderKvCache,
  opts: DecoderOptions = {},
): Promise<WhisperDecoderEngine> {
  return WhisperDecoderEngine.create(rt, weights, shape, adapters, cache, opts);
}

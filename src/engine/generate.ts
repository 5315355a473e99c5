/**
 * Greedy decoding of Whisper on the WGSL engine with MERGED adapters (evaluation of a trained
 * adapter: posterior means W' = W + s·μ_B·μ_A, s = α/r), incremental with a self-attention KV cache,
 * batched over utterances. Same rules as src/decoder/generate.ts (Hugging Face generate for
 * short-form audio without timestamps): prompt <|startoftranscript|> [<|lang|> <|transcribe|>]
 * <|notimestamps|> (the bracket only for multilingual models; English-only ones take "en" or no
 * language and report "en"), suppress_tokens at every step, begin_suppress_tokens at the first generated
 * position, argmax (first index on ties), stop at <|endoftext|> or at the cap; language detection
 * (language null) = argmax over lang_to_id's tokens of the logits after <|startoftranscript|>.
 *
 * Design (why, in order of cost on software WebGPU):
 * - One token step = B rows (one per utterance), all at the SAME position: every request of a batch
 *   has the same prompt length, and finished rows keep being fed (their output is ignored) until all
 *   rows are done. So one position, one key mask and one positions value serve the whole batch.
 *   The prompt is fed token by token (4 steps); the logits are computed only where they are used
 *   (after <|startoftranscript|> when a row detects its language, and from the last prompt token on).
 * - Per step and layer: LN1 → q, k, v (linear_rows, M = B: matmul_bias's 64-row tile would do 64/B
 *   times the work — 990 ms instead of a few ms for fc1 at B = 1 on llvmpipe) → the B new k, v rows are copied into the
 *   layer's self-attention KV cache → attention → out_proj → residual; LN2 → cross q → cross
 *   attention per row → out_proj → residual; LN3 → fc1 → GELU → fc2 → residual. Final LN → logits.
 * - Self-attention KV cache layout (maxLen, B, C), i.e. position-major: the B rows of one step are
 *   contiguous, so writing them is ONE copyBufferToBuffer per k and per v and layer (B·C floats at
 *   offset pos·B·C). The attention kernel (layout (B, Skv, H·D)) reads it as ONE sequence with
 *   H' = B·H heads: element (j, b, h, d) sits at ((j·B + b)·H + h)·D + d = ((0·Skv + j)·H' + h')·D + d
 *   with h' = b·H + h; the query (1, 1, H'·D) is exactly the (B, C) q rows. S = 1 query against
 *   Skv = maxLen keys, causal off (with S = 1 the kernel's causal rule "key j ≤ i + Skv − S" admits
 *   every key anyway) and the key mask (1, maxLen) marking positions ≤ the current one.
 * - Cross-attention reads each utterance's K, V (E, C) straight from the EncoderKvCache (no batch
 *   copy: a (B·E, C) buffer per layer would cost 2·L·B·E·C·4 B = 393 MB at B = 8): one attention
 *   dispatch per row and layer on a (1, C) query row (copied in and out of the (B, C) q/o buffers,
 *   2 KB copies). When encoder_attn.k_proj / v_proj carry an adapter, the row's K / V are computed
 *   once per generate() chunk from the cached encoder states with the merged weight.
 * - Logits: linear_rows (y = h·Eᵀ) over vocab tiles of embed_tokens (src/engine/kernels/
 *   vocab_tiles.ts, each binding under the device limit) into a (B, V) buffer laid out tile by tile
 *   ((B, rows) per tile). The (B, V) logits are read back (B·207 KB for Whisper base) and suppression
 *   + argmax run on the CPU, exactly as src/decoder/generate.ts does them (no extra kernel; the
 *   read-back is small against the step's GPU time on software WebGPU).
 * - Merged weights: the adapted Linear's frozen W is read back once and kept on the CPU (the GPU
 *   original stays untouched); W' = fl32(W + s·Σ_k μ_B[o,k]·μ_A[k,i]) is computed in float64 on the
 *   CPU and uploaded into a separate buffer that the decoding pass binds instead of W.
 * - All work of a step is recorded into one command buffer (BatchingRuntime); one submit + one
 *   read-back per step.
 *
 * Memory (Whisper base, maxBatch 8, 128 new tokens): self-attention KV 2·L·maxLen·B·C·4 B ≈ 25 MB,
 * logits B·V·4 B = 1.7 MB, activations a few hundred KB, merged weights = the adapted W's.
 */
import { prepareMatmulBias } from '../gpu/kernels/matmul';
import type { GpuRuntime } from '../gpu/runtime';
import type { GenerateResult } from '../decoder/generate';
import { englishOnlyLanguage, languageToken } from '../decoder/generate';
import type { WhisperAssets } from '../model/whisperModel';
import type { AdapterPlan, AdapterTarget } from './adapters';
import { moduleTensors } from './adapters';
import { bufferElemBytes, bufferStorage, halfBitsToFloat, STORAGE_BYTES, tagStorage } from '../gpu/wgsl-variants';
import { mergeLora } from './merge';
import { BatchingRuntime, prepareAdd } from './batch';
import { batching, type EncoderKvCache } from './decoder';
import { prepareAttention, type AttentionCall } from './kernels/attention';
import { prepareEmbedding } from './kernels/embedding';
import { prepareGeluForward } from './kernels/gelu';
import { prepareLayernormForward } from './kernels/layernorm';
import { prepareLinearRows } from './kernels/linear_rows';
import { deviceTileLimits, vocabTileRows, type VocabTile } from './kernels/vocab_tiles';
import type { DecoderWeights, LinearWeights } from './weights';

export interface GreedyRequest {
  /** key in the EncoderKvCache */
  utterance: string;
  /** "en", "es", "<|es|>" …; null: detect */
  language: string | null;
}

export interface GreedyOptions {
  /** utterances per token step (default 8); more requests run in chunks */
  maxBatch?: number;
  /** cap on generated tokens (default 128, as src/decoder/generate.ts) */
  maxNewTokens?: number;
  label?: string;
}

/** Timing of the token steps of the last generate() (diagnostics, README numbers). */
export interface GreedyStats {
  /** token steps run (prompt steps included), summed over chunks */
  steps: number;
  /** wall time of those steps (record + GPU + read-back), ms */
  stepMs: number;
  /** steps and ms per batch size B */
  byBatch: Record<number, { steps: number; ms: number }>;
}

type Call = { run(): void; destroy(): void };

/** Prepared calls of one token step for a batch of B rows (buffers sized for maxBatch). */
interface StepGraph {
  B: number;
  embedding: Call;
  layers: {
    ln1: Call;
    q: Call;
    k: Call;
    v: Call;
    attn: AttentionCall;
    out: Call;
    add1: Call;
    ln2: Call;
    cq: Call;
    cout: Call;
    add2: Call;
    ln3: Call;
    fc1: Call;
    gelu: Call;
    fc2: Call;
    add3: Call;
  }[];
  lnF: Call;
  logits: Call;
  calls: { destroy(): void }[];
}

const TILE_ALIGN_ROWS = 64; // logits tile k starts at float B·v0: v0 multiple of 64 keeps it 256-B aligned

export class WgslGreedyDecoder {
  readonly maxBatch: number;
  readonly maxNewTokens: number;
  readonly label: string;
  /** stats of the last generate() */
  stats: GreedyStats = { steps: 0, stepMs: 0, byBatch: {} };
  private readonly promptLen: number;
  /** positions fed at most: prompt + (cap − 1) generated tokens */
  private readonly maxLen: number;
  private readonly limit: number;
  private readonly owned: GPUBuffer[] = [];
  private readonly graphs = new Map<number, StepGraph>();
  /** merged W' per HF module name; frozen W (CPU copy) per HF module name */
  private readonly merged = new Map<string, GPUBuffer>();
  private readonly frozenCpu = new Map<string, Float32Array>();
  /** adapted cross K / V of row b, layer l ("k:b:l") */
  private readonly crossAdapted = new Map<string, GPUBuffer>();
  private readonly tiles: VocabTile[];
  private destroyed = false;
  private busy = false;
  // buffers
  private readonly bufs: Record<
    | 'tokens'
    | 'positions'
    | 'mask'
    | 'x0'
    | 'x1'
    | 'x2'
    | 'tmp'
    | 'h'
    | 'q'
    | 'k'
    | 'v'
    | 'o'
    | 'f'
    | 'g'
    | 'mean'
    | 'rstd'
    | 'stats'
    | 'qRow'
    | 'oRow'
    | 'statsRow'
    | 'logits',
    GPUBuffer
  >;
  private readonly kc: GPUBuffer[] = [];
  private readonly vc: GPUBuffer[] = [];

  private constructor(
    readonly rt: BatchingRuntime,
    readonly weights: DecoderWeights,
    readonly cache: EncoderKvCache,
    readonly assets: Pick<WhisperAssets, 'generation' | 'tokenizer' | 'config'>,
    opts: GreedyOptions,
  ) {
    this.label = opts.label ?? 'greedy';
    this.maxBatch = opts.maxBatch ?? 8;
    this.maxNewTokens = opts.maxNewTokens ?? 128;
    if (!(Number.isInteger(this.maxBatch) && this.maxBatch >= 1))
      throw new Error(`${this.label}: maxBatch must be an integer ≥ 1 (got ${this.maxBatch})`);
    if (!(Number.isInteger(this.maxNewTokens) && this.maxNewTokens >= 1))
      throw new Error(`${this.label}: maxNewTokens must be an integer ≥ 1 (got ${this.maxNewTokens})`);
    const { C, H, F, L, V, NP } = weights.dims;
    const g = assets.generation;
    this.promptLen = g.is_multilingual ? 4 : 2;
    const maxPos = Math.min(NP, assets.config.max_target_positions);
    this.limit = Math.min(this.maxNewTokens, maxPos - this.promptLen);
    if (this.limit < 1) throw new Error(`${this.label}: no room for generated tokens (${maxPos} positions, prompt ${this.promptLen})`);
    this.maxLen = this.promptLen + this.limit - 1;
    const B = this.maxBatch;
    const buf = (name: string, elems: number) => {
      const b = rt.storage(`${this.label}:${name}`, elems * 4);
      this.owned.push(b);
      return b;
    };
    this.bufs = {
      tokens: buf('tokens (B,) u32', B),
      positions: buf('positions (B,) u32', B),
      mask: buf('self-attn key mask (maxLen,) u32', this.maxLen),
      x0: buf('x (B,C) residual a', B * C),
      x1: buf('x (B,C) residual b', B * C),
      x2: buf('x (B,C) residual c', B * C),
      tmp: buf('tmp (B,C) sublayer output', B * C),
      h: buf('h (B,C) LN output', B * C),
      q: buf('q (B,C)', B * C),
      k: buf('k (B,C) new keys', B * C),
      v: buf('v (B,C) new values', B * C),
      o: buf('o (B,C) attention output', B * C),
      f: buf('f (B,F) fc1 output', B * F),
      g: buf('g (B,F) GELU output', B * F),
      mean: buf('LN mean (B,)', B),
      rstd: buf('LN rstd (B,)', B),
      stats: buf('self-attn stats (1,B·H,1,2)', B * H * 2),
      qRow: buf('cross q row (1,C)', C),
      oRow: buf('cross o row (1,C)', C),
      statsRow: buf('cross stats row (1,H,1,2)', H * 2),
      logits: buf('logits (B,V) tile-major', B * V),
    };
    for (let l = 0; l < L; l++) {
      this.kc.push(buf(`L${l}.self-attn K cache (maxLen,B,C)`, this.maxLen * B * C));
      this.vc.push(buf(`L${l}.self-attn V cache (maxLen,B,C)`, this.maxLen * B * C));
    }
    // Vocab tiles for the logits: E rows [v0, v0+rows) bound at v0·C·eb (eb = 2 under f16 storage), the
    // logits tile at B·v0·4; rows a multiple of 64 (and of the E offset alignment) keeps both offsets aligned.
    const emb = weights.embedTokens;
    const lim = deviceTileLimits(rt.device, undefined, STORAGE_BYTES[emb.storage]);
    const rowBytes = C * STORAGE_BYTES[emb.storage];
    let R = vocabTileRows(C, { ...lim, scratchBytesPerRow: 4 * B, maxRows: 8192 });
    const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
    const rowAlign = lim.offsetAlignment / gcd(rowBytes, lim.offsetAlignment);
    const align = (rowAlign * TILE_ALIGN_ROWS) / gcd(rowAlign, TILE_ALIGN_ROWS);
    R -= R % align;
    if (R < 1) throw new Error(`${this.label}: no vocab tile of a multiple of ${align} rows fits a binding of ${lim.maxBindingBytes} B`);
    // tiles inside each row part of E (one part unless E is over maxBufferSize; parts start at multiples of 256 rows)
    this.tiles = [];
    for (const part of emb.parts) {
      for (let r = 0; r < part.rows; r += R) {
        const rows = Math.min(R, part.rows - r);
        this.tiles.push({
          v0: part.r0 + r,
          rows,
          offsetBytes: r * rowBytes,
          sizeBytes: Math.ceil((rows * rowBytes) / 4) * 4,
          buffer: part.buffer,
        });
      }
    }
  }

  static async create(
    rt: GpuRuntime,
    weights: DecoderWeights,
    cache: EncoderKvCache,
    assets: Pick<WhisperAssets, 'generation' | 'tokenizer' | 'config'>,
    opts: GreedyOptions = {},
  ): Promise<WgslGreedyDecoder> {
    const label = opts.label ?? 'greedy';
    if (cache.weights !== weights) throw new Error(`${label}: the EncoderKvCache was built from other weights`);
    if (assets.config.vocab_size !== weights.dims.V) {
      throw new Error(`${label}: config.json vocab_size ${assets.config.vocab_size} ≠ embed_tokens rows ${weights.dims.V}`);
    }
    // The device's shared BatchingRuntime (src/engine/decoder.ts): pipelines compiled once per device, not per
    // decoder. Safe to share: every user flushes its batch before awaiting (each token step reads back).
    const brt = batching(rt);
    const d = new WgslGreedyDecoder(brt, weights, cache, assets, opts);
    await d.graph(d.maxBatch); // compile the pipelines now, not in the first generate()
    return d;
  }

  // ---------------------------------------------------------------- merged adapters

  private linear(layer: number, target: AdapterTarget): LinearWeights {
    const w = this.weights.layers[layer];
    const map: Record<AdapterTarget, LinearWeights> = {
      'self_attn.q_proj': w.selfAttn.q,
      'self_attn.k_proj': w.selfAttn.k,
      'self_attn.v_proj': w.selfAttn.v,
      'self_attn.out_proj': w.selfAttn.out,
      'encoder_attn.q_proj': w.crossAttn.q,
      'encoder_attn.k_proj': w.crossAttn.k,
      'encoder_attn.v_proj': w.crossAttn.v,
      'encoder_attn.out_proj': w.crossAttn.out,
      fc1: w.fc1,
      fc2: w.fc2,
    };
    return map[target];
  }

  /** The weight buffer the decoding pass binds for `lin`: merged W' when adapted, else the frozen W. */
  private w(lin: LinearWeights): GPUBuffer {
    return this.merged.get(lin.name) ?? lin.w;
  }

  /** The merged W' (nOut, nIn) of an adapted module (HF name, e.g. model.decoder.layers.0.self_attn.q_proj), or null. */
  mergedWeight(name: string): GPUBuffer | null {
    return this.merged.get(name) ?? null;
  }

  /**
   * Merge W' = W + s·μ_B·μ_A (s = α/r) into every adapted module of `plan` (theta in the engine's
   * flat layout); null = the frozen model. Replaces the previous merge; the frozen W are untouched.
   */
  async setAdapter(plan: AdapterPlan | null, theta: Float32Array | null): Promise<void> {
    this.alive();
    if (this.busy) throw new Error(`${this.label}: setAdapter() during generate()`);
    const { rt } = this;
    rt.flush();
    await rt.sync(); // the previous merge may still be read by submitted work
    this.dropGraphs();
    for (const b of this.crossAdapted.values()) b.destroy();
    this.crossAdapted.clear();
    const keep = new Set<string>();
    if (plan) {
      if (!theta || theta.length !== plan.size)
        throw new Error(`${this.label}: theta has ${theta?.length ?? 'no'} values, the adapter plan ${plan.size}`);
      const r = plan.config.r;
      const s = plan.config.alpha / r;
      for (const m of plan.modules) {
        const lin = this.linear(m.layer, m.target);
        if (lin.name !== m.name || lin.nIn !== m.nIn || lin.nOut !== m.nOut) {
          throw new Error(
            `${this.label}: adapter module ${m.name} (${m.nOut}×${m.nIn}) does not match the weights (${lin.name} ${lin.nOut}×${lin.nIn})`,
          );
        }
        const t = moduleTensors(plan, m, theta);
        const A = t.find((x) => x.key === 'A' || x.key === 'muA')!.data; // μ_A (r, nIn)
        const Bm = t.find((x) => x.key === 'B' || x.key === 'muB')!.data; // μ_B (nOut, r)
        let W = this.frozenCpu.get(lin.name);
        if (!W) {
          W = await readWeightF32(rt, lin.w, lin.nOut * lin.nIn); // f16 storage: widened exactly
          this.frozenCpu.set(lin.name, W);
        }
        const merged = mergeLora(W, A, Bm, s, lin.nOut, lin.nIn, r);
        const prev = this.merged.get(lin.name);
        if (prev) rt.device.queue.writeBuffer(prev, 0, merged);
        else this.merged.set(lin.name, rt.upload(`${this.label}:merged ${lin.name}.weight (out,in)`, merged));
        keep.add(lin.name);
      }
    }
    for (const [name, b] of [...this.merged]) {
      if (!keep.has(name)) {
        b.destroy();
        this.merged.delete(name);
      }
    }
    await rt.sync();
  }

  // ---------------------------------------------------------------- step graphs

  private dropGraphs(): void {
    this.rt.flush();
    for (const g of this.graphs.values()) g.calls.forEach((c) => c.destroy());
    this.graphs.clear();
  }

  /** Prepared calls of a token step for B rows (cached; rebuilt after setAdapter). */
  private async graph(B: number): Promise<StepGraph> {
    const hit = this.graphs.get(B);
    if (hit) return hit;
    const { rt, weights, bufs } = this;
    const { C, H, D, F, V, NP } = weights.dims;
    const p = `${this.label}[B=${B}]`;
    const calls: { destroy(): void }[] = [];
    const own = <T extends { destroy(): void }>(c: T): T => {
      calls.push(c);
      return c;
    };
    const mm = async (lin: LinearWeights, x: GPUBuffer, y: GPUBuffer) =>
      own(await prepareLinearRows(rt, { M: B, N: lin.nOut, K: lin.nIn }, { x, w: this.w(lin), bias: lin.b, y }, `${p}:${lin.name}`));
    const ln = async (w: { name: string; gamma: GPUBuffer; beta: GPUBuffer }, x: GPUBuffer, y: GPUBuffer) =>
      own(
        await prepareLayernormForward(
          rt,
          { T: B, C },
          { x, gamma: w.gamma, beta: w.beta, y, mean: bufs.mean, rstd: bufs.rstd },
          { label: `${p}:${w.name}` },
        ),
      );
    const add = async (a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, what: string) =>
      own(await prepareAdd(rt, B * C, { a, b, y }, `${p}:L residual ${what}`));

    const embedding = own(
      await prepareEmbedding(
        rt,
        { T: B, C, V, NP },
        { tokens: bufs.tokens, positions: bufs.positions, E: weights.embedTokens, P: weights.embedPositions, x: bufs.x0 },
        { label: `${p}:embedding` },
      ),
    );
    const layers: StepGraph['layers'] = [];
    for (const [l, w] of weights.layers.entries()) {
      // residual stream: x0 → x1 (after self-attn) → x2 (after cross-attn) → x0 (after the MLP)
      layers.push({
        ln1: await ln(w.selfAttnLn, bufs.x0, bufs.h),
        q: await mm(w.selfAttn.q, bufs.h, bufs.q),
        k: await mm(w.selfAttn.k, bufs.h, bufs.k),
        v: await mm(w.selfAttn.v, bufs.h, bufs.v),
        attn: own(
          await prepareAttention(
            rt,
            { B: 1, S: 1, Skv: this.maxLen, H: B * H, D, causal: false },
            { q: bufs.q, k: this.kc[l], v: this.vc[l], mask: bufs.mask, o: bufs.o, stats: bufs.stats },
            `${p}:L${l}.self_attn.sdpa(kv cache)`,
          ),
        ),
        out: await mm(w.selfAttn.out, bufs.o, bufs.tmp),
        add1: await add(bufs.x0, bufs.tmp, bufs.x1, `${l} self_attn`),
        ln2: await ln(w.crossAttnLn, bufs.x1, bufs.h),
        cq: await mm(w.crossAttn.q, bufs.h, bufs.q),
        cout: await mm(w.crossAttn.out, bufs.o, bufs.tmp),
        add2: await add(bufs.x1, bufs.tmp, bufs.x2, `${l} encoder_attn`),
        ln3: await ln(w.finalLn, bufs.x2, bufs.h),
        fc1: await mm(w.fc1, bufs.h, bufs.f),
        gelu: own(await prepareGeluForward(rt, B * F, { x: bufs.f, y: bufs.g }, `${p}:L${l}.gelu`)),
        fc2: await mm(w.fc2, bufs.g, bufs.tmp),
        add3: await add(bufs.x2, bufs.tmp, bufs.x0, `${l} ffn`),
      });
    }
    const lnF = await ln(weights.layerNorm, bufs.x0, bufs.h);
    // logits (B, rows) per vocab tile = h·E_tileᵀ (linear_rows on sub-range bindings of E and logits)
    const tileCalls: Call[] = [];
    for (const [k, t] of this.tiles.entries()) {
      tileCalls.push(
        own(
          await prepareLinearRows(
            rt,
            { M: B, N: t.rows, K: C },
            {
              x: bufs.h,
              w: { buffer: t.buffer!, offset: t.offsetBytes, size: t.sizeBytes },
              bias: null,
              y: { buffer: bufs.logits, offset: B * t.v0 * 4, size: B * t.rows * 4 },
            },
            `${p}:logits[tile ${k}]`,
          ),
        ),
      );
    }
    const logits: Call = { run: () => tileCalls.forEach((c) => c.run()), destroy: () => {} };
    const g: StepGraph = { B, embedding, layers, lnF, logits, calls };
    this.graphs.set(B, g);
    return g;
  }

  // ---------------------------------------------------------------- decoding

  /** Greedy transcripts of `reqs` (in order), in chunks of maxBatch utterances. */
  async generate(reqs: GreedyRequest[], onProgress?: (done: number, total: number) => void): Promise<GenerateResult[]> {
    this.alive();
    if (this.busy) throw new Error(`${this.label}: generate() is already running`);
    this.busy = true;
    this.stats = { steps: 0, stepMs: 0, byBatch: {} };
    try {
      for (const r of reqs)
        if (!this.cache.has(r.utterance))
          throw new Error(`${this.label}: utterance '${r.utterance}' is not in the EncoderKvCache (add it first)`);
      const out: GenerateResult[] = [];
      onProgress?.(0, reqs.length);
      for (let i = 0; i < reqs.length; i += this.maxBatch) {
        out.push(...(await this.chunk(reqs.slice(i, i + this.maxBatch))));
        onProgress?.(out.length, reqs.length);
      }
      return out;
    } finally {
      this.busy = false;
    }
  }

  private async chunk(reqs: GreedyRequest[]): Promise<GenerateResult[]> {
    const { rt, weights, bufs, assets } = this;
    const { C, H, D, L, V } = weights.dims;
    const g = assets.generation;
    const B = reqs.length;
    const E = this.cache.frames;
    const graph = await this.graph(B);

    // ---- prompts (language token filled after step 0 for rows that detect it)
    const languages: (string | null)[] = [];
    const detect: boolean[] = [];
    const prompts = reqs.map((r) => {
      const prompt = [g.decoder_start_token_id];
      let language: string | null = null;
      let det = false;
      if (g.is_multilingual) {
        if (r.language) {
          language = r.language.replace(/^<\||\|>$/g, '');
          // languageToken reads only generation.lang_to_id (and names the known languages on error)
          prompt.push(languageToken(assets as WhisperAssets, language));
        } else {
          det = true;
          prompt.push(-1);
        }
        const taskId = g.task_to_id?.transcribe;
        if (taskId === undefined) throw new Error(`${this.label}: generation_config.json has no task_to_id["transcribe"]`);
        prompt.push(taskId);
      } else {
        language = englishOnlyLanguage(r.language);
      }
      prompt.push(g.no_timestamps_token_id);
      languages.push(language);
      detect.push(det);
      return prompt;
    });
    const P = this.promptLen;

    // ---- cross-attention per row and layer (K, V from the cache, or computed with merged k/v weights)
    const crossCalls: AttentionCall[][] = [];
    const prepared: { destroy(): void }[] = [];
    try {
      for (const [b, r] of reqs.entries()) {
        const e = this.cache.get(r.utterance);
        const row: AttentionCall[] = [];
        for (let l = 0; l < L; l++) {
          const kv = { k: e.k[l], v: e.v[l] };
          for (const which of ['k', 'v'] as const) {
            const lin = weights.layers[l].crossAttn[which];
            const m = this.merged.get(lin.name);
            if (!m) continue;
            const key = `${which}:${b}:${l}`;
            let y = this.crossAdapted.get(key);
            if (!y) {
              // same element type as the cache (attention reads K and V as one type)
              const st = bufferStorage(e.k[l]);
              y = tagStorage(
                rt.storage(`${this.label}:row ${b} L${l}.cross ${which.toUpperCase()} (E,C) merged`, E * C * STORAGE_BYTES[st]),
                st,
              );
              this.crossAdapted.set(key, y);
            }
            const call = await prepareMatmulBias(
              rt,
              { M: E, N: C, K: C },
              { x: e.enc, w: m, bias: lin.b, y },
              `${this.label}:row ${b} ${lin.name}(merged)`,
            );
            prepared.push(call);
            call.run();
            kv[which] = y;
          }
          const call = await prepareAttention(
            rt,
            { B: 1, S: 1, Skv: E, H, D, causal: false },
            { q: bufs.qRow, k: kv.k, v: kv.v, mask: null, o: bufs.oRow, stats: bufs.statsRow },
            `${this.label}:row ${b} L${l}.encoder_attn.sdpa`,
          );
          prepared.push(call);
          row.push(call);
        }
        crossCalls.push(row);
      }
      rt.flush();

      // ---- token steps
      const tokens: number[][] = reqs.map(() => []);
      const probs: number[][] = reqs.map(() => []);
      const entropy: number[][] = reqs.map(() => []);
      const done = reqs.map(() => false);
      const suppress = new Set(g.suppress_tokens);
      const suppressFirst = new Set([...g.suppress_tokens, ...g.begin_suppress_tokens]);
      const rowBytes = B * C * 4;
      const q = rt.device.queue;
      const mask = new Uint32Array(this.maxLen);
      for (let pos = 0; pos < this.maxLen; pos++) {
        const t0 = performance.now();
        const input = Uint32Array.from(prompts, (pr, b) => (pos < P ? pr[pos] : tokens[b][pos - P]));
        mask[pos] = 1;
        const wantLogits = pos >= P - 1 || (pos === 0 && detect.some(Boolean));
        q.writeBuffer(bufs.tokens, 0, input);
        q.writeBuffer(bufs.positions, 0, new Uint32Array(B).fill(pos));
        q.writeBuffer(bufs.mask, 0, mask);
        graph.embedding.run();
        for (let l = 0; l < L; l++) {
          const c = graph.layers[l];
          c.ln1.run(); // h = LN1(x0)
          c.q.run(); // q (B,C)
          c.k.run(); // k (B,C)
          c.v.run(); // v (B,C)
          rt.copy(bufs.k, 0, this.kc[l], pos * rowBytes, rowBytes); // K cache [pos] (B,C)
          rt.copy(bufs.v, 0, this.vc[l], pos * rowBytes, rowBytes); // V cache [pos] (B,C)
          c.attn.forward(); // o (B,C): one sequence of H' = B·H heads over keys ≤ pos
          c.out.run(); // tmp
          c.add1.run(); // x1 = x0 + tmp
          c.ln2.run(); // h = LN2(x1)
          c.cq.run(); // q (B,C)
          for (let b = 0; b < B; b++) {
            rt.copy(bufs.q, b * C * 4, bufs.qRow, 0, C * 4);
            crossCalls[b][l].forward(); // oRow (1,C) over the row's E encoder frames
            rt.copy(bufs.oRow, 0, bufs.o, b * C * 4, C * 4);
          }
          c.cout.run(); // tmp
          c.add2.run(); // x2 = x1 + tmp
          c.ln3.run(); // h = LN3(x2)
          c.fc1.run(); // f (B,F)
          c.gelu.run(); // g = GELU(f)
          c.fc2.run(); // tmp
          c.add3.run(); // x0 = x2 + tmp
        }
        let logits: Float32Array | null = null;
        if (wantLogits) {
          graph.lnF.run(); // h = LN_f(x0)
          graph.logits.run(); // logits (B,V) tile-major
          logits = await rt.readF32(bufs.logits, B * V);
        } else {
          rt.flush();
        }
        if (logits) {
          const rowLogits = (b: number): Float32Array => {
            const out = new Float32Array(V);
            for (const t of this.tiles) out.set(logits!.subarray(B * t.v0 + b * t.rows, B * t.v0 + (b + 1) * t.rows), t.v0);
            return out;
          };
          for (let b = 0; b < B; b++) {
            if (pos === 0 && detect[b]) {
              const x = rowLogits(b);
              let best: string | null = null;
              let bestScore = -Infinity;
              for (const [tok, id] of Object.entries(g.lang_to_id ?? {})) {
                if (x[id] > bestScore) {
                  bestScore = x[id];
                  best = tok;
                }
              }
              if (!best) throw new Error(`${this.label}: this model has no language tokens to detect`);
              languages[b] = best.slice(2, -2);
              prompts[b][1] = g.lang_to_id![best];
            }
            if (pos >= P - 1 && !done[b]) {
              const x = rowLogits(b);
              const i = pos - (P - 1); // index of the token being generated
              for (const id of i === 0 ? suppressFirst : suppress) if (id < V) x[id] = -Infinity;
              let best = 0;
              for (let v = 1; v < V; v++) if (x[v] > x[best]) best = v;
              tokens[b].push(best);
              // p(best) = 1/Z and H = log Z − Σ p·(x − max) over the softmax the token came from (float64 on the CPU)
              const m = x[best];
              let z = 0;
              let zx = 0;
              for (let v = 0; v < V; v++) {
                const d = x[v] - m;
                if (d === -Infinity) continue;
                const e = Math.exp(d);
                z += e;
                zx += e * d;
              }
              probs[b].push(1 / z);
              entropy[b].push(Math.log(z) - zx / z);
              if (best === g.eos_token_id || tokens[b].length >= this.limit) done[b] = true;
            }
          }
        }
        const ms = performance.now() - t0;
        this.stats.steps++;
        this.stats.stepMs += ms;
        const s = (this.stats.byBatch[B] ??= { steps: 0, ms: 0 });
        s.steps++;
        s.ms += ms;
        if (pos >= P - 1 && done.every(Boolean)) break;
      }
      return reqs.map((_, b) => {
        const toks = tokens[b];
        const truncated = toks[toks.length - 1] !== g.eos_token_id;
        const text = assets.tokenizer
          .decode(toks.filter((t) => t !== g.eos_token_id).length ? toks : [g.eos_token_id], { skip_special_tokens: true })
          .trim();
        return {
          prompt: prompts[b],
          tokens: toks,
          text,
          language: languages[b],
          truncated,
          tokenProbs: probs[b],
          tokenEntropy: entropy[b],
        };
      });
    } finally {
      rt.flush();
      await rt.sync();
      prepared.forEach((c) => c.destroy());
    }
  }

  private alive(): void {
    if (this.destroyed) throw new Error(`${this.label}: used after destroy()`);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.dropGraphs();
    for (const b of this.merged.values()) b.destroy();
    for (const b of this.crossAdapted.values()) b.destroy();
    this.merged.clear();
    this.crossAdapted.clear();
    this.frozenCpu.clear();
    this.owned.forEach((b) => b.destroy());
  }
}

export { mergeLora } from './merge';

/** The f32 values of a frozen weight buffer (f16 storage: each element widened exactly). */
async function readWeightF32(rt: GpuRuntime, buf: GPUBuffer, n: number): Promise<Float32Array> {
  if (bufferStorage(buf) === 'f32') return rt.readF32(buf, n);
  const words = await rt.readF32(buf, Math.ceil(n / 2));
  const bits = new Uint16Array(words.buffer, words.byteOffset, n);
  return Float32Array.from(bits, halfBitsToFloat);
}

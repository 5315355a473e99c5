/**
 * Tied-embedding logits + softmax cross-entropy on the GPU, tile by tile over the vocabulary
 * (shaders/engine_logits_ce.wgsl). Whisper: H = decoder.layer_norm output, E = embed_tokens.weight
 * (= proj_out.weight), V = 51,865.
 *
 *   forward()   H (T, C), E (V, C), targets (T,) i32  →  loss (mean over valid targets), N,
 *               per-row loss (T,), per-row (max, log Σexp) (T, 2), argmax (T,) u32 (greedy token)
 *   backward()  → dH (T, C) = ∂(lossScale·loss)/∂H   (overwrites dH, or adds with accumulate)
 *               needs the (max, log Σexp) and N of the last forward() on the same H.
 *
 * Target −1 (any negative, or ≥ V) marks padding: excluded from the mean and dH row = 0.
 * No (T, V) buffer: E is bound as vocab tiles (vocab_tiles.ts) and a (T, R) scratch holds one tile of
 * logits (forward) or dlogits (backward, logits recomputed). Per tile per pass: 1 matmul dispatch +
 * 1 stats dispatch (forward) or 2 matmul dispatches (backward); then 1 finalize (forward) or
 * 1 split-K reduce (backward) dispatch. The dH matmul (T, C) = G (T, n)·E_tile (n, C) has a long K
 * and a small output, so its K is split into S chunks (workgroup z) with partials (S, T, C).
 * E is frozen: no dE. CPU reference: src/engine/reference/logits_ce.ts. Test: test/engine/logits_ce.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { STORAGE_BYTES, type StorageType, uploadAs, variantSuffix, wgslVariant } from '../../gpu/wgsl-variants';
import { bindGroupAt, checkDims, grid1d, needElems } from './kernel-util';
import {
  asRowSplit,
  deviceTileLimits,
  planSplitTiles,
  planVocabTiles,
  uploadRowSplit,
  vocabTileRows,
  type RowSplit,
  type VocabTile,
  type VocabTileLimits,
} from './vocab_tiles';

type Entry = 'logits_tile' | 'ce_tile_stats' | 'ce_finalize' | 'dh_tile' | 'dh_reduce' | 'logits_tile_rt' | 'dh_tile_rt';

/** storage: element type of E (f16 storage: the variant reads it through ldE and widens to f32). */
export function logitsCeKernel(entry: Entry, storage: StorageType = 'f32'): KernelSpec {
  const aliases = { EStore: storage };
  return { label: `engine_logits_ce.${entry}${variantSuffix(aliases)}`, code: wgslVariant('engine_logits_ce', aliases), entryPoint: entry };
}

const TILE = 64; // output tile of the two matmuls
const SPLITK_TARGET_WORKGROUPS = 256; // dh_tile: split K until the grid has about this many workgroups
const SPLITK_MAX = 32;
const SPLITK_MIN_ROWS = 64; // …but keep ≥ 64 vocab rows per chunk

export interface LogitsCeShape {
  T: number; // tokens (B·S)
  C: number; // d_model
  V: number; // vocabulary
}

export interface LogitsCeOptions {
  label?: string;
  /** cap per binding below the device limit (e.g. 128 MiB to behave like a default browser) */
  maxBindingBytes?: number;
  /** rows per vocab tile at most (default 8192: 7 tiles for Whisper, (T, 8192) scratch) */
  maxTileRows?: number;
  /** backward: dH += … instead of dH = … */
  accumulate?: boolean;
  /** backward: gradient of lossScale·loss (default 1; e.g. 1/gradient-accumulation steps) */
  lossScale?: number;
  /** backward: split-K factor of the dH matmul (default: from the grid size; tests force it) */
  splitK?: number;
  /**
   * Matmul variant: true = logits_tile_rt / dh_tile_rt (16×16 micro-tile per thread, no workgroup
   * memory; bit-identical, several times faster on CPU adapters). Default rt.softwareAdapter.
   */
  registerTiled?: boolean;
}

export interface LogitsCeCall {
  readonly tiles: VocabTile[];
  /** split-K factor S of the dH matmul (partials (S, T, C) summed by dh_reduce) */
  readonly splits: number;
  /** outputs (owned by the call; valid after forward()) */
  readonly out: {
    /** (4,) f32: [mean loss, N valid rows, Σ row losses, 0] */
    loss: GPUBuffer;
    /** (T,) f32, 0 on padding rows */
    rowLoss: GPUBuffer;
    /** (T, 2) f32: max logit, log Σ exp(logit − max); lse = max + log Σ */
    lse2: GPUBuffer;
    /** (T,) u32: argmax of the logits per row (first on ties) */
    argmax: GPUBuffer;
  };
  forward(): void;
  /** requires a dH buffer at prepare time and a preceding forward() */
  backward(): void;
  setLossScale(s: number): void;
  readLoss(): Promise<{ loss: number; count: number; sum: number }>;
  destroy(): void;
}

function paramsWords(
  T: number,
  C: number,
  V: number,
  v0: number,
  n: number,
  flag: number,
  lossScale: number,
  kchunk = 0,
): Uint8Array<ArrayBuffer> {
  const buf = new ArrayBuffer(32);
  new Uint32Array(buf, 0, 6).set([T, C, V, v0, n, flag]);
  new Float32Array(buf, 24, 1)[0] = lossScale;
  new Uint32Array(buf, 28, 1)[0] = kchunk;
  return new Uint8Array(buf);
}

/**
 * Vocabulary tiles, rows per tile R and split-K factor of a logits_ce call, and the element counts of its
 * two big scratch buffers: logits tile (T, R) and dH partials (S, T, C). prepareLogitsCe allocates from
 * this; src/engine/memory-plan.ts plans with it.
 */
export function logitsCeLayout(
  shape: LogitsCeShape,
  lim: VocabTileLimits,
  opts: Pick<LogitsCeOptions, 'maxTileRows' | 'splitK'> & { E?: RowSplit } = {},
): { R: number; tiles: VocabTile[]; splits: number; scratchElems: number; partialElems: number } {
  const { T, C, V } = shape;
  const tileLim = { ...lim, scratchBytesPerRow: 4 * T, maxRows: opts.maxTileRows ?? 8192 };
  const R = vocabTileRows(C, tileLim);
  // E in row parts (over maxBufferSize): tiles inside each part
  const tiles = opts.E ? planSplitTiles(opts.E, tileLim) : planVocabTiles(V, C, tileLim);
  const dhGrid2 = Math.ceil(C / TILE) * Math.ceil(T / TILE);
  const splits =
    opts.splitK ??
    Math.max(
      1,
      Math.min(
        SPLITK_MAX,
        Math.ceil(SPLITK_TARGET_WORKGROUPS / dhGrid2),
        Math.ceil(Math.min(R, V) / SPLITK_MIN_ROWS),
        Math.floor(lim.maxBindingBytes / (T * C * 4)),
      ),
    );
  return { R, tiles, splits, scratchElems: T * R, partialElems: splits * T * C };
}

/**
 * Prepare forward (and backward when `b.dh` is given) over existing buffers:
 * h (T, C) f32, E (V, C) f32, targets (T,) i32, dh (T, C) f32.
 */
export async function prepareLogitsCe(
  rt: GpuRuntime,
  shape: LogitsCeShape,
  b: { h: GPUBuffer; E: GPUBuffer | RowSplit; targets: GPUBuffer; dh?: GPUBuffer },
  opts: LogitsCeOptions = {},
): Promise<LogitsCeCall> {
  const label = opts.label ?? 'logits_ce';
  const { T, C, V } = shape;
  checkDims(label, { T, C, V, TC: T * C, VC: V * C });
  if (T < 1 || C < 1 || V < 1) throw new Error(`${label}: T, C, V must be ≥ 1`);
  needElems(label, b.h, T * C, 'H (T,C)');
  const E = asRowSplit(b.E, V, C);
  for (const part of E.parts) needElems(label, part.buffer, part.rows * C, `E rows [${part.r0}, ${part.r0 + part.rows}) (V,C)`);
  needElems(label, b.targets, T, 'targets (T,)');
  if (b.dh) needElems(label, b.dh, T * C, 'dH (T,C)');
  const lim = deviceTileLimits(rt.device, opts.maxBindingBytes, STORAGE_BYTES[E.storage]);
  if (T * C * 4 > lim.maxBindingBytes) throw new Error(`${label}: H (${T}×${C}) exceeds one binding`);
  const { R, tiles, splits } = logitsCeLayout(shape, lim, { ...opts, E });
  const maxDim = rt.device.limits.maxComputeWorkgroupsPerDimension;
  if (Math.ceil(T / TILE) > maxDim || Math.ceil(R / TILE) > maxDim) throw new Error(`${label}: T or tile rows too large`);

  const [pLogits, pStats, pFinal, pDh, pReduce] = await Promise.all(
    ((opts.registerTiled ?? rt.softwareAdapter)
      ? (['logits_tile_rt', 'ce_tile_stats', 'ce_finalize', 'dh_tile_rt', 'dh_reduce'] as const)
      : (['logits_tile', 'ce_tile_stats', 'ce_finalize', 'dh_tile', 'dh_reduce'] as const)
    ).map((e) => rt.pipeline(logitsCeKernel(e, E.storage))),
  );

  const owned: GPUBuffer[] = [];
  const own = (buf: GPUBuffer): GPUBuffer => (owned.push(buf), buf);
  const scratch = own(rt.storage(`${label}:logits_tile_scratch (T,R)`, T * R * 4));
  const run = own(rt.storage(`${label}:running (T,3)`, T * 3 * 4));
  const runAm = own(rt.storage(`${label}:running_argmax (T,)`, T * 4));
  const out = {
    loss: own(rt.storage(`${label}:loss (4,)`, 16)),
    rowLoss: own(rt.storage(`${label}:row_loss (T,)`, T * 4)),
    lse2: own(rt.storage(`${label}:lse2 (T,2)`, T * 2 * 4)),
    argmax: own(rt.storage(`${label}:argmax (T,)`, T * 4)),
  };
  let lossScale = opts.lossScale ?? 1;

  const eTile = (t: VocabTile): GPUBufferBinding => ({ buffer: t.buffer!, offset: t.offsetBytes, size: t.sizeBytes });
  const lTile = (t: VocabTile): GPUBufferBinding => ({ buffer: scratch, offset: 0, size: Math.max(4, T * t.rows * 4) });
  const rowGrid = grid1d(T, 1, maxDim);

  // forward: per tile (logits mode 0, stats), then finalize
  const fwd = tiles.map((tile, k) => {
    const u = own(rt.uniform(`${label}:fwd_params[${k}]`, paramsWords(T, C, V, tile.v0, tile.rows, 0, 0)));
    const us = own(rt.uniform(`${label}:stats_params[${k}]`, paramsWords(T, C, V, tile.v0, tile.rows, k === 0 ? 1 : 0, 0)));
    return {
      logits: bindGroupAt(rt, `${label}:logits_tile[${k}]`, pLogits, [
        [0, u],
        [1, b.h],
        [2, eTile(tile)],
        [3, lTile(tile)],
        [4, b.targets],
        [5, out.lse2],
        [6, out.loss],
      ]),
      stats: bindGroupAt(rt, `${label}:ce_tile_stats[${k}]`, pStats, [
        [0, us],
        [4, b.targets],
        [7, lTile(tile)],
        [8, run],
        [15, runAm],
      ]),
      grid: [Math.ceil(tile.rows / TILE), Math.ceil(T / TILE), 1] as [number, number, number],
    };
  });
  const uFinal = own(rt.uniform(`${label}:finalize_params`, paramsWords(T, C, V, 0, 0, 0, 0)));
  const finalBg = bindGroupAt(rt, `${label}:ce_finalize`, pFinal, [
    [0, uFinal],
    [4, b.targets],
    [8, run],
    [15, runAm],
    [9, out.lse2],
    [10, out.rowLoss],
    [11, out.loss],
    [12, out.argmax],
  ]);

  // backward: per tile (logits mode 1 → dlogits; split-K partials of G·E_tile), then one reduce
  if (!Number.isInteger(splits) || splits < 1 || splits * T * C * 4 > lim.maxBindingBytes) {
    throw new Error(`${label}: bad split-K ${splits} for (T, C) = (${T}, ${C})`);
  }
  const part = b.dh ? own(rt.storage(`${label}:dh_partials (S,T,C)`, splits * T * C * 4)) : null;
  const bwdUniforms: Array<{ buf: GPUBuffer; tile: VocabTile }> = [];
  const bwd = b.dh
    ? tiles.map((tile, k) => {
        const u = own(rt.uniform(`${label}:bwd_params[${k}]`, paramsWords(T, C, V, tile.v0, tile.rows, 1, lossScale)));
        bwdUniforms.push({ buf: u, tile });
        const kchunk = Math.ceil(tile.rows / splits);
        const ud = own(rt.uniform(`${label}:dh_params[${k}]`, paramsWords(T, C, V, tile.v0, tile.rows, k === 0 ? 1 : 0, 0, kchunk)));
        return {
          dlogits: bindGroupAt(rt, `${label}:dlogits_tile[${k}]`, pLogits, [
            [0, u],
            [1, b.h],
            [2, eTile(tile)],
            [3, lTile(tile)],
            [4, b.targets],
            [5, out.lse2],
            [6, out.loss],
          ]),
          dh: bindGroupAt(rt, `${label}:dh_tile[${k}]`, pDh, [
            [0, ud],
            [2, eTile(tile)],
            [13, lTile(tile)],
            [17, part!],
          ]),
          grid: [Math.ceil(tile.rows / TILE), Math.ceil(T / TILE), 1] as [number, number, number],
          dhGrid: [Math.ceil(C / TILE), Math.ceil(T / TILE), splits] as [number, number, number],
        };
      })
    : null;
  const uReduce = own(rt.uniform(`${label}:dh_reduce_params`, paramsWords(T, C, V, 0, 0, opts.accumulate ? 1 : 0, 0, splits)));
  const reduceBg = b.dh
    ? bindGroupAt(rt, `${label}:dh_reduce`, pReduce, [
        [0, uReduce],
        [16, part!],
        [14, b.dh],
      ])
    : null;
  const reduceGrid = grid1d(T * C, 256, maxDim);

  return {
    tiles,
    splits,
    out,
    forward() {
      for (let k = 0; k < fwd.length; k++) {
        rt.dispatch(`${label}:logits_tile[${k}]`, pLogits, fwd[k].logits, fwd[k].grid);
        rt.dispatch(`${label}:ce_tile_stats[${k}]`, pStats, fwd[k].stats, rowGrid);
      }
      rt.dispatch(`${label}:ce_finalize`, pFinal, finalBg, [1, 1, 1]);
    },
    backward() {
      if (!bwd) throw new Error(`${label}: prepared without a dH buffer`);
      for (let k = 0; k < bwd.length; k++) {
        rt.dispatch(`${label}:dlogits_tile[${k}]`, pLogits, bwd[k].dlogits, bwd[k].grid);
        rt.dispatch(`${label}:dh_tile[${k}]`, pDh, bwd[k].dh, bwd[k].dhGrid);
      }
      rt.dispatch(`${label}:dh_reduce`, pReduce, reduceBg!, reduceGrid);
    },
    setLossScale(s: number) {
      lossScale = s;
      for (const { buf, tile } of bwdUniforms) {
        rt.device.queue.writeBuffer(buf, 0, paramsWords(T, C, V, tile.v0, tile.rows, 1, s));
      }
    },
    async readLoss() {
      const [loss, count, sum] = await rt.readF32(out.loss, 3);
      return { loss, count, sum };
    },
    destroy() {
      for (const buf of owned) buf.destroy();
    },
  };
}

export interface LogitsCeResult {
  loss: number;
  count: number;
  rowLoss: Float32Array; // (T,)
  lse2: Float32Array; // (T, 2)
  argmax: Uint32Array; // (T,)
  dh?: Float32Array; // (T, C)
  tiles: VocabTile[];
  splits: number;
}

/** One-shot: upload H, E, targets; forward (+ backward when `withGrad`); read everything back. */
export async function logitsCrossEntropy(
  rt: GpuRuntime,
  H: Float32Array,
  E: Float32Array,
  targets: Int32Array,
  shape: LogitsCeShape,
  opts: LogitsCeOptions & { withGrad?: boolean; storage?: StorageType; rowParts?: boolean } = {},
): Promise<LogitsCeResult> {
  const { T, C, V } = shape;
  const h = rt.upload('logits_ce:H', H);
  // rowParts: E in row parts of at most the device's buffer limits (rt.capBufferBytes lowers them), as the decoder uploads it
  const split = opts.rowParts ? uploadRowSplit(rt, 'logits_ce:E', E, V, C, opts.storage ?? 'f32') : null;
  const e = split ?? uploadAs(rt, 'logits_ce:E', E, opts.storage ?? 'f32');
  const tg = rt.upload('logits_ce:targets', targets);
  const dh = opts.withGrad ? rt.storage('logits_ce:dH', T * C * 4) : undefined;
  try {
    const call = await prepareLogitsCe(rt, shape, { h, E: e, targets: tg, dh }, opts);
    call.forward();
    if (dh) call.backward();
    const { loss, count } = await call.readLoss();
    const res: LogitsCeResult = {
      loss,
      count,
      rowLoss: await rt.readF32(call.out.rowLoss, T),
      lse2: await rt.readF32(call.out.lse2, 2 * T),
      argmax: new Uint32Array(await rt.readBytes(call.out.argmax, T * 4)),
      dh: dh ? await rt.readF32(dh, T * C) : undefined,
      tiles: call.tiles,
      splits: call.splits,
    };
    call.destroy();
    return res;
  } finally {
    for (const buf of [h, tg, dh, ...(split ? split.parts.map((q) => q.buffer) : [e as GPUBuffer])]) buf?.destroy();
  }
}

/**
 * Multi-head scaled dot-product attention on the GPU (shaders/engine_attention.wgsl).
 *
 *   forward():      O (B, S, H·D) = softmax(D^-½·Q Kᵀ [causal, key mask]) V;  STATS (B, H, S, 2)
 *   backward(o):    dQ (B, S, H·D); dK, dV (B, Skv, H·D) unless computeDkv = false
 * Q: (B, S, H·D) raw q_proj output (the kernel applies the scale), K, V: (B, Skv, H·D).
 * Self-attention: Skv = S, causal = true, mask = key padding (B, S) u32.
 * Cross-attention: Skv = E encoder frames, causal = false, mask usually null.
 * Buffers are written (=), not accumulated. Requires D ≤ 256.
 * CPU reference: src/engine/reference/attention.ts. Test: test/engine/attention.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import { bufferStorage, type StorageType, variantSuffix, wgslVariant } from '../../gpu/wgsl-variants';
import { UniformWords, uniformFrom } from './uniform-pack';
import { bindAt, checkDims, needElems } from './kernel-util';

type Entry = 'forward' | 'backward_dq' | 'backward_dkv' | 'forward_tiled' | 'backward_dq_tiled' | 'forward_decode';

/** kv: element type of K and V (f16: the cross-attention K/V cache under f16 storage). */
export function attentionKernel(entry: Entry, kv: StorageType = 'f32'): KernelSpec {
  const aliases = { KVStore: kv };
  return { label: `engine_attention.${entry}${variantSuffix(aliases)}`, code: wgslVariant('engine_attention', aliases), entryPoint: entry };
}

export const ATTN_MAX_D = 256;
/** Head dims up to this use the query-block tiled forward / dQ kernels (Whisper: D = 64 at every size). */
export const ATTN_TILED_MAX_D = 64;
/** Queries per workgroup of the tiled kernels (BQ in the WGSL). */
export const ATTN_TILE_Q = 16;

export interface AttentionSpec {
  B: number;
  S: number;
  Skv: number;
  H: number;
  D: number;
  causal: boolean;
  /** Default D^-½ (HF Whisper `scaling`). */
  scale?: number;
}

export interface AttentionBuffers {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  /** (B, Skv) u32, 1 = attendable; null = all keys. */
  mask: GPUBuffer | null;
  o: GPUBuffer;
  /** (B, H, S, 2) f32 — saved by forward for backward. */
  stats: GPUBuffer;
  /** Backward only. */
  dO?: GPUBuffer;
  dq?: GPUBuffer;
  dk?: GPUBuffer;
  dv?: GPUBuffer;
}

export interface AttentionCall {
  forward(): void;
  /** dQ, and dK/dV when computeDkv (default true). */
  backward(o?: { computeDkv?: boolean }): void;
  destroy(): void;
}

export async function prepareAttention(
  rt: GpuRuntime,
  spec: AttentionSpec,
  bufs: AttentionBuffers,
  label = 'engine_attention',
): Promise<AttentionCall> {
  const { B, S, Skv, H, D } = spec;
  checkDims(label, { B, S, Skv, H, D });
  if (D > ATTN_MAX_D) throw new Error(`${label}: head dim D=${D} > ${ATTN_MAX_D}`);
  if (spec.causal && Skv < S) throw new Error(`${label}: causal needs Skv ≥ S (got Skv=${Skv}, S=${S})`);
  const maxWg = rt.device.limits.maxComputeWorkgroupsPerDimension;
  if (S > maxWg || Skv > maxWg || B * H > maxWg) throw new Error(`${label}: S, Skv, B·H must be ≤ ${maxWg}`);
  needElems(label, bufs.q, B * S * H * D, 'Q (B,S,H·D)');
  needElems(label, bufs.k, B * Skv * H * D, 'K (B,Skv,H·D)');
  needElems(label, bufs.v, B * Skv * H * D, 'V (B,Skv,H·D)');
  needElems(label, bufs.o, B * S * H * D, 'O (B,S,H·D)');
  needElems(label, bufs.stats, B * H * S * 2, 'STATS (B,H,S,2)');
  if (bufs.mask) needElems(label, bufs.mask, B * Skv, 'MASK (B,Skv)');
  const kv = bufferStorage(bufs.k);
  if (bufferStorage(bufs.v) !== kv) throw new Error(`${label}: K is ${kv} but V is ${bufferStorage(bufs.v)} (one storage type for both)`);
  const scale = spec.scale ?? 1 / Math.sqrt(D);
  const params = uniformFrom(
    rt,
    `${label}:params`,
    new UniformWords()
      .u32(B)
      .u32(S)
      .u32(Skv)
      .u32(H)
      .u32(D)
      .u32(spec.causal ? 1 : 0)
      .u32(bufs.mask ? 1 : 0)
      .u32(0)
      .f32(scale)
      .f32(0)
      .f32(0)
      .f32(0),
  );
  const owned = [params];
  const mask = bufs.mask ?? rt.storage(`${label}:no_mask`, 4);
  if (!bufs.mask) owned.push(mask);
  // D ≤ 64: more than one query → one workgroup per 16-query block (K/V tiles reused across the block);
  // a single query (greedy decoding) → forward_decode (the block kernel would stage K/V tiles for 16
  // queries to serve one). D > 64: one workgroup per query (the row kernels).
  const tiled = D <= ATTN_TILED_MAX_D && S > 1;
  const qGroups = tiled ? Math.ceil(S / ATTN_TILE_Q) : S;
  const decode = S === 1 && D <= ATTN_TILED_MAX_D;
  const fwd = await rt.pipeline(attentionKernel(tiled ? 'forward_tiled' : decode ? 'forward_decode' : 'forward', kv));
  const bgF = bindAt(rt, `${label}.forward:bind`, fwd, [
    [0, params],
    [1, bufs.q],
    [2, bufs.k],
    [3, bufs.v],
    [4, mask],
    [5, bufs.o],
    [6, bufs.stats],
  ]);
  let bw: { dq: () => void; dkv: () => void } | null = null;
  if (bufs.dO && bufs.dq) {
    needElems(label, bufs.dO, B * S * H * D, 'dO (B,S,H·D)');
    needElems(label, bufs.dq, B * S * H * D, 'dQ (B,S,H·D)');
    const drow = rt.storage(`${label}:drow`, B * H * S * 4);
    owned.push(drow);
    const pq = await rt.pipeline(attentionKernel(tiled ? 'backward_dq_tiled' : 'backward_dq', kv));
    const bgQ = bindAt(rt, `${label}.backward_dq:bind`, pq, [
      [0, params],
      [1, bufs.q],
      [2, bufs.k],
      [3, bufs.v],
      [4, mask],
      [7, bufs.o],
      [8, bufs.dO],
      [9, bufs.dq],
      [10, drow],
      [13, bufs.stats],
    ]);
    let dkv = (): void => {
      throw new Error(`${label}: backward with computeDkv needs dk and dv buffers`);
    };
    if (bufs.dk && bufs.dv) {
      needElems(label, bufs.dk, B * Skv * H * D, 'dK (B,Skv,H·D)');
      needElems(label, bufs.dv, B * Skv * H * D, 'dV (B,Skv,H·D)');
      const pkv = await rt.pipeline(attentionKernel('backward_dkv', kv));
      const bgKV = bindAt(rt, `${label}.backward_dkv:bind`, pkv, [
        [0, params],
        [1, bufs.q],
        [2, bufs.k],
        [3, bufs.v],
        [4, mask],
        [8, bufs.dO],
        [11, bufs.dk],
        [12, bufs.dv],
        [13, bufs.stats],
        [14, drow],
      ]);
      dkv = () => rt.dispatch(`${label}.backward_dkv`, pkv, bgKV, [Skv, B * H, 1]);
    }
    bw = { dq: () => rt.dispatch(`${label}.backward_dq`, pq, bgQ, [qGroups, B * H, 1]), dkv };
  }
  const empty = B * H === 0 || S === 0;
  return {
    forward: () => {
      if (!empty) rt.dispatch(`${label}.forward`, fwd, bgF, [qGroups, B * H, 1]);
    },
    backward: (o = {}) => {
      if (!bw) throw new Error(`${label}: backward needs dO and dq buffers`);
      if (empty) return;
      bw.dq();
      if (o.computeDkv ?? true) bw.dkv();
    },
    destroy: () => owned.forEach((b) => b.destroy()),
  };
}

/**
 * Whisper decoder input embedding on the GPU (shaders/engine_embedding.wgsl):
 *
 *   X (T, C) = E[tok] + P[pos]      tok, pos: (T,) u32   E: (V, C)   P: (NP, C)
 *
 * E is bound as vocab tiles (src/engine/kernels/vocab_tiles.ts) so V·C·4 may exceed
 * maxStorageBufferBindingSize, and may be a RowSplit (row parts in separate buffers) so it may exceed
 * maxBufferSize; one dispatch per tile, bit-exact result either way.
 * tok ≥ V or pos ≥ NP → zero row. No backward: the tables are frozen and carry no adapter.
 * CPU reference: src/engine/reference/embedding.ts. Test: test/engine/embedding.test.ts.
 */
import type { GpuRuntime, KernelSpec } from '../../gpu/runtime';
import {
  bufferElemBytes,
  bufferStorage,
  STORAGE_BYTES,
  type StorageType,
  uploadAs,
  variantSuffix,
  wgslVariant,
} from '../../gpu/wgsl-variants';
import { bindGroupAt, checkDims, grid1d, needElems, type PreparedCall } from './kernel-util';
import { asRowSplit, deviceTileLimits, planSplitTiles, type RowSplit, type VocabTile } from './vocab_tiles';

const WG = 256;

/** storage: of E and P (both frozen tables, one type). */
export function embeddingKernel(storage: StorageType = 'f32'): KernelSpec {
  const aliases = { EStore: storage };
  return {
    label: `engine_embedding.embedding_forward${variantSuffix(aliases)}`,
    code: wgslVariant('engine_embedding', aliases),
    entryPoint: 'embedding_forward',
  };
}

export interface EmbeddingShape {
  T: number; // tokens (B·S)
  C: number; // d_model
  V: number; // vocabulary rows of E
  NP: number; // position rows of P
}

export interface EmbeddingOptions {
  label?: string;
  /** cap per binding below the device limit (tests; or to mimic a browser's 128 MiB default) */
  maxBindingBytes?: number;
}

/** Prepared gather on existing buffers: tokens, positions (T,) u32; E (V,C); P (NP,C) → x (T,C). */
export async function prepareEmbedding(
  rt: GpuRuntime,
  shape: EmbeddingShape,
  b: { tokens: GPUBuffer; positions: GPUBuffer; E: GPUBuffer | RowSplit; P: GPUBuffer; x: GPUBuffer },
  opts: EmbeddingOptions = {},
): Promise<PreparedCall & { tiles: VocabTile[] }> {
  const label = opts.label ?? 'embedding';
  const { T, C, V, NP } = shape;
  checkDims(label, { T, C, V, NP, TC: T * C });
  if (C < 1 || V < 1 || NP < 1) throw new Error(`${label}: C, V, NP must be ≥ 1`);
  needElems(label, b.tokens, T, 'tokens (T,)');
  needElems(label, b.positions, T, 'positions (T,)');
  const E = asRowSplit(b.E, V, C);
  for (const part of E.parts) needElems(label, part.buffer, part.rows * C, `E rows [${part.r0}, ${part.r0 + part.rows}) (V,C)`);
  needElems(label, b.P, NP * C, 'P (NP,C)');
  needElems(label, b.x, T * C, 'X (T,C)');
  const storage = E.storage;
  if (bufferStorage(b.P) !== storage)
    throw new Error(`${label}: E is ${storage} but P is ${bufferStorage(b.P)} (one storage type for both tables)`);
  const lim = deviceTileLimits(rt.device, opts.maxBindingBytes, STORAGE_BYTES[storage]);
  if (NP * C * bufferElemBytes(b.P) > lim.maxBindingBytes) throw new Error(`${label}: P (${NP}×${C}) exceeds one binding`);
  const tiles = planSplitTiles(E, lim);
  const pipeline = await rt.pipeline(embeddingKernel(storage));
  const wg = grid1d(T * C, WG, rt.device.limits.maxComputeWorkgroupsPerDimension);
  const uniforms: GPUBuffer[] = [];
  const groups = tiles.map((tile, k) => {
    const u = rt.uniform(`${label}:params[${k}]`, new Uint32Array([T, C, V, NP, tile.v0, tile.rows, k === 0 ? 1 : 0, 0]));
    uniforms.push(u);
    return bindGroupAt(rt, `${label}:bind[${k}]`, pipeline, [
      [0, u],
      [1, b.tokens],
      [2, b.positions],
      [3, { buffer: tile.buffer!, offset: tile.offsetBytes, size: tile.sizeBytes }],
      [4, b.P],
      [5, b.x],
    ]);
  });
  return {
    tiles,
    run: () => {
      for (let k = 0; k < groups.length; k++) rt.dispatch(`${label}[tile ${k}]`, pipeline, groups[k], wg);
    },
    destroy: () => uniforms.forEach((u) => u.destroy()),
  };
}

/** One-shot: upload, gather, read back X (T, C). */
export async function embeddingForward(
  rt: GpuRuntime,
  tokens: Uint32Array,
  positions: Uint32Array,
  E: Float32Array,
  P: Float32Array,
  shape: EmbeddingShape,
  opts: EmbeddingOptions & { storage?: StorageType } = {},
): Promise<{ x: Float32Array; tiles: VocabTile[] }> {
  const { T, C } = shape;
  const tok = rt.upload('embedding:tokens', tokens);
  const pos = rt.upload('embedding:positions', positions);
  const e = uploadAs(rt, 'embedding:E', E, opts.storage ?? 'f32');
  const p = uploadAs(rt, 'embedding:P', P, opts.storage ?? 'f32');
  const x = rt.storage('embedding:X', T * C * 4);
  try {
    const call = await prepareEmbedding(rt, shape, { tokens: tok, positions: pos, E: e, P: p, x }, opts);
    call.run();
    const out = await rt.readF32(x, T * C);
    call.destroy();
    return { x: out, tiles: call.tiles };
  } finally {
    for (const buf of [tok, pos, e, p, x]) buf.destroy();
  }
}

/**
 * Vocabulary tiling for kernels that read the token-embedding table E (V, C) — embedding gather and
 * tied-embedding logits / cross-entropy. Whisper's V = 51,865 rows × C floats is 106 MB at C = 512
 * (base) and 159–266 MB for small…large, while browsers guarantee only 128 MiB per storage binding
 * (maxStorageBufferBindingSize default 134,217,728). So E lives in ONE GPUBuffer but is bound as
 * consecutive row ranges ("vocab tiles") that each fit a binding:
 *
 *   tile k = rows [v0, v0 + rows),  v0 = k·R,  bound at byte offset v0·C·eb, size rows·C·eb
 *
 * eb = bytes per element of E: 4 (f32 storage) or 2 (f16 storage, src/gpu/wgsl-variants.ts) — the
 * `elemBytes` field of VocabTileLimits (default 4; deviceTileLimits takes it as its third argument).
 * R (rows per tile) is the largest multiple of rowAlign that keeps every binding of the kernel
 * ≤ maxBindingBytes, where rowAlign makes each offset a multiple of minStorageBufferOffsetAlignment
 * (256 by default): rowAlign = align / gcd(C·eb, align) (1 when C·eb is a multiple of 256, e.g. C=512).
 */

export interface VocabTile {
  /** first vocabulary row of the tile */
  v0: number;
  /** rows in the tile (the last may be shorter) */
  rows: number;
  /** byte offset and size of the tile's binding of E */
  offsetBytes: number;
  sizeBytes: number;
}

export interface VocabTileLimits {
  /** cap per storage binding; default the device's maxStorageBufferBindingSize */
  maxBindingBytes: number;
  /** the device's minStorageBufferOffsetAlignment (256 on every WebGPU implementation so far) */
  offsetAlignment: number;
  /** extra per-row bytes of other bindings that scale with R (e.g. a (T, R) logits scratch: 4T) */
  scratchBytesPerRow?: number;
  /** upper bound on rows per tile (smaller tiles: more dispatches, less scratch) */
  maxRows?: number;
  /** bytes per element of E: 4 (f32, default) or 2 (f16 storage) */
  elemBytes?: number;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

export function vocabTileRows(C: number, lim: VocabTileLimits): number {
  const rowBytes = C * (lim.elemBytes ?? 4);
  const rowAlign = lim.offsetAlignment / gcd(rowBytes, lim.offsetAlignment);
  let R = Math.floor(lim.maxBindingBytes / rowBytes);
  if (lim.scratchBytesPerRow) R = Math.min(R, Math.floor(lim.maxBindingBytes / lim.scratchBytesPerRow));
  if (lim.maxRows !== undefined) R = Math.min(R, lim.maxRows);
  R -= R % rowAlign;
  if (R < 1) {
    throw new Error(
      `vocab tiles: C=${C} needs tiles of a multiple of ${rowAlign} rows (offset alignment ` +
        `${lim.offsetAlignment} B), but a binding of ${lim.maxBindingBytes} B fits fewer` +
        (lim.scratchBytesPerRow ? ` (scratch ${lim.scratchBytesPerRow} B/row)` : ''),
    );
  }
  return R;
}

/** The tiles covering rows [0, V). */
export function planVocabTiles(V: number, C: number, lim: VocabTileLimits): VocabTile[] {
  const R = vocabTileRows(C, lim);
  const eb = lim.elemBytes ?? 4;
  const tiles: VocabTile[] = [];
  for (let v0 = 0; v0 < V; v0 += R) {
    const rows = Math.min(R, V - v0);
    // f16: a binding's size must be a multiple of 4 bytes; an odd rows·C (last tile) is rounded up
    // into the padding uploadAs adds, and the kernels never read past row `rows`.
    const size = rows * C * eb;
    tiles.push({ v0, rows, offsetBytes: v0 * C * eb, sizeBytes: Math.ceil(size / 4) * 4 });
  }
  return tiles;
}

/** Limits from a device, optionally capped lower (tests use a small cap to force many tiles). */
export function deviceTileLimits(device: GPUDevice, maxBindingBytes?: number, elemBytes = 4): VocabTileLimits {
  const devMax = device.limits.maxStorageBufferBindingSize;
  return {
    maxBindingBytes: Math.min(devMax, maxBindingBytes ?? devMax),
    offsetAlignment: device.limits.minStorageBufferOffsetAlignment,
    elemBytes,
  };
}

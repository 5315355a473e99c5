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
 *
 * Where E is larger than one buffer may be (maxBufferSize: 256 MiB by default, less on phones and integrated
 * GPUs; large-v3's E is 253 MiB in f32), it is uploaded as row parts, each its own GPUBuffer (RowSplit,
 * uploadRowSplit), and the tiles are planned inside each part (planSplitTiles): a tile never crosses two
 * buffers, and `buffer` names the one it binds.
 */
import { bufferLimits, type GpuRuntime } from '../../gpu/runtime';
import { bufferStorage, STORAGE_BYTES, type StorageType, uploadAs } from '../../gpu/wgsl-variants';

export interface VocabTile {
  /** first vocabulary row of the tile */
  v0: number;
  /** rows in the tile (the last may be shorter) */
  rows: number;
  /** byte offset and size of the tile's binding of E */
  offsetBytes: number;
  sizeBytes: number;
  /** the buffer the tile binds (a row part of a RowSplit); absent: the one buffer E */
  buffer?: GPUBuffer;
}

/** A (rows, cols) matrix stored as consecutive row ranges, each in its own buffer (one part when it fits). */
export interface RowSplit {
  rows: number;
  cols: number;
  storage: StorageType;
  parts: { buffer: GPUBuffer; r0: number; rows: number }[];
}

/**
 * Rows per part so that a part fits one buffer and one binding (every tile then fits the binding too): a
 * multiple of 256 rows where one fits, so a tile starting at a part keeps the row alignment the kernels need
 * (offset alignment / gcd(row bytes, 256) and generate.ts's 64-row logits tiles both divide 256).
 */
export function rowSplitRows(cols: number, elemBytes: number, maxBytes: number): number {
  const R = Math.floor(maxBytes / (cols * elemBytes));
  if (R < 1) throw new Error(`a row of ${cols} × ${elemBytes} B is over the ${maxBytes} B a buffer may hold`);
  return R >= PART_ROW_ALIGN ? R - (R % PART_ROW_ALIGN) : R;
}
const PART_ROW_ALIGN = 256;

/** Upload `data` (rows, cols) as `storage` in as few parts as the device's buffer and binding limits allow. */
export function uploadRowSplit(
  rt: GpuRuntime,
  label: string,
  data: Float32Array,
  rows: number,
  cols: number,
  storage: StorageType,
): RowSplit {
  const lim = rt.limits;
  const R = rowSplitRows(cols, STORAGE_BYTES[storage], Math.min(lim.maxBufferSize, lim.maxStorageBufferBindingSize));
  const parts: RowSplit['parts'] = [];
  try {
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      const name = rows <= R ? label : `${label} rows [${r0}, ${r0 + n})`;
      parts.push({ buffer: uploadAs(rt, name, data.subarray(r0 * cols, (r0 + n) * cols), storage), r0, rows: n });
    }
  } catch (e) {
    parts.forEach((p) => p.buffer.destroy());
    throw e;
  }
  return { rows, cols, storage, parts };
}

/** A single buffer (V, C) as a one-part RowSplit (kernel tests and one-shot helpers pass plain buffers). */
export function asRowSplit(E: GPUBuffer | RowSplit, rows: number, cols: number): RowSplit {
  if (!(E as RowSplit).parts)
    return { rows, cols, storage: bufferStorage(E as GPUBuffer), parts: [{ buffer: E as GPUBuffer, r0: 0, rows }] };
  const s = E as RowSplit;
  if (s.rows !== rows || s.cols !== cols) throw new Error(`row-split tensor is (${s.rows}, ${s.cols}), expected (${rows}, ${cols})`);
  return s;
}

/** Bytes of every part (what the split tensor holds on the GPU). */
export function rowSplitBytes(s: RowSplit): number {
  return s.parts.reduce((a, p) => a + p.buffer.size, 0);
}

/** The tiles of planVocabTiles inside each part, with rows and v0 of the whole matrix and `buffer` set. */
export function planSplitTiles(E: RowSplit, lim: VocabTileLimits): VocabTile[] {
  return E.parts.flatMap((p) => planVocabTiles(p.rows, E.cols, lim).map((t) => ({ ...t, v0: t.v0 + p.r0, buffer: p.buffer })));
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
  const l = bufferLimits(device);
  const devMax = l.maxStorageBufferBindingSize;
  return {
    maxBindingBytes: Math.min(devMax, maxBindingBytes ?? devMax),
    offsetAlignment: l.minStorageBufferOffsetAlignment,
    elemBytes,
  };
}

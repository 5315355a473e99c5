// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}, then the raw bytes.
// The WGSL engine reads the frozen decoder weights from model.safetensors (stored as float16 by
// tools/prepare_model.py, losslessly) and computes in f32; the exporter writes adapters in this format.

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'SafetensorsError';
  }
}

const BYTES: Record<SafetensorsDtype, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** A tensor name for a message: short, control characters escaped (the header is untrusted). */
const shown = (name: string) => JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}…` : name);

/**
 * One header entry, validated (a corrupt header must give an error naming the file and the tensor,
 * not a TypeError from deep inside): dtype known, shape an array of non-negative integers,
 * data_offsets two integers 0 ≤ begin ≤ end ≤ the data section's size (when known), end − begin =
 * the element count × the dtype's size.
 */
export function checkTensorEntry(file: string, name: string, info: unknown, dataBytes?: number): TensorInfo {
  const bad = (why: string): never => {
    throw new SafetensorsError(file, `tensor ${shown(name)}: ${why}`);
  };
  if (info === null || typeof info !== 'object' || Array.isArray(info)) bad('header entry is not an object');
  const { dtype, shape, data_offsets } = info as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.hasOwn(BYTES, dtype)) bad(`unknown dtype ${JSON.stringify(dtype)?.slice(0, 40)}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    bad(`shape ${JSON.stringify(shape)?.slice(0, 80)} is not a list of non-negative integers`);
  if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    bad(`data_offsets ${JSON.stringify(data_offsets)?.slice(0, 80)} is not [begin, end] with non-negative integers`);
  }
  const dims = shape as number[];
  const [begin, end] = data_offsets as number[];
  const count = dims.reduce((a, b) => a * b, 1);
  const size = count * BYTES[dtype as SafetensorsDtype];
  if (end < begin || !Number.isSafeInteger(size) || end - begin !== size) {
    bad(`${dtype}[${dims}] needs ${size} bytes but data_offsets [${begin}, ${end}) hold ${end - begin}`);
  }
  if (dataBytes !== undefined && end > dataBytes)
    bad(`data_offsets [${begin}, ${end}) lie past the end of the file (data section of ${dataBytes} bytes)`);
  return { dtype: dtype as SafetensorsDtype, shape: dims, begin, end };
}

/**
 * What the engine's weight upload needs from a checkpoint: the tensor table and f32 values by name.
 * A whole parsed file (SafetensorsFile) or only the decoder tensors fetched by range (src/model/decoder-weights.ts).
 */
export interface TensorSource {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  info(name: string): TensorInfo;
  float32(name: string): Float32Array;
}

export class SafetensorsFile implements TensorSource {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string>;
  private dataStart: number;

  constructor(
    readonly bytes: Uint8Array,
    readonly file = 'model.safetensors',
  ) {
    if (bytes.byteLength < 8) throw new SafetensorsError(file, 'too short to be a safetensors file');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerLen = Number(view.getBigUint64(0, true));
    if (headerLen > bytes.byteLength - 8) throw new SafetensorsError(file, `header length ${headerLen} exceeds the file size`);
    let header: Record<string, any>;
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
    } catch (e) {
      throw new SafetensorsError(file, `header is not JSON (${(e as Error).message})`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header))
      throw new SafetensorsError(file, 'header is not a JSON object');
    this.dataStart = 8 + headerLen;
    const meta = header.__metadata__ ?? {};
    if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new SafetensorsError(file, '__metadata__ is not an object');
    this.metadata = meta;
    const dataBytes = bytes.byteLength - this.dataStart;
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const t = checkTensorEntry(file, name, info, dataBytes);
      this.tensors.set(name, t);
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.file, `no tensor named ${name}`);
    return t;
  }

  /** A floating-point tensor widened to f32 (F16/BF16 exactly; F64 rounded). */
  float32(name: string): Float32Array {
    const t = this.info(name);
    const raw = this.bytes.subarray(this.dataStart + t.begin, this.dataStart + t.end);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const n = (t.end - t.begin) / BYTES[t.dtype];
    const out = new Float32Array(n);
    switch (t.dtype) {
      case 'F32':
        for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
        break;
      case 'F16':
        for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
        break;
      case 'BF16':
        for (let i = 0; i < n; i++) out[i] = bf16ToFloat(view.getUint16(i * 2, true));
        break;
      case 'F64':
        for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
        break;
      default:
        throw new SafetensorsError(this.file, `tensor ${name} is ${t.dtype}, not a float`);
    }
    return out;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A tensor as stored: any dtype, its little-endian bytes. */
export interface RawTensorBytes {
  dtype: SafetensorsDtype | string;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * Serialize raw tensors: names sorted, `__metadata__` first when given, the header padded with spaces to
 * 8 bytes as the reference implementation does — the one writer of the project (f32 adapters, merged
 * exports in the source dtype, the tests' local Hub).
 */
export function writeSafetensorsRaw(
  tensors: Map<string, RawTensorBytes> | Record<string, RawTensorBytes>,
  metadata?: Record<string, string>,
): Uint8Array {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const names = [...map.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const n of names) {
    const t = map.get(n)!;
    header[n] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let pos = 8 + head.length;
  for (const n of names) {
    const b = map.get(n)!.bytes;
    out.set(b, pos);
    pos += b.byteLength;
  }
  return out;
}

/** Serialize f32 tensors (names sorted, 8-byte aligned header as the reference implementation pads it). */
export function writeSafetensors(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const raw = new Map<string, RawTensorBytes>();
  for (const [n, { shape, data }] of Object.entries(tensors)) {
    if (shape.reduce((a, b) => a * b, 1) !== data.length)
      throw new Error(`tensor ${n}: shape [${shape}] does not match ${data.length} values`);
    // Little-endian on every platform we run on (WebAssembly/JS engines are LE); copy bytes as-is.
    raw.set(n, { dtype: 'F32', shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  }
  return writeSafetensorsRaw(raw, metadata);
}

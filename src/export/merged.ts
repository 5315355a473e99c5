// Merged exports of an adapter: the decoder weights W' = W + s·B·A (s = α/r; BLoRA: the posterior
// means μ_B, μ_A — what evaluation uses) written into the model's own files, for runtimes that cannot
// load a PEFT adapter.
//   transformers      model.safetensors (every tensor of the source, the adapted ones replaced) in the
//                     SOURCE's dtype (float16 for the prepared Whisper base), + config / tokenizer files
//   transformers.js   the source's ONNX layout, the adapted Linears' initializers replaced in the decoder
//                     ONNX files (f32 graphs get f32 values, f16 graphs f16); the encoder copied unchanged
// The merge is done in float64 (the product summed over k in order, then + W) and rounded ONCE to the
// target dtype: to f32 it is exactly the engine's mergeLora (src/engine/generate.ts), which the engine's
// merged-model transcripts use. A zero B (a LoRA run before its first step) therefore leaves every
// tensor bit-identical to the source.
// Works on in-memory files (Node CLI and the browser's Export view alike).

import type { AdapterExport } from './peft';
import { mergeF64 } from '../engine/merge';
import { SafetensorsFile, writeSafetensorsRaw, type SafetensorsDtype } from '../model/safetensors';
import type { ModelSource } from '../model/source';
import { findFloatInitializers, type OnnxInitializer } from './onnx';

export type ExportFiles = Record<string, Uint8Array>;

/** Files copied beside the weights when the source has them (what from_pretrained / pipelines read). */
export const CONFIG_FILES = [
  'config.json',
  'generation_config.json',
  'preprocessor_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'special_tokens_map.json',
  'normalizer.json',
];

export { mergeF64 } from '../engine/merge';
import { EXPORT_NOTE, exportNote, noteBytes } from './note';
export { EXPORT_NOTE, type ExportNote, parseExportNote } from './note';

/** Round a float64 to the nearest float16 (ties to even), as bits. One rounding: no detour through f32. */
export function f64ToHalfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  const rne = (q: number) => {
    const f = Math.floor(q);
    const d = q - f;
    return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  };
  if (a >= 65520) return sign | 0x7c00; // rounds past the largest half (65504) → ∞
  if (a < 2 ** -14) return sign | rne(a * 2 ** 24); // subnormal (1024 = smallest normal, same bits)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // log2 may round up near powers of two
  if (2 ** (e + 1) <= a) e++;
  let q = rne((a / 2 ** e - 1) * 1024); // exact: scaling by a power of two
  if (q === 1024) {
    q = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | q;
}

/** Round a float64 to the nearest bfloat16 (ties to even), as bits. */
export function f64ToBf16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  // f64 → f32 can double-round; go through the exact f64 value: round to 8 significant bits directly.
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  const rne = (q: number) => {
    const f = Math.floor(q);
    const d = q - f;
    return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  };
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  if (e < -126) return sign | rne(a * 2 ** 133); // subnormal
  let q = rne((a / 2 ** e - 1) * 128);
  if (q === 128) {
    q = 0;
    e++;
  }
  if (e > 127) return sign | 0x7f80;
  return sign | ((e + 127) << 7) | q;
}

const DTYPE_BYTES: Partial<Record<SafetensorsDtype, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** float64 values → little-endian bytes of `dtype`, one rounding each. */
export function encodeFloats(v: Float64Array, dtype: SafetensorsDtype): Uint8Array {
  const n = DTYPE_BYTES[dtype];
  if (!n) throw new Error(`cannot write merged weights as ${dtype}`);
  const out = new Uint8Array(v.length * n);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) {
    if (dtype === 'F32')
      dv.setFloat32(i * 4, v[i], true); // setFloat32 rounds f64 → f32 to nearest even
    else if (dtype === 'F64') dv.setFloat64(i * 8, v[i], true);
    else if (dtype === 'F16') dv.setUint16(i * 2, f64ToHalfBits(v[i]), true);
    else dv.setUint16(i * 2, f64ToBf16Bits(v[i]), true);
  }
  return out;
}

export interface MergedModule {
  name: string;
  nOut: number;
  nIn: number;
  /** the source weight as f32 (f16 / bf16 widened exactly), [out, in] */
  W: Float32Array;
  /** W + s·B·A in float64, [out, in] */
  merged: Float64Array;
}

/** Merge every module of the adapter into the source weights (`base`: the model's model.safetensors). */
export function mergeAdapter(base: SafetensorsFile, adapter: AdapterExport): MergedModule[] {
  const s = adapter.alpha / adapter.r;
  return adapter.modules.map((m) => {
    const key = `${m.name}.weight`;
    if (!base.tensors.has(key)) throw new Error(`${base.file}: no tensor ${key} for the adapted module ${m.name}`);
    const [nOut, nIn] = base.info(key).shape;
    if (nOut !== m.outFeatures || nIn !== m.inFeatures) {
      throw new Error(`${base.file}: ${key} is [${nOut}, ${nIn}], the adapter's ${m.name} is [${m.outFeatures}, ${m.inFeatures}]`);
    }
    const W = base.float32(key);
    return { name: m.name, nOut, nIn, W, merged: mergeF64(W, m.A, m.B, s, nOut, nIn, adapter.r) };
  });
}

function rawTensor(st: SafetensorsFile, name: string): Uint8Array {
  const t = st.info(name);
  const headerLen = Number(new DataView(st.bytes.buffer, st.bytes.byteOffset, 8).getBigUint64(0, true));
  return st.bytes.subarray(8 + headerLen + t.begin, 8 + headerLen + t.end);
}

export interface MergedReport {
  /** per adapted module: where its merged weight went */
  modules: { name: string; dtype: string; targets: string[] }[];
  /** files of the source left out, with the reason */
  skipped: { file: string; reason: string }[];
  notes: string[];
}

async function copyConfigFiles(source: ModelSource, out: ExportFiles): Promise<void> {
  for (const f of CONFIG_FILES) if (await source.has(f)) out[f] = await source.read(f);
  for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json', 'tokenizer.json']) {
    if (!out[f]) throw new Error(`${source.label}: ${f} is missing (a merged export copies it from the model)`);
  }
}

/**
 * The transformers folder: model.safetensors with every tensor of the source (same names, dtypes and
 * shapes), the adapted weights replaced by the merge rounded once to the source tensor's dtype.
 */
export async function exportTransformers(
  source: ModelSource,
  adapter: AdapterExport,
  mergedIn?: MergedModule[],
): Promise<{ files: ExportFiles; report: MergedReport }> {
  if (!(await source.has('model.safetensors')))
    throw new Error(`${source.label}: no model.safetensors (the transformers export rewrites it; the WGSL engine trains from it)`);
  const st = new SafetensorsFile(await source.read('model.safetensors'), `${source.label}/model.safetensors`);
  const merged = mergedIn ?? mergeAdapter(st, adapter);
  const byName = new Map(merged.map((m) => [`${m.name}.weight`, m]));
  const tensors = new Map<string, { dtype: SafetensorsDtype; shape: number[]; bytes: Uint8Array }>();
  const report: MergedReport = { modules: [], skipped: [], notes: [] };
  for (const [name, info] of st.tensors) {
    const m = byName.get(name);
    tensors.set(name, { dtype: info.dtype, shape: info.shape, bytes: m ? encodeFloats(m.merged, info.dtype) : rawTensor(st, name) });
    if (m) report.modules.push({ name: m.name, dtype: info.dtype, targets: [`model.safetensors:${name}`] });
  }
  const files: ExportFiles = {};
  await copyConfigFiles(source, files);
  files['model.safetensors'] = writeSafetensorsRaw(tensors, { ...st.metadata, format: 'pt' });
  files[EXPORT_NOTE] = noteBytes(exportNote(adapter, 'hf'));
  return { files, report };
}

/** Bytes of W in an ONNX initializer's dtype and layout: [out, in] as PyTorch stores it, or transposed (MatMul). */
function weightBytes(values: ArrayLike<number>, nOut: number, nIn: number, dataType: 1 | 10, transposed: boolean): Uint8Array {
  const v = new Float64Array(nOut * nIn);
  if (!transposed) for (let i = 0; i < v.length; i++) v[i] = values[i];
  else for (let o = 0; o < nOut; o++) for (let i = 0; i < nIn; i++) v[i * nOut + o] = values[o * nIn + i];
  return encodeFloats(v, dataType === 1 ? 'F32' : 'F16');
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Replace the adapted Linears' weights inside one ONNX file, in place (same byte length, so the graph is
 * not re-serialised). Initializers are found by their VALUES — the source W in the file's dtype, as
 * [out, in] or transposed [in, out] (torch.onnx turns Linear into MatMul with W^T) — since optimized
 * exports rename them. Returns the module → initializer names, or the modules that were not found.
 */
export function patchOnnxWeights(
  onnx: Uint8Array,
  merged: MergedModule[],
  file: string,
): { bytes: Uint8Array; found: Map<string, string[]>; missing: string[] } {
  const inits = findFloatInitializers(onnx, file);
  const out = onnx.slice();
  const found = new Map<string, string[]>();
  const missing: string[] = [];
  // index the candidates by element count, then compare bytes
  const bySize = new Map<number, OnnxInitializer[]>();
  for (const t of inits) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (!bySize.has(n)) bySize.set(n, []);
    bySize.get(n)!.push(t);
  }
  for (const m of merged) {
    const names: string[] = [];
    const origCache = new Map<string, Uint8Array>();
    const orig = (dt: 1 | 10, tr: boolean) => {
      const k = `${dt}|${tr}`;
      if (!origCache.has(k)) origCache.set(k, weightBytes(m.W, m.nOut, m.nIn, dt, tr));
      return origCache.get(k)!;
    };
    for (const t of bySize.get(m.nOut * m.nIn) ?? []) {
      if (t.dims.length !== 2) continue;
      const have = onnx.subarray(t.offset, t.offset + t.length);
      // a square weight can be stored either way round: try [out, in], then [in, out]
      const layouts = [false, true].filter((tr) =>
        tr ? t.dims[0] === m.nIn && t.dims[1] === m.nOut : t.dims[0] === m.nOut && t.dims[1] === m.nIn,
      );
      const transposed = layouts.find((tr) => equalBytes(have, orig(t.dataType, tr)));
      if (transposed === undefined) continue;
      out.set(weightBytes(m.merged, m.nOut, m.nIn, t.dataType, transposed), t.offset);
      names.push(`${t.name}${transposed ? ' (transposed)' : ''}`);
    }
    if (names.length) found.set(m.name, names);
    else missing.push(m.name);
  }
  return { bytes: out, found, missing };
}

/**
 * The transformers.js folder: the source's files, the decoder ONNX graphs with the merged weights. A
 * decoder variant whose weights cannot be found by value (quantized: int8, q4, …) is left out rather
 * than shipped unmerged; the export fails when no decoder graph could be patched.
 */
export async function exportTransformersJs(
  source: ModelSource,
  adapter: AdapterExport,
  onnxFiles: string[],
  mergedIn?: MergedModule[],
): Promise<{ files: ExportFiles; report: MergedReport }> {
  const files: ExportFiles = {};
  const report: MergedReport = { modules: [], skipped: [], notes: [] };
  await copyConfigFiles(source, files);
  let merged = mergedIn;
  if (!merged) {
    if (!(await source.has('model.safetensors')))
      throw new Error(`${source.label}: no model.safetensors: the merge needs the source weights by name`);
    merged = mergeAdapter(new SafetensorsFile(await source.read('model.safetensors'), `${source.label}/model.safetensors`), adapter);
  }
  const targets = new Map<string, string[]>();
  let patched = 0;
  for (const f of onnxFiles) {
    const bytes = await source.read(f);
    if (!/(^|\/)decoder[^/]*\.onnx$/.test(f)) {
      files[f] = bytes; // the encoder is frozen: copied as is
      continue;
    }
    const r = patchOnnxWeights(bytes, merged, `${source.label}/${f}`);
    if (r.missing.length) {
      report.skipped.push({
        file: f,
        reason: `the weights of ${r.missing.length} adapted module(s) (e.g. ${r.missing[0]}) are not in it as f32/f16 values (quantized?)`,
      });
      continue;
    }
    files[f] = r.bytes;
    patched++;
    for (const [name, inits] of r.found) targets.set(name, [...(targets.get(name) ?? []), ...inits.map((i) => `${f}:${i}`)]);
  }
  if (!patched)
    throw new Error(
      `${source.label}: no decoder ONNX file holds the adapted weights as f32/f16 initializers (${onnxFiles.filter((f) => f.includes('decoder')).join(', ') || 'none found'})`,
    );
  for (const m of merged) report.modules.push({ name: m.name, dtype: 'f32/f16 as the graph', targets: targets.get(m.name) ?? [] });
  // the merged model.safetensors keeps the folder trainable (the engine reads it) and loadable by transformers
  if (await source.has('model.safetensors')) {
    const hf = await exportTransformers(source, adapter, merged);
    files['model.safetensors'] = hf.files['model.safetensors'];
  }
  files[EXPORT_NOTE] = noteBytes(exportNote(adapter, 'transformersjs'));
  return { files, report };
}

/**
 * The ONNX files of the transformers.js layout that a source has, probed by name (a URL / Hub source
 * cannot be listed): the encoder, the merged or split decoder, and their f16 variants.
 */
export async function layoutOnnxFiles(source: ModelSource): Promise<string[]> {
  const names = ['encoder_model', 'decoder_model_merged', 'decoder_model', 'decoder_with_past_model'].flatMap((n) => [
    `onnx/${n}.onnx`,
    `onnx/${n}_fp16.onnx`,
  ]);
  const out: string[] = [];
  for (const n of names) if (await source.has(n)) out.push(n);
  return out;
}

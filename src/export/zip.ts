// A merged export as one .zip download (the Export view): the folder's files under a top folder, weights
// stored (they do not deflate: float noise), JSON / text deflated. fflate builds it in memory — the
// transformers.js folder of Whisper base is ≈ 440 MB, under the 4 GiB a non-zip64 archive allows.
import { zipSync, type Zippable } from 'fflate';
import type { AdapterExport } from './peft';
import type { ModelSource } from '../model/source';
import { exportTransformers, exportTransformersJs, layoutOnnxFiles, type ExportFiles, type MergedReport } from './merged';

const STORED = /\.(onnx|safetensors|bin|onnx_data)$/;

export function zipFolder(files: ExportFiles, top: string): Uint8Array {
  const z: Zippable = {};
  let total = 0;
  for (const [name, data] of Object.entries(files)) {
    z[`${top}/${name}`] = [data, { level: STORED.test(name) ? 0 : 6 }];
    total += data.byteLength;
  }
  if (total >= 2 ** 32 - 2 ** 26)
    throw new Error(`zip of ${top}: ${total} bytes is too large for a zip without zip64; export with the CLI instead`);
  return zipSync(z);
}

/** The merged transformers or transformers.js folder of `source` + `adapter`, zipped. */
export async function mergedZip(
  source: ModelSource,
  adapter: AdapterExport,
  format: 'hf' | 'transformersjs',
  top: string,
): Promise<{ zip: Uint8Array; report: MergedReport; bytes: number }> {
  const r =
    format === 'hf'
      ? await exportTransformers(source, adapter)
      : await exportTransformersJs(source, adapter, await layoutOnnxFiles(source));
  const bytes = Object.values(r.files).reduce((a, f) => a + f.byteLength, 0);
  return { zip: zipFolder(r.files, top), report: r.report, bytes };
}

// A merged export's note (blora-export.json): read by the model worker when a folder is loaded back, so it stays
// free of the merge code.
import type { AdapterExport } from './peft';

/**
 * blora-export.json, beside the model files of a merged export: what the folder is and which model it was
 * merged into, so the studio loading it back (the Model panel) can name its base and Try it can compare the
 * two. transformers, transformers.js and CTranslate2 ignore the file.
 */
export const EXPORT_NOTE = 'blora-export.json';
export interface ExportNote {
  exported_by: 'blora-studio';
  format: 'hf' | 'transformersjs';
  /** the base model's id as the adapter names it (PEFT's base_model_name_or_path), e.g. openai/whisper-base */
  base_model: string;
  method: AdapterExport['method'];
  r: number;
  alpha: number;
  /** adapted Linear modules merged into the decoder */
  modules: number;
  merge: string;
}

export function exportNote(adapter: AdapterExport, format: ExportNote['format']): ExportNote {
  return {
    exported_by: 'blora-studio',
    format,
    base_model: adapter.baseModel,
    method: adapter.method,
    r: adapter.r,
    alpha: adapter.alpha,
    modules: adapter.modules.length,
    merge: `W + (alpha/r)·B·A${adapter.method === 'blora' ? ' (posterior means μ_B·μ_A)' : ''} in float64, rounded once to each weight's dtype`,
  };
}

export const noteBytes = (n: ExportNote) => new TextEncoder().encode(`${JSON.stringify(n, null, 2)}\n`);

/** The note of a model folder, or null when it is not a merged export (a malformed note is an error naming the file). */
export function parseExportNote(bytes: Uint8Array, label: string): ExportNote | null {
  const text = new TextDecoder().decode(bytes);
  // a dev server answers a missing file with its HTML page (SPA fallback): that is no note, not a broken one
  if (!text.trimStart().startsWith('{')) return null;
  let v: Partial<ExportNote>;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${label}/${EXPORT_NOTE}: not JSON (${(e as Error).message})`);
  }
  if (v?.exported_by !== 'blora-studio') return null;
  if (typeof v.base_model !== 'string') throw new Error(`${label}/${EXPORT_NOTE}: base_model is missing`);
  return v as ExportNote;
}

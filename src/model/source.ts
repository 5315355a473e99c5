// Where a model's files come from. One interface for the four ways a user can point the studio at a
// model: the prepared default (served by the dev server), a Hugging Face Hub repo id, a folder dropped
// into the page, or a folder on disk (Node: CLI and tests).
import { hubEndpoint } from './hub';

export type Progress = (loaded: number, total: number | null) => void;

export interface ModelSource {
  /** Human-readable origin, used in every error message. */
  readonly label: string;
  /** Read one file by its path inside the model folder (e.g. "onnx/encoder_model.onnx"). */
  read(path: string, onProgress?: Progress): Promise<Uint8Array>;
  /** Whether a file exists (cheap where possible). */
  has(path: string): Promise<boolean>;
}

/** A model file is missing or unreadable. Names the file, the source, and the cause. */
export class ModelFileError extends Error {
  constructor(
    readonly file: string,
    readonly source: string,
    readonly reason: string,
  ) {
    super(`Model file "${file}" in ${source}: ${reason}`);
    this.name = 'ModelFileError';
  }
}

async function readBody(res: Response, onProgress?: Progress): Promise<Uint8Array> {
  const total = Number(res.headers.get('content-length')) || null;
  if (!res.body || !onProgress) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress(loaded, total);
  }
  const out = new Uint8Array(loaded);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/** Files served over HTTP under a base URL (the prepared default model, or the Hub's resolve URLs). */
export class UrlModelSource implements ModelSource {
  constructor(
    readonly baseUrl: string,
    readonly label = baseUrl,
  ) {}
  private url(path: string) {
    return this.baseUrl.replace(/\/?$/, '/') + path;
  }
  async read(path: string, onProgress?: Progress): Promise<Uint8Array> {
    let res: Response;
    try {
      // One retry: a reused keep-alive connection the server just closed fails with ECONNRESET.
      res = await fetch(this.url(path)).catch(() => fetch(this.url(path)));
    } catch (e) {
      const cause = (e as Error & { cause?: { code?: string; message?: string } }).cause;
      const detail = cause ? `${(e as Error).message}: ${cause.code ?? cause.message ?? cause}` : (e as Error).message;
      throw new ModelFileError(path, this.label, `network error (${detail})`);
    }
    if (!res.ok) throw new ModelFileError(path, this.label, `HTTP ${res.status} ${res.statusText || ''}`.trim());
    return readBody(res, onProgress);
  }
  async has(path: string): Promise<boolean> {
    try {
      const res = await fetch(this.url(path), { method: 'HEAD' });
      return res.ok;
    } catch {
      return false;
    }
  }
}

/**
 * A model on the Hugging Face Hub in the transformers.js ONNX layout, e.g. "onnx-community/whisper-base".
 * `host` defaults to the configured endpoint (src/model/hub.ts: setHubEndpoint / HF_ENDPOINT).
 */
export function hubModelSource(repoId: string, revision = 'main', host = hubEndpoint()): UrlModelSource {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repoId)) {
    throw new ModelFileError('(repo id)', `"${repoId}"`, 'not a Hub repo id of the form "owner/name"');
  }
  return new UrlModelSource(
    `${host.replace(/\/+$/, '')}/${repoId}/resolve/${encodeURIComponent(revision)}`,
    `Hub repo ${repoId}@${revision}`,
  );
}

/**
 * Files dropped into the page (a folder via webkitdirectory or drag-and-drop). Keys are paths relative
 * to the model folder; a common top folder (the dropped folder's own name) is stripped.
 */
export class DroppedFilesSource implements ModelSource {
  private files = new Map<string, Blob>();
  constructor(
    entries: Iterable<[string, Blob]>,
    readonly label = 'the dropped folder',
  ) {
    const list = [...entries];
    const tops = new Set(list.map(([p]) => (p.includes('/') ? p.split('/')[0] : '')));
    const strip = tops.size === 1 && !tops.has('') && !list.some(([p]) => p.split('/')[0] === 'onnx');
    for (const [p, blob] of list) this.files.set(strip ? p.slice(p.indexOf('/') + 1) : p, blob);
  }
  async read(path: string, onProgress?: Progress): Promise<Uint8Array> {
    const blob = this.files.get(path);
    if (!blob) throw new ModelFileError(path, this.label, 'missing from the dropped files');
    const bytes = new Uint8Array(await blob.arrayBuffer());
    onProgress?.(bytes.byteLength, bytes.byteLength);
    return bytes;
  }
  async has(path: string): Promise<boolean> {
    return this.files.has(path);
  }
  /** The file itself, so large ones can be read in slices (src/model/decoder-weights.ts). */
  file(path: string): Blob | undefined {
    return this.files.get(path);
  }
}

/** A folder on disk (Node only: CLI, tests). */
export class FsModelSource implements ModelSource {
  readonly label: string;
  constructor(readonly dir: string) {
    this.label = `folder ${dir}`;
  }
  async read(path: string, onProgress?: Progress): Promise<Uint8Array> {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    try {
      const buf = await readFile(join(this.dir, path));
      onProgress?.(buf.byteLength, buf.byteLength);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ModelFileError(path, this.label, code === 'ENOENT' ? 'file not found' : (e as Error).message);
    }
  }
  async has(path: string): Promise<boolean> {
    const { stat } = await import('node:fs/promises');
    const { join } = await import('node:path');
    return stat(join(this.dir, path)).then(
      (s) => s.isFile(),
      () => false,
    );
  }
}

export async function readJson<T = unknown>(source: ModelSource, path: string): Promise<T> {
  const bytes = await source.read(path);
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (e) {
    throw new ModelFileError(path, source.label, `not valid JSON (${(e as Error).message})`);
  }
}

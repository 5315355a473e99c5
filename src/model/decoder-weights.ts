// The WGSL engine's frozen decoder weights from wherever they are, fetching only what it uses.
//
// Where (first that applies):
//   1. weights the user named: a Hub repo id, a URL or path of model.safetensors / a folder, a dropped file;
//   2. the model folder itself, when it has model.safetensors (or model.safetensors.index.json + shards);
//   3. the weights repo of the model's Hub id (src/model/hub.ts: onnx-community/whisper-small → openai/whisper-small).
// What: over HTTP, per safetensors file, the 8-byte header length (Range bytes=0-7) and the JSON header,
// then ONE Range request per decoder tensor (model.decoder.*; proj_out.weight is tied to embed_tokens
// and never fetched). A sharded checkpoint's index maps names to shards: only the shards holding decoder
// tensors are opened. F32 / F16 / BF16 are accepted (widened to f32 on read; info().dtype keeps the
// source dtype). Every tensor's name and shape is checked against config.json before any tensor byte moves.
// Cache: each tensor is an entry of its own (Node: files under $BLORA_CACHE/hub/<repo>/<rev>/<etag>/…;
// browser: Cache Storage "blora-hub"), so a reload or a cut connection resumes from the tensors already
// done, and a tensor cut mid-body resumes with a Range from the bytes already received.
import { bloraCacheRoot } from '../runtime/cache-dir';
import { checkTensorEntry, halfToFloat, type SafetensorsDtype, type TensorInfo, type TensorSource } from './safetensors';
import { hubEndpoint, hubFileUrl, hubToken, isHubRepoId, parseHubUrl, weightsRepoFor } from './hub';
import { DroppedFilesSource, FsModelSource, ModelFileError, type ModelSource, type Progress, UrlModelSource } from './source';
import type { WhisperConfig } from './whisperModel';

// ---------------------------------------------------------------------------------------------------
// Errors

/** A weights file is missing, refused, cut off or does not fit the model. `file`: URL or path of the file at fault. */
export class DecoderWeightsError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'DecoderWeightsError';
  }
}

/** The Hub (or another server) answered 404 / 401 / 403 for a file. */
export class HubFileError extends DecoderWeightsError {
  constructor(
    readonly url: string,
    readonly status: number,
    readonly repo: string | null,
    readonly path: string,
    message: string,
  ) {
    super(url, message);
    this.name = 'HubFileError';
  }
}

// ---------------------------------------------------------------------------------------------------
// Cache

/** One cached byte range of one version of one file. */
export interface CacheKey {
  /** the file's URL (resolve URL on the Hub) */
  url: string;
  /** "<owner>/<name>/<revision>" on the Hub, else a name derived from the URL */
  scope: string;
  /** the file version: its ETag (the Hub: the LFS sha256), else "size-<bytes>" */
  version: string;
  /** path of the file in the repo */
  file: string;
  /** absolute byte range [begin, end) of the file; null = the whole file */
  range: [number, number] | null;
  /** bytes of the complete entry */
  size: number;
}

/**
 * Byte store for downloads. A complete entry is returned only with the expected size, so a truncated
 * write never passes as data; partial entries hold the first bytes of a cut download for resuming.
 */
export interface ByteCache {
  has(key: CacheKey): Promise<boolean>;
  get(key: CacheKey): Promise<Uint8Array | null>;
  put(key: CacheKey, bytes: Uint8Array): Promise<void>;
  getPartial(key: CacheKey): Promise<Uint8Array | null>;
  putPartial(key: CacheKey, bytes: Uint8Array): Promise<void>;
  deletePartial(key: CacheKey): Promise<void>;
}

const safe = (s: string) => s.replace(/[^\w.@=-]+/g, '_').replace(/^\.+/, '_');

/** Node: files under <root>/<repo>/<rev>/<version>/<file>[.ranges/<begin>-<end>]; root default $BLORA_CACHE/hub. */
export class NodeFsByteCache implements ByteCache {
  readonly root: string;
  constructor(root?: string) {
    this.root = root ?? `${bloraCacheRoot()}/hub`;
  }
  path(key: CacheKey): string {
    const parts = [...key.scope.split('/'), key.version, ...key.file.split('/')].map(safe);
    const base = [this.root, ...parts].join('/');
    return key.range ? `${base}.ranges/${key.range[0]}-${key.range[1]}` : base;
  }
  async has(key: CacheKey): Promise<boolean> {
    const { stat } = await import('node:fs/promises');
    return stat(this.path(key)).then(
      (s) => s.isFile() && s.size === key.size,
      () => false,
    );
  }
  async get(key: CacheKey): Promise<Uint8Array | null> {
    if (!(await this.has(key))) return null;
    const { readFile } = await import('node:fs/promises');
    const b = await readFile(this.path(key));
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  private async write(path: string, bytes: Uint8Array) {
    const { mkdir, writeFile, rename } = await import('node:fs/promises');
    await mkdir(path.slice(0, path.lastIndexOf('/')), { recursive: true });
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, path); // atomic: a concurrent reader sees the old entry or the whole new one
  }
  async put(key: CacheKey, bytes: Uint8Array): Promise<void> {
    await this.write(this.path(key), bytes);
  }
  async getPartial(key: CacheKey): Promise<Uint8Array | null> {
    const { readFile } = await import('node:fs/promises');
    return readFile(`${this.path(key)}.partial`).then(
      (b) => (b.byteLength < key.size ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : null),
      () => null,
    );
  }
  async putPartial(key: CacheKey, bytes: Uint8Array): Promise<void> {
    await this.write(`${this.path(key)}.partial`, bytes);
  }
  async deletePartial(key: CacheKey): Promise<void> {
    const { rm } = await import('node:fs/promises');
    await rm(`${this.path(key)}.partial`, { force: true });
  }
}

/** Browser: Cache Storage, one entry per URL + version + range (Cache keys ignore fragments, so the range goes in the query). */
export class CacheStorageByteCache implements ByteCache {
  constructor(readonly name = 'blora-hub') {}
  private req(key: CacheKey, partial = false): Request {
    const u = new URL(key.url);
    u.searchParams.set('blora-version', key.version);
    u.searchParams.set('blora-range', key.range ? `${key.range[0]}-${key.range[1]}` : 'all');
    if (partial) u.searchParams.set('blora-partial', '1');
    return new Request(u.href);
  }
  private async read(req: Request): Promise<Uint8Array | null> {
    const res = await (await caches.open(this.name)).match(req);
    return res ? new Uint8Array(await res.arrayBuffer()) : null;
  }
  private async write(req: Request, bytes: Uint8Array) {
    await (
      await caches.open(this.name)
    ).put(req, new Response(bytes as BodyInit, { headers: { 'content-length': String(bytes.byteLength) } }));
  }
  async has(key: CacheKey): Promise<boolean> {
    const res = await (await caches.open(this.name)).match(this.req(key));
    return !!res && Number(res.headers.get('content-length')) === key.size;
  }
  async get(key: CacheKey): Promise<Uint8Array | null> {
    const b = await this.read(this.req(key));
    return b && b.byteLength === key.size ? b : null;
  }
  async put(key: CacheKey, bytes: Uint8Array): Promise<void> {
    await this.write(this.req(key), bytes);
  }
  async getPartial(key: CacheKey): Promise<Uint8Array | null> {
    const b = await this.read(this.req(key, true));
    return b && b.byteLength < key.size ? b : null;
  }
  async putPartial(key: CacheKey, bytes: Uint8Array): Promise<void> {
    await this.write(this.req(key, true), bytes);
  }
  async deletePartial(key: CacheKey): Promise<void> {
    await (await caches.open(this.name)).delete(this.req(key, true));
  }
}

/** Cache Storage where it exists (browser, worker), files under $BLORA_CACHE/hub in Node, else none. */
export function defaultByteCache(): ByteCache | null {
  if (typeof caches !== 'undefined') return new CacheStorageByteCache();
  if (typeof process !== 'undefined' && process.versions?.node) return new NodeFsByteCache();
  return null;
}

// ---------------------------------------------------------------------------------------------------
// Files read by byte range

export interface FetchOptions {
  /** Bearer token for gated / private repos (default HF_TOKEN in Node). Sent only with requests to the Hub's own URLs. */
  token?: string | null;
  cache?: ByteCache | null;
  /** attempts after a cut connection or a 5xx, per request / tensor (default 8; each resumes where the last stopped) */
  retries?: number;
  /** first back-off delay, doubled per attempt up to 5 s (default 250 ms) */
  retryDelayMs?: number;
}

interface RangeFile {
  /** URL or path, for errors */
  readonly label: string;
  /** path inside its folder / repo */
  readonly file: string;
  /** size and version, known after open() */
  size: number;
  version: string;
  open(): Promise<void>;
  /**
   * Bytes [begin, end). `onBytes(n, fromCache)` reports progress; `cache`: keep the range as a cache entry
   * (tensors and whole files; not headers, which are the version check).
   */
  read(begin: number, end: number, what: string, onBytes: (n: number, fromCache: boolean) => void, cache: boolean): Promise<Uint8Array>;
  cached(begin: number, end: number): Promise<boolean>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function causeOf(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  return err.cause ? `${err.message}: ${err.cause.code ?? err.cause.message ?? err.cause}` : err.message;
}

/** A file behind a URL (the Hub's resolve URL, or any server that answers Range requests). */
class HttpFile implements RangeFile {
  size = -1;
  version = '';
  /** the URL the Hub redirected to (its CDN): later ranges go there directly, saving a round trip each */
  private direct: string | null = null;
  private readonly hub: ReturnType<typeof parseHubUrl>;
  constructor(
    readonly url: string,
    readonly file: string,
    private opts: FetchOptions,
  ) {
    this.hub = parseHubUrl(url);
  }
  get label() {
    return this.url;
  }
  private where() {
    return this.hub ? `Hub repo ${this.hub.repo}@${this.hub.revision}` : this.url.replace(/\/[^/]*$/, '');
  }
  private key(range: [number, number] | null): CacheKey {
    const scope = this.hub ? `${this.hub.repo}/${this.hub.revision}` : `url/${this.url.replace(/^\w+:\/\//, '').replace(/\/[^/]*$/, '')}`;
    return { url: this.url, scope, version: this.version, file: this.file, range, size: range ? range[1] - range[0] : this.size };
  }

  private statusError(status: number, url: string): HubFileError {
    const repo = this.hub?.repo ?? null;
    const tokenSent = !!this.token();
    const weightsFile = /\.safetensors(\.index\.json)?$/.test(this.file);
    if (status === 404) {
      const todo = weightsFile
        ? 'name the repo that has the weights (CLI --weights owner/name or a path to model.safetensors) or drop its model.safetensors.'
        : 'a Whisper repo in the transformers.js ONNX layout is needed (e.g. onnx-community/whisper-base).';
      return new HubFileError(
        url,
        status,
        repo,
        this.file,
        `file "${this.file}" not found in ${this.where()} (HTTP 404, ${this.url}). Check the repo id and revision; ${todo}`,
      );
    }
    if (status === 401 || status === 403) {
      const page = this.hub ? `${this.hub.endpoint}/${this.hub.repo}` : this.url;
      return new HubFileError(
        url,
        status,
        repo,
        this.file,
        `${this.where()} refused "${this.file}" (HTTP ${status}${tokenSent ? ', the token was not accepted' : ', no token sent'}): the repo is gated or private. ` +
          `Accept its licence at ${page} and use a token with access (CLI: HF_TOKEN=hf_…)${weightsFile ? ', or drop its model.safetensors instead' : ''}.`,
      );
    }
    if (status === 416)
      return new HubFileError(
        url,
        status,
        repo,
        this.file,
        `${this.url}: a byte range past the end of the file (it changed on the server? run again)`,
      );
    return new HubFileError(url, status, repo, this.file, `${this.url}: HTTP ${status}`);
  }
  private token(): string | null {
    return this.opts.token === undefined ? hubToken() : this.opts.token;
  }

  private async request(range: string | null, method = 'GET'): Promise<Response> {
    const headers: Record<string, string> = {};
    if (range) headers.Range = range;
    const direct = this.direct;
    const url = direct ?? this.url;
    // The token goes to the Hub's resolve URL only; fetch drops it on a cross-origin redirect, and the
    // CDN's signed URL needs none.
    const token = this.token();
    if (token && !direct) headers.Authorization = `Bearer ${token}`;
    // cache 'no-store': this module caches what it fetches itself; Chromium's HTTP cache, asked for byte
    // ranges of an entry it holds in part, re-requests ranges it already has (every ~10th tensor fetched twice).
    const res = await fetch(url, { method, headers, redirect: 'follow', cache: 'no-store' });
    if (direct && (res.status === 401 || res.status === 403 || res.status === 404 || res.status === 410)) {
      // a CDN URL expired: back to the resolve URL
      await res.body?.cancel();
      this.direct = null;
      return this.request(range, method);
    }
    if (!direct && res.redirected && res.ok) this.direct = res.url;
    return res;
  }

  private checkVersion(res: Response) {
    const etag = etagOf(res);
    if (etag && this.version && !this.version.startsWith('size-') && etag !== this.version) {
      throw new DecoderWeightsError(
        this.url,
        `${this.url} changed on the server while it was read (ETag ${this.version} → ${etag}); run again`,
      );
    }
  }

  /** Size and version from a HEAD (whole files) — ranged reads learn them from their first response. */
  async open(): Promise<void> {
    if (this.size >= 0) return;
    const res = await this.retrying(`the size of ${this.file}`, () => this.request(null, 'HEAD'));
    if (!res.ok) throw this.statusError(res.status, res.url || this.url);
    const len = Number(res.headers.get('content-length'));
    if (!Number.isFinite(len) || res.headers.get('content-length') === null)
      throw new DecoderWeightsError(this.url, `${this.url}: the server sent no content-length`);
    this.size = len;
    this.version = etagOf(res) ?? `size-${len}`;
  }

  /** A network error or 5xx is retried (bounded) with back-off; HTTP 4xx is final. */
  private async retrying(what: string, f: () => Promise<Response>): Promise<Response> {
    const retries = this.opts.retries ?? 8;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await f();
        if (res.status < 500 || attempt >= retries) return res;
        await res.body?.cancel();
      } catch (e) {
        if (attempt >= retries)
          throw new DecoderWeightsError(this.url, `${this.url}: network error reading ${what} after ${attempt + 1} tries (${causeOf(e)})`);
      }
      await sleep(Math.min(5000, (this.opts.retryDelayMs ?? 250) * 2 ** attempt));
    }
  }

  async cached(begin: number, end: number): Promise<boolean> {
    const c = this.opts.cache;
    return !!c && this.size >= 0 && c.has(this.key(begin === 0 && end === this.size ? null : [begin, end]));
  }

  async read(
    begin: number,
    end: number,
    what: string,
    onBytes: (n: number, fromCache: boolean) => void,
    useCache: boolean,
  ): Promise<Uint8Array> {
    const n = end - begin;
    const cache = useCache && this.size >= 0 ? (this.opts.cache ?? null) : null;
    const key = cache ? this.key(begin === 0 && end === this.size ? null : [begin, end]) : null;
    if (cache && key) {
      const hit = await cache.get(key);
      if (hit) {
        onBytes(n, true);
        return hit;
      }
    }
    const buf = new Uint8Array(n);
    let have = 0;
    if (cache && key) {
      const part = await cache.getPartial(key);
      if (part) {
        buf.set(part);
        have = part.byteLength;
        onBytes(have, true);
      }
    }
    const retries = this.opts.retries ?? 8;
    let failures = 0;
    while (have < n) {
      try {
        have = await this.readInto(buf, begin, have, (k) => {
          have += k; // progress survives a throw below
          onBytes(k, false);
        });
      } catch (e) {
        if (e instanceof HubFileError || (e instanceof DecoderWeightsError && !(e as { retry?: boolean }).retry)) throw e;
        failures++;
        if (cache && key && have > 0) await cache.putPartial(key, buf.subarray(0, have));
        if (failures > retries) {
          throw new DecoderWeightsError(
            this.url,
            `${this.url}: connection lost ${failures} time${failures > 1 ? 's' : ''} reading ${what}; ${have} of ${n} bytes of it received` +
              `${cache ? ' (kept in the cache: run again to resume)' : ''} (${causeOf(e)})`,
          );
        }
        await sleep(Math.min(5000, (this.opts.retryDelayMs ?? 250) * 2 ** Math.max(0, failures - 1)));
      }
    }
    if (cache && key) {
      await cache.put(key, buf);
      await cache.deletePartial(key);
    }
    return buf;
  }

  /** One request for buf[have..] = file[begin + have, begin + buf.length); returns the new `have`. */
  private async readInto(buf: Uint8Array, begin: number, have: number, got: (k: number) => void): Promise<number> {
    const from = begin + have;
    const to = begin + buf.byteLength; // exclusive
    const res = await this.request(`bytes=${from}-${to - 1}`);
    if (res.status >= 500) {
      await res.body?.cancel();
      throw Object.assign(new Error(`HTTP ${res.status}`), { retry: true });
    }
    if (res.status !== 206 && res.status !== 200) {
      await res.body?.cancel();
      throw this.statusError(res.status, res.url || this.url);
    }
    this.checkVersion(res);
    let skip = 0;
    if (res.status === 206) {
      const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!cr || Number(cr[1]) !== from) {
        await res.body?.cancel();
        throw new DecoderWeightsError(
          this.url,
          `${this.url}: asked for bytes ${from}-${to - 1}, the server sent "${res.headers.get('content-range')}"`,
        );
      }
      if (this.size < 0 && cr[3] !== '*') this.size = Number(cr[3]);
    } else {
      // The server ignored Range: skip to the bytes we need (and learn the size).
      skip = from;
      if (this.size < 0) this.size = Number(res.headers.get('content-length')) || -1;
    }
    if (!this.version) this.version = etagOf(res) ?? `size-${this.size}`;
    if (!res.body) throw new DecoderWeightsError(this.url, `${this.url}: empty response body`);
    const reader = res.body.getReader();
    let pos = have;
    try {
      while (pos < buf.byteLength) {
        const { done, value } = await reader.read();
        if (done) break;
        let chunk = value;
        if (skip > 0) {
          const s = Math.min(skip, chunk.byteLength);
          skip -= s;
          chunk = chunk.subarray(s);
        }
        const take = Math.min(chunk.byteLength, buf.byteLength - pos);
        buf.set(chunk.subarray(0, take), pos);
        pos += take;
        got(take);
      }
    } finally {
      if (pos >= buf.byteLength) await reader.cancel().catch(() => {});
    }
    if (pos < buf.byteLength)
      throw Object.assign(new Error(`the body ended after ${pos - have} of ${buf.byteLength - have} bytes`), { retry: true });
    return pos;
  }
}

function etagOf(res: Response): string | null {
  const e = res.headers.get('x-linked-etag') ?? res.headers.get('etag');
  return e ? e.replace(/^W\//, '').replace(/^"|"$/g, '') : null;
}

/** A Blob (a dropped file) or bytes in memory: slices, no cache needed. */
class BlobFile implements RangeFile {
  size: number;
  version = 'local';
  constructor(
    private blob: Blob | Uint8Array,
    readonly file: string,
    readonly label: string,
  ) {
    this.size = blob instanceof Uint8Array ? blob.byteLength : blob.size;
  }
  async open() {}
  async cached() {
    return true; // local: nothing to download
  }
  async read(begin: number, end: number, _what: string, onBytes: (n: number, fromCache: boolean) => void): Promise<Uint8Array> {
    if (end > this.size)
      throw new DecoderWeightsError(this.label, `${this.label}: bytes ${begin}-${end} are past its end (${this.size} bytes)`);
    const b =
      this.blob instanceof Uint8Array ? this.blob.subarray(begin, end) : new Uint8Array(await this.blob.slice(begin, end).arrayBuffer());
    onBytes(end - begin, true);
    return b;
  }
}

/** A file on disk (Node). */
class FsFile implements RangeFile {
  size = -1;
  version = 'local';
  constructor(
    readonly path: string,
    readonly file: string,
  ) {}
  get label() {
    return this.path;
  }
  async open() {
    if (this.size >= 0) return;
    const { stat } = await import('node:fs/promises');
    this.size = await stat(this.path).then(
      (s) => s.size,
      () => {
        throw new DecoderWeightsError(this.path, `${this.path}: file not found`);
      },
    );
  }
  async cached() {
    return true;
  }
  async read(begin: number, end: number, _what: string, onBytes: (n: number, fromCache: boolean) => void): Promise<Uint8Array> {
    await this.open();
    if (end > this.size)
      throw new DecoderWeightsError(this.path, `${this.path}: bytes ${begin}-${end} are past its end (${this.size} bytes)`);
    const { open } = await import('node:fs/promises');
    const fh = await open(this.path, 'r');
    try {
      const buf = new Uint8Array(end - begin);
      for (let off = 0; off < buf.byteLength;) {
        const { bytesRead } = await fh.read(buf, off, buf.byteLength - off, begin + off);
        if (!bytesRead) throw new DecoderWeightsError(this.path, `${this.path}: ended at byte ${begin + off}`);
        off += bytesRead;
      }
      onBytes(buf.byteLength, true);
      return buf;
    } finally {
      await fh.close();
    }
  }
}

/** A folder of files readable by range: the model folder or a weights repo. */
interface Folder {
  /** "Hub repo openai/whisper-base@main", a URL or a path: where the weights come from, for the UI and errors */
  readonly label: string;
  file(path: string): RangeFile | null;
  /** whether the file exists; null = unknown without a request (the first read will tell) */
  has(path: string): Promise<boolean | null>;
}

function httpFolder(baseUrl: string, opts: FetchOptions, label?: string): Folder {
  const base = baseUrl.replace(/\/+$/, '');
  const hub = parseHubUrl(base);
  return {
    label: label ?? (hub ? `Hub repo ${hub.repo}@${hub.revision}` : base),
    file: (p) => new HttpFile(`${base}/${p.split('/').map(encodeURIComponent).join('/')}`, p, opts),
    has: async () => null,
  };
}

function blobFolder(files: Map<string, Blob | Uint8Array>, label: string): Folder {
  return {
    label,
    file: (p) => {
      const b = files.get(p);
      return b ? new BlobFile(b, p, label.endsWith(p) ? label : `${label}: ${p}`) : null;
    },
    has: async (p) => files.has(p),
  };
}

function fsFolder(dir: string): Folder {
  const join = (p: string) => `${dir.replace(/\/+$/, '')}/${p}`;
  return {
    label: `folder ${dir}`,
    file: (p) => new FsFile(join(p), p),
    has: async (p) => {
      const { stat } = await import('node:fs/promises');
      return stat(join(p)).then(
        (s) => s.isFile(),
        () => false,
      );
    },
  };
}

/** A ModelSource of another kind: whole-file reads (no ranges), kept so any source works. */
function sourceFolder(source: ModelSource): Folder {
  const cache = new Map<string, Promise<Uint8Array>>();
  return {
    label: source.label,
    file: (p) => {
      const f: RangeFile = {
        label: `${source.label}: ${p}`,
        file: p,
        size: -1,
        version: 'local',
        async open() {
          if (!cache.has(p)) cache.set(p, source.read(p));
          f.size = (await cache.get(p)!).byteLength;
        },
        async cached() {
          return true;
        },
        async read(begin, end, _what, onBytes) {
          await f.open();
          onBytes(end - begin, true);
          return (await cache.get(p)!).subarray(begin, end);
        },
      };
      return f;
    },
    has: (p) => source.has(p),
  };
}

// ---------------------------------------------------------------------------------------------------
// What the decoder needs, checked against config.json

const DTYPE_BYTES: Partial<Record<SafetensorsDtype, number>> = { F32: 4, F16: 2, BF16: 2 };
const P = 'model.decoder.';

export interface NeededTensor {
  name: string;
  shape: number[];
  /** present only when the file has it (k_proj has no bias in Whisper; CTranslate2 conversions may carry a zero one) */
  optional?: boolean;
}

/** The tensors src/engine/weights.ts uploads, with the shapes config.json implies. */
export function neededDecoderTensors(
  config: Pick<WhisperConfig, 'd_model' | 'decoder_layers' | 'decoder_ffn_dim' | 'vocab_size' | 'max_target_positions'>,
): NeededTensor[] {
  const { d_model: C, decoder_layers: L, decoder_ffn_dim: F, vocab_size: V, max_target_positions: NP } = config;
  const out: NeededTensor[] = [
    { name: `${P}embed_tokens.weight`, shape: [V, C] },
    { name: `${P}embed_positions.weight`, shape: [NP, C] },
  ];
  const ln = (n: string) => out.push({ name: `${n}.weight`, shape: [C] }, { name: `${n}.bias`, shape: [C] });
  const lin = (n: string, o: number, i: number, bias: boolean | 'optional' = true) => {
    out.push({ name: `${n}.weight`, shape: [o, i] });
    if (bias) out.push({ name: `${n}.bias`, shape: [o], optional: bias === 'optional' });
  };
  for (let l = 0; l < L; l++) {
    const p = `${P}layers.${l}`;
    for (const a of ['self_attn', 'encoder_attn']) {
      ln(`${p}.${a}_layer_norm`);
      lin(`${p}.${a}.q_proj`, C, C);
      lin(`${p}.${a}.k_proj`, C, C, 'optional');
      lin(`${p}.${a}.v_proj`, C, C);
      lin(`${p}.${a}.out_proj`, C, C);
    }
    ln(`${p}.final_layer_norm`);
    lin(`${p}.fc1`, F, C);
    lin(`${p}.fc2`, C, F);
  }
  ln(`${P}layer_norm`);
  return out;
}

interface Header {
  file: RangeFile;
  headerBytes: number;
  /** offsets absolute in the file */
  tensors: Map<string, { dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }>;
}

async function readHeader(f: RangeFile): Promise<Header> {
  // HTTP files learn size and version from the first range response, saving a HEAD
  if (!(f instanceof HttpFile)) await f.open();
  const lenBytes = await f.read(0, 8, 'the header length', () => {}, false);
  const len = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
  if (len <= 1 || len > 100 * 2 ** 20 || (f.size >= 0 && 8 + len > f.size)) {
    throw new DecoderWeightsError(
      f.label,
      `${f.label}: not a safetensors file (header length ${len}${f.size >= 0 ? ` in a ${f.size}-byte file` : ''})`,
    );
  }
  const json = await f.read(8, 8 + len, 'the header', () => {}, false);
  let h: Record<string, { dtype: SafetensorsDtype; shape: number[]; data_offsets: [number, number] }>;
  try {
    h = JSON.parse(new TextDecoder().decode(json));
  } catch (e) {
    throw new DecoderWeightsError(f.label, `${f.label}: the safetensors header is not JSON (${(e as Error).message})`);
  }
  if (h === null || typeof h !== 'object' || Array.isArray(h))
    throw new DecoderWeightsError(f.label, `${f.label}: the safetensors header is not a JSON object`);
  const tensors: Header['tensors'] = new Map();
  for (const [name, t] of Object.entries(h)) {
    if (name === '__metadata__') continue;
    // Each entry validated (dtype, shape, offsets vs shape × dtype and the file size): a corrupt one names the tensor.
    let c;
    try {
      c = checkTensorEntry(f.label, name, t, f.size >= 0 ? f.size - 8 - len : undefined);
    } catch (e) {
      throw new DecoderWeightsError(f.label, (e as Error).message);
    }
    tensors.set(name, { dtype: c.dtype, shape: c.shape, begin: 8 + len + c.begin, end: 8 + len + c.end });
  }
  return { file: f, headerBytes: 8 + len, tensors };
}

interface Planned {
  name: string;
  header: Header;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';

/** Headers of the checkpoint in `folder` (single file or shards), and each needed tensor's place. */
async function plan(folder: Folder, config: WhisperConfig): Promise<{ headers: Header[]; tensors: Planned[]; from: string }> {
  const single = folder.file(SINGLE);
  let headers: Header[];
  let where: (name: string) => Header | null;
  let indexLabel = '';
  const hasSingle = await folder.has(SINGLE);
  let h1: Header | null = null;
  if (hasSingle !== false && single) {
    try {
      h1 = await readHeader(single);
    } catch (e) {
      // no model.safetensors: a sharded checkpoint has an index instead
      if (!(e instanceof HubFileError && e.status === 404)) throw e;
    }
  }
  if (h1) {
    headers = [h1];
    where = (n) => (h1!.tensors.has(n) ? h1 : null);
  } else {
    const idx = folder.file(INDEX);
    if (!idx || (await folder.has(INDEX)) === false) {
      throw new DecoderWeightsError(
        folder.label,
        `${folder.label} has neither ${SINGLE} nor ${INDEX}: no decoder weights there. Name the repo or file that has them (CLI --weights) or drop model.safetensors.`,
      );
    }
    indexLabel = idx.label;
    let bytes: Uint8Array;
    try {
      await idx.open();
      bytes = await idx.read(0, idx.size, INDEX, () => {}, false);
    } catch (e) {
      if (e instanceof HubFileError && e.status === 404) {
        throw new HubFileError(
          e.url,
          404,
          e.repo,
          SINGLE,
          `file "${SINGLE}" not found in ${folder.label} (nor ${INDEX} for a sharded checkpoint). Check the repo id and revision; name the repo that has the weights (CLI --weights owner/name or a path to model.safetensors) or drop its model.safetensors.`,
        );
      }
      throw e;
    }
    let weightMap: Record<string, string>;
    try {
      weightMap = JSON.parse(new TextDecoder().decode(bytes)).weight_map;
      if (!weightMap || typeof weightMap !== 'object') throw new Error('no "weight_map"');
    } catch (e) {
      throw new DecoderWeightsError(idx.label, `${idx.label}: not a safetensors index (${(e as Error).message})`);
    }
    const need = neededDecoderTensors(config);
    const shards = [...new Set(need.map((t) => weightMap[t.name]).filter(Boolean))];
    for (const t of need)
      if (!t.optional && !weightMap[t.name])
        throw new DecoderWeightsError(idx.label, `${idx.label}: tensor ${t.name} is in no shard (weight_map has no entry for it)`);
    headers = [];
    for (const s of shards) {
      if (s.includes('..') || s.startsWith('/'))
        throw new DecoderWeightsError(idx.label, `${idx.label}: shard name "${s}" leaves the folder`);
      headers.push(await readHeader(folder.file(s)!));
    }
    where = (n) => headers.find((h) => h.file.file === weightMap[n]) ?? null;
  }

  // Validate every needed tensor before any tensor byte moves.
  const cfgText = `config.json (d_model ${config.d_model}, decoder_layers ${config.decoder_layers}, decoder_ffn_dim ${config.decoder_ffn_dim}, vocab_size ${config.vocab_size}, max_target_positions ${config.max_target_positions})`;
  const tensors: Planned[] = [];
  for (const t of neededDecoderTensors(config)) {
    const h = where(t.name);
    const info = h?.tensors.get(t.name);
    if (!h || !info) {
      if (t.optional) continue;
      const file = h?.file.label ?? headers[0]?.file.label ?? indexLabel;
      throw new DecoderWeightsError(
        file,
        `${file}: no tensor ${t.name}, which the decoder needs by ${cfgText} — a checkpoint of another model?`,
      );
    }
    if (info.shape.length !== t.shape.length || info.shape.some((s, i) => s !== t.shape[i])) {
      throw new DecoderWeightsError(
        h.file.label,
        `${h.file.label}: tensor ${t.name} is [${info.shape}] but ${cfgText} needs [${t.shape}] — these weights belong to another model`,
      );
    }
    if (!DTYPE_BYTES[info.dtype])
      throw new DecoderWeightsError(h.file.label, `${h.file.label}: tensor ${t.name} is ${info.dtype}; the engine reads F32, F16 or BF16`);
    if (info.end - info.begin !== t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[info.dtype]!) {
      throw new DecoderWeightsError(
        h.file.label,
        `${h.file.label}: tensor ${t.name} ${info.dtype}[${info.shape}] has inconsistent offsets`,
      );
    }
    tensors.push({ name: t.name, header: h, ...info });
  }
  // More layers in the file than config.json says: the weights are of another model.
  const extra = `${P}layers.${config.decoder_layers}.fc1.weight`;
  for (const h of headers) {
    if (h.tensors.has(extra))
      throw new DecoderWeightsError(
        h.file.label,
        `${h.file.label}: has tensor ${extra}, but ${cfgText} has ${config.decoder_layers} decoder layers — these weights belong to another model`,
      );
  }
  return { headers, tensors, from: folder.label };
}

// ---------------------------------------------------------------------------------------------------
// The public API

/** A weights location named by the user or the UI. */
export type WeightsSource =
  | { kind: 'hub'; repo: string; revision?: string; endpoint?: string }
  /** a folder over HTTP (base URL), or a model.safetensors / index file by URL */
  | { kind: 'url'; url: string; label?: string }
  /** a dropped model.safetensors (or shards with their index: name → file) */
  | { kind: 'blob'; data: Blob | Uint8Array; name?: string }
  | { kind: 'files'; files: Map<string, Blob | Uint8Array>; label?: string }
  /** Node: a model.safetensors on disk or a folder with it */
  | { kind: 'path'; path: string }
  | { kind: 'model'; source: ModelSource };

export interface DecoderWeightsRequest extends FetchOptions {
  /** config.json of the model being trained: the tensors must fit it */
  config: WhisperConfig;
  /** the model folder, checked first for model.safetensors (or its sharded index) */
  model?: ModelSource | null;
  /** the model's Hub id, for the weights-repo table (e.g. onnx-community/whisper-small) */
  modelId?: string | null;
  /** weights named by the user: a Hub repo id, an http(s) URL, a path (Node), bytes / Blob, or a WeightsSource */
  weights?: string | Blob | Uint8Array | WeightsSource | null;
  /** revision of a weights repo found by id (default main) */
  revision?: string;
  /** the Hub endpoint (default hubEndpoint()) */
  endpoint?: string;
  onProgress?: (p: DecoderFetchProgress) => void;
}

export interface DecoderFetchProgress {
  /** tensor bytes done (cached ones included) and in all */
  loaded: number;
  total: number;
  /** network bytes per second so far; 0 before the first byte */
  rate: number;
  /** seconds to go at that rate; null while unknown */
  etaS: number | null;
  /** URL / path of the file being read, and the tensor (null: done) */
  file: string;
  tensor: string | null;
}

export interface DecoderFetchPlan {
  /** where the weights come from, e.g. "Hub repo openai/whisper-small@main" */
  from: string;
  files: { file: string; headerBytes: number; tensorBytes: number; cachedBytes: number; tensors: number }[];
  /** tensor bytes in the source dtype */
  tensorBytes: number;
  /** of which already cached (or local) */
  cachedBytes: number;
  /** bytes of the headers read for this plan */
  headerBytes: number;
  /** what a load will download: tensorBytes − cachedBytes (+ the headers again, a few KB) */
  fetchBytes: number;
  /** dtypes found, e.g. ["F16"] */
  dtypes: SafetensorsDtype[];
}

/** Tensor info with the file it came from. */
export interface LoadedTensorInfo extends TensorInfo {
  file: string;
}

/** The decoder tensors, usable by uploadDecoderWeights (TensorSource). */
export class DecoderTensors implements TensorSource {
  readonly tensors = new Map<string, LoadedTensorInfo>();
  private raw = new Map<string, Uint8Array>();
  constructor(
    readonly from: string,
    readonly bytesFetched: number,
    readonly bytesCached: number,
  ) {}
  /** @internal */
  add(name: string, info: LoadedTensorInfo, bytes: Uint8Array) {
    this.tensors.set(name, info);
    this.raw.set(name, bytes);
  }
  info(name: string): LoadedTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new DecoderWeightsError(this.from, `${this.from}: no tensor named ${name} among the decoder tensors`);
    return t;
  }
  /** the tensor's bytes as stored (source dtype) */
  bytes(name: string): Uint8Array {
    this.info(name);
    return this.raw.get(name)!;
  }
  get dtypes(): SafetensorsDtype[] {
    return [...new Set([...this.tensors.values()].map((t) => t.dtype))];
  }
  float32(name: string): Float32Array {
    const t = this.info(name);
    return widen(this.raw.get(name)!, t.dtype);
  }
}

let F16_TABLE: Float32Array | null = null;

/** f32 values of F32 / F16 / BF16 little-endian bytes (F16 and BF16 exactly). */
export function widen(raw: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(raw.byteLength / 4);
      new Uint8Array(out.buffer).set(raw); // little-endian platforms only, as writeSafetensors
      return out;
    }
    case 'F16': {
      if (!F16_TABLE) {
        F16_TABLE = new Float32Array(65536);
        for (let h = 0; h < 65536; h++) F16_TABLE[h] = halfToFloat(h);
      }
      const tab = F16_TABLE;
      const n = raw.byteLength / 2;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = tab[raw[2 * i] | (raw[2 * i + 1] << 8)];
      return out;
    }
    case 'BF16': {
      const n = raw.byteLength / 2;
      const out = new Float32Array(n);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = (raw[2 * i] | (raw[2 * i + 1] << 8)) << 16;
      // = bf16ToFloat (src/model/safetensors.ts), in bulk
      return out;
    }
    default:
      throw new Error(`cannot widen ${dtype} to f32`);
  }
}

const isBlob = (x: unknown): x is Blob => typeof Blob !== 'undefined' && x instanceof Blob;

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';
}

/** Where the weights come from, by the rules at the top of this file. */
async function resolveFolder(req: DecoderWeightsRequest): Promise<Folder> {
  const opts: FetchOptions = {
    token: req.token,
    cache: req.cache === undefined ? defaultByteCache() : req.cache,
    retries: req.retries,
    retryDelayMs: req.retryDelayMs,
  };
  const endpoint = req.endpoint ?? hubEndpoint();
  const hub = (repo: string, revision = req.revision ?? 'main', ep = endpoint) =>
    httpFolder(hubFileUrl(repo, '', revision, ep).replace(/\/$/, ''), opts);
  const w = req.weights;
  if (w) {
    if (w instanceof Uint8Array || isBlob(w)) {
      const name = typeof File !== 'undefined' && w instanceof File ? w.name : SINGLE;
      return blobFolder(new Map([[SINGLE, w]]), `the dropped ${name}`);
    }
    if (typeof w === 'string') {
      if (/^https?:\/\//.test(w)) return urlFolder(w, opts);
      if (isNode()) {
        const { stat } = await import('node:fs/promises');
        const s = await stat(w).catch(() => null);
        if (s?.isDirectory()) return fsFolder(w);
        if (s?.isFile()) return singleFileFolder(new FsFile(w, SINGLE), `file ${w}`);
      }
      if (isHubRepoId(w)) return hub(w);
      throw new DecoderWeightsError(
        w,
        `weights "${w}": not a Hub repo id (owner/name), a URL${isNode() ? ', nor an existing file or folder' : ''}`,
      );
    }
    switch (w.kind) {
      case 'hub':
        return hub(w.repo, w.revision ?? 'main', w.endpoint ?? endpoint);
      case 'url':
        return urlFolder(w.url, opts, w.label);
      case 'blob':
        return blobFolder(new Map([[SINGLE, w.data]]), `the dropped ${w.name ?? SINGLE}`);
      case 'files':
        return blobFolder(w.files, w.label ?? 'the dropped files');
      case 'path':
        return resolveFolder({ ...req, weights: w.path });
      case 'model':
        return modelFolder(w.source, opts);
    }
  }
  if (req.model) {
    const hasSingle = await req.model.has(SINGLE);
    if (hasSingle || (await req.model.has(INDEX))) return modelFolder(req.model, opts);
  }
  const id = req.modelId ?? (req.model instanceof UrlModelSource ? parseHubUrl(req.model.baseUrl)?.repo : null) ?? null;
  const repo = id ? weightsRepoFor(id) : null;
  if (repo) return hub(repo);
  const what = req.model?.label ?? id ?? 'this model';
  throw new DecoderWeightsError(
    what,
    `${what} has no model.safetensors (the WGSL engine trains from the decoder tensors in it)` +
      `${id ? `, and ${id} is not in the table of weights repos (src/model/hub.ts WHISPER_MODELS)` : ''}. ` +
      `Name the repo with the PyTorch weights (CLI --weights openai/whisper-small, or a path to model.safetensors) or drop its model.safetensors.`,
  );
}

function singleFileFolder(f: RangeFile, label: string): Folder {
  return { label, file: (p) => (p === SINGLE ? f : null), has: async (p) => p === SINGLE };
}

function urlFolder(url: string, opts: FetchOptions, label?: string): Folder {
  if (/\.safetensors$/.test(url.split('?')[0])) {
    const hub = parseHubUrl(url);
    return singleFileFolder(new HttpFile(url, hub?.path || SINGLE, opts), label ?? (hub ? `Hub repo ${hub.repo}@${hub.revision}` : url));
  }
  if (/\.index\.json$/.test(url.split('?')[0])) return httpFolder(url.replace(/\/[^/]*$/, ''), opts, label);
  return httpFolder(url, opts, label);
}

function modelFolder(source: ModelSource, opts: FetchOptions): Folder {
  if (source instanceof CachedHubSource)
    return httpFolder(source.baseUrl, { ...opts, cache: opts.cache ?? source.opts.cache }, source.label);
  if (source instanceof UrlModelSource) {
    // The dev server's own model (not a Hub URL) is local: no point in a second copy in the cache.
    const local = !parseHubUrl(source.baseUrl);
    return httpFolder(source.baseUrl, local ? { ...opts, cache: null } : opts, source.label);
  }
  if (source instanceof FsModelSource) return fsFolder(source.dir);
  if (source instanceof DroppedFilesSource) {
    return {
      label: source.label,
      file: (p) => {
        const b = source.file(p);
        return b ? new BlobFile(b, p, `${source.label}: ${p}`) : null;
      },
      has: async (p) => !!source.file(p),
    };
  }
  return sourceFolder(source);
}

/**
 * Read only the headers and say what a load would download: the model picker's "download size".
 * Validates names and shapes against config.json, so a mismatch shows before any download.
 */
export async function planDecoderFetch(req: DecoderWeightsRequest): Promise<DecoderFetchPlan> {
  const folder = await resolveFolder(req);
  const p = await plan(folder, req.config);
  const files = p.headers.map((h) => ({ file: h.file.label, headerBytes: h.headerBytes, tensorBytes: 0, cachedBytes: 0, tensors: 0 }));
  for (const t of p.tensors) {
    const f = files[p.headers.indexOf(t.header)];
    f.tensorBytes += t.end - t.begin;
    f.tensors++;
    if (await t.header.file.cached(t.begin, t.end)) f.cachedBytes += t.end - t.begin;
  }
  const sum = (k: 'tensorBytes' | 'cachedBytes' | 'headerBytes') => files.reduce((s, f) => s + f[k], 0);
  return {
    from: p.from,
    files,
    tensorBytes: sum('tensorBytes'),
    cachedBytes: sum('cachedBytes'),
    headerBytes: sum('headerBytes'),
    fetchBytes: sum('tensorBytes') - sum('cachedBytes'),
    dtypes: [...new Set(p.tensors.map((t) => t.dtype))],
  };
}

/** Tensors fetched at once: enough to hide the per-request latency, few enough to be polite to the CDN. */
const PARALLEL = 4;

/** Fetch the decoder tensors (only those), validated against config.json, through the cache. */
export async function loadDecoderWeights(req: DecoderWeightsRequest): Promise<DecoderTensors> {
  const folder = await resolveFolder(req);
  const p = await plan(folder, req.config);
  const total = p.tensors.reduce((s, t) => s + t.end - t.begin, 0);
  let loaded = 0;
  let net = 0;
  let cached = 0;
  const t0 = Date.now();
  let lastReport = 0;
  const report = (file: string, tensor: string | null, force = false) => {
    const now = Date.now();
    if (!req.onProgress || (!force && now - lastReport < 100)) return;
    lastReport = now;
    const rate = net > 0 ? net / Math.max(0.001, (now - t0) / 1000) : 0;
    req.onProgress({ loaded, total, rate, etaS: loaded >= total ? 0 : rate > 0 ? (total - loaded) / rate : null, file, tensor });
  };
  const slots: (Uint8Array | null)[] = p.tensors.map(() => null);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < p.tensors.length && !failed) {
      const i = next++;
      const t = p.tensors[i];
      const f = t.header.file;
      slots[i] = await f.read(
        t.begin,
        t.end,
        `tensor ${t.name}`,
        (n, fromCache) => {
          loaded += n;
          if (fromCache) cached += n;
          else net += n;
          report(f.label, t.name);
        },
        true,
      );
      report(f.label, t.name, true);
    }
  };
  // On an error the other workers finish their tensor (it lands in the cache) and take no new one.
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(PARALLEL, p.tensors.length) }, () =>
      worker().catch((e) => {
        failed = true;
        throw e;
      }),
    ),
  );
  const err = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (err) throw err.reason;
  const out = new DecoderTensors(p.from, net, cached);
  p.tensors.forEach((t, i) => {
    const dataStart = t.header.headerBytes;
    out.add(
      t.name,
      { dtype: t.dtype, shape: t.shape, begin: t.begin - dataStart, end: t.end - dataStart, file: t.header.file.label },
      slots[i]!,
    );
  });
  report(p.headers.at(-1)?.file.label ?? p.from, null, true);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Whole files of a Hub repo through the same cache (the CLI's ONNX encoder, config files)

export interface CachedHubSourceOptions extends FetchOptions {
  revision?: string;
  endpoint?: string;
}

/**
 * A Hub repo as a ModelSource whose files are downloaded whole into the cache (Node: $BLORA_CACHE/hub/…),
 * resumed with Range after a cut, and read from the cache next time (after a HEAD checks the version).
 */
export class CachedHubSource implements ModelSource {
  readonly label: string;
  private files = new Map<string, HttpFile>();
  readonly opts: FetchOptions;
  constructor(
    readonly repo: string,
    private o: CachedHubSourceOptions = {},
  ) {
    if (!isHubRepoId(repo)) throw new ModelFileError('(repo id)', `"${repo}"`, 'not a Hub repo id of the form "owner/name"');
    this.label = `Hub repo ${repo}@${o.revision ?? 'main'}`;
    this.opts = { ...o, cache: o.cache === undefined ? defaultByteCache() : o.cache };
  }
  /** the resolve URL base, e.g. for loadDecoderWeights' model folder */
  get baseUrl(): string {
    return hubFileUrl(this.repo, '', this.o.revision ?? 'main', this.o.endpoint ?? hubEndpoint()).replace(/\/$/, '');
  }
  private file(path: string): HttpFile {
    let f = this.files.get(path);
    if (!f)
      this.files.set(
        path,
        (f = new HttpFile(hubFileUrl(this.repo, path, this.o.revision ?? 'main', this.o.endpoint ?? hubEndpoint()), path, this.opts)),
      );
    return f;
  }
  async read(path: string, onProgress?: Progress): Promise<Uint8Array> {
    const f = this.file(path);
    // errors (HubFileError / DecoderWeightsError) name the file, the repo and the fix
    await f.open();
    let done = 0;
    return f.read(0, f.size, path, (n) => onProgress?.((done += n), f.size), true);
  }
  async has(path: string): Promise<boolean> {
    try {
      await this.file(path).open();
      return true;
    } catch (e) {
      if (e instanceof HubFileError && e.status === 404) return false;
      throw e; // gated / network: say so, rather than "file not found"
    }
  }
  /** Whether a file is complete in the cache (after has()/read() learned its version). */
  async isCached(path: string): Promise<boolean> {
    const f = this.file(path);
    await f.open();
    return f.cached(0, f.size);
  }
  /** Bytes of a file (HEAD). */
  async size(path: string): Promise<number> {
    const f = this.file(path);
    await f.open();
    return f.size;
  }
}

export { mib as formatMiB };

// A Hugging Face Hub on this machine, for the tests (and by hand: `node --import tsx
// test/support/local-hub.ts --port 8080`, then HF_ENDPOINT=<printed URL>). It answers what the studio
// uses of the Hub, the way the Hub does:
//   GET/HEAD /<owner>/<name>/resolve/<rev>/<path>   files of a repo (rev "main")
//   *.safetensors, *.onnx                           302 to /cdn/<sha>/<name> (the Hub's LFS → CDN redirect)
//   Range: bytes=a-b | a- | -n                       206 + content-range; 416 past the end
//   HEAD                                            content-length, etag, accept-ranges
//   missing repo / file / revision                  404 with x-error-code RepoNotFound / EntryNotFound / RevisionNotFound
//   gated repo                                      401 without a token, 403 with a wrong one (x-error-code GatedRepo)
//   OPTIONS, CORS headers                           as the Hub: a page of another origin may fetch with Range
// It logs every request and the body bytes it sent (per repo file, after the redirect), and can cut the
// connection after N body bytes of the next response for a file (socket.destroy(), as a dropped network).
//
// Repos of the prepared Whisper base (requireModel()):
//   onnx-community/whisper-base   everything but model.safetensors (ONNX-only, as onnx-community repos)
//   openai/whisper-base           config.json + model.safetensors (the weights repo)
//   test/whisper-base-sharded     config.json + model.safetensors.index.json + 2 shards (option `sharded`)
//   test/gated-whisper            the weights repo behind a licence gate (token GATED_TOKEN passes)
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { requireModel } from './env';
import { writeSafetensorsRaw as writeRaw } from '../../src/model/safetensors';

export const HUB_REPOS = {
  onnx: 'onnx-community/whisper-base',
  weights: 'openai/whisper-base',
  sharded: 'test/whisper-base-sharded',
  gated: 'test/gated-whisper',
} as const;
/** The token the gated repo accepts (as if its licence were accepted). */
export const GATED_TOKEN = 'hf_localhub_accepted_licence';

/** A file of a repo: a path on disk or bytes in memory. */
export type HubFile = string | Uint8Array;

export interface ServedRequest {
  method: string;
  /** request path as sent (resolve or /cdn/ URL) */
  url: string;
  /** repo and file the request resolved to (null: unknown) */
  repo: string | null;
  file: string | null;
  /** requested byte range [begin, end] inclusive, null for a whole file */
  range: [number, number] | null;
  status: number;
  /** body bytes written */
  bytes: number;
  /** the connection was cut by cutNext */
  cut: boolean;
  /** an Authorization header was sent (the token itself is not kept) */
  auth: boolean;
}

export interface LocalHub {
  /** http://127.0.0.1:<port> — what HF_ENDPOINT / setHubEndpoint take */
  url: string;
  /** every request, in order */
  log: ServedRequest[];
  addRepo(id: string, files: Record<string, HubFile>, opts?: { gated?: boolean }): void;
  /** Cut the connection after `afterBytes` body bytes of the next GET of `file` (in `repo`, when given) that is longer than that. */
  cutNext(file: string, afterBytes: number, repo?: string): void;
  /** Body bytes served (GET), optionally of one repo / file. */
  bytesServed(filter?: { repo?: string; file?: string }): number;
  requests(filter?: { repo?: string; file?: string; method?: string }): ServedRequest[];
  resetLog(): void;
  close(): Promise<void>;
}

interface Repo {
  files: Map<string, HubFile>;
  gated: boolean;
}

const sizeOf = (f: HubFile) => (typeof f === 'string' ? statSync(f).size : f.byteLength);

/** The Hub redirects LFS files (weights, ONNX graphs) to its CDN; small files are served in place. */
const isLfs = (path: string) => /\.(safetensors|onnx|onnx_data|bin)$/.test(path);

function filesOf(dir: string, skip: (rel: string) => boolean): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() || e.isSymbolicLink()) {
        const rel = relative(dir, p).split('\\').join('/');
        if (!skip(rel)) out[rel] = p;
      }
    }
  };
  walk(dir);
  return out;
}

// --- safetensors helpers (raw: any dtype, bytes as given) ---------------------------------------------

export interface RawTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** A safetensors file of raw tensors (src/model/safetensors.ts's writer; `format: pt` metadata as torch writes). */
export function writeSafetensorsRaw(tensors: Record<string, RawTensor>, metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  return writeRaw(
    Object.fromEntries(Object.entries(tensors).map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, bytes: t.data }])),
    metadata,
  );
}

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  /** absolute byte offsets in the file, [begin, end) */
  begin: number;
  end: number;
}

/** The tensor table of a safetensors file on disk, with absolute offsets (reads only the header). */
export function readSafetensorsHeader(path: string): { headerBytes: number; tensors: Map<string, HeaderEntry> } {
  const fd = openSync(path, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const json = Buffer.alloc(n);
    readSync(fd, json, 0, n, 8);
    const h = JSON.parse(json.toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const tensors = new Map<string, HeaderEntry>();
    for (const [name, t] of Object.entries(h)) {
      if (name === '__metadata__') continue;
      tensors.set(name, { dtype: t.dtype, shape: t.shape, begin: 8 + n + t.data_offsets[0], end: 8 + n + t.data_offsets[1] });
    }
    return { headerBytes: 8 + n, tensors };
  } finally {
    closeSync(fd);
  }
}

/** Split a safetensors file into two shards (by byte order, half each) + model.safetensors.index.json in `dir`. */
export function writeShards(src: string, dir: string): Record<string, string> {
  const { tensors } = readSafetensorsHeader(src);
  const all = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin);
  const total = all.reduce((s, [, t]) => s + t.end - t.begin, 0);
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const groups: [string, HeaderEntry][][] = [[], []];
  let acc = 0;
  for (const e of all) {
    groups[acc < total / 2 ? 0 : 1].push(e);
    acc += e[1].end - e[1].begin;
  }
  const fd = openSync(src, 'r');
  const weightMap: Record<string, string> = {};
  try {
    groups.forEach((g, i) => {
      const raw: Record<string, RawTensor> = {};
      for (const [name, t] of g) {
        const data = new Uint8Array(t.end - t.begin);
        readSync(fd, data, 0, data.byteLength, t.begin);
        raw[name] = { dtype: t.dtype, shape: t.shape, data };
        weightMap[name] = names[i];
      }
      writeFileSync(join(dir, names[i]), writeSafetensorsRaw(raw));
    });
  } finally {
    closeSync(fd);
  }
  writeFileSync(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  );
  return Object.fromEntries(['model.safetensors.index.json', ...names].map((n) => [n, join(dir, n)]));
}

// --- the server ------------------------------------------------------------------------------------

function parseRange(h: string | undefined, size: number): [number, number] | 'bad' | null {
  if (!h) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'bad';
  let a: number;
  let b: number;
  if (m[1] === '') {
    a = Math.max(0, size - Number(m[2])); // suffix: the last n bytes
    b = size - 1;
  } else {
    a = Number(m[1]);
    b = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (a >= size || a > b) return 'bad';
  return [a, b];
}

export async function startLocalHub(opts: { port?: number; modelDir?: string; sharded?: boolean } = {}): Promise<LocalHub> {
  const modelDir = opts.modelDir ?? requireModel();
  const repos = new Map<string, Repo>();
  const cdn = new Map<string, { repo: string; file: string }>();
  const cuts: { repo?: string; file: string; after: number }[] = [];
  const log: ServedRequest[] = [];
  let tmp: string | null = null;

  // A content id as the Hub's etag for LFS files (its sha256): cheap here, from the name, size and mtime.
  const shaOf = (repo: string, path: string, f: HubFile) =>
    createHash('sha256')
      .update(`${repo}\0${path}\0${sizeOf(f)}\0${typeof f === 'string' ? statSync(f).mtimeMs : createHash('sha1').update(f).digest('hex')}`)
      .digest('hex');

  const addRepo = (id: string, files: Record<string, HubFile>, o: { gated?: boolean } = {}) => {
    repos.set(id, { files: new Map(Object.entries(files)), gated: !!o.gated });
  };

  const all = filesOf(modelDir, (rel) => rel === 'blora-model.json');
  const { ['model.safetensors']: weights, ...onnxOnly } = all;
  addRepo(HUB_REPOS.onnx, onnxOnly);
  addRepo(HUB_REPOS.weights, { 'config.json': all['config.json'], 'model.safetensors': weights });
  addRepo(HUB_REPOS.gated, { 'config.json': all['config.json'], 'model.safetensors': weights }, { gated: true });
  if (opts.sharded) {
    tmp = mkdtempSync(join(tmpdir(), 'blora-local-hub-'));
    addRepo(HUB_REPOS.sharded, { 'config.json': all['config.json'], ...writeShards(weights, tmp) });
  }

  const send = (req: IncomingMessage, res: ServerResponse, entry: ServedRequest, f: HubFile, etag: string) => {
    const size = sizeOf(f);
    const range = parseRange(req.headers.range, size);
    const common = { etag: `"${etag}"`, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (range === 'bad') {
      entry.status = 416;
      res.writeHead(416, { ...common, 'content-range': `bytes */${size}` }).end();
      return;
    }
    const [a, b] = range ?? [0, size - 1];
    entry.range = range;
    entry.status = range ? 206 : 200;
    res.writeHead(entry.status, {
      ...common,
      'content-length': String(b - a + 1),
      ...(range ? { 'content-range': `bytes ${a}-${b}/${size}` } : {}),
    });
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    // the cut waits for a response long enough to be cut (a header read of 8 bytes does not use it up)
    const ci = cuts.findIndex((c) => c.file === entry.file && (!c.repo || c.repo === entry.repo) && b - a + 1 > c.after);
    const cutAt = ci >= 0 ? cuts.splice(ci, 1)[0].after : Infinity;
    const body = typeof f === 'string' ? createReadStream(f, { start: a, end: b }) : null;
    const write = (chunk: Uint8Array): boolean => {
      if (entry.bytes + chunk.byteLength >= cutAt) {
        const part = chunk.subarray(0, cutAt - entry.bytes);
        entry.bytes += part.byteLength;
        entry.cut = true;
        body?.destroy();
        // flush what was promised, then drop the connection mid-body as a lost network would — after a
        // moment, so the client has read those bytes (a browser drops what it had not read yet on a reset,
        // which would make the resume look like a re-download)
        res.write(part, () => setTimeout(() => res.socket?.destroy(), 300));
        return false;
      }
      entry.bytes += chunk.byteLength;
      return res.write(chunk);
    };
    if (!body) {
      const data = (f as Uint8Array).subarray(a, b + 1);
      for (let off = 0; off < data.byteLength && !entry.cut; off += 1 << 16) write(data.subarray(off, off + (1 << 16)));
      if (!entry.cut) res.end();
      return;
    }
    body.on('data', (c) => {
      if (entry.cut) return;
      if (!write(c as Buffer) && !entry.cut) {
        body.pause();
        res.once('drain', () => body.resume());
      }
    });
    body.on('end', () => entry.cut || res.end());
    body.on('error', () => res.socket?.destroy());
    res.on('close', () => body.destroy());
  };

  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const entry: ServedRequest = {
      method: req.method ?? 'GET',
      url,
      repo: null,
      file: null,
      range: null,
      status: 0,
      bytes: 0,
      cut: false,
      auth: !!req.headers.authorization,
    };
    log.push(entry);
    // CORS as the Hub answers it: the studio's page (another origin) fetches with Range (and a token for
    // gated repos), and reads content-range / etag, so those must be allowed and exposed.
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader(
      'access-control-expose-headers',
      'content-range, content-length, etag, accept-ranges, x-linked-etag, x-linked-size, x-error-code, x-error-message',
    );
    if (req.method === 'OPTIONS') {
      entry.status = 204;
      res
        .writeHead(204, {
          'access-control-allow-methods': 'GET, HEAD',
          'access-control-allow-headers': 'range, authorization, content-type',
          'access-control-max-age': '86400',
        })
        .end();
      return;
    }
    const fail = (status: number, code: string, msg: string) => {
      entry.status = status;
      res.writeHead(status, { 'content-type': 'text/plain', 'x-error-code': code, 'x-error-message': msg }).end(msg);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'MethodNotAllowed', 'only GET and HEAD');
    const path = decodeURIComponent(url.split('?')[0]);
    const c = /^\/cdn\/([0-9a-f]{64})\/[^/]+$/.exec(path);
    if (c) {
      const target = cdn.get(c[1]);
      const f = target && repos.get(target.repo)?.files.get(target.file);
      if (!target || !f) return fail(404, 'EntryNotFound', 'no such object');
      entry.repo = target.repo;
      entry.file = target.file;
      return send(req, res, entry, f, c[1]);
    }
    const m = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!m || m[3].split('/').includes('..')) return fail(404, 'EntryNotFound', `not a resolve URL: ${path}`);
    const [, repoId, rev, file] = m;
    entry.repo = repoId;
    entry.file = file;
    const repo = repos.get(repoId);
    if (!repo) return fail(404, 'RepoNotFound', `Repository not found: ${repoId}`);
    if (repo.gated) {
      const auth = req.headers.authorization;
      if (!auth)
        return fail(
          401,
          'GatedRepo',
          `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
        );
      if (auth !== `Bearer ${GATED_TOKEN}`)
        return fail(
          403,
          'GatedRepo',
          `Access to model ${repoId} is restricted and you are not in the authorized list. Visit https://huggingface.co/${repoId} to ask for access.`,
        );
    }
    if (rev !== 'main') return fail(404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    const f = repo.files.get(file);
    if (f === undefined) return fail(404, 'EntryNotFound', 'Entry not found');
    const sha = shaOf(repoId, file, f);
    if (isLfs(file)) {
      cdn.set(sha, { repo: repoId, file });
      entry.status = 302;
      res
        .writeHead(302, {
          location: `/cdn/${sha}/${basename(file)}`,
          'x-linked-etag': `"${sha}"`,
          'x-linked-size': String(sizeOf(f)),
          'x-repo-commit': '0'.repeat(40),
        })
        .end();
      return;
    }
    send(req, res, entry, f, sha);
  });
  server.keepAliveTimeout = 60_000; // as real CDNs: idle sockets stay open while the model loads
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const match = (e: ServedRequest, f?: { repo?: string; file?: string; method?: string }) =>
    (!f?.repo || e.repo === f.repo) && (!f?.file || e.file === f.file) && (!f?.method || e.method === f.method);
  return {
    url,
    log,
    addRepo,
    cutNext: (file, after, repo) => void cuts.push({ file, after, repo }),
    bytesServed: (f) => log.filter((e) => e.method === 'GET' && match(e, f)).reduce((s, e) => s + e.bytes, 0),
    requests: (f) => log.filter((e) => match(e, f)),
    resetLog: () => void log.splice(0),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    },
  };
}

// By hand: node --import tsx test/support/local-hub.ts [--port 8080] [--sharded]
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? Number(process.argv[i + 1]) : 8080;
  startLocalHub({ port, sharded: process.argv.includes('--sharded') }).then((hub) => {
    console.log(`local Hub at ${hub.url}\n  HF_ENDPOINT=${hub.url} npx blora-studio train --model ${HUB_REPOS.onnx} ...`);
    console.log(
      `repos: ${Object.values(HUB_REPOS)
        .filter((r) => r !== HUB_REPOS.sharded || process.argv.includes('--sharded'))
        .join(', ')} (gated: ${HUB_REPOS.gated}, token ${GATED_TOKEN})`,
    );
    const stop = () => hub.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

// Runs one fuzz case of test/data/fuzz.test.ts in a worker thread, so that a case that never returns
// (a blocking read, a decoder stuck in a loop) can be killed by the test instead of hanging the suite.
// It does what the CLI and the studio do with a dataset: read the manifest, then read and decode every
// clip through the dataset's own reader (never a path joined by hand).
import { parentPort } from 'node:worker_threads';
import { AudioDecodeError, loadAudio16k } from '../../src/audio';
import { DatasetError, directoryFiles, readDataset } from '../../src/data/manifest';

export type Request =
  | { id: number; kind: 'dataset'; root: string }
  | { id: number; kind: 'audio'; bytes: unknown; name: string; options?: { maxSeconds?: number; allowTruncated?: boolean } };

export interface Failure {
  type: string;
  message: string;
  reason?: string;
}

export interface Outcome {
  threw?: Failure;
  format?: string;
  manifest?: string;
  rows?: { id: string; audio: string; text: string; language?: string; duration?: number; extra?: Record<string, string> }[];
  errors?: { file: string; line: number; message: string }[];
  warnings?: { file: string; line?: number; message: string }[];
  audio?: { name: string; error?: Failure; samples?: number; finite?: boolean }[];
}

const failure = (e: unknown): Failure => ({
  type:
    e instanceof DatasetError
      ? 'DatasetError'
      : e instanceof AudioDecodeError
        ? 'AudioDecodeError'
        : ((e as Error)?.constructor?.name ?? typeof e),
  message: String((e as Error)?.message ?? e),
  reason: e instanceof AudioDecodeError ? e.reason : undefined,
});

const allFinite = (x: Float32Array) => x.every((v) => Number.isFinite(v));

async function run(req: Request): Promise<Outcome> {
  if (req.kind === 'audio') {
    try {
      const s = await loadAudio16k(req.bytes as Uint8Array, req.name, req.options);
      return { audio: [{ name: req.name, samples: s.length, finite: allFinite(s) }] };
    } catch (e) {
      return { audio: [{ name: req.name, error: failure(e) }] };
    }
  }
  const out: Outcome = {};
  try {
    const files = await directoryFiles(req.root);
    const ds = await readDataset(files);
    Object.assign(out, { format: ds.format, manifest: ds.manifest, rows: ds.rows, errors: ds.errors, warnings: ds.warnings, audio: [] });
    for (const row of ds.rows.slice(0, 40)) {
      try {
        const s = await loadAudio16k(await files.readBytes(row.audio), row.audio);
        out.audio!.push({ name: row.audio, samples: s.length, finite: allFinite(s) });
      } catch (e) {
        out.audio!.push({ name: row.audio, error: failure(e) });
      }
    }
  } catch (e) {
    out.threw = failure(e);
  }
  return out;
}

parentPort!.on('message', (req: Request) => {
  run(req).then(
    (outcome) => parentPort!.postMessage({ id: req.id, outcome }),
    (e) => parentPort!.postMessage({ id: req.id, outcome: { threw: failure(e) } }),
  );
});

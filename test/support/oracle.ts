// Runs tools/oracle_baseline.py (Python transformers on the same model and clips) once and caches its
// outputs under $BLORA_CACHE/oracle/<key>, the key covering the model, the manifest, the clips and the script.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CACHE, REPO, requireModel, requirePython } from './env';

export interface OracleClip {
  id: string;
  audio: string;
  language: string | null;
  reference: string;
  features: { file: string; shape: number[] };
  encoder: { file: string; file64: string; shape: number[]; torch_fp32_vs_f64_max_abs: number };
  /** the decoder prompt transformers' generate used (special tokens up to <|notimestamps|>) */
  prompt: number[];
  tokens: number[];
  text: string;
  reached_cap: boolean;
}
export interface OracleIndex {
  dir: string;
  transformers: string;
  torch: string;
  /** the model is English-only: no language/task given, clips in other languages skipped */
  english_only: boolean;
  skipped: string[];
  clips: OracleClip[];
}

/** `model`: a prepared model folder (default: the prepared Whisper base). */
export function baselineOracle(manifest: string, model: string = requireModel()): OracleIndex {
  const h = createHash('sha256');
  h.update(readFileSync(join(model, 'blora-model.json')));
  h.update(readFileSync(join(REPO, 'tools/oracle_baseline.py')));
  h.update(readFileSync(manifest));
  for (const line of readFileSync(manifest, 'utf8').split('\n').filter(Boolean)) {
    h.update(readFileSync(join(dirname(manifest), JSON.parse(line).audio_filepath)));
  }
  const dir = join(CACHE, 'oracle', h.digest('hex').slice(0, 16));
  if (!existsSync(join(dir, 'index.json'))) {
    // Test files run two at a time (scripts/test.sh): the oracle is written to a folder of this process
    // and renamed into place, so a concurrent test never sees (or deletes) a half-written cache.
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    console.log(`# running the Python oracle (transformers) → ${dir}`);
    execFileSync(requirePython(), [join(REPO, 'tools/oracle_baseline.py'), '--model', model, '--manifest', manifest, '--out', tmp], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
    });
    if (existsSync(join(dir, 'index.json')))
      rmSync(tmp, { recursive: true, force: true }); // another test process finished first
    else {
      rmSync(dir, { recursive: true, force: true }); // a folder left without its index by an interrupted run
      renameSync(tmp, dir);
    }
  }
  // The cache is keyed by content, not location: a clip's audio path is resolved against this manifest,
  // not taken from the index (a clone elsewhere reuses a cache written from another checkout).
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Omit<OracleIndex, 'dir'>;
  const audioOf = new Map<string, string>();
  for (const line of readFileSync(manifest, 'utf8').split('\n').filter(Boolean)) {
    const file = resolve(dirname(manifest), JSON.parse(line).audio_filepath as string);
    audioOf.set(basename(file).replace(/\.[^.]+$/, ''), file);
  }
  return { dir, ...index, clips: index.clips.map((c) => ({ ...c, audio: audioOf.get(c.id) ?? c.audio })) };
}

export function readF32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function readF64(path: string): Float64Array {
  const b = readFileSync(path);
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

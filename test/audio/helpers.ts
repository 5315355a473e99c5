/** Shared helpers for the audio tests: sox, temp dirs, a tiny float WAV reader/writer, signal math. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Which sox output formats work here (null: no sox at all). */
export function soxFormats(): Set<string> | null {
  const r = spawnSync('sox', ['-h'], { encoding: 'utf8' });
  if (r.error || r.status === null) return null;
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('AUDIO FILE FORMATS:'));
  return new Set((line ?? '').replace('AUDIO FILE FORMATS:', '').trim().split(/\s+/));
}

/**
 * The sox-based tests need sox with every format in `need` (scripts/setup.sh installs it). A missing
 * tool fails the test file with the fix — never a silent skip. Returns false to use as `{ skip }`.
 */
export function requireSox(need: string[]): false {
  const f = soxFormats();
  if (!f) throw new Error('sox is not installed: run "npm run setup" (apt-get install sox libsox-fmt-mp3)');
  const missing = need.filter((x) => !f.has(x));
  if (missing.length) throw new Error(`sox lacks ${missing.join(', ')}: run "npm run setup" (apt-get install libsox-fmt-mp3)`);
  return false;
}

export function sox(args: string[]): void {
  execFileSync('sox', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeTempDir(prefix = 'blora-audio-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Write 32-bit float WAV (WAVE_FORMAT_IEEE_FLOAT), interleaving the channels. */
export function writeWavF32(path: string, channels: Float32Array[], sampleRate: number): void {
  const c = channels.length;
  const n = channels[0].length;
  const data = n * c * 4;
  const b = Buffer.alloc(44 + data);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(36 + data, 4);
  b.write('WAVE', 8, 'ascii');
  b.write('fmt ', 12, 'ascii');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(3, 20);
  b.writeUInt16LE(c, 22);
  b.writeUInt32LE(sampleRate, 24);
  b.writeUInt32LE(sampleRate * c * 4, 28);
  b.writeUInt16LE(c * 4, 32);
  b.writeUInt16LE(32, 34);
  b.write('data', 36, 'ascii');
  b.writeUInt32LE(data, 40);
  for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) b.writeFloatLE(channels[k][i], 44 + (i * c + k) * 4);
  writeFileSync(path, b);
}

/** Read a float32 WAV as written by sox `-e floating-point -b 32` (independent of the code under test). */
export function readWavF32(path: string): { sampleRate: number; channels: Float32Array[] } {
  const b = readFileSync(path);
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path}: not a WAV`);
  let pos = 12;
  let c = 0;
  let sr = 0;
  let fmtTag = 0;
  let bits = 0;
  while (pos + 8 <= b.length) {
    const id = b.toString('ascii', pos, pos + 4);
    const size = b.readUInt32LE(pos + 4);
    if (id === 'fmt ') {
      fmtTag = b.readUInt16LE(pos + 8);
      c = b.readUInt16LE(pos + 10);
      sr = b.readUInt32LE(pos + 12);
      bits = b.readUInt16LE(pos + 22);
      if (fmtTag === 0xfffe) fmtTag = b.readUInt16LE(pos + 8 + 24); // WAVE_FORMAT_EXTENSIBLE sub-format
    } else if (id === 'data') {
      if (fmtTag !== 3 || bits !== 32) throw new Error(`${path}: not float32 (format ${fmtTag}, ${bits} bits)`);
      const n = Math.floor(Math.min(size, b.length - pos - 8) / (4 * c));
      const channels = Array.from({ length: c }, () => new Float32Array(n));
      for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) channels[k][i] = b.readFloatLE(pos + 8 + (i * c + k) * 4);
      return { sampleRate: sr, channels };
    }
    pos += 8 + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

export function sine(freq: number, sampleRate: number, n: number, amp = 1, phase = 0): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / sampleRate + phase);
  return x;
}

export function rms(x: ArrayLike<number>, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i] * x[i];
  return Math.sqrt(s / Math.max(1, to - from));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, from = 0, to = Math.min(a.length, b.length)): number {
  let m = 0;
  for (let i = from; i < to; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Amplitude of the `freq` component of x (single-bin DFT with a Hann window, amplitude-corrected). */
export function toneAmplitude(x: ArrayLike<number>, freq: number, sampleRate: number, from = 0, to = x.length): number {
  const n = to - from;
  let re = 0;
  let im = 0;
  let wsum = 0;
  for (let i = 0; i < n; i++) {
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
    const ph = (2 * Math.PI * freq * (from + i)) / sampleRate;
    re += w * x[from + i] * Math.cos(ph);
    im -= w * x[from + i] * Math.sin(ph);
    wsum += w;
  }
  return (2 * Math.hypot(re, im)) / wsum;
}

/** Lag (0..maxLag) of `y` relative to `ref` maximising their correlation, and the normalised correlation. */
export function bestLag(ref: Float32Array, y: Float32Array, maxLag: number): { lag: number; corr: number } {
  let best = { lag: 0, corr: -Infinity };
  const n = Math.min(ref.length, y.length - maxLag);
  const er = rms(ref, 0, n);
  for (let lag = 0; lag <= maxLag; lag++) {
    let s = 0;
    let ey = 0;
    for (let i = 0; i < n; i++) {
      s += ref[i] * y[i + lag];
      ey += y[i + lag] * y[i + lag];
    }
    const corr = s / n / (er * Math.sqrt(ey / n) || 1);
    if (corr > best.corr) best = { lag, corr };
  }
  return best;
}

/** SNR in dB of `y` (shifted by `lag`) against `ref`. */
export function snrDb(ref: Float32Array, y: Float32Array, lag: number, from: number, to: number): number {
  let sig = 0;
  let err = 0;
  for (let i = from; i < to; i++) {
    sig += ref[i] * ref[i];
    const d = y[i + lag] - ref[i];
    err += d * d;
  }
  return 10 * Math.log10(sig / Math.max(err, 1e-30));
}

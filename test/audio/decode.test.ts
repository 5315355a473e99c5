/**
 * decodeAudio / loadAudio16k in Node (audio-decode backend), on files made here with sox from a
 * float WAV we write ourselves: WAV 16-bit, WAV float32, FLAC, MP3, Ogg Vorbis; stereo 44.1 kHz and
 * mono 16 kHz. Plus the error cases: garbage, HTML, empty, truncated, zero-length.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { AudioDecodeError, decodeAudio, loadAudio16k, resample, toMono, type AudioDecodeReason } from '../../src/audio/index';
import { bestLag, makeTempDir, maxAbsDiff, readWavF32, sine, snrDb, sox, requireSox, writeWavF32 } from './helpers';

const SECONDS = 1.5;
interface Source {
  id: string;
  sampleRate: number;
  channels: Float32Array[];
}
const SOURCES: Source[] = [
  {
    id: 'stereo44k',
    sampleRate: 44100,
    channels: [sine(440, 44100, 44100 * SECONDS, 0.5), sine(660, 44100, 44100 * SECONDS, 0.3, 1)],
  },
  {
    id: 'mono16k',
    sampleRate: 16000,
    channels: [
      (() => {
        const a = sine(440, 16000, 16000 * SECONDS, 0.5);
        const b = sine(1200, 16000, 16000 * SECONDS, 0.2);
        return a.map((v, i) => v + b[i]);
      })(),
    ],
  },
];

interface Fmt {
  ext: string;
  soxFormat: string;
  args: string[];
  lossless: boolean;
  /** max |decoded − source| allowed for lossless formats (16-bit: half an LSB of rounding) */
  tol?: number;
  /** min SNR (dB) after alignment for lossy formats */
  minSnr?: number;
}
const FORMATS: Record<string, Fmt> = {
  wav16: { ext: 'wav', soxFormat: 'wav', args: ['-D', '-e', 'signed-integer', '-b', '16'], lossless: true, tol: 0.51 / 32768 },
  wavf32: { ext: 'wav', soxFormat: 'wav', args: ['-e', 'floating-point', '-b', '32'], lossless: true, tol: 1e-7 },
  flac: { ext: 'flac', soxFormat: 'flac', args: ['-D', '-b', '16'], lossless: true, tol: 0.51 / 32768 },
  mp3: { ext: 'mp3', soxFormat: 'mp3', args: ['-C', '128'], lossless: false, minSnr: 20 },
  ogg: { ext: 'ogg', soxFormat: 'vorbis', args: ['-C', '5'], lossless: false, minSnr: 20 },
};

const skip = requireSox(['wav', 'flac', 'mp3', 'vorbis']);

async function expectDecodeError(
  bytes: ArrayBuffer | Uint8Array,
  name: string,
  reason: AudioDecodeReason,
  pattern: RegExp,
): Promise<AudioDecodeError> {
  let caught: unknown;
  try {
    await decodeAudio(bytes, name);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof AudioDecodeError, `expected AudioDecodeError for ${name}, got ${String(caught)}`);
  assert.equal(caught.file, name);
  assert.equal(caught.reason, reason, caught.message);
  assert.ok(caught.cause instanceof Error);
  assert.ok(caught.message.startsWith(`Cannot decode "${name}": `), caught.message);
  assert.match(caught.message, pattern);
  return caught;
}

describe('decodeAudio: formats (sox-made inputs)', { skip }, () => {
  let tmp: ReturnType<typeof makeTempDir>;
  const files = new Map<string, string>();

  before(() => {
    tmp = makeTempDir();
    for (const src of SOURCES) {
      const srcPath = join(tmp.dir, `${src.id}.src.wav`);
      writeWavF32(srcPath, src.channels, src.sampleRate);
      for (const [key, f] of Object.entries(FORMATS)) {
        const out = join(tmp.dir, `${src.id}.${key}.${f.ext}`);
        sox([srcPath, ...f.args, out]);
        files.set(`${src.id}/${key}`, out);
      }
    }
  });
  after(() => tmp?.cleanup());

  for (const src of SOURCES) {
    for (const [key, f] of Object.entries(FORMATS)) {
      it(`${key} ${src.id}: rate, channels, duration and samples match the source`, async () => {
        const path = files.get(`${src.id}/${key}`)!;
        const bytes = readFileSync(path); // a Node Buffer: a pooled Uint8Array view
        const out = await decodeAudio(bytes, `${src.id}.${f.ext}`);
        assert.equal(out.sampleRate, src.sampleRate);
        assert.equal(out.channels.length, src.channels.length);
        const n = src.channels[0].length;
        const got = out.channels[0].length;
        if (f.lossless) {
          assert.equal(got, n, 'frame count');
          src.channels.forEach((ref, c) => {
            const d = maxAbsDiff(ref, out.channels[c]);
            assert.ok(d <= f.tol!, `channel ${c}: max |diff| ${d} > ${f.tol}`);
          });
        } else {
          // Lossy codecs add encoder delay/padding (MP3 up to ~2 frames): allow +0.2 s, never shorter.
          assert.ok(got >= n - 2 && got <= n + 0.2 * src.sampleRate, `frames ${got} vs source ${n}`);
          src.channels.forEach((ref, c) => {
            const { lag, corr } = bestLag(ref.subarray(4000, 12000), out.channels[c].subarray(4000), 3000);
            const snr = snrDb(ref, out.channels[c], lag, 2000, n - 4000);
            assert.ok(corr > 0.99, `channel ${c}: correlation ${corr.toFixed(4)} at lag ${lag}`);
            assert.ok(snr > f.minSnr!, `channel ${c}: SNR ${snr.toFixed(1)} dB (lag ${lag})`);
            // and the other channel is not what we got (channels are not swapped or mixed)
            const other = src.channels[1 - c];
            if (other) assert.ok(bestLag(other.subarray(4000, 12000), out.channels[c].subarray(4000), 3000).corr < 0.5);
          });
        }
      });
    }
  }

  it('accepts ArrayBuffer and Uint8Array views alike and leaves the input intact', async () => {
    const buf = readFileSync(files.get('stereo44k/wav16')!);
    const copy = Uint8Array.from(buf);
    const ab = copy.buffer.slice(0);
    const padded = new Uint8Array(copy.length + 16);
    padded.set(copy, 8);
    const a = await decodeAudio(ab, 'a.wav');
    const b = await decodeAudio(padded.subarray(8, 8 + copy.length), 'b.wav');
    assert.equal(ab.byteLength, copy.length, 'ArrayBuffer not detached');
    assert.deepEqual(Uint8Array.from(buf), copy, 'input bytes unchanged');
    assert.equal(maxAbsDiff(a.channels[0], b.channels[0]), 0);
    assert.equal(a.channels[0].length, b.channels[0].length);
  });

  it('loadAudio16k: stereo 44.1 kHz → mono 16 kHz equals resample(toMono(·)) and sox (remix + rate -v)', async () => {
    const path = files.get('stereo44k/wavf32')!;
    const y = await loadAudio16k(readFileSync(path), 'stereo.wav');
    assert.equal(y.length, 16000 * SECONDS);
    const src = SOURCES[0];
    const expected = resample(toMono(src.channels), 44100, 16000);
    assert.ok(maxAbsDiff(y, expected) < 1e-6);
    const ref = join(tmp.dir, 'ref16k.wav');
    sox([path, '-e', 'floating-point', '-b', '32', ref, 'remix', '1v0.5,2v0.5', 'rate', '-v', '16000']);
    const r = readWavF32(ref).channels[0];
    assert.equal(r.length, y.length);
    const interior = maxAbsDiff(y, r, 400, y.length - 400);
    assert.ok(interior < 1e-5, `vs sox interior max |diff| ${interior}`);
  });

  it('loadAudio16k on 16 kHz mono input returns the decoded samples unchanged', async () => {
    const bytes = readFileSync(files.get('mono16k/wavf32')!);
    const y = await loadAudio16k(bytes, 'm.wav');
    const d = await decodeAudio(bytes, 'm.wav');
    assert.equal(y.length, d.channels[0].length);
    assert.equal(maxAbsDiff(y, d.channels[0]), 0);
  });

  describe('errors name the file and the cause', () => {
    it('truncated files (every format, cut in the header and half-way)', async () => {
      for (const [key, f] of Object.entries(FORMATS)) {
        const full = readFileSync(files.get(`stereo44k/${key}`)!);
        const name = `cut_${key}.${f.ext}`;
        await expectDecodeError(full.subarray(0, 30), name, 'truncated', /truncated file/);
        await expectDecodeError(full.subarray(0, Math.floor(full.length / 2)), name, 'truncated', /truncated file/);
      }
    });

    it('allowTruncated returns the audio that is there', async () => {
      const full = readFileSync(files.get('stereo44k/wav16')!);
      const out = await decodeAudio(full.subarray(0, 44 + 4 * 22050), 'half.wav', { allowTruncated: true });
      assert.equal(out.channels[0].length, 22050);
      assert.ok(maxAbsDiff(out.channels[0], SOURCES[0].channels[0]) < 1e-4);
    });

    it('zero-length audio (WAV and FLAC with no samples)', async () => {
      for (const ext of ['wav', 'flac']) {
        const p = join(tmp.dir, `zero.${ext}`);
        sox(['-n', '-r', '16000', '-c', '1', '-b', '16', p, 'trim', '0', '0']);
        await expectDecodeError(readFileSync(p), `zero.${ext}`, 'zero-length', /zero-length audio/);
      }
    });
  });
});

describe('decodeAudio: error cases without sox', () => {
  it('HTML saved as .mp3', async () => {
    const html = new TextEncoder().encode('<html><head><title>404 Not Found</title></head><body>nope</body></html>');
    const e = await expectDecodeError(html, 'clip7.mp3', 'unsupported-format', /not a supported audio format/);
    assert.equal(e.message, 'Cannot decode "clip7.mp3": not a supported audio format (first bytes: 3c 68 74 6d = HTML?)');
  });

  it('garbage bytes', async () => {
    let s = 12345;
    const junk = new Uint8Array(4096).map(() => ((s = (s * 1103515245 + 12345) >>> 0) >>> 24) & 0xff);
    junk[0] = 0x13; // make sure no magic number matches by chance
    await expectDecodeError(
      junk,
      'noise.bin',
      'unsupported-format',
      /not a supported audio format \(first bytes: 13 [0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2}\)/,
    );
  });

  it('recognisable non-audio files get a hint', async () => {
    const enc = new TextEncoder();
    await expectDecodeError(
      enc.encode('version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12345\n'),
      'clip.wav',
      'unsupported-format',
      /Git LFS pointer/,
    );
    await expectDecodeError(enc.encode('{"error": "not found"}'), 'clip.ogg', 'unsupported-format', /= JSON\?\)/);
    await expectDecodeError(
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]),
      'x.flac',
      'unsupported-format',
      /PNG image/,
    );
    await expectDecodeError(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 1, 2, 3]), 'x.wav', 'unsupported-format', /ZIP archive/);
  });

  it('empty file', async () => {
    await expectDecodeError(new Uint8Array(0), 'empty.wav', 'empty', /empty file \(0 bytes\)/);
    await expectDecodeError(new ArrayBuffer(0), 'empty2.wav', 'empty', /empty file/);
  });

  it('a bare RIFF header is truncated, not "unsupported"', async () => {
    await expectDecodeError(new TextEncoder().encode('RIFF'), 'short.wav', 'truncated', /truncated file/);
  });

  it('not bytes at all', async () => {
    await assert.rejects(decodeAudio('hello' as unknown as Uint8Array, 'str.wav'), (e: unknown) => {
      assert.ok(e instanceof AudioDecodeError);
      assert.equal(e.reason, 'invalid-input');
      assert.match(e.message, /^Cannot decode "str.wav": expected an ArrayBuffer or Uint8Array, got string$/);
      return true;
    });
  });

  it('a WAV whose header is fine but whose data chunk is cut', async () => {
    const p = makeTempDir();
    try {
      const path = join(p.dir, 'x.wav');
      writeWavF32(path, [sine(440, 16000, 16000)], 16000);
      const b = readFileSync(path);
      writeFileSync(path, b.subarray(0, 44 + 4 * 4000));
      await expectDecodeError(readFileSync(path), 'x.wav', 'truncated', /declares 1\.00 s of audio but only 0\.25 s is present/);
    } finally {
      p.cleanup();
    }
  });
});

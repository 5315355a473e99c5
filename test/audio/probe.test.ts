/**
 * probeAudio (header sniffing: format, native rate, channels, declared length, truncation) and the
 * built-in PCM WAV reader's integer scaling (1/2^(bits−1), like browsers, soundfile and ffmpeg).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { decodeAudio, probeAudio } from '../../src/audio/index';
import { detectInt16Scale, normalizeInt16Scale } from '../../src/audio/pcm-scale';
import { decodePcmWav } from '../../src/audio/wav';
import { makeTempDir, sine, sox, requireSox, writeWavF32 } from './helpers';

/** A minimal WAV with the given format tag / bits and raw little-endian sample bytes. */
function wavBytes(opts: { tag: number; bits: number; channels: number; rate: number; data: Uint8Array; extensible?: boolean }): Uint8Array {
  const { tag, bits, channels, rate, data, extensible } = opts;
  const fmtLen = extensible ? 40 : 16;
  const b = Buffer.alloc(12 + 8 + fmtLen + 8 + data.length);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(b.length - 8, 4);
  b.write('WAVE', 8, 'ascii');
  b.write('fmt ', 12, 'ascii');
  b.writeUInt32LE(fmtLen, 16);
  b.writeUInt16LE(extensible ? 0xfffe : tag, 20);
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE((rate * channels * bits) / 8, 28);
  b.writeUInt16LE((channels * bits) / 8, 32);
  b.writeUInt16LE(bits, 34);
  if (extensible) {
    b.writeUInt16LE(22, 36);
    b.writeUInt16LE(bits, 38);
    b.writeUInt32LE(channels === 1 ? 4 : 3, 40);
    b.writeUInt16LE(tag, 44); // sub-format GUID starts with the format tag
    Buffer.from('000000001000800000aa00389b71', 'hex').copy(b, 46);
  }
  const d = 12 + 8 + fmtLen;
  b.write('data', d, 'ascii');
  b.writeUInt32LE(data.length, d + 4);
  b.set(data, d + 8);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

describe('built-in WAV reader: integer scaling and formats', () => {
  it('int16 → x / 32768 exactly', async () => {
    const ints = Int16Array.of(-32768, -16384, -1, 0, 1, 16384, 32767);
    const bytes = wavBytes({ tag: 1, bits: 16, channels: 1, rate: 16000, data: new Uint8Array(ints.buffer) });
    const out = await decodeAudio(bytes, 'i16.wav');
    assert.deepEqual(
      Array.from(out.channels[0]),
      Array.from(ints, (v) => v / 32768),
    );
  });

  it('int24, int32, uint8, float64, WAVE_FORMAT_EXTENSIBLE, stereo interleaving', () => {
    const i24 = new Uint8Array([0x00, 0x00, 0x80, 0xff, 0xff, 0x7f, 0x01, 0x00, 0x00]); // -2^23, 2^23-1, 1
    let w = decodePcmWav(wavBytes({ tag: 1, bits: 24, channels: 1, rate: 8000, data: i24 }))!;
    assert.deepEqual(Array.from(w.channels[0]), [-1, Math.fround((2 ** 23 - 1) / 2 ** 23), Math.fround(1 / 2 ** 23)]);
    const i32 = Int32Array.of(-(2 ** 31), 2 ** 30);
    w = decodePcmWav(wavBytes({ tag: 1, bits: 32, channels: 1, rate: 8000, data: new Uint8Array(i32.buffer), extensible: true }))!;
    assert.deepEqual(Array.from(w.channels[0]), [-1, 0.5]);
    w = decodePcmWav(wavBytes({ tag: 1, bits: 8, channels: 2, rate: 8000, data: Uint8Array.of(0, 255, 128, 192) }))!;
    assert.deepEqual(Array.from(w.channels[0]), [-1, 0]);
    assert.deepEqual(Array.from(w.channels[1]), [127 / 128, 0.5]);
    const f64 = Float64Array.of(0.25, -0.125);
    w = decodePcmWav(wavBytes({ tag: 3, bits: 64, channels: 1, rate: 22050, data: new Uint8Array(f64.buffer) }))!;
    assert.equal(w.sampleRate, 22050);
    assert.deepEqual(Array.from(w.channels[0]), [0.25, -0.125]);
  });

  it('compressed WAV variants are left to a real decoder (null)', () => {
    assert.equal(decodePcmWav(wavBytes({ tag: 7, bits: 8, channels: 1, rate: 8000, data: new Uint8Array(8) })), null); // µ-law
    assert.equal(decodePcmWav(new TextEncoder().encode('not a wav at all')), null);
  });

  it('µ-law WAV still decodes (through audio-decode)', { skip: requireSox(['wav']) }, async () => {
    const tmp = makeTempDir();
    try {
      const src = join(tmp.dir, 's.wav');
      const ulaw = join(tmp.dir, 'u.wav');
      writeWavF32(src, [sine(440, 8000, 8000, 0.5)], 8000);
      sox([src, '-e', 'u-law', ulaw]);
      const out = await decodeAudio(readFileSync(ulaw), 'u.wav');
      assert.equal(out.sampleRate, 8000);
      assert.equal(out.channels[0].length, 8000);
      let e = 0;
      const ref = sine(440, 8000, 8000, 0.5);
      for (let i = 0; i < ref.length; i++) e = Math.max(e, Math.abs(out.channels[0][i] - ref[i]));
      assert.ok(e < 0.02, `µ-law max error ${e}`);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('probeAudio', () => {
  it('unknown bytes → format null', () => {
    assert.equal(probeAudio(new TextEncoder().encode('hello world')).format, null);
    assert.equal(probeAudio(new Uint8Array(0)).format, null);
    assert.equal(probeAudio(Uint8Array.of(0xff, 0xfb, 0x90)).format, null); // a lone sync word is not an MP3
  });

  describe('sox-made files', { skip: requireSox(['wav', 'flac', 'mp3', 'vorbis']) }, () => {
    const cases: Array<{ ext: string; rate: number; channels: number; format: string; args?: string[] }> = [
      { ext: 'wav', rate: 44100, channels: 2, format: 'wav' },
      { ext: 'flac', rate: 48000, channels: 1, format: 'flac' },
      { ext: 'ogg', rate: 22050, channels: 2, format: 'ogg-vorbis' },
      { ext: 'mp3', rate: 44100, channels: 2, format: 'mp3' },
      { ext: 'mp3', rate: 22050, channels: 1, format: 'mp3' }, // MPEG-2
      { ext: 'mp3', rate: 8000, channels: 1, format: 'mp3' }, // MPEG-2.5
    ];
    for (const c of cases) {
      it(`${c.ext} ${c.rate} Hz ${c.channels} ch: format, rate, channels; no truncation; cut copies are truncated`, async () => {
        const tmp = makeTempDir();
        try {
          const src = join(tmp.dir, 'src.wav');
          const out = join(tmp.dir, `o.${c.ext}`);
          writeWavF32(
            src,
            Array.from({ length: c.channels }, (_, k) => sine(300 + 200 * k, c.rate, c.rate, 0.4)),
            c.rate,
          );
          sox([src, ...(c.args ?? []), out]);
          const b = new Uint8Array(readFileSync(out));
          const p = probeAudio(b);
          assert.equal(p.format, c.format);
          assert.equal(p.sampleRate, c.rate);
          assert.equal(p.channels, c.channels);
          assert.equal(p.truncated, undefined);
          if (c.ext === 'wav' || c.ext === 'flac') assert.equal(p.declaredFrames, c.rate);
          for (const cut of [20, Math.floor(b.length * 0.37), b.length - 7]) {
            const part = b.subarray(0, cut);
            const why = `${c.ext} cut at ${cut} of ${b.length}`;
            if (c.ext === 'flac' && cut > 100) {
              // FLAC frames carry no length: a cut in the audio shows as fewer samples than STREAMINFO declares
              assert.equal(probeAudio(part).truncated, undefined);
              await assert.rejects(decodeAudio(part, 'cut.flac'), /truncated file: its FLAC header declares 1\.00 s/, why);
            } else {
              assert.match(probeAudio(part).truncated ?? '', /^truncated file/, why);
            }
          }
        } finally {
          tmp.cleanup();
        }
      });
    }
  });
});

describe('int16 scaling conventions (pcm-scale)', () => {
  const ints = Array.from({ length: 3000 }, (_, i) => Math.round(32767 * Math.sin(i * 0.37)) | 0);
  const exact = () => Float32Array.from(ints, (s) => s / 32768);
  it('recognises s/32768, s/32767 and the asymmetric mix, and normalises all to s/32768', () => {
    assert.equal(detectInt16Scale([exact()]), 'exact');
    const sym = Float32Array.from(ints, (s) => s / 32767);
    const f32 = Math.fround;
    const asym = Float32Array.from(ints, (s) => (s > 0 ? f32(s * f32(1 / 32767)) : s / 32768)); // float32 math, as in a browser
    assert.equal(normalizeInt16Scale([sym]), 'symmetric');
    assert.equal(normalizeInt16Scale([asym]), 'asymmetric');
    assert.deepEqual(Array.from(sym), Array.from(exact()));
    assert.deepEqual(Array.from(asym), Array.from(exact()));
  });
  it('leaves audio that is not on an int16 grid alone', () => {
    const x = sine(440, 16000, 4000, 0.5);
    const before = Float32Array.from(x);
    assert.equal(normalizeInt16Scale([x]), 'none');
    assert.deepEqual(x, before);
    assert.equal(detectInt16Scale([new Float32Array(100)]), 'none');
  });
});

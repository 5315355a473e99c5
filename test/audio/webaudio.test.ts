/**
 * The browser (WebAudio) path of decodeAudio, in Node, with a stand-in OfflineAudioContext whose
 * decodeAudioData behaves like a browser's: it detaches the buffer it is given, resamples to the
 * context's rate (recorded here, so we can check the context is made at the file's own rate), and
 * rejects with an EncodingError for what it cannot decode. A real-Chromium run is in
 * browser-decode.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';

import { AudioDecodeError, decodeAudio, hasWebAudio } from '../../src/audio/index';
import { makeTempDir, sine, sox, soxSkip, writeWavF32 } from './helpers';

interface FakeBuffer {
  sampleRate: number;
  numberOfChannels: number;
  length: number;
  getChannelData(c: number): Float32Array;
}

class FakeOfflineAudioContext {
  static rates: number[] = [];
  /** Codecs this fake "browser" lacks (by magic), to exercise the fallback. */
  static cannot = new Set<string>();
  readonly sampleRate: number;
  constructor(_channels: number, _length: number, sampleRate: number) {
    if (sampleRate < 3000 || sampleRate > 768000) throw new RangeError(`unsupported rate ${sampleRate}`);
    this.sampleRate = sampleRate;
    FakeOfflineAudioContext.rates.push(sampleRate);
  }
  decodeAudioData(data: ArrayBuffer): Promise<FakeBuffer> {
    // Browsers detach the ArrayBuffer handed to decodeAudioData.
    const bytes = new Uint8Array(structuredClone(data, { transfer: [data] }));
    return (async () => {
      const magic = String.fromCharCode(...bytes.subarray(0, 4));
      if (FakeOfflineAudioContext.cannot.has(magic)) throw new DOMException('Unable to decode audio data', 'EncodingError');
      const { default: decode } = (await import('audio-decode')) as unknown as {
        default: (b: Uint8Array) => Promise<{ channelData: Float32Array[]; sampleRate: number }>;
      };
      let r: { channelData: Float32Array[]; sampleRate: number };
      try {
        r = await decode(bytes);
      } catch {
        throw new DOMException('Unable to decode audio data', 'EncodingError');
      }
      if (r.sampleRate !== this.sampleRate) throw new Error(`fake cannot resample ${r.sampleRate} → ${this.sampleRate}`);
      const ch = r.channelData;
      return { sampleRate: this.sampleRate, numberOfChannels: ch.length, length: ch[0].length, getChannelData: (c: number) => ch[c] };
    })();
  }
}

const g = globalThis as unknown as { OfflineAudioContext?: unknown };

describe('decodeAudio: WebAudio path (stand-in OfflineAudioContext)', { skip: soxSkip(['wav', 'vorbis', 'mp3', 'flac']) }, () => {
  let tmp: ReturnType<typeof makeTempDir>;
  const file = (n: string) => new Uint8Array(readFileSync(join(tmp.dir, n)));

  before(() => {
    tmp = makeTempDir();
    const src = join(tmp.dir, 'src.wav');
    writeWavF32(src, [sine(440, 22050, 22050, 0.5), sine(660, 22050, 22050, 0.3)], 22050);
    sox([src, join(tmp.dir, 'a.ogg')]);
    sox([src, join(tmp.dir, 'a.mp3')]);
    sox([src, '-b', '16', join(tmp.dir, 'a.flac')]);
    sox([src, '-b', '16', join(tmp.dir, 'a16.wav')]);
    g.OfflineAudioContext = FakeOfflineAudioContext;
  });
  after(() => {
    delete g.OfflineAudioContext;
    tmp?.cleanup();
  });
  afterEach(() => {
    FakeOfflineAudioContext.rates = [];
    FakeOfflineAudioContext.cannot.clear();
  });

  it('is chosen when OfflineAudioContext exists', () => {
    assert.equal(hasWebAudio(), true);
  });

  for (const ext of ['ogg', 'mp3', 'flac']) {
    it(`${ext}: the context is created at the file's own rate (22050 Hz), so WebAudio does not resample`, async () => {
      const bytes = file(`a.${ext}`);
      const ab = bytes.slice().buffer;
      const out = await decodeAudio(ab, `a.${ext}`);
      assert.deepEqual(FakeOfflineAudioContext.rates, [22050]);
      assert.equal(out.sampleRate, 22050);
      assert.equal(out.channels.length, 2);
      assert.ok(Math.abs(out.channels[0].length - 22050) < 3000);
      assert.equal(ab.byteLength, bytes.length, "the caller's ArrayBuffer is not detached");
    });
  }

  it('plain PCM WAV is read directly, without WebAudio', async () => {
    const out = await decodeAudio(file('a16.wav'), 'a16.wav');
    assert.deepEqual(FakeOfflineAudioContext.rates, []);
    assert.equal(out.sampleRate, 22050);
  });

  it("backend 'webaudio' forces WebAudio even for WAV", async () => {
    const out = await decodeAudio(file('a16.wav'), 'a16.wav', { backend: 'webaudio' });
    assert.deepEqual(FakeOfflineAudioContext.rates, [22050]);
    assert.equal(out.channels[0].length, 22050);
  });

  it('auto falls back to audio-decode when WebAudio cannot decode (codec missing in this browser)', async () => {
    FakeOfflineAudioContext.cannot.add('OggS');
    const out = await decodeAudio(file('a.ogg'), 'a.ogg');
    assert.equal(out.sampleRate, 22050);
    assert.equal(out.channels.length, 2);
  });

  it("backend 'webaudio' reports the browser's failure, naming the file", async () => {
    FakeOfflineAudioContext.cannot.add('OggS');
    await assert.rejects(decodeAudio(file('a.ogg'), 'voice memo.ogg', { backend: 'webaudio' }), (e: unknown) => {
      assert.ok(e instanceof AudioDecodeError);
      assert.equal(e.reason, 'decode-failed');
      assert.equal(e.file, 'voice memo.ogg');
      assert.equal(e.message, 'Cannot decode "voice memo.ogg": Ogg Vorbis decoder failed: Unable to decode audio data');
      return true;
    });
  });

  it('unknown bytes that neither decoder takes → "not a supported audio format" with the first bytes', async () => {
    const junk = Uint8Array.of(0x00, 0x01, 0x02, 0x03, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22);
    await assert.rejects(decodeAudio(junk, 'x.m4a'), (e: unknown) => {
      assert.ok(e instanceof AudioDecodeError);
      assert.equal(e.reason, 'unsupported-format');
      assert.equal(e.message, 'Cannot decode "x.m4a": not a supported audio format (first bytes: 00 01 02 03)');
      assert.ok(e.cause.cause instanceof Error, 'the decoders’ own errors are kept as the cause’s cause');
      return true;
    });
  });
});

describe('decodeAudio: environment detection', () => {
  it('Node has no WebAudio, so audio-decode is used', () => {
    assert.equal(typeof (globalThis as { OfflineAudioContext?: unknown }).OfflineAudioContext, 'undefined');
    assert.equal(hasWebAudio(), false);
  });
});

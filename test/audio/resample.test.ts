/**
 * resample(): against the analytic result, against sox's very-high-quality resampler (`rate -v`),
 * anti-aliasing (energy above 8 kHz must not fold back into 0–8 kHz), passband flatness,
 * upsampling images, DC gain, lengths and edge cases. Also toMono().
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { describeResampler, resample, toMono } from '../../src/audio/index';
import { makeTempDir, maxAbsDiff, readWavF32, rms, sine, sox, requireSox, toneAmplitude, writeWavF32 } from './helpers';

const RATES = [44100, 48000, 22050, 8000];
/** Output samples at each end where the zero-padded edge transient lives (> half the kernel). */
const EDGE = 400;

describe('resample', () => {
  it('returns the very same array when the rates match', () => {
    const x = sine(440, 16000, 1000);
    assert.equal(resample(x, 16000), x);
    assert.equal(resample(x, 44100, 44100), x);
  });

  it('output length is ceil(n · to / from); empty and tiny inputs work', () => {
    assert.equal(resample(new Float32Array(66150), 44100).length, 24000);
    assert.equal(resample(new Float32Array(66151), 44100).length, 24001);
    assert.equal(resample(new Float32Array(0), 48000).length, 0);
    assert.equal(resample(new Float32Array(1), 48000).length, 1);
    assert.equal(resample(new Float32Array(3), 8000).length, 6);
    const one = resample(Float32Array.of(1), 8000);
    assert.ok(Math.abs(one[0] - 0.95) < 0.01, `impulse at t=0 → h(0) = 0.95 (cutoff 0.95·Nyquist), got ${one[0]}`);
  });

  it('rejects bad rates', () => {
    const x = new Float32Array(10);
    assert.throws(() => resample(x, 0), RangeError);
    assert.throws(() => resample(x, -44100), RangeError);
    assert.throws(() => resample(x, Number.NaN), RangeError);
    assert.throws(() => resample(x, 44100, Infinity), RangeError);
  });

  for (const sr of RATES) {
    it(`440 Hz sine ${sr} Hz → 16 kHz matches the analytic sine (max error < 1e-5 away from the ends)`, () => {
      const x = sine(440, sr, sr * 2, 0.5, 0.3);
      const y = resample(x, sr, 16000);
      assert.equal(y.length, 32000);
      const ref = sine(440, 16000, y.length, 0.5, 0.3);
      const err = maxAbsDiff(y, ref, EDGE, y.length - EDGE);
      assert.ok(err < 1e-5, `max error ${err}`);
      // the ends are attenuated (zero padding) but stay bounded
      assert.ok(maxAbsDiff(y, ref) < 0.5);
    });
  }

  it('odd and non-integer rates use the interpolated kernel and are as accurate', () => {
    for (const sr of [16001, 44100.5, 11025.25]) {
      assert.equal(describeResampler(sr).mode, 'interpolated');
      const x = sine(440, sr, Math.round(sr * 2), 0.5);
      const y = resample(x, sr, 16000);
      const ref = sine(440, 16000, y.length, 0.5);
      const err = maxAbsDiff(y, ref, EDGE, y.length - EDGE);
      assert.ok(err < 1e-5, `${sr}: max error ${err}`);
    }
    assert.equal(describeResampler(44100).mode, 'polyphase');
    assert.equal(describeResampler(44100).L, 160);
    assert.equal(describeResampler(44100).M, 441);
  });

  it('anti-aliasing: tones between 8 kHz and the input Nyquist vanish (≥ 100 dB down) instead of folding below 8 kHz', () => {
    for (const sr of [44100, 48000, 22050]) {
      for (const f of [8000, 8300, 9000, 10000, 12000, 15000, 20000]) {
        if (f >= sr / 2) continue;
        const y = resample(sine(f, sr, sr, 1), sr, 16000);
        const level = rms(y, EDGE, y.length - EDGE) / Math.SQRT1_2;
        assert.ok(level < 1e-5, `${sr} Hz, ${f} Hz tone: residual ${(20 * Math.log10(level)).toFixed(1)} dB`);
      }
    }
  });

  it('a 440 Hz + 11 kHz mix at 44.1 kHz keeps 440 Hz and has nothing at the 5 kHz alias', () => {
    const sr = 44100;
    const a = sine(440, sr, sr, 0.5);
    const b = sine(11000, sr, sr, 0.5);
    const y = resample(
      a.map((v, i) => v + b[i]),
      sr,
      16000,
    );
    const keep = toneAmplitude(y, 440, 16000, EDGE, y.length - EDGE);
    const alias = toneAmplitude(y, 16000 - 11000, 16000, EDGE, y.length - EDGE);
    assert.ok(Math.abs(keep - 0.5) < 1e-4, `440 Hz amplitude ${keep}`);
    assert.ok(alias < 0.5e-5, `5 kHz alias amplitude ${alias}`);
  });

  it('passband is flat to 7.2 kHz (gain 1 ± 1e-4)', () => {
    for (const sr of [44100, 48000]) {
      for (const f of [50, 1000, 4000, 6000, 7200]) {
        const y = resample(sine(f, sr, sr, 1), sr, 16000);
        const ref = sine(f, 16000, y.length, 1);
        const err = maxAbsDiff(y, ref, EDGE, y.length - EDGE);
        assert.ok(err < 1e-4, `${sr} Hz, ${f} Hz: max error ${err}`);
      }
    }
  });

  it('DC passes with unit gain', () => {
    const y = resample(new Float32Array(44100).fill(0.25), 44100);
    assert.ok(maxAbsDiff(y, new Float32Array(y.length).fill(0.25), EDGE, y.length - EDGE) < 1e-5);
  });

  it('upsampling 8 kHz → 16 kHz: no image of a 3 kHz tone at 5 kHz, nothing above 4 kHz', () => {
    const y = resample(sine(3000, 8000, 8000, 0.8), 8000, 16000);
    const ref = sine(3000, 16000, y.length, 0.8);
    assert.ok(maxAbsDiff(y, ref, EDGE, y.length - EDGE) < 1e-4);
    assert.ok(toneAmplitude(y, 5000, 16000, EDGE, y.length - EDGE) < 1e-5);
    // every original sample is reproduced exactly at the even output positions (within the ripple)
    const x = sine(3000, 8000, 8000, 0.8);
    let e = 0;
    for (let i = EDGE; i < x.length - EDGE; i++) e = Math.max(e, Math.abs(y[2 * i] - x[i]));
    assert.ok(e < 1e-4, `max |y[2i] − x[i]| = ${e}`);
  });

  it('describeResampler documents the filter', () => {
    const d = describeResampler(48000, 16000);
    assert.equal(d.passbandHz, 7200);
    assert.equal(d.stopbandHz, 8000);
    assert.equal(d.cutoffHz, 7600);
    assert.equal(d.attenuationDb, 100);
    assert.ok(d.taps >= 380 && d.taps <= 392, `taps ${d.taps}`);
  });

  describe('against sox `rate -v` (very high quality)', { skip: requireSox(['wav']) }, () => {
    for (const sr of RATES) {
      it(`440 Hz at ${sr} Hz: max |ours − sox| < 1e-5 in the interior, < 5e-3 at the edges (step transient)`, () => {
        const tmp = makeTempDir();
        try {
          const inPath = join(tmp.dir, 'in.wav');
          const outPath = join(tmp.dir, 'out.wav');
          const x = sine(440, sr, sr * 2, 0.5, 0.1);
          writeWavF32(inPath, [x], sr);
          sox([inPath, '-e', 'floating-point', '-b', '32', outPath, 'rate', '-v', '16000']);
          const ref = readWavF32(outPath);
          assert.equal(ref.sampleRate, 16000);
          const y = resample(x, sr, 16000);
          assert.equal(y.length, ref.channels[0].length);
          const interior = maxAbsDiff(y, ref.channels[0], EDGE, y.length - EDGE);
          const all = maxAbsDiff(y, ref.channels[0]);
          assert.ok(interior < 1e-5, `interior ${interior}`);
          assert.ok(all < 5e-3, `overall ${all}`);
        } finally {
          tmp.cleanup();
        }
      });
    }

    it('white noise 48 kHz → 16 kHz agrees with sox to within −60 dB (different transition bands)', () => {
      const tmp = makeTempDir();
      try {
        let s = 1;
        const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
        // noise lowpassed to < 7 kHz (inside both passbands) by averaging 48 kHz white noise via our own filter
        const white = new Float32Array(48000).map(() => 0.3 * rnd());
        const band = resample(resample(white, 48000, 14000), 14000, 48000);
        const inPath = join(tmp.dir, 'n.wav');
        const outPath = join(tmp.dir, 'n16.wav');
        writeWavF32(inPath, [band], 48000);
        sox([inPath, '-e', 'floating-point', '-b', '32', outPath, 'rate', '-v', '16000']);
        const ref = readWavF32(outPath).channels[0];
        const y = resample(band, 48000, 16000);
        const diff = y.map((v, i) => v - ref[i]);
        const ratio = rms(diff, EDGE, y.length - EDGE) / rms(ref, EDGE, y.length - EDGE);
        assert.ok(ratio < 1e-3, `relative RMS difference ${ratio}`);
      } finally {
        tmp.cleanup();
      }
    });
  });
});

describe('toMono', () => {
  it('averages the channels', () => {
    const m = toMono([Float32Array.of(1, 0.5, -1), Float32Array.of(0, 0.5, 1)]);
    assert.deepEqual(Array.from(m), [0.5, 0.5, 0]);
    const m3 = toMono([Float32Array.of(3), Float32Array.of(0), Float32Array.of(-0.75)]);
    assert.ok(Math.abs(m3[0] - 0.75) < 1e-7);
  });
  it('returns a single channel as is', () => {
    const a = Float32Array.of(1, 2, 3);
    assert.equal(toMono([a]), a);
  });
  it('rejects no channels and unequal lengths', () => {
    assert.throws(() => toMono([]), RangeError);
    assert.throws(() => toMono([new Float32Array(2), new Float32Array(3)]), /channel lengths differ/);
  });
});

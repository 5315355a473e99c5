/**
 * Decoders disagree on how a 16-bit integer sample s becomes a float:
 *   - `exact`      s / 32768 for all s — libsndfile/soundfile, ffmpeg (Whisper's `load_audio`), our WAV reader;
 *   - `asymmetric` s / 32767 for s > 0, s / 32768 for s < 0 — Chromium's WebAudio (WAV, FLAC),
 *                  audio-decode's WAV decoder;
 *   - `symmetric`  s / 32767 for all s — audio-decode's FLAC decoder (3.x).
 * The differences are at most 3e-5 (−90 dB), but they make Node and browser results differ from
 * each other and from the Python reference. `normalizeInt16Scale` recognises the convention from
 * the samples themselves (every value must sit on that convention's grid, to float32 precision) and
 * rescales in place to `exact`. Audio that matches none of them (lossy codecs, dithered float) is
 * left untouched.
 */
export type Int16Scale = 'exact' | 'asymmetric' | 'symmetric' | 'none';

/** v is float32(s / scale) for an integer s, to within 2 ulp (decoders compute it in float32 or float64). */
const onGrid = (v: number, scale: number): boolean => {
  const s = Math.round(v * scale);
  return Math.abs(s) <= 32768 && Math.abs(s / scale - v) <= Math.abs(v) * 2.4e-7;
};

/** Which int16 scaling `channels` use (inspects up to ~4000 samples). */
export function detectInt16Scale(channels: readonly Float32Array[]): Int16Scale {
  let exact = true;
  let asym = true;
  let sym = true;
  let seen = 0;
  for (const ch of channels) {
    const step = Math.max(1, Math.floor(ch.length / 2000));
    for (let i = 0; i < ch.length && seen < 4000; i += step) {
      const v = ch[i];
      if (v === 0) continue;
      seen++;
      const e = onGrid(v, 32768);
      const q = onGrid(v, 32767);
      exact &&= e;
      sym &&= q;
      asym &&= v > 0 ? q : e;
      if (!exact && !asym && !sym) return 'none';
    }
  }
  if (seen === 0) return 'none';
  return exact ? 'exact' : asym ? 'asymmetric' : sym ? 'symmetric' : 'none';
}

/** Rescale int16-derived samples in place to s / 32768; returns the convention that was found. */
export function normalizeInt16Scale(channels: Float32Array[]): Int16Scale {
  const kind = detectInt16Scale(channels);
  if (kind === 'symmetric') {
    for (const ch of channels) for (let i = 0; i < ch.length; i++) ch[i] = Math.fround(Math.round(ch[i] * 32767) / 32768);
  } else if (kind === 'asymmetric') {
    for (const ch of channels) for (let i = 0; i < ch.length; i++) if (ch[i] > 0) ch[i] = Math.fround(Math.round(ch[i] * 32767) / 32768);
  }
  return kind;
}

/**
 * Direct decoder for plain PCM / IEEE-float WAV (the common case, and all of our demo data).
 *
 * Integers are scaled by 1 / 2^(bits−1) (int16: x / 32768), the convention of WebAudio in
 * browsers, libsndfile/soundfile, ffmpeg and so Whisper's own Python pipeline. (audio-decode
 * 3.x scales positive int16 by 1/32767, which would make Node and browser disagree by up to
 * 3e-5.) Compressed WAV variants (ADPCM, µ-law, A-law, …) return null and go to a real decoder.
 */

export interface PcmWav {
  sampleRate: number;
  channels: Float32Array[];
}

const ascii = (b: Uint8Array, off: number, len: number): string => {
  let s = '';
  for (let i = off; i < off + len && i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
};

/** Decode a PCM (8/16/24/32-bit int) or float (32/64-bit) WAV; null for anything else. Reads what is present. */
export function decodePcmWav(b: Uint8Array): PcmWav | null {
  if (ascii(b, 0, 4) !== 'RIFF' || ascii(b, 8, 4) !== 'WAVE') return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 12;
  let fmt: { tag: number; channels: number; sampleRate: number; blockAlign: number; bits: number } | null = null;
  while (pos + 8 <= b.length) {
    const id = ascii(b, pos, 4);
    const size = dv.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (body + 16 > b.length) return null;
      let tag = dv.getUint16(body, true);
      if (tag === 0xfffe && size >= 40 && body + 26 <= b.length) tag = dv.getUint16(body + 24, true); // WAVE_FORMAT_EXTENSIBLE
      fmt = {
        tag,
        channels: dv.getUint16(body + 2, true),
        sampleRate: dv.getUint32(body + 4, true),
        blockAlign: dv.getUint16(body + 12, true),
        bits: dv.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!fmt) return null;
      return readSamples(dv, body, size, fmt);
    }
    pos = body + size + (size & 1);
  }
  return null;
}

function readSamples(
  dv: DataView,
  start: number,
  declared: number,
  fmt: { tag: number; channels: number; sampleRate: number; blockAlign: number; bits: number },
): PcmWav | null {
  const { tag, channels: nch, sampleRate, blockAlign, bits } = fmt;
  const isInt = tag === 1 && (bits === 8 || bits === 16 || bits === 24 || bits === 32);
  const isFloat = tag === 3 && (bits === 32 || bits === 64);
  if ((!isInt && !isFloat) || nch < 1 || sampleRate < 1) return null;
  const bytesPer = bits / 8;
  if (blockAlign !== nch * bytesPer) return null;
  const available = dv.byteLength - start;
  const size = declared === 0xffffffff || declared === 0 ? available : Math.min(declared, available);
  const frames = Math.floor(size / blockAlign);
  const channels = Array.from({ length: nch }, () => new Float32Array(frames));
  let p = start;
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < nch; c++) {
      let v: number;
      if (isFloat) v = bits === 32 ? dv.getFloat32(p, true) : dv.getFloat64(p, true);
      else if (bits === 16) v = dv.getInt16(p, true) / 32768;
      else if (bits === 24) v = (((dv.getUint8(p + 2) << 24) | (dv.getUint8(p + 1) << 16) | (dv.getUint8(p) << 8)) >> 8) / 8388608;
      else if (bits === 32) v = dv.getInt32(p, true) / 2147483648;
      else v = (dv.getUint8(p) - 128) / 128;
      channels[c][i] = v;
      p += bytesPer;
    }
  }
  return { sampleRate, channels };
}

/** Channel counts beyond this are not a recording anyone trains speech on; refusing them bounds memory. */
export const MAX_CHANNELS = 64;

/**
 * What is self-contradictory in a WAV header, or null when it is consistent (or when the format is a
 * compressed variant whose layout rules we do not know). Checked before any decoder sees the bytes,
 * so a header that lies about its block alignment is an error instead of garbage samples.
 */
export function wavHeaderProblem(b: Uint8Array): string | null {
  if (ascii(b, 0, 4) !== 'RIFF' || ascii(b, 8, 4) !== 'WAVE') return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 12;
  let sawFmt = false;
  while (pos + 8 <= b.length) {
    const id = ascii(b, pos, 4);
    const size = dv.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (size < 16) return `its fmt chunk is ${size} bytes, a WAV fmt chunk has at least 16`;
      if (body + 16 > b.length) return null; // truncation is reported by the probe
      sawFmt = true;
      let tag = dv.getUint16(body, true);
      if (tag === 0xfffe && size >= 40 && body + 26 <= b.length) tag = dv.getUint16(body + 24, true);
      const channels = dv.getUint16(body + 2, true);
      const blockAlign = dv.getUint16(body + 12, true);
      const bits = dv.getUint16(body + 14, true);
      if (channels === 0) return 'its header declares 0 channels';
      if (channels > MAX_CHANNELS) return `its header declares ${channels} channels (at most ${MAX_CHANNELS} are accepted)`;
      // Layout rules are only certain for PCM (1), float (3), A-law (6) and µ-law (7).
      if (tag === 1 || tag === 3) {
        const ok = tag === 1 ? [8, 16, 24, 32].includes(bits) : bits === 32 || bits === 64;
        if (bits === 0 || bits > 64) return `its header declares ${bits} bits per sample`;
        const expected = channels * Math.ceil(bits / 8);
        if (blockAlign !== expected) {
          return `its block alignment (${blockAlign} bytes per frame) does not match ${channels} channel(s) × ${bits} bits (${expected} bytes)`;
        }
        if (!ok && tag === 3) return `${bits}-bit float samples are not a WAV format (32 or 64 bits)`;
      } else if (tag === 6 || tag === 7) {
        if (bits !== 8 || blockAlign !== channels)
          return `its ${tag === 6 ? 'A-law' : 'µ-law'} header declares ${bits} bits and ${blockAlign} bytes per frame for ${channels} channel(s) (expected 8 bits, ${channels} bytes)`;
      }
    } else if (id === 'data') {
      return sawFmt ? null : 'its data chunk comes before any fmt chunk (no sample format)';
    }
    pos = body + size + (size & 1);
  }
  return null;
}

/**
 * Header sniffing for the audio formats the studio cares about (WAV, FLAC, Ogg, MP3).
 *
 * It never decodes samples. It answers: which format is this, what is its native sample rate
 * (the browser path needs it so WebAudio does not resample), how many frames does the header
 * declare, and does the file end early (truncated download)?  Anything not recognised is left
 * to the decoder, except bytes that are clearly something else (HTML, JSON, images, archives,
 * a Git LFS pointer), which `notAudioHint` names for the error message.
 */

export type AudioFormat = 'wav' | 'flac' | 'ogg-vorbis' | 'ogg-opus' | 'ogg-flac' | 'ogg' | 'mp3';

export interface AudioProbe {
  /** Recognised container/codec, or null when the header matched none of ours. */
  format: AudioFormat | null;
  /** Sample rate the decoder will output, when the header states it. */
  sampleRate?: number;
  channels?: number;
  /** Bits per sample of integer PCM (WAV, FLAC). */
  bitsPerSample?: number;
  /** Frames (samples per channel) the header declares, when it does (WAV, FLAC, MP3 with a Xing/Info tag). */
  declaredFrames?: number;
  /** Set when the bytes end before the header / declared audio / last page or frame is complete. */
  truncated?: string;
}

const ascii = (b: Uint8Array, off: number, len: number): string => {
  let s = '';
  for (let i = off; i < off + len && i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
};
const u16le = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32le = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const u32be = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** The first `n` bytes as lowercase hex pairs: "3c 68 74 6d". */
export function hexHead(b: Uint8Array, n = 4): string {
  return Array.from(b.subarray(0, n), (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/**
 * A guess at what non-audio bytes are, for the error message ("HTML?"); null when no guess.
 * Only called on bytes that did not sniff as a known audio format.
 */
export function notAudioHint(b: Uint8Array): string | null {
  let i = 0;
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) i = 3; // UTF-8 BOM
  while (i < b.length && i < 64 && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a || b[i] === 0x0d)) i++;
  const head = ascii(b, i, 512);
  const lower = head.toLowerCase();
  if (lower.startsWith('version https://git-lfs')) return 'a Git LFS pointer file, not the audio itself — fetch it with `git lfs pull`?';
  if (lower.startsWith('<')) {
    if (lower.includes('<html') || lower.includes('<!doctype html') || lower.includes('<body') || lower.includes('<head')) return 'HTML?';
    return lower.startsWith('<?xml') ? 'XML?' : 'HTML/XML?';
  }
  if (head.startsWith('{') || head.startsWith('[')) return 'JSON?';
  if (head.startsWith('%PDF')) return 'PDF?';
  if (b[0] === 0x89 && ascii(b, 1, 3) === 'PNG') return 'PNG image?';
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'JPEG image?';
  if (ascii(b, 0, 4) === 'GIF8') return 'GIF image?';
  if (b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04) return 'ZIP archive?';
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip-compressed?';
  if (b[0] === 0x7f && ascii(b, 1, 3) === 'ELF') return 'an executable?';
  // Mostly printable ASCII → some text file.
  const n = Math.min(b.length, 256);
  if (n >= 4) {
    let printable = 0;
    for (let k = 0; k < n; k++) {
      const c = b[k];
      if ((c >= 0x20 && c < 0x7f) || c === 0x09 || c === 0x0a || c === 0x0d) printable++;
    }
    if (printable / n > 0.95) return 'text?';
  }
  return null;
}

/** Sniff the format and parse what the header says. Never throws. */
export function probeAudio(b: Uint8Array): AudioProbe {
  try {
    const tag = ascii(b, 0, 4);
    if (tag === 'RIFF' && ascii(b, 8, 4) === 'WAVE') return probeWav(b);
    if (tag === 'RIFF' && b.length < 12) return { format: 'wav', truncated: truncatedHeader('WAV', b.length) };
    if (tag === 'fLaC') return probeFlac(b, 0);
    if (tag === 'OggS') return probeOgg(b);
    if (tag.startsWith('ID3')) {
      const start = id3v2End(b);
      if (start > b.length)
        return { format: 'mp3', truncated: `truncated file: it ends inside its ID3 tag (${b.length} of ${start} bytes)` };
      if (ascii(b, start, 4) === 'fLaC') return probeFlac(b, start);
      return probeMp3(b, start, true);
    }
    if (b[0] === 0xff && (b[1] & 0xe0) === 0xe0 && parseMp3Header(b, 0)) return probeMp3(b, 0, false);
  } catch {
    // fall through: let the decoder have a go
  }
  return { format: null };
}

const truncatedHeader = (what: string, have: number) => `truncated file: it ends inside the ${what} header (only ${have} bytes)`;

// ---------------------------------------------------------------- WAV

function probeWav(b: Uint8Array): AudioProbe {
  let pos = 12;
  let channels: number | undefined;
  let sampleRate: number | undefined;
  let blockAlign: number | undefined;
  let bitsPerSample: number | undefined;
  while (pos + 8 <= b.length) {
    const id = ascii(b, pos, 4);
    const size = u32le(b, pos + 4);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (body + 16 > b.length) return { format: 'wav', truncated: truncatedHeader('WAV', b.length) };
      channels = u16le(b, body + 2);
      sampleRate = u32le(b, body + 4);
      blockAlign = u16le(b, body + 12);
      bitsPerSample = u16le(b, body + 14);
    } else if (id === 'data') {
      if (channels === undefined || sampleRate === undefined || !blockAlign) return { format: 'wav' }; // odd layout: leave it to the decoder
      const available = b.length - body;
      // 0 and 0xFFFFFFFF are used by streaming writers for "unknown length".
      const unknown = size === 0xffffffff || (size === 0 && available > 0);
      const bytes = unknown ? available : Math.min(size, available);
      const align = blockAlign;
      const rate = sampleRate;
      const out: AudioProbe = {
        format: 'wav',
        sampleRate,
        channels,
        bitsPerSample,
        declaredFrames: Math.floor((unknown ? available : size) / align),
      };
      if (!unknown && size > available) {
        const secs = (x: number) => (x / align / rate).toFixed(2);
        out.truncated = `truncated file: its WAV header declares ${secs(size)} s of audio but only ${secs(bytes)} s is present`;
      }
      return out;
    }
    pos = body + size + (size & 1);
  }
  return { format: 'wav', sampleRate, channels, truncated: truncatedHeader('WAV', b.length) };
}

// ---------------------------------------------------------------- FLAC

function probeFlac(b: Uint8Array, start: number): AudioProbe {
  const s = start + 8; // "fLaC" + metadata block header, STREAMINFO first
  if (b.length < s + 34) return { format: 'flac', truncated: truncatedHeader('FLAC', b.length) };
  const sampleRate = (b[s + 10] << 12) | (b[s + 11] << 4) | (b[s + 12] >> 4);
  const channels = ((b[s + 12] >> 1) & 7) + 1;
  const bitsPerSample = (((b[s + 12] & 1) << 4) | (b[s + 13] >> 4)) + 1;
  const total = (b[s + 13] & 0x0f) * 2 ** 32 + u32be(b, s + 14);
  const out: AudioProbe = { format: 'flac', sampleRate, channels, bitsPerSample };
  if (total > 0) out.declaredFrames = total; // 0 = "unknown" in STREAMINFO
  // Walk the metadata blocks: a file that ends among them is truncated.
  let pos = start + 4;
  for (;;) {
    if (pos + 4 > b.length) return { ...out, truncated: truncatedHeader('FLAC', b.length) };
    const last = (b[pos] & 0x80) !== 0;
    const len = (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3];
    pos += 4 + len;
    if (pos > b.length) return { ...out, truncated: truncatedHeader('FLAC', b.length) };
    if (last) break;
  }
  return out;
}

// ---------------------------------------------------------------- Ogg

function probeOgg(b: Uint8Array): AudioProbe {
  const out: AudioProbe = { format: 'ogg' };
  let pos = 0;
  let pages = 0;
  let lastFlags = 0;
  while (pos < b.length) {
    if (ascii(b, pos, 4) !== 'OggS') return out; // junk after/among pages: no verdict
    if (pos + 27 > b.length) return { ...out, truncated: `truncated file: it ends inside an Ogg page header (page ${pages + 1})` };
    const nseg = b[pos + 26];
    if (pos + 27 + nseg > b.length) return { ...out, truncated: `truncated file: it ends inside an Ogg page header (page ${pages + 1})` };
    let bodyLen = 0;
    for (let i = 0; i < nseg; i++) bodyLen += b[pos + 27 + i];
    const body = pos + 27 + nseg;
    if (pages === 0) {
      if (b[body] === 1 && ascii(b, body + 1, 6) === 'vorbis') {
        out.format = 'ogg-vorbis';
        out.channels = b[body + 11];
        out.sampleRate = u32le(b, body + 12);
      } else if (ascii(b, body, 8) === 'OpusHead') {
        out.format = 'ogg-opus';
        out.channels = b[body + 9];
        out.sampleRate = 48000; // Opus always decodes at 48 kHz
      } else if (b[body] === 0x7f && ascii(b, body + 1, 4) === 'FLAC') {
        out.format = 'ogg-flac';
        const si = body + 9 + 8; // 0x7F"FLAC" major minor nheaders(2) "fLaC" blockheader(4)
        if (si + 13 <= b.length) {
          out.sampleRate = (b[si + 10] << 12) | (b[si + 11] << 4) | (b[si + 12] >> 4);
          out.channels = ((b[si + 12] >> 1) & 7) + 1;
        }
      }
    }
    if (body + bodyLen > b.length) {
      return { ...out, truncated: `truncated file: it ends inside Ogg page ${pages + 1} (${b.length - body} of ${bodyLen} body bytes)` };
    }
    lastFlags = b[pos + 5];
    pages++;
    pos = body + bodyLen;
  }
  if (pages > 0 && (lastFlags & 0x04) === 0) {
    return { ...out, truncated: `truncated file: its last Ogg page (page ${pages}) is not marked end-of-stream` };
  }
  return out;
}

// ---------------------------------------------------------------- MP3

function id3v2End(b: Uint8Array): number {
  if (b.length < 10) return 10;
  const size = ((b[6] & 0x7f) << 21) | ((b[7] & 0x7f) << 14) | ((b[8] & 0x7f) << 7) | (b[9] & 0x7f);
  return 10 + size + (b[5] & 0x10 ? 10 : 0);
}

interface Mp3Header {
  version: 1 | 2 | 25;
  layer: 1 | 2 | 3;
  sampleRate: number;
  channels: number;
  frameLength: number;
  samplesPerFrame: number;
}

const MP3_BITRATES: Record<string, number[]> = {
  '1-1': [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  '1-2': [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  '1-3': [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  '2-1': [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  '2-2': [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  '2-3': [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
const MP3_RATES: Record<number, number[]> = { 1: [44100, 48000, 32000], 2: [22050, 24000, 16000], 25: [11025, 12000, 8000] };

function parseMp3Header(b: Uint8Array, p: number): Mp3Header | null {
  if (p + 4 > b.length || b[p] !== 0xff || (b[p + 1] & 0xe0) !== 0xe0) return null;
  const v = (b[p + 1] >> 3) & 3;
  const l = (b[p + 1] >> 1) & 3;
  const bri = b[p + 2] >> 4;
  const sri = (b[p + 2] >> 2) & 3;
  if (v === 1 || l === 0 || bri === 0 || bri === 15 || sri === 3) return null; // reserved / free-format
  const version = v === 3 ? 1 : v === 2 ? 2 : 25;
  const layer = (4 - l) as 1 | 2 | 3;
  const bitrate = MP3_BITRATES[`${version === 1 ? 1 : 2}-${layer}`][bri] * 1000;
  const sampleRate = MP3_RATES[version][sri];
  const pad = (b[p + 2] >> 1) & 1;
  const frameLength =
    layer === 1
      ? (Math.floor((12 * bitrate) / sampleRate) + pad) * 4
      : Math.floor(((layer === 3 && version !== 1 ? 72 : 144) * bitrate) / sampleRate) + pad;
  const samplesPerFrame = layer === 1 ? 384 : layer === 3 && version !== 1 ? 576 : 1152;
  const channels = b[p + 3] >> 6 === 3 ? 1 : 2;
  return { version, layer, sampleRate, channels, frameLength, samplesPerFrame };
}

function probeMp3(b: Uint8Array, start: number, hadId3: boolean): AudioProbe {
  // Find the first frame (allow a little junk after an ID3 tag).
  let pos = start;
  const limit = Math.min(b.length, start + 4096);
  while (pos < limit && !parseMp3Header(b, pos)) pos++;
  const first = parseMp3Header(b, pos);
  if (!first) {
    if (hadId3 && pos >= b.length) return { format: 'mp3', truncated: 'truncated file: it ends before its first MP3 frame' };
    return { format: hadId3 ? 'mp3' : null };
  }
  // Without an ID3 tag, require a second frame right after the first (or EOF) to trust the sync.
  const second = pos + first.frameLength;
  if (!hadId3 && second < b.length && !parseMp3Header(b, second)) return { format: null };

  const out: AudioProbe = { format: 'mp3', sampleRate: first.sampleRate, channels: first.channels };

  // Xing/Info/VBRI tag in the first frame: frame count (excluding the tag frame).
  let taggedFrames: number | undefined;
  const sideInfo = first.version === 1 ? (first.channels === 1 ? 17 : 32) : first.channels === 1 ? 9 : 17;
  const x = pos + 4 + sideInfo;
  const xtag = ascii(b, x, 4);
  if ((xtag === 'Xing' || xtag === 'Info') && x + 12 <= b.length && u32be(b, x + 4) & 1) taggedFrames = u32be(b, x + 8);
  else if (ascii(b, pos + 36, 4) === 'VBRI' && pos + 36 + 18 <= b.length) taggedFrames = u32be(b, pos + 36 + 14);
  if (taggedFrames !== undefined) out.declaredFrames = taggedFrames * first.samplesPerFrame;

  // Walk the frames; a last frame that runs past EOF means the file was cut.
  let frames = 0;
  for (;;) {
    const h = parseMp3Header(b, pos);
    if (!h) {
      const rest = ascii(b, pos, 8);
      const tail = rest.startsWith('TAG') || rest.startsWith('APETAGEX') || rest.startsWith('LYRICS') || pos >= b.length;
      if (!tail) return out; // lost sync (junk or a format quirk): no verdict
      break;
    }
    if (pos + h.frameLength > b.length) {
      out.truncated = `truncated file: it ends inside MP3 frame ${frames + 1} (${b.length - pos} of ${h.frameLength} bytes)`;
      return out;
    }
    frames++;
    pos += h.frameLength;
  }
  if (taggedFrames !== undefined && frames - 1 < taggedFrames) {
    out.truncated = `truncated file: its MP3 header declares ${taggedFrames} frames but only ${frames - 1} are present`;
  }
  return out;
}

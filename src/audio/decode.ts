/**
 * Decode an audio file's bytes (WAV, FLAC, MP3, Ogg Vorbis, …) to float PCM, per channel.
 *
 * Backends, picked by environment (`backend: 'auto'`, the default):
 *  - plain PCM / float WAV is parsed directly (wav.ts) in every environment: exact, synchronous,
 *    integers scaled by 1/2^(bits−1) like browsers, libsndfile and ffmpeg (Whisper's pipeline).
 *  - `webaudio`: `OfflineAudioContext.decodeAudioData` where WebAudio exists (a browser window).
 *    `decodeAudioData` always resamples to its context's rate, so the context is created at the
 *    file's own rate (read from the header by `probeAudio`); the app's `resample` then does the
 *    one, well-specified conversion to 16 kHz in every environment. If WebAudio cannot decode the
 *    file (e.g. a codec the browser lacks), `auto` falls back to `audio-decode`.
 *  - `audio-decode`: the `audio-decode` npm package (pure JS / WASM codecs), used in Node and in
 *    Web Workers, where there is no WebAudio. It is loaded with a dynamic `import()`, so a browser
 *    bundle only fetches it when it is needed.
 *
 * Every failure is an `AudioDecodeError` naming the file and the cause (see errors.ts).
 */
import { AudioDecodeError } from './errors';
import { hexHead, notAudioHint, probeAudio, type AudioFormat, type AudioProbe } from './probe';
import { normalizeInt16Scale } from './pcm-scale';
import { decodePcmWav, MAX_CHANNELS, wavHeaderProblem } from './wav';

export interface DecodedAudio {
  /** Sample rate of `channels`, in Hz. */
  sampleRate: number;
  /** One Float32Array per channel, equal lengths, nominally in [-1, 1]. */
  channels: Float32Array[];
}

/** `auto`: built-in WAV reader for PCM/float WAV, else WebAudio when present, else audio-decode. */
export type DecodeBackend = 'auto' | 'webaudio' | 'audio-decode';

export interface DecodeOptions {
  /** Which decoder to use; `auto` (default) = WebAudio when present, else `audio-decode`. */
  backend?: DecodeBackend;
  /**
   * Return the audio that is present in a truncated file instead of failing.
   * Default false: a cut-off download is reported, not silently half-used.
   */
  allowTruncated?: boolean;
  /**
   * Refuse audio longer than this many seconds (reason `too-long`): from the header before decoding when
   * it states a length (WAV, FLAC, MP3 with a Xing tag), else after decoding, before any resampling.
   * Default DEFAULT_MAX_SECONDS (600).
   */
  maxSeconds?: number;
}

/** Whether this environment has WebAudio's (Offline)AudioContext (a browser window; not Node, not a Worker). */
export function hasWebAudio(): boolean {
  return offlineContextCtor() !== null;
}

type OfflineCtxCtor = new (channels: number, length: number, sampleRate: number) => BaseAudioContext;

function offlineContextCtor(): OfflineCtxCtor | null {
  const g = globalThis as unknown as { OfflineAudioContext?: OfflineCtxCtor; webkitOfflineAudioContext?: OfflineCtxCtor };
  return g.OfflineAudioContext ?? g.webkitOfflineAudioContext ?? null;
}

const FORMAT_NAMES: Record<AudioFormat, string> = {
  wav: 'WAV',
  flac: 'FLAC',
  mp3: 'MP3',
  ogg: 'Ogg',
  'ogg-vorbis': 'Ogg Vorbis',
  'ogg-opus': 'Ogg Opus',
  'ogg-flac': 'Ogg FLAC',
};
const describeFormat = (f: AudioFormat | null) => (f ? FORMAT_NAMES[f] : 'audio');

function toUint8(bytes: ArrayBuffer | Uint8Array, name: string): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) {
    const v = bytes as ArrayBufferView;
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }
  const what = bytes === null ? 'null' : typeof bytes;
  throw new AudioDecodeError(name, 'invalid-input', `expected an ArrayBuffer or Uint8Array, got ${what}`);
}

function errorOf(e: unknown): Error {
  if (e instanceof Error) return e;
  // DOMException is an Error in modern engines; anything else gets wrapped.
  const maybe = e as { name?: unknown; message?: unknown } | null;
  if (maybe && typeof maybe.message === 'string') {
    const err = new Error(maybe.message);
    if (typeof maybe.name === 'string') err.name = maybe.name;
    return err;
  }
  return new Error(String(e));
}

/** Sample rates outside this range are not audio anyone records speech at; a header claiming one is broken. */
export const MIN_SAMPLE_RATE = 1000;
export const MAX_SAMPLE_RATE = 384000;
/**
 * Float WAV may legitimately exceed ±1 a little (unclipped mixes); values beyond this are not audio
 * (random bytes read as floats), and they would swamp the log-mel features.
 */
export const MAX_AMPLITUDE = 64;
/** Default `maxSeconds`: generous for one clip (Whisper sees 30 s), small enough to bound the memory of one decode. */
export const DEFAULT_MAX_SECONDS = 600;

/**
 * Decode `bytes` (the contents of the file called `name`) to per-channel float samples.
 * `name` is only used in error messages. The input is not modified or detached.
 * Every failure, including an unexpected one inside a decoder, is an `AudioDecodeError` naming `name`.
 */
export async function decodeAudio(bytes: ArrayBuffer | Uint8Array, name: string, options: DecodeOptions = {}): Promise<DecodedAudio> {
  try {
    return await decodeChecked(bytes, name, options);
  } catch (e) {
    if (e instanceof AudioDecodeError) throw e;
    const err = errorOf(e);
    throw new AudioDecodeError(name, 'decode-failed', wrapCause(`internal decoder error: ${err.message}`, err));
  }
}

const seconds = (s: number) => (s >= 100 ? s.toFixed(0) : s.toFixed(2));

/** A header's sample rate / channel count / length, checked before any sample is decoded. */
function checkHeader(name: string, u8: Uint8Array, probe: AudioProbe, options: DecodeOptions): void {
  const fmt = describeFormat(probe.format);
  const rate = probe.sampleRate;
  if (rate !== undefined && !(rate >= MIN_SAMPLE_RATE && rate <= MAX_SAMPLE_RATE)) {
    throw new AudioDecodeError(
      name,
      'bad-header',
      `its ${fmt} header declares a sample rate of ${rate} Hz (accepted: ${MIN_SAMPLE_RATE} … ${MAX_SAMPLE_RATE} Hz)`,
    );
  }
  if (probe.channels !== undefined && !(probe.channels >= 1 && probe.channels <= MAX_CHANNELS)) {
    throw new AudioDecodeError(name, 'bad-header', `its ${fmt} header declares ${probe.channels} channels (accepted: 1 … ${MAX_CHANNELS})`);
  }
  if (probe.format === 'wav') {
    const problem = wavHeaderProblem(u8);
    if (problem) throw new AudioDecodeError(name, 'bad-header', `inconsistent WAV header: ${problem}`);
  }
  const max = options.maxSeconds ?? DEFAULT_MAX_SECONDS;
  // The declared length of a truncated file is not what will be decoded; its real length is checked after decoding.
  if (rate && probe.declaredFrames !== undefined && !probe.truncated) {
    const dur = probe.declaredFrames / rate;
    if (dur > max)
      throw new AudioDecodeError(
        name,
        'too-long',
        `too long: its ${fmt} header declares ${seconds(dur)} s of audio (limit ${seconds(max)} s)`,
      );
  }
}

/** First NaN / ±Infinity / absurd magnitude in the decoded channels, or null. */
function badSample(channels: Float32Array[], sampleRate: number): string | null {
  for (let c = 0; c < channels.length; c++) {
    const ch = channels[c];
    for (let i = 0; i < ch.length; i++) {
      const v = ch[i];
      // One comparison for the common case; NaN fails it too.
      if (v >= -MAX_AMPLITUDE && v <= MAX_AMPLITUDE) continue;
      const what = Number.isNaN(v)
        ? 'NaN'
        : !Number.isFinite(v)
          ? v > 0
            ? '+Infinity'
            : '-Infinity'
          : `${v.toPrecision(4)} (beyond ±${MAX_AMPLITUDE}, not audio)`;
      return `sample ${i} of channel ${c + 1} (at ${(i / sampleRate).toFixed(3)} s) is ${what}`;
    }
  }
  return null;
}

async function decodeChecked(bytes: ArrayBuffer | Uint8Array, name: string, options: DecodeOptions): Promise<DecodedAudio> {
  const u8 = toUint8(bytes, name);
  const backend = options.backend ?? 'auto';
  if (u8.length === 0) throw new AudioDecodeError(name, 'empty', 'empty file (0 bytes)');

  const probe = probeAudio(u8);
  if (probe.format === null) {
    const hint = notAudioHint(u8);
    if (hint) throw unsupported(name, u8, hint);
  }
  // An absurd header is named as such before what it implies (no samples, a cut-off file) is reported.
  checkHeader(name, u8, probe, options);
  if (probe.truncated && !options.allowTruncated) throw new AudioDecodeError(name, 'truncated', probe.truncated);
  if (probe.declaredFrames === 0) {
    throw new AudioDecodeError(name, 'zero-length', `zero-length audio: the ${describeFormat(probe.format)} file holds no samples`);
  }

  let out: DecodedAudio;
  try {
    out = await runBackend(u8, probe, backend);
  } catch (e) {
    const err = errorOf(e);
    if (probe.format === null) throw unsupported(name, u8, null, err);
    throw new AudioDecodeError(name, 'decode-failed', wrapCause(`${describeFormat(probe.format)} decoder failed: ${err.message}`, err));
  }
  if (!out || !Array.isArray(out.channels)) throw new AudioDecodeError(name, 'decode-failed', 'decoder returned no channels');

  const frames = out.channels.length ? out.channels[0].length : 0;
  if (frames === 0) {
    if (probe.truncated) throw new AudioDecodeError(name, 'truncated', `${probe.truncated}, and no complete audio could be decoded`);
    throw new AudioDecodeError(name, 'zero-length', `zero-length audio: the ${describeFormat(probe.format)} file decoded to 0 samples`);
  }
  if (!(out.sampleRate >= MIN_SAMPLE_RATE && out.sampleRate <= MAX_SAMPLE_RATE)) {
    throw new AudioDecodeError(
      name,
      'decode-failed',
      `decoder returned a sample rate of ${out.sampleRate} Hz (accepted: ${MIN_SAMPLE_RATE} … ${MAX_SAMPLE_RATE} Hz)`,
    );
  }
  if (out.channels.length > MAX_CHANNELS) {
    throw new AudioDecodeError(name, 'bad-header', `decoder returned ${out.channels.length} channels (accepted: 1 … ${MAX_CHANNELS})`);
  }
  for (const ch of out.channels) {
    if (!ArrayBuffer.isView(ch) || ch.length !== frames)
      throw new AudioDecodeError(name, 'decode-failed', 'decoder returned channels of different lengths');
  }
  const max = options.maxSeconds ?? DEFAULT_MAX_SECONDS;
  if (frames / out.sampleRate > max) {
    throw new AudioDecodeError(name, 'too-long', `too long: ${seconds(frames / out.sampleRate)} s of audio (limit ${seconds(max)} s)`);
  }
  const bad = badSample(out.channels, out.sampleRate);
  if (bad) throw new AudioDecodeError(name, 'invalid-samples', `not audio: ${bad}`);
  // 16-bit lossless sources: make every backend agree on the int16 → float scaling (see pcm-scale.ts).
  if ((probe.format === 'flac' || probe.format === 'wav') && probe.bitsPerSample === 16) normalizeInt16Scale(out.channels);
  // FLAC states its exact length; fewer decoded frames means the file was cut mid-stream.
  if (
    !options.allowTruncated &&
    probe.format === 'flac' &&
    probe.declaredFrames !== undefined &&
    out.sampleRate === probe.sampleRate &&
    frames < probe.declaredFrames
  ) {
    const s = (n: number) => (n / out.sampleRate).toFixed(2);
    throw new AudioDecodeError(
      name,
      'truncated',
      `truncated file: its FLAC header declares ${s(probe.declaredFrames)} s of audio but only ${s(frames)} s could be decoded`,
    );
  }
  return out;
}

function wrapCause(message: string, inner: Error): Error {
  return new Error(message, { cause: inner });
}

function unsupported(name: string, u8: Uint8Array, hint: string | null, inner?: Error): AudioDecodeError {
  const head = hexHead(u8, 4);
  const msg = `not a supported audio format (first bytes: ${head}${hint ? ` = ${hint}` : ''})`;
  return new AudioDecodeError(name, 'unsupported-format', inner ? wrapCause(msg, inner) : msg);
}

async function runBackend(u8: Uint8Array, probe: AudioProbe, backend: DecodeBackend): Promise<DecodedAudio> {
  if (backend === 'audio-decode') return decodeWithAudioDecode(u8);
  if (backend === 'webaudio') return decodeWithWebAudio(u8, probe);
  if (probe.format === 'wav') {
    const pcm = decodePcmWav(u8); // plain PCM / float WAV: exact, synchronous, same everywhere
    if (pcm) return pcm;
  }
  if (!hasWebAudio()) return decodeWithAudioDecode(u8);
  try {
    return await decodeWithWebAudio(u8, probe);
  } catch (webErr) {
    try {
      return await decodeWithAudioDecode(u8);
    } catch (adErr) {
      const a = errorOf(webErr);
      const b = errorOf(adErr);
      throw new Error(`WebAudio: ${a.message}; audio-decode: ${b.message}`, { cause: b });
    }
  }
}

interface AudioDecodeResult {
  channelData: Float32Array[];
  sampleRate: number;
}

async function decodeWithAudioDecode(u8: Uint8Array): Promise<DecodedAudio> {
  const mod = (await import('audio-decode')) as { default: (b: Uint8Array) => Promise<AudioDecodeResult> };
  const r = await mod.default(u8);
  return { sampleRate: r.sampleRate, channels: r.channelData ? Array.from(r.channelData) : [] };
}

/** Context rate for decodeAudioData: the file's own rate when known (so WebAudio does not resample). */
function contextRate(probe: AudioProbe): number {
  const r = probe.sampleRate;
  return r && r >= 3000 && r <= 768000 ? r : 48000;
}

async function decodeWithWebAudio(u8: Uint8Array, probe: AudioProbe): Promise<DecodedAudio> {
  const Ctor = offlineContextCtor();
  if (!Ctor) throw new Error('WebAudio (OfflineAudioContext) is not available in this environment');
  let ctx: BaseAudioContext;
  try {
    ctx = new Ctor(1, 1, contextRate(probe));
  } catch {
    ctx = new Ctor(1, 1, 48000); // rate outside what this browser allows
  }
  // decodeAudioData detaches the buffer it is given: hand it a private copy.
  const copy = u8.slice().buffer;
  const audioBuffer = await new Promise<AudioBuffer>((resolve, reject) => {
    // Old Safari only supports the callback form and returns undefined.
    const p = ctx.decodeAudioData(copy, resolve, (e) => reject(e ?? new Error('decodeAudioData failed')));
    if (p && typeof (p as Promise<AudioBuffer>).then === 'function') (p as Promise<AudioBuffer>).then(resolve, reject);
  });
  const channels: Float32Array[] = [];
  for (let c = 0; c < audioBuffer.numberOfChannels; c++) channels.push(audioBuffer.getChannelData(c));
  return { sampleRate: audioBuffer.sampleRate, channels };
}

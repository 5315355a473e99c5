import { decodeAudio, type DecodeOptions } from './decode';
import { AudioDecodeError } from './errors';
import { toMono } from './mono';
import { resample, WHISPER_SAMPLE_RATE, type ResampleOptions } from './resample';

/** Whisper's input window: a training clip longer than this would be cut, its transcript not. */
export const WHISPER_WINDOW_SECONDS = 30;

/**
 * Bytes of an audio file → mono Float32Array at 16 kHz (Whisper's input):
 * decode (see decodeAudio) → average the channels → band-limited resample.
 * Throws `AudioDecodeError` (naming `name`) when the bytes cannot be decoded, or when they hold more
 * than `maxSeconds` (checked before resampling; pass WHISPER_WINDOW_SECONDS for training clips).
 */
export async function loadAudio16k(
  bytes: ArrayBuffer | Uint8Array,
  name: string,
  options: DecodeOptions & ResampleOptions = {},
): Promise<Float32Array> {
  const decoded = await decodeAudio(bytes, name, options);
  try {
    return resample(toMono(decoded.channels), decoded.sampleRate, WHISPER_SAMPLE_RATE, options);
  } catch (e) {
    // decodeAudio has validated rate and channels, so this is a bug or bad options: still name the file.
    throw new AudioDecodeError(name, 'decode-failed', new Error(`resampling failed: ${(e as Error).message}`, { cause: e }));
  }
}

import { decodeAudio, type DecodeOptions } from './decode';
import { toMono } from './mono';
import { resample, WHISPER_SAMPLE_RATE, type ResampleOptions } from './resample';

/**
 * Bytes of an audio file → mono Float32Array at 16 kHz (Whisper's input):
 * decode (see decodeAudio) → average the channels → band-limited resample.
 * Throws `AudioDecodeError` (naming `name`) when the bytes cannot be decoded.
 */
export async function loadAudio16k(
  bytes: ArrayBuffer | Uint8Array,
  name: string,
  options: DecodeOptions & ResampleOptions = {},
): Promise<Float32Array> {
  const decoded = await decodeAudio(bytes, name, options);
  return resample(toMono(decoded.channels), decoded.sampleRate, WHISPER_SAMPLE_RATE, options);
}

/**
 * Errors raised while turning user-supplied bytes into audio samples.
 *
 * Every failure names the file and the cause, e.g.
 *   Cannot decode "clip7.mp3": not a supported audio format (first bytes: 3c 68 74 6d = HTML?)
 */

/** Machine-readable category of a decode failure. */
export type AudioDecodeReason =
  /** The file has 0 bytes. */
  | 'empty'
  /** The bytes are not (a recognised) audio format. */
  | 'unsupported-format'
  /** The file ends before its header (or the audio its header declares) is complete. */
  | 'truncated'
  /** A well-formed file that holds no audio samples. */
  | 'zero-length'
  /** The decoder itself failed (corrupt data, unsupported codec variant, ...). */
  | 'decode-failed'
  /** The argument was not an ArrayBuffer / Uint8Array. */
  | 'invalid-input'
  /** The header is self-contradictory or absurd (sample rate, channels, block alignment); nothing was decoded. */
  | 'bad-header'
  /** Longer than the caller's limit (`maxSeconds`); checked from the header before decoding when it states a length. */
  | 'too-long'
  /** Decoded samples that are not audio: NaN, ±Infinity, or magnitudes far beyond full scale. */
  | 'invalid-samples';

export class AudioDecodeError extends Error {
  /** The file name the caller gave (used verbatim in the message). */
  readonly file: string;
  /** What went wrong: always an `Error`; for decoder failures the decoder's own error. */
  override readonly cause: Error;
  /** Category, for UI logic (e.g. offer "git lfs pull" for an LFS pointer). */
  readonly reason: AudioDecodeReason;

  constructor(file: string, reason: AudioDecodeReason, cause: Error | string) {
    const causeErr = typeof cause === 'string' ? new Error(cause) : cause;
    super(`Cannot decode "${file}": ${causeErr.message}`, { cause: causeErr });
    this.name = 'AudioDecodeError';
    this.file = file;
    this.reason = reason;
    this.cause = causeErr;
  }
}

export { AudioDecodeError, type AudioDecodeReason } from './errors';
export {
  decodeAudio,
  hasWebAudio,
  DEFAULT_MAX_SECONDS,
  MAX_AMPLITUDE,
  MAX_SAMPLE_RATE,
  MIN_SAMPLE_RATE,
  type DecodedAudio,
  type DecodeBackend,
  type DecodeOptions,
} from './decode';
export { probeAudio, type AudioFormat, type AudioProbe } from './probe';
export { toMono } from './mono';
export { resample, describeResampler, WHISPER_SAMPLE_RATE, type ResampleOptions, type ResamplerDesign } from './resample';
export { loadAudio16k, WHISPER_WINDOW_SECONDS } from './load';
export { MAX_CHANNELS } from './wav';

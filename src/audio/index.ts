export { AudioDecodeError, type AudioDecodeReason } from './errors';
export { decodeAudio, hasWebAudio, type DecodedAudio, type DecodeBackend, type DecodeOptions } from './decode';
export { probeAudio, type AudioFormat, type AudioProbe } from './probe';
export { toMono } from './mono';
export { resample, describeResampler, WHISPER_SAMPLE_RATE, type ResampleOptions, type ResamplerDesign } from './resample';
export { loadAudio16k } from './load';

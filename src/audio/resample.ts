/**
 * Band-limited sample-rate conversion: windowed-sinc (Kaiser window) interpolation.
 *
 * Design (defaults), with Nyq = min(fromRate, toRate) / 2 — the lower of the two Nyquist
 * frequencies (8 kHz for any conversion to or from 16 kHz above it):
 *   - passband edge  0.90 · Nyq (7.2 kHz at 16 kHz out): gain 1 ± 1e-5 (≈ ±0.0001 dB) up to here;
 *   - stopband edge  1.00 · Nyq (8 kHz): everything at or above it is attenuated by ≥ 100 dB, so
 *     when downsampling nothing above the new Nyquist folds back (anti-aliasing), and when
 *     upsampling no spectral images appear above the old Nyquist;
 *   - -6 dB point    0.95 · Nyq; linear phase, no delay (output sample n is input time n·from/to);
 *   - length: the Kaiser estimate N = (A − 7.95) / (14.36 · Δf) input samples, Δf = 0.1·Nyq/fromRate,
 *     e.g. 384 taps per output sample from 48 kHz, 354 from 44.1 kHz, 128 from 8 kHz.
 * Exact polyphase coefficients are used when fromRate/toRate reduce to a fraction with numerator
 * ≤ 2048 (all common rates: 44.1k→16k is 160/441); otherwise (odd or non-integer rates) the kernel
 * is read from a table of 1024 points per input sample with linear interpolation (error < 1e-6).
 * The signal is taken as zero outside the input, so the first and last ~N/2 input samples see
 * the filter's edge transient (as in any linear-phase resampler, e.g. sox).
 * Output length: ceil(length · toRate / fromRate). Arithmetic is float64, output float32.
 *
 * Measured against the analytic result and against `sox rate -v`: see test/audio/resample.test.ts.
 */

export const WHISPER_SAMPLE_RATE = 16000;

export interface ResampleOptions {
  /** Passband edge as a fraction of the lower Nyquist frequency; the stopband starts at 1.0. Default 0.9. */
  passband?: number;
  /** Stopband attenuation in dB (also sets the passband ripple, 10^(-A/20)). Default 100. */
  attenuationDb?: number;
}

export interface ResamplerDesign {
  fromRate: number;
  toRate: number;
  passbandHz: number;
  stopbandHz: number;
  cutoffHz: number;
  attenuationDb: number;
  /** Kaiser β. */
  beta: number;
  /** Filter taps per output sample (input samples the kernel spans). */
  taps: number;
  /** `polyphase` (exact coefficient table) or `interpolated` (fine kernel table). */
  mode: 'polyphase' | 'interpolated';
  /** Interpolation factor L and decimation factor M (polyphase mode). */
  L?: number;
  M?: number;
}

interface Plan {
  design: ResamplerDesign;
  /** Number of taps per output sample, 2K. */
  width: number;
  K: number;
  /** polyphase: L rows of `width` coefficients; interpolated: kernel at t = j / DENSITY, j = 0..K·DENSITY+1. */
  table: Float64Array;
}

const MAX_PHASES = 2048;
const DENSITY = 1024;

/** Zeroth-order modified Bessel function of the first kind (power series). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function checkRate(r: number, what: string): void {
  if (typeof r !== 'number' || !Number.isFinite(r) || r <= 0)
    throw new RangeError(`resample: ${what} must be a positive finite number, got ${r}`);
}

/** The filter `resample` would use for this conversion (for docs, UI and tests). */
export function describeResampler(fromRate: number, toRate = WHISPER_SAMPLE_RATE, options: ResampleOptions = {}): ResamplerDesign {
  return plan(fromRate, toRate, options).design;
}

const planCache = new Map<string, Plan>();

function plan(fromRate: number, toRate: number, options: ResampleOptions): Plan {
  checkRate(fromRate, 'fromRate');
  checkRate(toRate, 'toRate');
  const passband = options.passband ?? 0.9;
  const A = options.attenuationDb ?? 100;
  if (!(passband > 0 && passband < 1)) throw new RangeError(`resample: passband must be in (0, 1), got ${passband}`);
  if (!(A >= 20 && A <= 200)) throw new RangeError(`resample: attenuationDb must be in [20, 200], got ${A}`);
  const key = `${fromRate}:${toRate}:${passband}:${A}`;
  const cached = planCache.get(key);
  if (cached) return cached;

  const nyq = Math.min(fromRate, toRate) / 2;
  const fp = passband * nyq;
  const fs = nyq;
  const fc = (fp + fs) / 2 / fromRate; // cutoff, cycles per input sample
  const df = (fs - fp) / fromRate; // transition width, cycles per input sample
  const beta = A > 50 ? 0.1102 * (A - 8.7) : 0.5842 * (A - 21) ** 0.4 + 0.07886 * (A - 21);
  const half = (A - 7.95) / (14.36 * df) / 2; // kernel half-width, input samples
  const K = Math.ceil(half);
  // Taps per output sample, rounded up to a multiple of 4 (extra taps fall outside the kernel: zeros).
  const width = Math.ceil((2 * K) / 4) * 4;
  const i0b = besselI0(beta);
  const h = (t: number): number => {
    const a = Math.abs(t);
    if (a >= half) return 0;
    const x = 2 * fc * t;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    const r = a / half;
    return 2 * fc * sinc * (besselI0(beta * Math.sqrt(1 - r * r)) / i0b);
  };

  let L = 0;
  let M = 0;
  if (Number.isInteger(fromRate) && Number.isInteger(toRate)) {
    const g = gcd(fromRate, toRate);
    L = toRate / g;
    M = fromRate / g;
  }
  const design: ResamplerDesign = {
    fromRate,
    toRate,
    passbandHz: fp,
    stopbandHz: fs,
    cutoffHz: fc * fromRate,
    attenuationDb: A,
    beta,
    taps: width,
    mode: L > 0 && L <= MAX_PHASES ? 'polyphase' : 'interpolated',
  };
  let table: Float64Array;
  if (design.mode === 'polyphase') {
    design.L = L;
    design.M = M;
    table = new Float64Array(L * width);
    for (let p = 0; p < L; p++) {
      const frac = p / L;
      for (let i = 0; i < width; i++) table[p * width + i] = h(frac + K - 1 - i);
    }
  } else {
    table = new Float64Array(K * DENSITY + 2);
    for (let j = 0; j < table.length; j++) table[j] = h(j / DENSITY);
  }
  const result: Plan = { design, width, K, table };
  if (planCache.size > 16) planCache.clear();
  planCache.set(key, result);
  return result;
}

/**
 * Resample `samples` from `fromRate` to `toRate` (default 16 kHz, Whisper's rate).
 * When the rates are equal the very same array is returned (no copy).
 */
export function resample(
  samples: Float32Array,
  fromRate: number,
  toRate = WHISPER_SAMPLE_RATE,
  options: ResampleOptions = {},
): Float32Array {
  checkRate(fromRate, 'fromRate');
  checkRate(toRate, 'toRate');
  if (fromRate === toRate) return samples;
  const pl = plan(fromRate, toRate, options);
  const n = samples.length;
  const outLen = Math.ceil((n * toRate) / fromRate - 1e-9);
  const out = new Float32Array(outLen);
  if (n === 0) return out;
  const { width, K, table } = pl;
  const x = samples;

  if (pl.design.mode === 'polyphase') {
    const L = pl.design.L!;
    const M = pl.design.M!;
    let k0 = 0; // floor(j·M/L)
    let p = 0; // (j·M) mod L
    for (let j = 0; j < outLen; j++) {
      const base = k0 - K + 1;
      const row = p * width;
      let acc = 0;
      if (base >= 0 && base + width <= n) {
        // width is a multiple of 4; separate accumulators let the JIT pipeline the multiply-adds.
        let a1 = 0;
        let a2 = 0;
        let a3 = 0;
        for (let i = 0; i < width; i += 4) {
          const b = base + i;
          const r = row + i;
          acc += x[b] * table[r];
          a1 += x[b + 1] * table[r + 1];
          a2 += x[b + 2] * table[r + 2];
          a3 += x[b + 3] * table[r + 3];
        }
        acc += a1 + a2 + a3;
      } else {
        const lo = Math.max(0, -base);
        const hi = Math.min(width, n - base);
        for (let i = lo; i < hi; i++) acc += x[base + i] * table[row + i];
      }
      out[j] = acc;
      p += M;
      if (p >= L) {
        k0 += Math.floor(p / L);
        p %= L;
      }
    }
    return out;
  }

  const step = fromRate / toRate;
  const maxIdx = table.length - 2;
  for (let j = 0; j < outLen; j++) {
    const t = j * step;
    const k0 = Math.floor(t);
    const frac = t - k0;
    const base = k0 - K + 1;
    const lo = Math.max(0, -base);
    const hi = Math.min(width, n - base);
    let acc = 0;
    for (let i = lo; i < hi; i++) {
      const pos = Math.abs(frac + K - 1 - i) * DENSITY;
      const idx = Math.floor(pos);
      if (idx > maxIdx) continue;
      const w = pos - idx;
      acc += x[base + i] * (table[idx] + w * (table[idx + 1] - table[idx]));
    }
    out[j] = acc;
  }
  return out;
}

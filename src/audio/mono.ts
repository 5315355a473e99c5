/**
 * Downmix to mono by averaging the channels (equal weights, 1/C each).
 * A single channel is returned as is (same array, no copy). All channels must have equal length.
 */
export function toMono(channels: readonly Float32Array[]): Float32Array {
  if (channels.length === 0) throw new RangeError('toMono: no channels');
  if (channels.length === 1) return channels[0];
  const n = channels[0].length;
  for (const ch of channels) {
    if (ch.length !== n) throw new RangeError(`toMono: channel lengths differ (${channels.map((c) => c.length).join(', ')})`);
  }
  const out = new Float32Array(n);
  const scale = 1 / channels.length;
  if (channels.length === 2) {
    const [a, b] = channels;
    for (let i = 0; i < n; i++) out[i] = (a[i] + b[i]) * 0.5;
    return out;
  }
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const ch of channels) s += ch[i];
    out[i] = s * scale;
  }
  return out;
}

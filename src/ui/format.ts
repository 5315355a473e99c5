// Numbers for people: chart ticks and read-outs. A tick must be short (the axis is 64 px wide) and exact
// enough to tell neighbouring ticks apart; a read-out keeps 4 significant digits.

/** Strip trailing zeros of a fixed or exponential mantissa: "5.000e-4" → "5e-4", "0.2500" → "0.25". */
function trim(s: string): string {
  const [m, e] = s.split('e');
  const mt = m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m;
  return e === undefined ? mt : `${mt}e${Number(e)}`;
}

/** Axis tick: 3 significant digits at most; exponent form outside [1e-3, 1e5). 5e-4, 1.5e-4, 0.25, 12.3, 2e5. */
export function formatTick(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) return trim(v.toExponential(2));
  return trim(v.toPrecision(3));
}

/** Read-out next to a chart title or in a tooltip: 4 significant digits, exponent form outside [1e-3, 1e5). */
export function formatValue(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) return trim(v.toExponential(3));
  return a >= 1000 ? v.toFixed(0) : trim(v.toPrecision(4));
}

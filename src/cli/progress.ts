// A terminal progress bar with rate and ETA, on stderr (stdout stays clean for results). In a non-TTY
// (CI logs) it prints a line every ~10 % instead of redrawing.
export class ProgressBar {
  private start = Date.now();
  private lastPct = -1;
  constructor(
    private total: number,
    private label: string,
    private stream = process.stderr,
  ) {}

  update(done: number, note = ''): void {
    const frac = this.total ? done / this.total : 1;
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed * (this.total - done)) / done : NaN;
    const fmt = (s: number) =>
      !Number.isFinite(s) ? '?' : s < 60 ? `${s.toFixed(0)}s` : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
    const text = `${this.label} ${done}/${this.total} ${(frac * 100).toFixed(0)}% elapsed ${fmt(elapsed)} ETA ${fmt(eta)} ${note}`;
    if (this.stream.isTTY) {
      const width = 24;
      const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '░');
      this.stream.write(
        `\r${bar} ${text}`.slice(0, (this.stream.columns ?? 120) - 1).padEnd(Math.min(119, (this.stream.columns ?? 120) - 1)),
      );
      if (done >= this.total) this.stream.write('\n');
    } else {
      const pct = Math.floor(frac * 10);
      if (pct !== this.lastPct || done >= this.total) {
        this.lastPct = pct;
        this.stream.write(`${text}\n`);
      }
    }
  }
}

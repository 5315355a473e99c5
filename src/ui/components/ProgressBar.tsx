// A progress bar with bytes, percent and ETA (from the rate since the stage started).
export function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${n} B`;
}

export function eta(loaded: number, total: number, startedAt: number): string {
  const elapsed = (performance.now() - startedAt) / 1000;
  if (loaded <= 0 || elapsed < 0.3) return '…';
  const s = ((total - loaded) * elapsed) / loaded;
  return s < 1 ? '<1 s' : s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

export function ProgressBar(props: { label: string; loaded?: number; total?: number | null; startedAt?: number; unit?: string }) {
  const { label, loaded, total, startedAt, unit } = props;
  const fmt = (n: number) => (unit ? `${n}` : formatBytes(n));
  const frac = loaded !== undefined && total ? Math.min(1, loaded / total) : null;
  return (
    <div className="progress" data-testid="progress" role="progressbar" aria-valuenow={frac === null ? undefined : Math.round(frac * 100)}>
      <div className="progress-label">
        <span>{label}</span>
        {loaded !== undefined && (
          <span className="muted">
            {fmt(loaded)}
            {total
              ? ` / ${fmt(total)}${unit ? ` ${unit}` : ''} · ${Math.round((frac ?? 0) * 100)} % · ETA ${eta(loaded, total, startedAt ?? performance.now())}`
              : ''}
          </span>
        )}
      </div>
      <div className="progress-track">
        <div
          className={frac === null ? 'progress-fill indeterminate' : 'progress-fill'}
          style={{ width: frac === null ? '30%' : `${frac * 100}%` }}
        />
      </div>
    </div>
  );
}

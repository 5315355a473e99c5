// All runs side by side: final metrics, the WER-new vs WER-base trade-off (one point per run, β as
// label) and the β-sweep curve. Runs persist across reloads (IndexedDB).
import { CartesianGrid, LabelList, Legend, Line, LineChart, Scatter, ScatterChart, Tooltip, XAxis, YAxis, ZAxis } from 'recharts';
import { deleteRun } from '../training';
import { definition, loraReference, maybePct, pct, pierAt, pts, summarize, versusLora } from '../runMetrics';
import { useStudio } from '../store';
import { compareSentence } from '../summary';
import { formatBeta } from './ExperimentPanel';

export function CompareView() {
  const runs = useStudio((s) => s.runs);
  const set = useStudio((s) => s.set);
  const rows = runs.map((r) => ({ r, s: summarize(r), lora: r.config.method === 'blora' ? loraReference(runs, r) : undefined }));
  // PIER (code-switched words) column only when some run's eval sets have per-word language tags
  const anyPier = rows.some(({ r, s }) => pierAt(r.evals, s.step) !== undefined);
  const label = (r: (typeof rows)[number]['r']) => (r.config.method === 'blora' ? `β=${formatBeta(r.config.adapter.beta)}` : 'LoRA');
  const points = rows.filter((x) => x.s.werNew !== undefined && x.s.werBase !== undefined && x.s.step > 0);
  // Runs that land on the same point (a β sweep often does, on small eval sets) share one dot and one
  // label ("β=1e-5, 1e-4"): separate labels would be drawn on top of each other.
  const scatter = (method: 'lora' | 'blora') => {
    const at = new Map<string, { x: number; y: number; labels: string[]; runs: number }>();
    for (const p of points.filter((x) => x.r.config.method === method)) {
      const x = p.s.werBase! * 100;
      const y = p.s.werNew! * 100;
      const key = `${x.toFixed(1)}|${y.toFixed(1)}`;
      const g = at.get(key) ?? at.set(key, { x, y, labels: [], runs: 0 }).get(key)!;
      const l = label(p.r);
      if (!g.labels.includes(l)) g.labels.push(l);
      g.runs++;
    }
    return [...at.values()].map((g) => ({
      x: g.x,
      y: g.y,
      runs: g.runs,
      label: method === 'blora' ? `β=${g.labels.map((l) => l.replace(/^β=/, '')).join(', ')}` : g.runs > 1 ? `LoRA ×${g.runs}` : 'LoRA',
    }));
  };
  const sweep = points
    .filter((x) => x.r.config.method === 'blora' && x.r.config.adapter.beta > 0)
    .map((x) => ({ logBeta: Math.log10(x.r.config.adapter.beta), werNew: x.s.werNew! * 100, werBase: x.s.werBase! * 100 }))
    .sort((a, b) => a.logBeta - b.logBeta);
  return (
    <section className="panel" data-testid="compare-view">
      <h2>Compare runs</h2>
      {!runs.length && <p className="muted">No runs yet.</p>}
      {compareSentence(runs) && (
        <p data-testid="compare-summary">
          <b>{compareSentence(runs)}</b>
        </p>
      )}
      <table data-testid="compare-table">
        <thead>
          <tr>
            <th>run</th>
            <th>method</th>
            <th>status</th>
            <th>steps</th>
            <th>CE</th>
            <th title={definition('werNew')}>WER new</th>
            {anyPier && (
              <th title="PIER: error rate on the embedded-language (code-switched) words of the new-domain references (src/metrics/pier.ts)">
                PIER new
              </th>
            )}
            <th title={definition('werBase')}>WER base</th>
            <th title={definition('forgetting')}>forgetting F</th>
            <th title={definition('backwardGain')}>backward gain vs LoRA</th>
            <th title={definition('newDomainDrop')}>new-domain drop vs LoRA</th>
            <th title={definition('sparsity')}>|μ| &lt; 1e-3 (A, B)</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.map(({ r, s, lora }) => {
            const vs = lora ? versusLora(r, lora) : undefined;
            return (
              <tr key={r.id} data-testid="compare-row" data-run={r.id}>
                <td>
                  <a href="#" onClick={(e) => (e.preventDefault(), set({ activeRun: r.id, view: 'run' }))}>
                    {r.name}
                  </a>
                </td>
                <td>{label(r)}</td>
                <td>{r.status}</td>
                <td>
                  {r.train.at(-1)?.step ?? 0}/{r.config.optim.steps}
                </td>
                <td>{s.finalCe?.toFixed(3) ?? '—'}</td>
                <td data-testid="compare-wer-new">{pct(s.werNew)}</td>
                {anyPier && <td data-testid="compare-pier-new">{pct(pierAt(r.evals, s.step))}</td>}
                <td data-testid="compare-wer-base">{pct(s.werBase)}</td>
                <td data-testid="compare-forgetting">{pts(s.forgetting)}</td>
                <td data-testid="compare-backward-gain" title={maybePct(vs?.backwardGain).title}>
                  {maybePct(vs?.backwardGain).text}
                </td>
                <td data-testid="compare-new-drop" title={maybePct(vs?.newDrop).title}>
                  {maybePct(vs?.newDrop).text}
                </td>
                <td>{s.sparsity !== undefined ? pct(s.sparsity) : '—'}</td>
                <td>
                  <button onClick={() => void deleteRun(r.id)}>delete</button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <div className="charts">
        <div className="chart" data-testid="tradeoff" data-points={points.length}>
          <h3>trade-off: WER new domain vs WER base domain (%)</h3>
          <ScatterChart width={420} height={280} margin={{ top: 10, right: 20, bottom: 20, left: 4 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis
              type="number"
              dataKey="x"
              name="WER base %"
              label={{ value: 'WER base %', position: 'insideBottom', offset: -10 }}
              domain={['auto', 'auto']}
            />
            <YAxis type="number" dataKey="y" name="WER new %" width={50} domain={['auto', 'auto']} />
            <ZAxis range={[60, 60]} />
            <Tooltip />
            <Legend verticalAlign="top" />
            <Scatter name="BLoRA" data={scatter('blora')} fill="#3b6fd8" isAnimationActive={false}>
              <LabelList dataKey="label" position="right" />
            </Scatter>
            <Scatter name="LoRA" data={scatter('lora')} fill="#d8693b" isAnimationActive={false}>
              {/* below its point: a BLoRA run with the same WERs puts its label to the right */}
              <LabelList dataKey="label" position="bottom" />
            </Scatter>
          </ScatterChart>
        </div>
        <div className="chart" data-testid="beta-sweep" data-points={sweep.length}>
          <h3>β sweep: WER % vs log10 β</h3>
          <LineChart width={420} height={280} data={sweep} margin={{ top: 10, right: 20, bottom: 20, left: 4 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis
              type="number"
              dataKey="logBeta"
              domain={['dataMin', 'dataMax']}
              label={{ value: 'log10 β', position: 'insideBottom', offset: -10 }}
            />
            <YAxis width={50} />
            <Tooltip />
            <Legend verticalAlign="top" />
            <Line dataKey="werNew" name="WER new" stroke="#3b6fd8" isAnimationActive={false} />
            <Line dataKey="werBase" name="WER base" stroke="#2e9e5b" isAnimationActive={false} />
          </LineChart>
        </div>
      </div>
    </section>
  );
}

// The live run: progress + ETA, pause/resume/stop, streaming charts (CE, KL, β·KL, loss, lr, grad-norm,
// tokens/s), the |μ| histogram (log-scale bins, LoRA vs BLoRA overlay) and WER on the base and
// code-switched eval sets with forgetting (and backward gain / new-domain drop against a LoRA run).
import { useState } from 'react';
import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ReferenceLine, Tooltip, XAxis, YAxis } from 'recharts';
import { betaAt, type TrainRecord } from '../../train/config';
import type { Histogram } from '../../worker/train-protocol';
import { definition, evalSteps, loraReference, maybePct, pct, pierAt, pts, summarize, versusLora, werAt } from '../runMetrics';
import { useStudio, type RunState } from '../store';
import { pauseRun, resumeRun, setRunBeta, stopRun } from '../training';
import { betaFromSlider, formatBeta } from './ExperimentPanel';
import { formatTick, formatValue } from '../format';
import { runSentence } from '../summary';

const W = 340,
  H = 190;
const COLORS = ['#3b6fd8', '#d8693b', '#2e9e5b', '#9b3bd8', '#c9a227'];

const fmt = formatValue;

/** A β change on the charts: a vertical line at the step β took effect. */
interface BetaMark {
  step: number;
  beta: number;
}

function Series(props: {
  id: string;
  title: string;
  rows: Record<string, number>[];
  keys: { key: string; name: string }[];
  log?: boolean;
  marks?: BetaMark[];
}) {
  const { id, title, rows, keys, log, marks } = props;
  const latest = rows.at(-1);
  return (
    <div className="chart" data-testid={`chart-${id}`} data-points={rows.length} data-beta-marks={marks?.map((m) => m.step).join(',')}>
      <h3>
        {title}{' '}
        <span className="muted small" data-testid={`latest-${id}`}>
          {latest ? keys.map((k) => `${k.name} ${fmt(latest[k.key])}`).join(' · ') : 'no data yet'}
        </span>
      </h3>
      <LineChart width={W} height={H} data={rows} margin={{ top: 4, right: 12, bottom: 4, left: 4 }}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} />
        <YAxis
          scale={log ? 'log' : 'auto'}
          domain={log ? ['auto', 'auto'] : undefined}
          tickFormatter={formatTick}
          width={64}
          allowDataOverflow
        />
        <Tooltip formatter={(v) => fmt(Number(v))} />
        {keys.length > 1 && <Legend />}
        {keys.map((k, i) => (
          <Line key={k.key} dataKey={k.key} name={k.name} stroke={COLORS[i]} dot={{ r: 2 }} isAnimationActive={false} />
        ))}
        {marks?.map((m) => (
          <ReferenceLine
            key={m.step}
            x={m.step}
            stroke="#9b3bd8"
            strokeDasharray="4 3"
            ifOverflow="extendDomain"
            label={{ value: `β ${formatBeta(m.beta)}`, position: 'insideTopRight', fontSize: 10, fill: '#9b3bd8' }}
          />
        ))}
      </LineChart>
    </div>
  );
}

function histRows(h: Histogram, other?: Histogram) {
  return h.a.map((_, i) => ({
    bin: h.edges[i] <= h.edges[0] ? `<1e${h.edges[1]}` : `1e${h.edges[i].toFixed(2).replace(/\.00$/, '')}`,
    run: h.a[i] + h.b[i],
    other: other ? (other.a[i] ?? 0) + (other.b[i] ?? 0) : undefined,
  }));
}

export function MuHistogram({ run, runs }: { run: RunState; runs: RunState[] }) {
  const h = run.hist;
  const otherMethod = run.config.method === 'blora' ? 'lora' : 'blora';
  const other = runs.filter((r) => r.id !== run.id && r.config.method === otherMethod && r.hist).at(-1);
  if (!h) return <p className="muted">|μ| histogram: waiting for the first step…</p>;
  const rows = histRows(h, other?.hist);
  const label = (r: RunState) => `${r.config.method === 'blora' ? `BLoRA β=${formatBeta(r.config.adapter.beta)}` : 'LoRA'} (${r.name})`;
  return (
    <div
      className="chart"
      data-testid="mu-histogram"
      data-bins={rows.length}
      data-nonzero={rows.filter((r) => r.run > 0).length}
      data-step={h.step}
    >
      <h3>
        |μ| of A and B, step {h.step} <span className="muted small">log10 bins{other ? `; overlay: ${label(other)}` : ''}</span>
      </h3>
      <BarChart width={W * 2} height={H + 20} data={rows} barGap={0} margin={{ top: 4, right: 12, bottom: 4, left: 4 }}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="bin" interval={3} />
        <YAxis width={64} />
        <Tooltip />
        <Legend />
        <Bar dataKey="run" name={label(run)} fill={run.config.method === 'blora' ? '#3b6fd8' : '#d8693b'} isAnimationActive={false} />
        {other && (
          <Bar
            dataKey="other"
            name={label(other)}
            fill={other.config.method === 'blora' ? '#3b6fd8' : '#d8693b'}
            fillOpacity={0.45}
            isAnimationActive={false}
          />
        )}
      </BarChart>
    </div>
  );
}

const BETA_MIN_LOG = -8;
const BETA_MAX_LOG = 0;

/**
 * β of a training BLoRA run, changed live: log-scale slider as the Experiment panel's, applied from the next
 * step (the worker puts {step, β} into the run's β schedule: records, charts, checkpoint and exported
 * experiment.json keep it).
 */
function BetaControl({ run, next }: { run: RunState; next: number }) {
  const now = betaAt(run.config, next);
  const [pending, setPending] = useState<number | null>(null);
  const shown = pending ?? now;
  const log = Math.log10(Math.max(shown, 10 ** BETA_MIN_LOG));
  const schedule = run.config.adapter.betaSchedule ?? [];
  const canChange = run.status === 'running' || run.status === 'paused';
  return (
    <div className="row" data-testid="run-beta-control" data-beta={now}>
      <label className="field wide">
        <span>
          β (KL weight) from step {next}: <b data-testid="run-beta-value">{formatBeta(shown)}</b>
          {pending !== null && pending !== now ? <span className="muted small"> (now {formatBeta(now)})</span> : null}
        </span>
        <input
          type="range"
          min={BETA_MIN_LOG}
          max={BETA_MAX_LOG}
          step={0.25}
          value={log}
          aria-label="log10 β of the run"
          data-testid="run-beta"
          disabled={!canChange}
          onChange={(e) => setPending(betaFromSlider(e.target.value))}
        />
      </label>
      <button
        data-testid="run-beta-apply"
        disabled={!canChange || pending === null || pending === now}
        onClick={() => {
          if (pending === null) return;
          setRunBeta(run.id, pending);
          setPending(null);
        }}
      >
        Apply β from the next step
      </button>
      <span className="muted small" data-testid="run-beta-schedule">
        schedule:{' '}
        {[{ step: 1, beta: run.config.adapter.beta }, ...schedule]
          .filter((e, i, a) => !(i === 0 && a[1]?.step === 1))
          .map((e) => `step ${e.step}: ${formatBeta(e.beta)}`)
          .join(' · ')}
      </span>
    </div>
  );
}

/**
 * "Where the adapter is unsure": the eval utterances sorted by the posterior score (disagreement of K sample
 * transcripts; LoRA: token entropy), with how well the score flags the wrong ones (AUROC) and the token ECE.
 */
function Unsure({ run }: { run: RunState }) {
  const u = run.uncertainty!;
  const byDis = u.K > 0;
  const key = (r: (typeof u.rows)[number]) => (byDis ? (r.disagreement ?? 0) : r.entropy);
  const rows = [...u.rows].sort((a, b) => key(b) - key(a) || b.entropy - a.entropy).slice(0, 12);
  const f = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(2));
  return (
    <div data-testid="run-uncertainty">
      <h3>Where the adapter is unsure</h3>
      <p className="small muted">
        {byDis
          ? `${u.K} posterior samples of the adapter decoded beside its mean: disagreement = their mean WER against the mean's transcript; entropy = mean token entropy of the mean's transcript (nats).`
          : 'LoRA has no posterior: sorted by the mean token entropy of its transcripts (nats).'}{' '}
        AUROC: how well a score flags the utterances with errors (0.5 = chance); ECE: token calibration (0 = calibrated).
      </p>
      <p className="small">
        {Object.entries(u.byRole).map(([role, b]) => (
          <span key={role} data-testid={`run-uncertainty-${role}`}>
            {role === 'new' ? 'new domain' : 'base domain'}: AUROC disagreement {f(b.aurocDisagreement)}, entropy {f(b.aurocEntropy)}; ECE{' '}
            {f(b.ece)} ({b.wrong}/{b.utterances} wrong) ·{' '}
          </span>
        ))}
      </p>
      <table className="small">
        <thead>
          <tr>
            <th>{byDis ? 'disagreement' : 'entropy'}</th>
            <th>set</th>
            <th>transcript (mean adapter)</th>
            <th>reference</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.set}/${r.id}`} className={r.wrong ? 'err' : ''}>
              <td>{f(key(r))}</td>
              <td>{r.set}</td>
              <td>{r.hypothesis}</td>
              <td className="muted">{r.reference}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Dev CE per evaluation, the lowest marked; with eval.select 'dev-ce' that step's adapter is the run's result. */
function DevLine({ run }: { run: RunState }) {
  const dev = [...(run.dev ?? [])].sort((a, b) => a.step - b.step);
  const best = dev.reduce((b, d) => (d.ce < b.ce ? d : b));
  const select = run.config.eval.select === 'dev-ce';
  return (
    <p className="small" data-testid="run-dev" data-best-step={best.step}>
      <b>dev CE</b> (teacher-forced, posterior means, {dev[0].utterances} utterances):{' '}
      {dev.map((d) => (
        <span key={d.step} className={d === best ? 'ok' : 'muted'}>
          {` step ${d.step}: ${d.ce.toFixed(4)}`}
        </span>
      ))}
      {' — '}
      {select
        ? `the run's adapter is the one of step ${best.step} (lowest dev CE)`
        : `lowest at step ${best.step} (result adapter: the last step's)`}
    </p>
  );
}

function etaText(run: RunState): string {
  const last = run.train.at(-1);
  const s = run.sessionStart;
  if (!last || !s || last.step <= s.step) return '…';
  const perStep = (performance.now() - s.at) / 1000 / (last.step - s.step);
  const left = (run.config.optim.steps - last.step) * perStep;
  return left < 90 ? `${Math.round(left)} s` : `${Math.round(left / 60)} min`;
}

export function RunView() {
  const runs = useStudio((s) => s.runs);
  const activeId = useStudio((s) => s.activeRun);
  const set = useStudio((s) => s.set);
  const run = runs.find((r) => r.id === activeId) ?? runs.at(-1);
  if (!run)
    return (
      <section className="panel" data-testid="run-view">
        <p className="muted">No runs yet: set up data and an experiment, then start a run.</p>
      </section>
    );
  const steps = run.config.optim.steps;
  const done = run.train.at(-1)?.step ?? 0;
  // β of each step: its record's (records from before the β schedule have none: the config's)
  const rows = run.train.map((t: TrainRecord) => {
    const beta = t.beta ?? betaAt(run.config, t.step);
    return { step: t.step, ce: t.ce, kl: t.kl, bkl: beta * t.kl, beta, loss: t.loss, lr: t.lr, gn: t.gradNorm, tps: t.tokensPerSec };
  });
  // the β changes (schedule entries after step 1) as lines on the loss and KL charts
  const marks: BetaMark[] = run.config.method === 'blora' ? (run.config.adapter.betaSchedule ?? []).filter((e) => e.step > 1) : [];
  const sets = [...new Set(run.evals.map((e) => e.set))];
  const werRows = evalSteps(run.evals).map((step) => {
    const row: Record<string, number> = { step };
    for (const e of run.evals.filter((x) => x.step === step)) row[e.set] = e.wer * 100;
    return row;
  });
  const sum = summarize(run);
  const pierNew = pierAt(run.evals, sum.step);
  const lora = run.config.method === 'blora' ? loraReference(runs, run) : undefined;
  const vs = lora ? versusLora(run, lora) : undefined;
  const live = run.status === 'running' || run.status === 'starting';
  return (
    <section className="panel" data-testid="run-view" data-run={run.id} data-status={run.status}>
      <div className="row">
        <h2 style={{ margin: 0 }}>Run</h2>
        <select value={run.id} onChange={(e) => set({ activeRun: e.target.value })} aria-label="run">
          {runs.map((r) => (
            <option key={r.id} value={r.id}>
              {r.name} ({r.config.method}
              {r.config.method === 'blora' ? `, β=${formatBeta(r.config.adapter.beta)}` : ''}) — {r.status}
            </option>
          ))}
        </select>
        <span className={`badge ${run.status === 'done' ? 'ok' : run.status === 'error' ? 'err' : 'warn'}`} data-testid="run-status">
          {run.status}
        </span>
        {run.lastCheckpointStep !== undefined && (
          <span className="muted small" data-testid="run-checkpoint">
            checkpoint: step {run.lastCheckpointStep}
          </span>
        )}
        <button disabled={run.status !== 'running'} onClick={() => pauseRun()} data-testid="pause">
          Pause
        </button>
        <button disabled={run.status !== 'paused' && run.status !== 'stopped'} onClick={() => resumeRun(run.id)} data-testid="resume">
          Resume
        </button>
        <button disabled={!live && run.status !== 'paused' && run.status !== 'queued'} onClick={() => stopRun(run.id)} data-testid="stop">
          Stop
        </button>
      </div>
      <div className="progress" data-testid="run-progress" data-step={done} data-steps={steps}>
        <div className="progress-label">
          <span>
            step {done} / {steps}
            {run.stage ? ` · ${run.stage}` : ''}
          </span>
          <span className="muted">{live ? `ETA ${etaText(run)}` : ''}</span>
        </div>
        <div className="progress-track">
          <div className="progress-fill" style={{ width: `${(done / steps) * 100}%` }} />
        </div>
      </div>
      {run.config.method === 'blora' && (live || run.status === 'paused' || (run.config.adapter.betaSchedule?.length ?? 0) > 0) && (
        <BetaControl key={run.id} run={run} next={Math.min(done + 1, steps)} />
      )}
      {run.dev?.length ? <DevLine run={run} /> : null}
      {run.uncertainty ? <Unsure run={run} /> : null}
      {run.recoveries?.length ? (
        <ul className="muted small" data-testid="run-recoveries">
          {run.recoveries.map((r, i) => (
            <li key={i}>{r.message}</li>
          ))}
        </ul>
      ) : null}
      {run.error && (
        <p className="error" data-testid="run-error">
          {run.error}
        </p>
      )}
      <div className="kpis" data-testid="run-kpis">
        <div className="kpi">
          WER new domain <b data-testid="kpi-wer-new">{pct(sum.werNew)}</b>{' '}
          <span className="muted small">(step 0: {pct(sum.werNew0)})</span>
        </div>
        {pierNew !== undefined && (
          <div
            className="kpi"
            title="PIER: error rate on the embedded-language (code-switched) words of the new-domain references — substitutions and deletions of those words and the insertions before them, over their count (src/metrics/pier.ts)"
          >
            PIER new domain <b data-testid="kpi-pier-new">{pct(pierNew)}</b>{' '}
            <span className="muted small">(step 0: {pct(pierAt(run.evals, 0))})</span>
          </div>
        )}
        <div className="kpi">
          WER base domain <b data-testid="kpi-wer-base">{pct(sum.werBase)}</b>{' '}
          <span className="muted small">(step 0: {pct(sum.werBase0)})</span>
        </div>
        <div className="kpi" title={definition('forgetting')}>
          forgetting F <b data-testid="kpi-forgetting">{pts(sum.forgetting)}</b>
        </div>
        {vs && (
          <>
            <div className="kpi" title={`${definition('backwardGain')} (LoRA run: ${lora!.name})`}>
              backward gain vs LoRA{' '}
              <b data-testid="kpi-backward-gain" title={maybePct(vs.backwardGain).title}>
                {maybePct(vs.backwardGain).text}
              </b>
            </div>
            <div className="kpi" title={`${definition('newDomainDrop')} (LoRA run: ${lora!.name})`}>
              new-domain drop vs LoRA{' '}
              <b data-testid="kpi-new-drop" title={maybePct(vs.newDrop).title}>
                {maybePct(vs.newDrop).text}
              </b>
            </div>
          </>
        )}
      </div>
      <div className="charts">
        <Series id="ce" title="cross-entropy" rows={rows} keys={[{ key: 'ce', name: 'CE' }]} />
        <Series
          id="loss"
          title="loss = CE + β·KL"
          rows={rows}
          keys={[
            { key: 'loss', name: 'loss' },
            { key: 'bkl', name: 'β·KL' },
          ]}
          marks={marks}
        />
        <Series id="kl" title="KL (unscaled)" rows={rows} keys={[{ key: 'kl', name: 'KL' }]} marks={marks} />
        <Series id="lr" title="learning rate" rows={rows} keys={[{ key: 'lr', name: 'lr' }]} />
        <Series id="gradnorm" title="gradient norm" rows={rows} keys={[{ key: 'gn', name: '‖g‖' }]} />
        <Series id="tps" title="tokens / s" rows={rows} keys={[{ key: 'tps', name: 'tokens/s' }]} />
        <Series
          id="wer"
          title="WER % per eval set"
          rows={werRows}
          keys={sets.map((s) => ({ key: s, name: `${s} (${run.evals.find((e) => e.set === s)?.role})` }))}
        />
      </div>
      <MuHistogram run={run} runs={runs} />
      {runSentence(run) && <p data-testid="run-summary">{runSentence(run)}</p>}
      <p className="muted small">
        WER base now {pct(werAt(run.evals, 'base', sum.step))}; evaluation uses the posterior means (greedy decoding on the WGSL engine).
      </p>
    </section>
  );
}

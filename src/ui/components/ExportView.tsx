// Export a run: PEFT adapter_model.safetensors + adapter_config.json (+ BLoRA's posterior), metrics as
// JSON Lines / CSV, and the experiment.json that reproduces it with the CLI. Optional SNR pruning.
// Then, as .zip downloads, the adapter merged into the loaded model: a transformers folder and a
// transformers.js folder (src/export/merged.ts; the model's files are read again from where it came from).
import { useState } from 'react';
import { exportRun } from '../training';
import { loadedModelLocation } from '../actions';
import { importAdapter } from '../../export/peft';
import { mergedZip } from '../../export/zip';
import { DroppedFilesSource, hubModelSource, UrlModelSource, type ModelSource } from '../../model/source';
import type { ModelLocation } from '../../worker/protocol';
import { pct, summarize, werAt } from '../runMetrics';
import { useStudio, type RunState } from '../store';

interface Link {
  name: string;
  url: string;
  bytes: number;
}

function blobLink(name: string, data: Uint8Array | string, type: string): Link {
  const blob = new Blob([typeof data === 'string' ? data : (data as Uint8Array<ArrayBuffer>)], { type });
  return { name, url: URL.createObjectURL(blob), bytes: blob.size };
}

function metricsFiles(r: RunState): Link[] {
  const recs = [...r.train, ...r.evals].sort((a, b) => a.step - b.step || (a.kind === 'train' ? -1 : 1));
  const jsonl = recs.map((x) => JSON.stringify(x)).join('\n') + '\n';
  const cols = [
    'kind',
    'step',
    'ce',
    'kl',
    'loss',
    'beta',
    'lr',
    'gradNorm',
    'tokens',
    'tokensPerSec',
    'sparsityA',
    'sparsityB',
    'elapsedS',
    'set',
    'role',
    'wer',
    'cer',
    'utterances',
  ];
  const csv =
    [cols.join(','), ...recs.map((x) => cols.map((c) => String((x as unknown as Record<string, unknown>)[c] ?? '')).join(','))].join('\n') +
    '\n';
  return [
    blobLink('metrics.jsonl', jsonl, 'application/x-ndjson'),
    blobLink('metrics.csv', csv, 'text/csv'),
    blobLink('experiment.json', JSON.stringify(r.config, null, 2) + '\n', 'application/json'),
  ];
}

function sourceOf(loc: ModelLocation): ModelSource {
  if (loc.kind === 'url') return new UrlModelSource(new URL(loc.baseUrl, globalThis.location?.href).href, loc.label ?? loc.baseUrl);
  if (loc.kind === 'hub') return hubModelSource(loc.repoId, loc.revision, loc.endpoint);
  return new DroppedFilesSource(loc.files);
}

export function ExportView() {
  const runs = useStudio((s) => s.runs);
  const activeId = useStudio((s) => s.activeRun);
  const [runId, setRunId] = useState<string | undefined>(undefined);
  const [snr, setSnr] = useState(0);
  const [measure, setMeasure] = useState(true);
  const [cost, setCost] = useState<{ role: string; before?: number; after: number }[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [links, setLinks] = useState<Link[]>([]);
  const [info, setInfo] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [peft, setPeft] = useState<Record<string, Uint8Array | string> | null>(null);
  const [merging, setMerging] = useState<string | null>(null);
  const run = runs.find((r) => r.id === (runId ?? activeId)) ?? runs.at(-1);
  if (!run)
    return (
      <section className="panel" data-testid="export-view">
        <p className="muted">No runs to export yet.</p>
      </section>
    );
  const exportable = run.lastCheckpointStep !== undefined && run.status !== 'running' && run.status !== 'starting';
  const go = async () => {
    setBusy(true);
    setError(null);
    links.forEach((l) => URL.revokeObjectURL(l.url));
    try {
      const pruning = run.config.method === 'blora' && snr > 0;
      setCost(null);
      const x = await exportRun(run.id, pruning ? snr : 0, pruning && measure);
      const files = Object.entries(x.files).map(([name, d]) =>
        blobLink(name, d, name.endsWith('.json') ? 'application/json' : 'application/octet-stream'),
      );
      setLinks([...files, ...metricsFiles(run)]);
      setPeft(x.files);
      setInfo(
        pruning
          ? `SNR pruning |μ|/σ < ${snr}: ${(x.pruned * 100).toFixed(1)} % of ${x.elements.toLocaleString()} μ elements set to 0`
          : null,
      );
      if (x.prunedWer) {
        // Against the run's own final evaluation (same eval sets, unpruned means), utterance-weighted per role.
        const last = summarize(run).step;
        const pruned = x.prunedWer.map((w) => ({
          kind: 'eval' as const,
          step: last,
          set: w.set,
          role: w.role,
          wer: w.wer,
          utterances: w.utterances,
          backend: 'engine' as const,
        }));
        setCost(
          [...new Set(pruned.map((w) => w.role))].map((role) => ({
            role,
            before: werAt(run.evals, role, last),
            after: werAt(pruned, role, last)!,
          })),
        );
      }
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="panel" data-testid="export-view">
      <h2>Export</h2>
      <div className="row">
        <select
          value={run.id}
          onChange={(e) => (setRunId(e.target.value), setLinks([]), setPeft(null))}
          aria-label="run to export"
          data-testid="export-run"
        >
          {runs.map((r) => (
            <option key={r.id} value={r.id}>
              {r.name} ({r.config.method}) — {r.status}
            </option>
          ))}
        </select>
        {run.config.method === 'blora' && (
          <label className="small">
            SNR pruning threshold |μ|/σ{' '}
            <input
              type="number"
              min={0}
              step={0.1}
              value={snr}
              onChange={(e) => setSnr(Number(e.target.value) || 0)}
              data-testid="export-snr"
              style={{ width: 70 }}
            />
          </label>
        )}
        {run.config.method === 'blora' && snr > 0 && (
          <label className="small" title="decode the eval sets again with the pruned adapter (takes as long as one evaluation)">
            <input type="checkbox" checked={measure} onChange={(e) => setMeasure(e.target.checked)} data-testid="export-measure" /> measure
            the WER it costs
          </label>
        )}
        <button disabled={!exportable || busy} onClick={() => void go()} data-testid="export-button">
          {busy ? (snr > 0 && measure && run.config.method === 'blora' ? 'Exporting and measuring…' : 'Exporting…') : 'Export adapter'}
        </button>
        {!exportable && <span className="muted small">available once the run has a checkpoint and is not training</span>}
      </div>
      {info && (
        <p className="small" data-testid="export-pruning">
          {info}
        </p>
      )}
      {cost && (
        <table data-testid="export-cost">
          <thead>
            <tr>
              <th>eval sets</th>
              <th>WER unpruned (run's last evaluation)</th>
              <th>WER pruned</th>
            </tr>
          </thead>
          <tbody>
            {cost.map((c) => (
              <tr key={c.role} data-testid={`export-cost-${c.role}`}>
                <td>{c.role === 'new' ? 'new domain' : 'base domain'}</td>
                <td>{pct(c.before)}</td>
                <td data-testid="export-cost-pruned">{pct(c.after)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {peft && (
        <div className="row">
          {(['hf', 'transformersjs'] as const).map((fmt) => (
            <button
              key={fmt}
              disabled={merging !== null}
              data-testid={`export-merged-${fmt}`}
              title="the adapter merged into the loaded model's decoder (W + s·B·A in float64, rounded once): a folder transformers / transformers.js load without PEFT"
              onClick={() => {
                const loc = loadedModelLocation();
                if (!loc) return setError("merged export: no model is loaded (load the run's model on the Setup tab)");
                setMerging(fmt);
                setError(null);
                const top = `${run.name}-${fmt === 'hf' ? 'transformers' : 'transformersjs'}`;
                mergedZip(sourceOf(loc), importAdapter(peft), fmt, top)
                  .then((z) => setLinks((l) => [...l, blobLink(`${top}.zip`, z.zip, 'application/zip')]))
                  .catch((e) => setError(`merged ${fmt} export: ${(e as Error).message}`))
                  .finally(() => setMerging(null));
              }}
            >
              {merging === fmt ? 'Merging…' : fmt === 'hf' ? 'Merged transformers folder (.zip)' : 'Merged transformers.js folder (.zip)'}
            </button>
          ))}
          <span className="muted small">
            f16 model.safetensors as the source / f32 ONNX decoder; CTranslate2: <code>blora-studio export --format ct2</code>
          </span>
        </div>
      )}
      {error && <p className="error">{error}</p>}
      <ul data-testid="export-links">
        {links.map((l) => (
          <li key={l.name}>
            <a href={l.url} download={l.name} data-testid={`download-${l.name}`}>
              {l.name}
            </a>{' '}
            <span className="muted small">{l.bytes.toLocaleString()} bytes</span>
          </li>
        ))}
      </ul>
      <p className="muted small">
        Load in Python:{' '}
        <code>PeftModel.from_pretrained(WhisperForConditionalGeneration.from_pretrained("openai/whisper-base"), "adapter_dir")</code>.
        Reproduce headless: <code>blora-studio train --config experiment.json</code> (dataset names stand for their folders).
      </p>
    </section>
  );
}

// Datasets: drop folders or zip files (or use the pickers), give each a role, see counts, duration,
// languages and the files that could not be used; encoder states are computed once and cached.
import { useState } from 'react';
import { addDatasets, clearEncoderCache, loadDemoData, removeDataset, setMix, setRole } from '../data';
import { fromDataTransfer, fromDirectoryInput, fromFileInput } from '../files';
import { ROLE_LABEL, useStudio, type DatasetEntry, type DatasetRole } from '../store';
import { ProgressBar } from './ProgressBar';

/** A training dataset after the first: blank = its utterances join the first's; a share = drawn with that probability. */
function MixShare({ d }: { d: DatasetEntry }) {
  const [text, setText] = useState(d.mix === undefined ? '' : String(+(d.mix * 100).toFixed(4)));
  const v = text.trim() === '' ? undefined : Number(text) / 100;
  const bad = v !== undefined && !(v > 0 && v < 1);
  return (
    <label
      className="small"
      title="Mix this training set in: each training utterance comes from it with this probability (e.g. replay of base-domain speech); the first training dataset takes the rest. Blank: its utterances simply join the first training dataset's."
    >
      mix{' '}
      <input
        type="number"
        min={1}
        max={99}
        step="any"
        style={{ width: '4.5em' }}
        value={text}
        placeholder="join"
        aria-label={`mixing share of ${d.name} in %`}
        data-testid="dataset-mix"
        onChange={(e) => {
          setText(e.target.value);
          const x = e.target.value.trim() === '' ? undefined : Number(e.target.value) / 100;
          setMix(d.id, x);
        }}
      />{' '}
      %{bad && <span className="error"> must be between 0 and 100 %</span>}
    </label>
  );
}

function Dataset({ d, firstTrain }: { d: DatasetEntry; firstTrain: boolean }) {
  const dur = d.utts.reduce((s, u) => s + (u.duration ?? 0), 0);
  const langs = [...new Set(d.utts.map((u) => u.language ?? '?'))].sort();
  const encoded = d.utts.filter((u) => u.status === 'encoded').length;
  const p = d.progress;
  return (
    <div className="dataset" data-testid="dataset" data-name={d.name} data-role={d.role} data-status={d.status}>
      <div className="row">
        <b>{d.name}</b>
        {d.format && <span className="badge">{d.format}</span>}
        <select
          value={d.role}
          onChange={(e) => setRole(d.id, e.target.value as DatasetRole)}
          aria-label={`role of ${d.name}`}
          data-testid="dataset-role"
        >
          {(Object.keys(ROLE_LABEL) as DatasetRole[]).map((r) => (
            <option key={r} value={r}>
              {ROLE_LABEL[r]}
            </option>
          ))}
        </select>
        {d.role === 'train' && !firstTrain && <MixShare d={d} />}
        <span className={`badge ${d.status === 'ready' ? 'ok' : d.status === 'error' ? 'err' : ''}`} data-testid="dataset-status">
          {d.status}
        </span>
        <button onClick={() => removeDataset(d.id)}>remove</button>
      </div>
      {d.error && <p className="error">{d.error}</p>}
      {d.status !== 'error' && (
        <p className="small" data-testid="dataset-summary">
          <span data-testid="dataset-count">{d.utts.length}</span> utterances · {dur.toFixed(1)} s · languages {langs.join(', ') || '—'} ·
          encoded {encoded}/{d.utts.length}
          {p && p.cached ? ` (${p.cached} from the cache)` : ''}
        </p>
      )}
      {d.status === 'encoding' && p && (
        <ProgressBar label="features + frozen encoder" loaded={p.done} total={p.total} startedAt={p.startedAt} unit="utterances" />
      )}
      {d.issues.length > 0 && (
        <details open data-testid="dataset-issues">
          <summary className="error">
            {d.issues.length} file{d.issues.length > 1 ? 's' : ''} skipped
          </summary>
          <ul className="small">
            {d.issues.map((i, k) => (
              <li key={k} data-testid="dataset-issue">
                <code>
                  {i.file}
                  {i.line ? `:${i.line}` : ''}
                </code>{' '}
                {i.message}
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

export function DataPanel() {
  const datasets = useStudio((s) => s.datasets);
  const [hover, setHover] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const guard = (p: Promise<unknown>) => p.catch((e) => setError((e as Error).message));
  return (
    <section
      className={`panel drop ${hover ? 'hover' : ''}`}
      data-testid="data-panel"
      onDragOver={(e) => {
        e.preventDefault();
        setHover(true);
      }}
      onDragLeave={() => setHover(false)}
      onDrop={(e) => {
        e.preventDefault();
        setHover(false);
        setError(null);
        void guard(fromDataTransfer(e.dataTransfer).then((l) => addDatasets(l)));
      }}
    >
      <h2>Data</h2>
      <p className="muted small">
        Drop dataset folders or .zip files here: HF audiofolder (metadata.csv), Common Voice (*.tsv + clips/), JSONL manifests, Kaldi
        (wav.scp + text). Audio never leaves this machine.
      </p>
      <div className="row">
        <label className="button">
          Add folder…
          <input
            type="file"
            data-testid="data-folder-input"
            // @ts-expect-error non-standard but universally supported directory picker
            webkitdirectory=""
            multiple
            hidden
            onChange={(e) => {
              setError(null);
              void guard(addDatasets(fromDirectoryInput([...(e.target.files ?? [])])));
              e.target.value = '';
            }}
          />
        </label>
        <label className="button">
          Add zip / files…
          <input
            type="file"
            data-testid="data-files-input"
            accept=".zip,.csv,.jsonl,.json,.tsv,.scp,audio/*"
            multiple
            hidden
            onChange={(e) => {
              setError(null);
              void guard(fromFileInput([...(e.target.files ?? [])]).then((l) => addDatasets(l)));
              e.target.value = '';
            }}
          />
        </label>
        <button data-testid="load-demo-data" onClick={() => void guard(loadDemoData())}>
          Load demo data
        </button>
        <button
          onClick={() => void guard(clearEncoderCache())}
          title="delete the cached encoder states (IndexedDB); the encoded datasets are removed too — drop them again to re-encode"
        >
          Clear encoder cache
        </button>
      </div>
      {error && <p className="error">{error}</p>}
      {datasets.map((d) => (
        <Dataset key={d.id} d={d} firstTrain={d.id === datasets.find((x) => x.role === 'train')?.id} />
      ))}
    </section>
  );
}

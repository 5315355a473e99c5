// Load the default model, a Hub repo (transformers.js ONNX layout) or a dropped folder, with progress.
import { useState } from 'react';
import { loadModel, DEFAULT_MODEL } from '../actions';
import { useStudio } from '../store';
import { ProgressBar } from './ProgressBar';

export function ModelPanel() {
  const model = useStudio((s) => s.model);
  const [repo, setRepo] = useState('onnx-community/whisper-base');
  const busy = model.status === 'loading';
  const p = model.progress;
  return (
    <section className="panel" data-testid="model-panel">
      <h2>Model</h2>
      <p>
        <b>{model.label ?? 'no model'}</b>{' '}
        <span className={`badge ${model.status === 'ready' ? 'ok' : model.status === 'error' ? 'err' : ''}`} data-testid="model-status">
          {model.status}
        </span>
      </p>
      {busy && <ProgressBar label={p?.message ?? 'starting'} loaded={p?.loaded} total={p?.total} startedAt={p?.stageStartedAt} />}
      {model.status === 'error' && (
        <p className="error" data-testid="model-error">
          {model.error}
        </p>
      )}
      {model.info && (
        <p className="small muted" data-testid="model-summary">
          {model.info.summary.layers} decoder layers · d_model {model.info.summary.dModel} · vocabulary {model.info.summary.vocab.toLocaleString()} ·{' '}
          {model.info.summary.melBins} mel bins · {model.info.summary.multilingual ? `multilingual (${model.info.summary.languages} languages)` : 'English only'} ·
          weights for the WGSL engine: {model.info.hasSafetensors ? 'model.safetensors' : 'missing (training unavailable)'}
        </p>
      )}
      <div className="row">
        <button disabled={busy} onClick={() => loadModel(DEFAULT_MODEL)}>
          Load default
        </button>
        <input value={repo} onChange={(e) => setRepo(e.target.value)} aria-label="Hub repo id" placeholder="owner/name" />
        <button disabled={busy || !repo} onClick={() => loadModel({ kind: 'hub', repoId: repo.trim() })}>
          Load from Hub
        </button>
        <label className="button">
          Load folder…
          <input
            type="file"
            data-testid="model-folder-input"
            // @ts-expect-error non-standard but universally supported directory picker
            webkitdirectory=""
            multiple
            hidden
            onChange={(e) => {
              const files = [...(e.target.files ?? [])].map((f) => [f.webkitRelativePath || f.name, f] as [string, Blob]);
              if (files.length) loadModel({ kind: 'files', files });
            }}
          />
        </label>
      </div>
    </section>
  );
}

// Pick a Whisper: a size from the table (src/model/hub.ts), any Hub repo id, the prepared default, or a
// dropped folder. Each size shows what will be downloaded and whether it is trainable from there; the
// loaded model says where the engine's decoder weights come from (its own model.safetensors, the
// weights repo of the table, or one the user names / drops), and how much of them is still to fetch.
import { useState } from 'react';
import { downloadEstimate, formatSize } from '../../model/catalog';
import { hubEndpoint, isHubRepoId, setHubEndpoint, WHISPER_MODELS, whisperModelFor, DEFAULT_HUB_ENDPOINT } from '../../model/hub';
import type { ModelLocation, WeightsLocation } from '../../worker/protocol';
import { loadModel, PREPARED_MODELS } from '../actions';
import { useStudio } from '../store';
import { ProgressBar } from './ProgressBar';

const OTHER = '__other__';

function sizeLine(repo: string): string {
  const m = whisperModelFor(repo);
  if (!m) return 'not in the table: the studio reads its config.json; name a weights repo below if it has no model.safetensors';
  const d = downloadEstimate(m);
  return (
    `${m.decoderLayers} decoder layers · d_model ${m.dModel} · ${m.heads} heads · ${m.melBins} mel bins · ${m.englishOnly ? 'English only' : 'multilingual'} — ` +
    `download ≈ ${formatSize(d.onnxBytes)} ONNX (encoder + decoder, f32) + ${formatSize(d.decoderWeightsBytes)} decoder weights for training ` +
    `(${m.weightsDtype.toLowerCase()}, from ${m.weightsRepo}, fetched once and cached)` +
    (d.onnxExternalData
      ? ' · its f32 ONNX graphs keep their weights in external-data files (read too; a tab may run out of memory for graphs this large)'
      : '')
  );
}

export function ModelPanel() {
  const model = useStudio((s) => s.model);
  const [prepared, setPrepared] = useState(0);
  const [pick, setPick] = useState(WHISPER_MODELS.find((m) => m.name === 'whisper-base')!.onnxRepos[0]);
  const [other, setOther] = useState('');
  const [endpoint, setEndpoint] = useState(hubEndpoint());
  const [endpointError, setEndpointError] = useState<string | null>(null);
  const [weightsRepo, setWeightsRepo] = useState('');
  const [weightsFile, setWeightsFile] = useState<File | null>(null);
  const busy = model.status === 'loading';
  const p = model.progress;
  const repo = (pick === OTHER ? other : pick).trim();
  const repoOk = isHubRepoId(repo);
  const t = model.info?.trainability;

  const weights = (): WeightsLocation | undefined =>
    weightsFile
      ? { kind: 'file', name: weightsFile.name, blob: weightsFile }
      : weightsRepo.trim()
        ? { kind: 'hub', repoId: weightsRepo.trim() }
        : undefined;
  const loadHub = () => {
    const loc: ModelLocation = { kind: 'hub', repoId: repo, endpoint: hubEndpoint(), weights: weights() };
    void loadModel(loc);
  };
  const saveEndpoint = () => {
    try {
      setHubEndpoint(endpoint.trim() === DEFAULT_HUB_ENDPOINT ? null : endpoint.trim() || null);
      setEndpoint(hubEndpoint());
      setEndpointError(null);
    } catch (e) {
      setEndpointError((e as Error).message);
    }
  };

  return (
    <section className="panel" data-testid="model-panel">
      <h2>Model</h2>
      <p>
        <b data-testid="model-label">{model.label ?? 'no model'}</b>{' '}
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
          {model.info.summary.layers} decoder layers · d_model {model.info.summary.dModel} · vocabulary{' '}
          {model.info.summary.vocab.toLocaleString()} · {model.info.summary.melBins} mel bins ·{' '}
          {model.info.summary.multilingual ? `multilingual (${model.info.summary.languages} languages)` : 'English only'}
        </p>
      )}
      {model.info?.exportOf && (
        <p className="small" data-testid="model-export-of">
          A merged export of <b>{model.info.exportOf.baseModel}</b> by blora-studio (
          {model.info.exportOf.method === 'blora' ? 'BLoRA means' : 'LoRA'}, r {model.info.exportOf.r}, {model.info.exportOf.modules}{' '}
          modules): <i>Try it</i> compares it with its base.
        </p>
      )}
      {model.info && (
        <p
          className={`small ${t?.trainable === false ? 'error' : ''}`}
          data-testid="model-trainable"
          data-trainable={t ? String(t.trainable) : 'checking'}
        >
          {!t
            ? 'Training: checking where the decoder weights come from…'
            : t.trainable
              ? `Trainable: decoder weights from ${t.from}${t.fetchBytes ? ` — ${formatSize(t.fetchBytes)} to fetch when the first run starts (Range requests, decoder tensors only; cached)` : ' (nothing to fetch)'}`
              : `Not trainable: ${t.reason ?? t.from}`}
        </p>
      )}
      <div className="row">
        <label>
          Whisper{' '}
          <select value={pick} onChange={(e) => setPick(e.target.value)} data-testid="model-pick" aria-label="Whisper size">
            {WHISPER_MODELS.map((m) => (
              <option key={m.name} value={m.onnxRepos[0]}>
                {m.name} ({formatSize(downloadEstimate(m).onnxBytes + m.decoderBytes)})
              </option>
            ))}
            <option value={OTHER}>other Hub repo…</option>
          </select>
        </label>
        {pick === OTHER && (
          <input
            value={other}
            onChange={(e) => setOther(e.target.value)}
            aria-label="Hub repo id"
            data-testid="model-repo"
            placeholder="owner/name"
          />
        )}
        <button
          disabled={busy || !repoOk}
          onClick={loadHub}
          data-testid="model-load-hub"
          title={repoOk ? `from ${hubEndpoint()}` : 'a Hub repo id has the form owner/name'}
        >
          Load from Hub
        </button>
      </div>
      <div className="row">
        <label>
          Prepared locally{' '}
          <select
            value={prepared}
            onChange={(e) => setPrepared(Number(e.target.value))}
            data-testid="model-prepared"
            aria-label="prepared model"
          >
            {PREPARED_MODELS.map((m, i) => (
              <option key={m.name} value={i}>
                {m.name}
              </option>
            ))}
          </select>
        </label>
        <button disabled={busy} onClick={() => loadModel(PREPARED_MODELS[prepared].location)} data-testid="model-load-default">
          Load
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
              if (files.length) loadModel({ kind: 'files', files, weights: weights() });
            }}
          />
        </label>
      </div>
      <p className="small muted" data-testid="model-pick-info">
        {repoOk ? `${repo}: ${sizeLine(repo)}` : 'a Hub repo id has the form owner/name'}
      </p>
      <details data-testid="model-advanced">
        <summary className="small">Hub address and decoder weights</summary>
        <div className="row">
          <label className="small">
            Hub address (a mirror works; Node reads HF_ENDPOINT){' '}
            <input value={endpoint} onChange={(e) => setEndpoint(e.target.value)} data-testid="hub-endpoint" size={32} />
          </label>
          <button onClick={saveEndpoint} data-testid="hub-endpoint-save">
            Use
          </button>
          {endpointError && <span className="error small">{endpointError}</span>}
        </div>
        <div className="row">
          <label className="small">
            Decoder weights from repo (default: the table's){' '}
            <input
              value={weightsRepo}
              onChange={(e) => setWeightsRepo(e.target.value)}
              data-testid="weights-repo"
              placeholder="openai/whisper-small"
            />
          </label>
          <label className="button small">
            …or drop model.safetensors
            <input
              type="file"
              accept=".safetensors"
              hidden
              data-testid="weights-file-input"
              onChange={(e) => setWeightsFile(e.target.files?.[0] ?? null)}
            />
          </label>
          {weightsFile && (
            <span className="small">
              {weightsFile.name} ({formatSize(weightsFile.size)}){' '}
              <button className="small" onClick={() => setWeightsFile(null)}>
                clear
              </button>
            </span>
          )}
        </div>
        <p className="small muted">
          Repos with ONNX files only (onnx-community/*, Xenova/*) transcribe as they are; to train, the engine needs the decoder's PyTorch
          weights, which it takes from the model's original repo (the table maps each to it) by one Range request per decoder tensor, never
          the encoder's. They are cached in this browser (Cache Storage) and a cut download resumes where it stopped.
        </p>
      </details>
    </section>
  );
}

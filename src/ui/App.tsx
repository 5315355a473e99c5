import { useEffect } from 'react';
import { loadDemoClips, loadModel, probeGpu, savedModel } from './actions';
import { BackendPanel } from './components/BackendPanel';
import { CompareView } from './components/CompareView';
import { DataPanel } from './components/DataPanel';
import { DemoClips } from './components/DemoClips';
import { ExperimentPanel, StartPanel } from './components/ExperimentPanel';
import { DemoButton } from './components/DemoButton';
import { ExportView } from './components/ExportView';
import { ModelPanel } from './components/ModelPanel';
import { RunView } from './components/RunView';
import { TryView } from './components/TryView';
import { useStudio, type View } from './store';
import { restoreDatasets } from './data';
import { restoreRuns } from './training';

let started = false; // React StrictMode runs effects twice in development; load the model once.

const VIEWS: [View, string][] = [
  ['setup', 'Setup'],
  ['run', 'Run'],
  ['compare', 'Compare'],
  ['export', 'Export'],
  ['try', 'Try it'],
];

export function App() {
  const view = useStudio((s) => s.view);
  const set = useStudio((s) => s.set);
  const setupError = useStudio((s) => s.setupError);
  useEffect(() => {
    if (started) return;
    started = true;
    // Probe first so the compute panel shows what the model will run on, then load the model of the last
    // session (a run resumed after a reload trains on it), else the default.
    void probeGpu().then(() => loadModel(savedModel()));
    void loadDemoClips();
    // Runs persist in IndexedDB; one that was training when the tab closed resumes from its checkpoint.
    // Datasets first: a run resumed after a reload, or the next one started, trains on them.
    void restoreDatasets()
      .catch((e) => set({ setupError: `could not read saved datasets: ${(e as Error).message}` }))
      .then(() => restoreRuns())
      .catch((e) => set({ setupError: `could not read saved runs: ${(e as Error).message}` }));
  }, [set]);
  return (
    <main>
      <header>
        <h1>blora-studio</h1>
        <p className="muted">Adapt a frozen Whisper to code-switched speech with Bayesian LoRA — in your browser, on WebGPU.</p>
      </header>
      <nav className="tabs">
        {VIEWS.map(([v, label]) => (
          <button key={v} className={view === v ? 'active' : ''} onClick={() => set({ view: v })} data-testid={`tab-${v}`}>
            {label}
          </button>
        ))}
      </nav>
      {setupError && (
        <p className="error" data-testid="setup-error" onClick={() => set({ setupError: undefined })}>
          {setupError}
        </p>
      )}
      {/* Setup stays mounted (hidden) so dataset inputs and their progress survive tab switches. */}
      <div hidden={view !== 'setup'} className="setup" data-testid="setup-steps">
        <DemoButton />
        {/* The steps a person takes, in order: model → data → experiment → start. */}
        <div className="step" data-step="model">
          <h2 className="step-title">
            1 · Model <span className="muted small">the Whisper to adapt; it loads in the background</span>
          </h2>
          <BackendPanel />
          <ModelPanel />
        </div>
        <div className="step" data-step="data">
          <h2 className="step-title">
            2 · Data <span className="muted small">code-switched clips to train on, a new-domain and a base-domain eval set</span>
          </h2>
          <DataPanel />
        </div>
        <div className="step" data-step="experiment">
          <h2 className="step-title">
            3 · Experiment <span className="muted small">LoRA or BLoRA and its settings</span>
          </h2>
          <ExperimentPanel />
        </div>
        <div className="step" data-step="start">
          <h2 className="step-title">
            4 · Start <span className="muted small">how long it will take, then go</span>
          </h2>
          <StartPanel />
        </div>
        <details className="panel" data-testid="demo-clips">
          <summary>Demo clips: listen to a shipped clip and transcribe it with the frozen model</summary>
          <DemoClips />
        </details>
      </div>
      {view === 'run' && <RunView />}
      {view === 'compare' && <CompareView />}
      {view === 'export' && <ExportView />}
      {view === 'try' && <TryView />}
    </main>
  );
}

import { useEffect } from 'react';
import { loadDemoClips, loadModel, probeGpu } from './actions';
import { BackendPanel } from './components/BackendPanel';
import { DataPanel } from './components/DataPanel';
import { DemoClips } from './components/DemoClips';
import { ModelPanel } from './components/ModelPanel';

let started = false; // React StrictMode runs effects twice in development; load the model once.

export function App() {
  useEffect(() => {
    if (started) return;
    started = true;
    // Probe first so the compute panel shows what the model will run on, then load the default model.
    void probeGpu().then(() => loadModel());
    void loadDemoClips();
  }, []);
  return (
    <main>
      <header>
        <h1>blora-studio</h1>
        <p className="muted">Adapt a frozen Whisper to code-switched speech with Bayesian LoRA — in your browser, on WebGPU.</p>
      </header>
      <BackendPanel />
      <ModelPanel />
      <DataPanel />
      <DemoClips />
    </main>
  );
}

// What the UI does: probe WebGPU, load a model in the worker, load the demo manifest, transcribe clips.
import { loadAudio16k } from '../audio';
import { requestBestAdapter } from '../gpu/adapter';
import { probeCapabilities } from '../gpu/device';
import { computeWer } from '../metrics/wer';
import { hubEndpoint } from '../model/hub';
import { ModelClient } from '../worker/client';
import type { ModelLocation } from '../worker/protocol';
import { useStudio, type DemoClip } from './store';

export const DEFAULT_MODEL: ModelLocation = {
  kind: 'url',
  baseUrl: '/models/whisper-base/',
  label: 'default model (Whisper base, prepared locally)',
};
/** The models scripts/setup.sh prepares from PyPI and the dev server serves (public/models/). */
/** `hfId`: the model it was prepared from (its blora-model.json "model"), which a merged export names as its base. */
export const PREPARED_MODELS: { name: string; hfId: string; location: ModelLocation }[] = [
  { name: 'Whisper base (multilingual)', hfId: 'openai/whisper-base', location: DEFAULT_MODEL },
  {
    name: 'Whisper tiny.en (English only)',
    hfId: 'openai/whisper-tiny.en',
    location: { kind: 'url', baseUrl: '/models/whisper-tiny.en/', label: 'Whisper tiny.en (English only, prepared locally)' },
  },
];

let client: ModelClient | null = null;
export function getClient(): ModelClient {
  client ??= new ModelClient(
    (progress) => {
      const prev = useStudio.getState().model;
      const stageStartedAt = prev.progress?.stage === progress.stage ? prev.progress.stageStartedAt : performance.now();
      useStudio.getState().set({ model: { ...prev, progress: { ...progress, stageStartedAt } } });
    },
    (modelId, trainability) => {
      const m = useStudio.getState().model;
      // only for the model still shown (a newer load may have replaced it)
      if (m.info?.modelId === modelId) useStudio.getState().set({ model: { ...m, info: { ...m.info, trainability } } });
    },
  );
  return client;
}

export async function probeGpu(): Promise<void> {
  const { set } = useStudio.getState();
  if (!navigator.gpu) return set({ gpu: { status: 'none', reason: 'this browser has no WebGPU (navigator.gpu is missing)' } });
  try {
    const best = await requestBestAdapter(navigator.gpu);
    if (!best) return set({ gpu: { status: 'none', reason: 'WebGPU is present but offered no adapter' } });
    set({ gpu: { status: 'webgpu', caps: probeCapabilities(best.adapter, { gpu: navigator.gpu }) } });
  } catch (e) {
    set({ gpu: { status: 'none', reason: (e as Error).message } });
  }
}

/** The last model loaded from a URL or the Hub is loaded again after a reload (a run resumes on it). */
const MODEL_KEY = 'blora-studio:model';

export function savedModel(): ModelLocation {
  try {
    const raw = globalThis.localStorage?.getItem(MODEL_KEY);
    const loc = raw ? (JSON.parse(raw) as ModelLocation) : null;
    // A dropped weights file is a Blob handle: it does not survive a reload, so it is not saved either.
    // The Hub address is the page's current setting, not the one saved with the model.
    if (loc?.kind === 'hub' && typeof loc.repoId === 'string') return { ...loc, endpoint: hubEndpoint() };
    if (loc?.kind === 'url' && typeof loc.baseUrl === 'string') return loc;
  } catch {
    // unreadable: fall back to the default
  }
  return DEFAULT_MODEL;
}

function saveModel(location: ModelLocation): void {
  if (location.kind === 'files' || (location.kind === 'hub' && location.weights?.kind === 'file')) return;
  try {
    globalThis.localStorage?.setItem(MODEL_KEY, JSON.stringify(location));
  } catch {
    // storage disabled: the default model loads after a reload
  }
}

export function modelLabel(location: ModelLocation): string {
  if (location.kind === 'url') return location.label ?? location.baseUrl;
  if (location.kind === 'hub')
    return `Hub: ${location.repoId}${location.revision && location.revision !== 'main' ? `@${location.revision}` : ''}`;
  return 'dropped folder';
}

let loadedLocation: ModelLocation | null = null;
/** Where the model that is loaded now came from (the Export view reads its files again for a merged export). */
export function loadedModelLocation(): ModelLocation | null {
  return loadedLocation;
}

export async function loadModel(location: ModelLocation = DEFAULT_MODEL): Promise<void> {
  const { set } = useStudio.getState();
  const label = modelLabel(location);
  set({ model: { status: 'loading', label }, results: {} });
  try {
    // ?encoder=webgpu|wasm forces the encoder's backend (default: WebGPU unless the adapter is software).
    const forced = new URLSearchParams(globalThis.location?.search ?? '').get('encoder');
    const info = await getClient().load(location, forced === 'webgpu' || forced === 'wasm' ? forced : 'auto');
    set({ model: { status: 'ready', label, info } });
    loadedLocation = location;
    saveModel(location);
    for (const w of modelWaiters.splice(0)) w();
  } catch (e) {
    set({ model: { status: 'error', label, error: (e as Error).message } });
  }
}

const modelWaiters: (() => void)[] = [];
/** Resolves once a model is ready (the data panel waits here before encoding). */
export function whenModelReady(): Promise<void> {
  if (useStudio.getState().model.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => modelWaiters.push(resolve));
}

export async function loadDemoClips(): Promise<void> {
  const { set } = useStudio.getState();
  try {
    const res = await fetch('/demo/manifest.jsonl');
    if (!res.ok) throw new Error(`/demo/manifest.jsonl: HTTP ${res.status}`);
    const clips: DemoClip[] = (await res.text())
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const r = JSON.parse(l);
        return {
          id: r.audio_filepath.replace(/\.[^.]+$/, ''),
          file: r.audio_filepath,
          url: `/demo/${r.audio_filepath}`,
          text: r.text,
          language: r.language,
          languages: r.languages,
          duration: r.duration,
          domain: r.domain,
        };
      });
    set({ clips });
  } catch (e) {
    set({ clipsError: (e as Error).message });
  }
}

/** Decode (WebAudio, main thread) → worker (features, encoder, greedy decoding) → WER vs the reference. */
export async function transcribeBytes(
  id: string,
  bytes: ArrayBuffer,
  name: string,
  language: string | null,
  reference?: string,
): Promise<void> {
  const { setResult } = useStudio.getState();
  setResult(id, { status: 'decoding' });
  try {
    const samples = await loadAudio16k(bytes, name);
    setResult(id, { status: 'running' });
    const transcript = await getClient().transcribe(samples, language);
    const wer =
      reference !== undefined
        ? computeWer([reference], [transcript.text], { language: language ?? transcript.language ?? 'en' }).value
        : undefined;
    setResult(id, { status: 'done', transcript, wer });
  } catch (e) {
    setResult(id, { status: 'error', error: (e as Error).message });
  }
}

export async function transcribeClip(clip: DemoClip): Promise<void> {
  const res = await fetch(clip.url);
  if (!res.ok) return useStudio.getState().setResult(clip.id, { status: 'error', error: `${clip.file}: HTTP ${res.status}` });
  await transcribeBytes(clip.id, await res.arrayBuffer(), clip.file, clip.language, clip.text);
}

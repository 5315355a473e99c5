// A merged export loaded back (issue 15 item 4): the Model panel loads the folder like any model (its
// blora-export.json names the base it was merged into); Try it loads that base in a second model worker and
// transcribes a clip with both, so the adapted model is compared with the one it came from.
import { hubEndpoint, whisperModelFor } from '../model/hub';
import type { LoadProgress } from '../pipeline/transcriber';
import { ModelClient, type TranscriptMsg } from '../worker/client';
import type { ModelInfo, ModelLocation } from '../worker/protocol';
import { modelLabel, PREPARED_MODELS } from './actions';

/** Where the base of an export comes from: a model prepared locally when it is one, else its ONNX repo on the Hub. */
export function baseLocationFor(baseModel: string): { location: ModelLocation; label: string; where: 'prepared' | 'hub' } | null {
  const id = baseModel.trim();
  const prepared = PREPARED_MODELS.find((m) => m.hfId.toLowerCase() === id.toLowerCase());
  if (prepared) return { location: prepared.location, label: modelLabel(prepared.location), where: 'prepared' };
  const row = whisperModelFor(id);
  const repoId = row ? row.onnxRepos[0] : /^[\w.-]+\/[\w.-]+$/.test(id) ? id : null;
  if (!repoId) return null;
  const location: ModelLocation = { kind: 'hub', repoId, endpoint: hubEndpoint() };
  return { location, label: modelLabel(location), where: 'hub' };
}

let base: { key: string; client: ModelClient; ready: Promise<ModelInfo> } | null = null;

/** The base's worker, loaded once per base (a second export of the same base reuses it). */
export function loadBase(location: ModelLocation, onProgress: (p: LoadProgress) => void): Promise<ModelInfo> {
  const key = JSON.stringify(location);
  if (base?.key === key) return base.ready;
  base?.client.terminate();
  const forced = new URLSearchParams(globalThis.location?.search ?? '').get('encoder');
  const client = new ModelClient(onProgress);
  const ready = client.load(location, forced === 'webgpu' || forced === 'wasm' ? forced : 'auto');
  base = { key, client, ready };
  ready.catch(() => {
    if (base?.client === client) base = null; // a failed load is retried by the next click
    client.terminate();
  });
  return ready;
}

/** The clip transcribed by the base (its worker) — the export's transcript comes from the studio's own model worker. */
export async function transcribeWithBase(samples: Float32Array, language: string | null): Promise<TranscriptMsg> {
  if (!base) throw new Error('the base model is not loaded');
  await base.ready;
  return base.client.transcribe(samples, language);
}

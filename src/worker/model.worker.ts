// The model worker: loads the Whisper model (onnxruntime-web: WebGPU EP or wasm) and transcribes.
/// <reference lib="webworker" />
import '../runtime/transformersEnv.browser';
import type { ModelSource } from '../model/source';
import { Transcriber } from '../pipeline/transcriber';
import { EXPORT_NOTE, parseExportNote } from '../export/note';
import { configureOrt } from '../runtime/ort';
import { encoderCacheKey, idbHas, idbPut } from './idb';
import { planDecoderFetch } from '../model/decoder-weights';
import type { WhisperAssets } from '../model/whisperModel';
import type { FromWorker, ModelLocation, ToWorker, Trainability } from './protocol';
import { modelSource, weightsRequest } from './model-source';

declare const self: DedicatedWorkerGlobalScope;
const post = (m: FromWorker) => self.postMessage(m);
let transcriber: Transcriber | null = null;
let modelId = '';

function idOf(loc: ModelLocation, label: string): string {
  // The Hub's address is not part of the id: the same repo from a mirror is the same model (same cache).
  return loc.kind === 'url' ? loc.baseUrl : loc.kind === 'hub' ? `hub:${loc.repoId}@${loc.revision ?? 'main'}` : `files:${label}`;
}

/** Whether the engine can train this model, from the weights' headers only (a few KB; nothing else is fetched). */
async function trainability(loc: ModelLocation, assets: WhisperAssets, source: ModelSource): Promise<Trainability> {
  try {
    const plan = await planDecoderFetch(weightsRequest(loc, assets, source));
    // A local folder (the prepared default, a dropped one) is read, not downloaded.
    return { trainable: true, from: plan.from, fetchBytes: loc.kind === 'hub' ? plan.fetchBytes : 0 };
  } catch (e) {
    return { trainable: false, from: 'nowhere', reason: (e as Error).message };
  }
}

self.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === 'load') {
    try {
      configureOrt();
      const source = modelSource(msg.location, self.location.origin);
      transcriber = await Transcriber.load(source, {
        backend: msg.backend,
        onProgress: (progress) => post({ type: 'progress', progress }),
      });
      const { assets, backend } = transcriber;
      modelId = idOf(msg.location, source.label);
      const note = (await source.has(EXPORT_NOTE)) ? parseExportNote(await source.read(EXPORT_NOTE), source.label) : null;
      const exportOf = note
        ? { baseModel: note.base_model, format: note.format, method: note.method, r: note.r, modules: note.modules }
        : undefined;
      post({
        type: 'loaded',
        info: {
          label: source.label,
          modelId,
          location: msg.location,
          summary: assets.summary,
          encoderBackend: backend.encoder,
          decoderBackend: backend.decoder,
          backendReason: backend.reason,
          hasSafetensors: assets.hasSafetensors,
          decoderConfig: {
            heads: assets.config.decoder_attention_heads,
            ffn: assets.config.decoder_ffn_dim,
            positions: assets.config.max_target_positions,
          },
          exportOf,
        },
      });
      post({ type: 'trainability', modelId, trainability: await trainability(msg.location, assets, source) });
    } catch (e) {
      post({ type: 'load-error', message: (e as Error).message });
    }
  } else if (msg.type === 'transcribe') {
    try {
      if (!transcriber) throw new Error('no model loaded yet');
      const r = await transcriber.transcribe(msg.samples, { language: msg.language, maxNewTokens: 128 });
      post({
        type: 'transcript',
        id: msg.id,
        text: r.text,
        language: r.language,
        tokens: r.tokens.length,
        truncated: r.truncated,
        timing: r.timing,
      });
    } catch (e) {
      post({ type: 'transcribe-error', id: msg.id, message: (e as Error).message });
    }
  } else if (msg.type === 'encode') {
    // Features + frozen encoder once per (model, audio); the states persist in IndexedDB so a reload
    // (and the training worker) reads them instead of recomputing.
    try {
      if (!transcriber) throw new Error('no model loaded yet');
      const t0 = performance.now();
      const key = encoderCacheKey(modelId, msg.key);
      if (await idbHas('encoder', key)) return post({ type: 'encoded', id: msg.id, cached: true, ms: performance.now() - t0 });
      const out = await transcriber.encode(msg.samples);
      await idbPut('encoder', key, out.data);
      post({ type: 'encoded', id: msg.id, cached: false, ms: performance.now() - t0 });
    } catch (e) {
      post({ type: 'encode-error', id: msg.id, message: (e as Error).message });
    }
  }
};

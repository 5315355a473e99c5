// A model location (src/worker/protocol.ts) as files, for both workers: the model worker (ONNX encoder
// and baseline decoder; it plans the decoder weights' fetch from their headers for the Model panel) and
// the training worker (which loads those weights).
//   url   the dev server's prepared model (local: read, never cached twice)
//   hub   a Hub repo through Cache Storage: whole files (ONNX, configs) downloaded once, resumed with
//         Range after a cut, checked against their ETag on the next load
//   files a dropped folder (File handles)
// Decoder weights: the model's own model.safetensors first; else those the user named; else the weights
// repo of src/model/hub.ts's table.
import { CachedHubSource, CacheStorageByteCache, type DecoderWeightsRequest, type WeightsSource } from '../model/decoder-weights';
import { WHISPER_MODELS, weightsRepoFor } from '../model/hub';
import { DroppedFilesSource, readJson, UrlModelSource, type ModelSource } from '../model/source';
import type { WhisperAssets } from '../model/whisperModel';
import type { ModelLocation } from './protocol';

export function weightsRequest(loc: ModelLocation, assets: WhisperAssets, source: ModelSource): DecoderWeightsRequest {
  const named = loc.kind === 'url' ? undefined : loc.weights;
  const endpoint = loc.kind === 'hub' ? loc.endpoint : undefined;
  const weights: WeightsSource | null = !named
    ? null
    : named.kind === 'hub'
      ? { kind: 'hub', repo: named.repoId, revision: named.revision, endpoint }
      : { kind: 'blob', data: named.blob, name: named.name };
  return {
    config: assets.config,
    model: source,
    modelId: loc.kind === 'hub' ? loc.repoId : null,
    weights,
    endpoint,
    // Per tensor in Cache Storage: a reload or a cut connection resumes from the tensors already done.
    cache: browserCache(),
  };
}

const browserCache = () => (typeof caches !== 'undefined' ? new CacheStorageByteCache() : null);

/** `origin`: the page's, for the dev server's relative URLs; `filesLabel`: a dropped folder's name. */
export function modelSource(loc: ModelLocation, origin: string, filesLabel?: string): ModelSource {
  switch (loc.kind) {
    case 'url':
      return new UrlModelSource(new URL(loc.baseUrl, origin).href, loc.label);
    case 'hub':
      return new CachedHubSource(loc.repoId, { revision: loc.revision, endpoint: loc.endpoint, cache: browserCache() });
    case 'files':
      // File handles reach a worker by postMessage; saved runs do not keep them (src/ui/training.ts).
      if (!loc.files.length) {
        throw new Error(
          `this run was trained on a dropped model folder (${filesLabel ?? 'unnamed'}); drop the same folder in the Model panel again, then resume or export`,
        );
      }
      return new DroppedFilesSource(loc.files, filesLabel);
  }
}

/**
 * The model an exported adapter names as its base (PEFT base_model_name_or_path): the weights repo it
 * trained on; for a local folder the id that tools/prepare_model.py recorded, else the table row of the
 * same architecture, else the folder's label.
 */
export async function baseModelOf(loc: ModelLocation, assets: WhisperAssets, source: ModelSource): Promise<string> {
  if (loc.kind === 'hub') return loc.weights?.kind === 'hub' ? loc.weights.repoId : (weightsRepoFor(loc.repoId) ?? loc.repoId);
  if (await source.has('blora-model.json').catch(() => false)) {
    const rec = await readJson<{ model?: unknown }>(source, 'blora-model.json').catch(() => null);
    if (typeof rec?.model === 'string') return rec.model;
  }
  const c = assets.config;
  const row = WHISPER_MODELS.find(
    (m) =>
      m.dModel === c.d_model &&
      m.decoderLayers === c.decoder_layers &&
      m.encoderLayers === c.encoder_layers &&
      m.vocab === c.vocab_size &&
      m.melBins === c.num_mel_bins,
  );
  return row?.weightsRepo ?? source.label;
}

// Where the engine's decoder weights come from for a model location — one request shape for the model
// worker (which only plans: headers, for the Model panel's "trainable / N MB to fetch") and the training
// worker (which loads). Local model.safetensors first; else the weights named by the user; else the
// weights repo of src/model/hub.ts's table.
import { CacheStorageByteCache, type DecoderWeightsRequest, type WeightsSource } from '../model/decoder-weights';
import type { ModelSource } from '../model/source';
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
    cache: typeof caches !== 'undefined' ? new CacheStorageByteCache() : null,
  };
}

/**
 * Shared setup of the training tests: a Dawn device (gl-compat unless BLORA_WEBGPU_BACKEND says
 * otherwise), the prepared Whisper base (assets, decoder weights on the GPU, cross K/V cache) and
 * demo/corpus rows prepared through src/train/data.ts (real audio → log-mel → frozen encoder on
 * onnxruntime-web wasm → EncoderKvCache).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAudio16k } from '../../src/audio';
import { directoryFiles, readDataset, type Utterance } from '../../src/data/manifest';
import { WhisperEncoder } from '../../src/encoder/encoder';
import { EncoderKvCache } from '../../src/engine/decoder';
import { uploadDecoderWeights, type DecoderWeights } from '../../src/engine/weights';
import { LogMelExtractor } from '../../src/features/logmel';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { SafetensorsFile } from '../../src/model/safetensors';
import { FsModelSource } from '../../src/model/source';
import { loadWhisperAssets, type WhisperAssets } from '../../src/model/whisperModel';
import { defaultExperiment, type ExperimentConfig } from '../../src/train/config';
import { prepareUtterances, type PreparedUtterance } from '../../src/train/data';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { requireModel } from '../support/env';

process.env.BLORA_WEBGPU_BACKEND ??= 'gl-compat';

export interface TrainEnv {
  ctx: GpuContext;
  rt: GpuRuntime;
  assets: WhisperAssets;
  weights: DecoderWeights;
  cache: EncoderKvCache;
  encoder: WhisperEncoder;
  mel: LogMelExtractor;
  destroy(): Promise<void>;
}

/** `model`: a prepared model folder (default: the prepared Whisper base). */
export async function trainEnv(label: string, model: string = requireModel()): Promise<TrainEnv> {
  const { ctx, rt } = await nodeTestGpu(label);
  console.log(`adapter ${describeAdapter(ctx)}`);
  const assets = await loadWhisperAssets(new FsModelSource(model));
  const st = new SafetensorsFile(new Uint8Array(readFileSync(join(model, 'model.safetensors'))), 'model.safetensors');
  const weights = uploadDecoderWeights(rt, st, assets.config.decoder_attention_heads);
  const cache = new EncoderKvCache(rt, weights);
  const encoder = await WhisperEncoder.create(assets, 'wasm');
  const mel = new LogMelExtractor(assets.preprocessor);
  return {
    ctx,
    rt,
    assets,
    weights,
    cache,
    encoder,
    mel,
    async destroy() {
      await encoder.release();
      cache.destroy();
      weights.destroy();
      await ctx.destroy();
    },
  };
}

/** Rows of a dataset folder by id (in the given order). */
export async function rowsOf(dir: string, ids: string[]): Promise<Utterance[]> {
  const ds = await readDataset(await directoryFiles(dir));
  return ids.map((id) => {
    const r = ds.rows.find((x) => x.id === id);
    if (!r) throw new Error(`${dir}: no row ${id}`);
    return r;
  });
}

export async function prepare(env: TrainEnv, dir: string, rows: Utterance[]): Promise<PreparedUtterance[]> {
  const t0 = performance.now();
  const r = await prepareUtterances(rows, {
    assets: env.assets,
    cache: env.cache,
    readAudio: async (row) => loadAudio16k(readFileSync(join(dir, row.audio)), row.audio),
    encode: async (samples) => (await env.encoder.encode(await env.mel.compute(samples))).data,
  });
  if (r.errors.length) throw new Error(`prepare: ${JSON.stringify(r.errors)}`);
  console.log(
    `prepared ${r.utterances.length} utterances (encoder + cross K/V) in ${((performance.now() - t0) / 1000).toFixed(1)} s; input lengths ${r.utterances.map((u) => u.seq.length - 1)}`,
  );
  return r.utterances;
}

export function experiment(over: { [K in keyof ExperimentConfig]?: Partial<ExperimentConfig[K]> | ExperimentConfig[K] }): ExperimentConfig {
  const d = defaultExperiment();
  const out = { ...d } as Record<string, unknown>;
  for (const [k, v] of Object.entries(over)) {
    const base = (d as unknown as Record<string, unknown>)[k];
    out[k] = typeof base === 'object' && base !== null && !Array.isArray(base) ? { ...base, ...(v as object) } : v;
  }
  return out as unknown as ExperimentConfig;
}

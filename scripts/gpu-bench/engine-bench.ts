/**
 * The engine half of scripts/gpu-bench.sh (issue 13 item 4): the WGSL training step on random weights
 * with the real decoder shapes of the model table (src/model/hub.ts), no model files, no encoder.
 *
 *   node engine-bench.mjs --shapes base,small,large-v3-turbo [--layers N] [--B 8] [--S 64] [--r 32]
 *        [--steps 5] [--warmup 2] [--methods lora,blora] [--targets self_attn.q_proj,self_attn.v_proj]
 *        [--storages f32,f16] [--json out.jsonl] [--icd system|swiftshader]
 *
 * Compiled into one file by scripts/gpu-bench.sh (esbuild); it reads the WGSL from ../../shaders
 * relative to itself (src/gpu/shaders.ts) and imports the 'webgpu' addon from a node_modules above it.
 * Per shape: random decoder weights (uniform, the writeTinyWhisper ranges) uploaded with
 * uploadDecoderWeights, B random "encoder outputs" (1500 × C) through EncoderKvCache.add, B random token
 * rows of S inputs (all real: no padding, tokens = B·S); per method --warmup untimed steps then --steps
 * timed steps of forward + backward + AdamW, awaited on the device once per step; median ms.
 * Storage (issue 13 item 1): each of --storages for the frozen weights and the K/V cache (uploadDecoderWeights'
 * storage; adapters, gradients and AdamW state stay f32); f16 only where the adapter has 'shader-f16', else the
 * f16 rows are left out and the log says why. One JSON line per (shape, storage, method).
 */
import { appendFileSync } from 'node:fs';
import type { AdapterTarget } from '../../src/engine/adapters';
import { EncoderKvCache, prepareDecoder } from '../../src/engine/decoder';
import { uploadDecoderWeights } from '../../src/engine/weights';
import type { StorageType } from '../../src/gpu/storage-choice';
import { acquireDevice } from '../../src/gpu/device';
import { GpuRuntime } from '../../src/gpu/runtime';
import { fillUniform as fill, modelRow, randomDecoderSafetensors as randomDecoder, randomTokenBatch } from '../../src/model/random-decoder';
import { timedSteps } from '../bench-steps';
import { SafetensorsFile } from '../../src/model/safetensors';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const KNOWN = ['shapes', 'layers', 'B', 'S', 'r', 'steps', 'warmup', 'methods', 'targets', 'storages', 'json', 'icd'];
for (const a of argv) if (a.startsWith('--') && !KNOWN.includes(a.slice(2))) throw new Error(`engine-bench: unknown flag ${a}`);
const shapes = opt('shapes', 'base,small,large-v3-turbo').split(',');
const layersOverride = Number(opt('layers', '0'));
const B = Number(opt('B', '8'));
const S = Number(opt('S', '64'));
const r = Number(opt('r', '32'));
const steps = Number(opt('steps', '5'));
const warmup = Number(opt('warmup', '2'));
const methods = opt('methods', 'lora,blora').split(',') as ('lora' | 'blora')[];
const targets = opt('targets', 'self_attn.q_proj,self_attn.v_proj').split(',') as AdapterTarget[];
const storagesAsked = opt('storages', 'f32,f16').split(',') as StorageType[];
for (const st of storagesAsked)
  if (st !== 'f32' && st !== 'f16') throw new Error(`engine-bench: --storages takes f32 and/or f16, got ${st}`);
const jsonOut = opt('json', '');
const icd = opt('icd', 'system') as 'system' | 'swiftshader';
const FRAMES = 1500;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

const ctx = await acquireDevice({ label: 'gpu-bench', node: { backend: 'vulkan', icd } });
const ad = ctx.caps.adapter;
const adapterName = `${ad.vendor}/${ad.architecture} ${ad.description || ad.device}${ctx.caps.isFallbackAdapter ? ' (fallback)' : ''}`;
const features = [...ctx.device.features].filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f));
console.log(`engine adapter: ${adapterName}; features: ${features.join(', ') || 'none of shader-f16/subgroups/timestamp-query'}`);
const storages = storagesAsked.filter((st) => st === 'f32' || ctx.caps.hasF16);
console.log(
  `engine storage: ${storages.join(', ')}${storagesAsked.includes('f16') && !ctx.caps.hasF16 ? " (no f16 rows: this adapter has no 'shader-f16')" : ''}`,
);
const rt = new GpuRuntime(ctx.device);

for (const shape of shapes) {
  const row = modelRow(shape, 'engine-bench');
  const C = row.dModel;
  const F = row.ffn;
  const L = layersOverride > 0 ? layersOverride : row.decoderLayers;
  const V = row.vocab;
  const H = row.heads;
  const bytes = randomDecoder(C, F, L, V, row.maxTargetPositions);
  for (const storage of storages) {
    const t0 = performance.now();
    const weights = uploadDecoderWeights(rt, new SafetensorsFile(bytes, `random:${shape}`), H, { storage });
    await rt.sync();
    const cache = new EncoderKvCache(rt, weights);
    const keys: string[] = [];
    for (let b = 0; b < B; b++) {
      const key = `rand${b}`;
      await cache.add(key, fill(FRAMES * C, -1, 1, 777 + b));
      keys.push(key);
    }
    const cacheRt = (cache as unknown as { rt: GpuRuntime }).rt;
    await cacheRt.sync();
    console.log(
      `  ${shape} (${storage} storage): ${L} layers × C ${C}, F ${F}, H ${H}, V ${V}: weights + ${B} cached utterances in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const batch = randomTokenBatch(B, S, keys); // random tokens (not the special ones), every position real and scored
    for (const method of methods) {
      rt.resetPeak();
      const dec = await prepareDecoder(
        rt,
        weights,
        { B, S },
        { kind: method, estimator: 'flipout', r, alpha: 2 * r, dropout: 0.05, seed: 1, targets },
        cache,
        { maxGradNorm: 1, label: `gpu-bench-${method}-${storage}` },
      );
      const drt = (dec as unknown as { rt: GpuRuntime }).rt;
      dec.setBatch(batch);
      let loss = NaN;
      const times = await timedSteps(dec, drt, warmup, steps, async (s) => {
        if (s === warmup + steps) loss = (await dec.readLoss()).loss;
      });
      const ms = median(times);
      const rec = {
        side: 'engine',
        shape: row.name,
        method: method === 'lora' ? 'lora' : 'blora-flipout',
        storage,
        C,
        F,
        L,
        V,
        H,
        B,
        S,
        r,
        targets,
        tokens: B * S,
        ms,
        times,
        loss,
        peakMiB: rt.memory().peakBytes / 2 ** 20,
        adapter: adapterName,
        features,
      };
      console.log(
        `    engine ${rec.method} (${storage}): ${ms.toFixed(1)} ms/step (median of ${steps}), ${((B * S) / (ms / 1000)).toFixed(0)} tokens/s, loss ${loss.toFixed(3)}, peak ${rec.peakMiB.toFixed(0)} MiB`,
      );
      if (jsonOut) appendFileSync(jsonOut, JSON.stringify(rec) + '\n');
      dec.destroy();
    }
    (cache as unknown as { destroy?: () => void }).destroy?.();
    weights.destroy();
    await rt.sync();
  }
}
await ctx.destroy();

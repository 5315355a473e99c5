/**
 * Per-kernel profile of ONE real-model training step of the WGSL engine (Whisper base decoder).
 *
 *   BLORA_WEBGPU_BACKEND=gl-compat B=4 S=16 node --import tsx scripts/profile-step.ts
 *
 * Env: B (sequences, default 4), S (tokens, default 16), METHOD lora|blora (default blora),
 * R (rank, default 32), TARGETS (comma list, default self_attn.q_proj,self_attn.v_proj), TOP (rows, 25),
 * MODEL (default ~/.cache/blora-studio/models/whisper-base).
 * Records every dispatch of forward + backward + optimizer step (random encoder states — the costs
 * do not depend on the values), then replays each dispatch ALONE (own command buffer, awaited) and
 * reports per kernel label (layer numbers folded): wall ms and this process's CPU ms (Dawn's software
 * adapters run the kernels on this process's threads, so CPU ms stays meaningful when other work
 * shares the machine; wall ms does not). The replay sum is ≥ the batched step (no overlap).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EncoderKvCache, prepareDecoder } from '../src/engine/decoder';
import type { AdapterTarget } from '../src/engine/adapters';
import { acquireDevice, type GpuContext, type NodeBackend } from '../src/gpu/device';
import { GpuRuntime } from '../src/gpu/runtime';
import { loadDecoderWeights } from '../test/engine/decoder-parity-support';

const B = Number(process.env.B ?? 4);
const S = Number(process.env.S ?? 16);
const method = (process.env.METHOD ?? 'blora') as 'lora' | 'blora';
const r = Number(process.env.R ?? 32);
const targets = (process.env.TARGETS ?? 'self_attn.q_proj,self_attn.v_proj').split(',') as AdapterTarget[];
const top = Number(process.env.TOP ?? 25);
const model = process.env.MODEL ?? join(homedir(), '.cache/blora-studio/models/whisper-base');

/** BLORA_WEBGPU_BACKEND if set, else a hardware GPU through the system Vulkan driver, else gl-compat. */
async function pickGpu(label: string): Promise<{ ctx: GpuContext; why: string }> {
  const env = process.env.BLORA_WEBGPU_BACKEND as NodeBackend | undefined;
  if (env) return { ctx: await acquireDevice({ label, node: { backend: env } }), why: `BLORA_WEBGPU_BACKEND=${env}` };
  try {
    const ctx = await acquireDevice({ label, node: { backend: 'vulkan', icd: 'system' } });
    const ad = ctx.caps.adapter;
    if (
      !ctx.caps.isFallbackAdapter &&
      !/swiftshader|llvmpipe|lavapipe|software|cpu/i.test(`${ad.vendor} ${ad.architecture} ${ad.description} ${ad.device}`)
    ) {
      return { ctx, why: 'hardware GPU (system Vulkan driver)' };
    }
    await ctx.destroy();
  } catch {
    /* no Vulkan driver */
  }
  return { ctx: await acquireDevice({ label, node: { backend: 'gl-compat' } }), why: 'no hardware GPU: gl-compat (Mesa llvmpipe)' };
}

const { ctx, why } = await pickGpu('profile-step');
const a = ctx.caps.adapter;
console.log(`adapter ${ctx.caps.backend}: ${a.vendor}/${a.architecture} ${a.description || a.device} — ${why}`);
const rt = new GpuRuntime(ctx.device);
const w = loadDecoderWeights(rt, model);
const cache = new EncoderKvCache(rt, w);
const C = w.dims.C;
let seed = 12345;
const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5;
for (let b = 0; b < B; b++) await cache.add('u' + b, Float32Array.from({ length: 1500 * C }, rnd));
const dec = await prepareDecoder(rt, w, { B, S }, { kind: method, r, alpha: 2 * r, dropout: 0.05, seed: 1, targets }, cache, {});
const ids = Array.from({ length: B * S }, () => 50258);
const labels = Array.from({ length: B * S }, (_, i) => (i * 7919) % 50000);
dec.setBatch({ inputIds: ids, labels, utterances: Array.from({ length: B }, (_, b) => 'u' + b) });
// The decoder records into its BatchingRuntime (not exported): intercept its dispatch().
const brt = (dec as unknown as { rt: GpuRuntime }).rt;
type Rec = [string, GPUComputePipeline, GPUBindGroup, readonly [number, number?, number?]];
const rec: Rec[] = [];
const orig = brt.dispatch.bind(brt);
brt.dispatch = (label, p, bg, wg) => {
  rec.push([label, p, bg, wg]);
  orig(label, p, bg, wg);
};
const t0 = performance.now();
dec.forward(1);
dec.backward(1);
dec.optimizerStep(1);
await brt.sync();
console.log(`batched step (incl. first-use pipeline work): ${(performance.now() - t0).toFixed(0)} ms, ${rec.length} dispatches`);
brt.dispatch = orig;
const dev = ctx.device;
const agg = new Map<string, { ms: number; cpu: number; n: number }>();
let tot = 0;
let totCpu = 0;
for (const [label, p, bg, wg] of rec) {
  const enc = dev.createCommandEncoder({ label: `replay ${label}` });
  const pass = enc.beginComputePass({ label: `replay ${label}` });
  pass.setPipeline(p);
  pass.setBindGroup(0, bg);
  pass.dispatchWorkgroups(wg[0], wg[1] ?? 1, wg[2] ?? 1);
  pass.end();
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  dev.queue.submit([enc.finish()]);
  await dev.queue.onSubmittedWorkDone();
  const ms = performance.now() - w0;
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1000;
  tot += ms;
  totCpu += cpu;
  const k = label
    .replace(/^decoder:/, '')
    .replace(/L\d+:model\.decoder\.layers\.\d+\./, '')
    .replace(/\[\d+\]/g, '[]')
    .replace(/\d+/g, '#');
  const e = agg.get(k) ?? { ms: 0, cpu: 0, n: 0 };
  e.ms += ms;
  e.cpu += cpu;
  e.n++;
  agg.set(k, e);
}
console.log(`replay total: ${tot.toFixed(0)} ms wall, ${totCpu.toFixed(0)} ms CPU (${method} r=${r} ${targets.join(',')}, B=${B} S=${S})`);
console.log(`${'wall ms'.padStart(8)} ${'CPU ms'.padStart(8)} ${'n'.padStart(4)}  kernel`);
for (const [k, v] of [...agg.entries()].sort((x, y) => y[1].cpu - x[1].cpu).slice(0, top)) {
  console.log(`${v.ms.toFixed(0).padStart(8)} ${v.cpu.toFixed(0).padStart(8)} ${String(v.n).padStart(4)}  ${k}`);
}
dec.destroy();
cache.destroy();
await ctx.destroy();
process.exit(0);

/**
 * `npm run bench` — the WGSL engine's training-step benchmark on the real Whisper base (issue 3 item 7).
 *
 *   npm run bench -- [--B 4] [--steps 2] [--warmup 1] [--clips N] [--r 32] [--methods lora,blora]
 *                    [--targets self_attn.q_proj,self_attn.v_proj] [--model DIR] [--out docs/benchmarks.md]
 *                    [--no-write] [--storage auto|f16|f32]   (frozen weights + K/V cache; default BLORA_STORAGE, else auto:
 *                                                              f16 where the adapter has shader-f16)
 *   npm run bench -- --model random:<size> [--storage …]   per-size numbers on random weights: scripts/bench-model-size.ts
 *
 * Device: BLORA_WEBGPU_BACKEND (vulkan | gl-compat) if set, else a hardware GPU through the system
 * Vulkan driver when there is one, else gl-compat (Mesa llvmpipe). The adapter is printed and recorded.
 * Data: the first --clips (default B) demo clips of public/demo (audio → log-mel → frozen encoder on
 * onnxruntime-web wasm → EncoderKvCache.add), batched B at a time (clips repeat when B > clips).
 * Per method (LoRA, BLoRA flipout; adapters on --targets, r, α = 2r, dropout 0.05): --warmup untimed
 * steps (pipeline compilation), then --steps timed steps, each phase awaited on the device:
 *   fwd  = forward (embedding … CE + KL), bwd = backward, opt = grad norm + AdamW.
 * Then greedy decoding of the same clips (frozen model) at batch sizes 1, 2 and B: ms per token step.
 * Writes the results between the bench markers of --out (the rest of that file is kept).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { loadAudio16k } from '../src/audio';
import { directoryFiles, readDataset } from '../src/data/manifest';
import { WhisperEncoder } from '../src/encoder/encoder';
import type { AdapterTarget } from '../src/engine/adapters';
import { EncoderKvCache, prepareDecoder } from '../src/engine/decoder';
import { WgslGreedyDecoder } from '../src/engine/generate';
import { chooseStorage, uploadDecoderWeights } from '../src/engine/weights';
import { LogMelExtractor } from '../src/features/logmel';
import { acquireDevice, type GpuContext, type NodeBackend } from '../src/gpu/device';
import { GpuRuntime } from '../src/gpu/runtime';
import { SafetensorsFile } from '../src/model/safetensors';
import { FsModelSource } from '../src/model/source';
import { loadWhisperAssets } from '../src/model/whisperModel';
import { makeBatch, type PreparedUtterance, specialTokens, tokenizeRow } from '../src/train/data';

// ── arguments ──
const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(`--${name}`);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
if (opt('model', '').startsWith('random:')) {
  // per-size numbers on random weights of a table shape (issue 13 item 5): its own flags and output
  await import('./bench-model-size');
  process.exit(0);
}
const KNOWN = ['B', 'steps', 'warmup', 'clips', 'r', 'methods', 'targets', 'model', 'out', 'no-write', 'storage'];
for (const a of argv) {
  if (a.startsWith('--') && !KNOWN.includes(a.slice(2)))
    throw new Error(`bench-engine: unknown flag ${a} (known: ${KNOWN.map((k) => '--' + k).join(' ')})`);
}
const B = Number(opt('B', '4'));
const steps = Number(opt('steps', '2'));
const warmup = Number(opt('warmup', '1'));
const nClips = Number(opt('clips', String(B)));
const r = Number(opt('r', '32'));
const methods = opt('methods', 'lora,blora').split(',') as ('lora' | 'blora')[];
const targets = opt('targets', 'self_attn.q_proj,self_attn.v_proj').split(',') as AdapterTarget[];
const model = resolve(opt('model', join(homedir(), '.cache/blora-studio/models/whisper-base')));
const out = resolve(opt('out', 'docs/benchmarks.md'));
const demo = resolve('public/demo');
for (const [k, v] of Object.entries({ B, steps, warmup, clips: nClips, r })) {
  if (!Number.isInteger(v) || v < (k === 'warmup' ? 0 : 1))
    throw new Error(`bench-engine: --${k} must be an integer ≥ ${k === 'warmup' ? 0 : 1}, got ${v}`);
}
if (!existsSync(join(model, 'model.safetensors'))) throw new Error(`bench-engine: ${model}/model.safetensors missing (run npm run setup)`);

const MB = (b: number): string => (b / 2 ** 20).toFixed(1);
const log = (s: string): void => console.log(s);

/** BLORA_WEBGPU_BACKEND if set, else a hardware GPU through the system Vulkan driver, else gl-compat. */
async function pickGpu(label: string): Promise<{ ctx: GpuContext; why: string }> {
  const env = process.env.BLORA_WEBGPU_BACKEND as NodeBackend | undefined;
  if (env) return { ctx: await acquireDevice({ label, node: { backend: env } }), why: `BLORA_WEBGPU_BACKEND=${env}` };
  try {
    const ctx = await acquireDevice({ label, node: { backend: 'vulkan', icd: 'system' } });
    const a = ctx.caps.adapter;
    if (
      !ctx.caps.isFallbackAdapter &&
      !/swiftshader|llvmpipe|lavapipe|software|cpu/i.test(`${a.vendor} ${a.architecture} ${a.description} ${a.device}`)
    ) {
      return { ctx, why: 'hardware GPU (system Vulkan driver)' };
    }
    await ctx.destroy();
  } catch {
    /* no Vulkan driver */
  }
  return { ctx: await acquireDevice({ label, node: { backend: 'gl-compat' } }), why: 'no hardware GPU: gl-compat (Mesa llvmpipe)' };
}

const { ctx, why } = await pickGpu('bench-engine');
const ad = ctx.caps.adapter;
const adapterName = `${ctx.caps.backend}: ${ad.vendor}/${ad.architecture} ${ad.description || ad.device}${ctx.caps.isFallbackAdapter ? ' (fallback)' : ''}, ${ctx.caps.featureLevel}`;
log(`adapter ${adapterName} — ${why}`);
const rt = new GpuRuntime(ctx.device);

// ── model ──
let t = performance.now();
const assets = await loadWhisperAssets(new FsModelSource(model));
const st = new SafetensorsFile(new Uint8Array(readFileSync(join(model, 'model.safetensors'))), join(model, 'model.safetensors'));
const storageOpt = opt('storage', process.env.BLORA_STORAGE || 'auto') as 'auto' | 'f16' | 'f32';
const weights = uploadDecoderWeights(rt, st, assets.config.decoder_attention_heads, { storage: storageOpt });
log(`storage: ${chooseStorage(rt.device, storageOpt).reason}`);
await rt.sync();
const weightsMs = performance.now() - t;
const weightBytes = rt.memory().liveBytes;
log(`decoder weights on the GPU: ${MB(weightBytes)} MiB in ${(weightsMs / 1000).toFixed(1)} s`);

// ── epoch-1 work per utterance: audio → log-mel → encoder (wasm) → cross K/V cache ──
const files = await directoryFiles(demo);
files.paths = files.paths.filter((p) => p === 'metadata.csv' || !/(metadata\.csv|\.jsonl)$/i.test(p));
const ds = await readDataset(files);
const rows = ds.rows.slice(0, nClips);
if (rows.length < nClips) throw new Error(`bench-engine: ${demo} has ${ds.rows.length} clips < --clips ${nClips}`);
const cache = new EncoderKvCache(rt, weights);
const cacheRt = (cache as unknown as { rt: GpuRuntime }).rt; // the engine's BatchingRuntime (same device)
const encoder = await WhisperEncoder.create(assets, 'wasm');
const mel = new LogMelExtractor(assets.preprocessor);
const prep = { audio: 0, mel: 0, encoder: 0, kv: 0 };
let prepCpu = 0; // ms of this process's CPU time (software adapters and the wasm encoder run here)
const utts: PreparedUtterance[] = [];
for (const row of rows) {
  const tok = tokenizeRow(row, assets);
  if ('error' in tok) throw new Error(`bench-engine: demo clip ${row.id}: ${tok.error}`);
  const cpu0 = process.cpuUsage();
  t = performance.now();
  const samples = await loadAudio16k(readFileSync(join(demo, row.audio)), row.audio);
  prep.audio += performance.now() - t;
  t = performance.now();
  const lm = await mel.compute(samples);
  prep.mel += performance.now() - t;
  t = performance.now();
  const states = (await encoder.encode(lm)).data;
  prep.encoder += performance.now() - t;
  t = performance.now();
  const key = `bench:${row.id}`;
  await cache.add(key, states);
  await cacheRt.sync();
  prep.kv += performance.now() - t;
  const cu = process.cpuUsage(cpu0);
  prepCpu += (cu.user + cu.system) / 1000;
  utts.push({ key, id: row.id, text: row.text, language: tok.language, seq: tok.seq });
  log(`  prepared ${row.id} (${tok.seq.length} tokens)`);
}
await encoder.release();
const per = (ms: number): number => ms / rows.length;
const prepMs = per(prep.audio + prep.mel + prep.encoder + prep.kv);
log(
  `epoch-1 preparation per utterance: ${(prepMs / 1000).toFixed(2)} s (audio ${(per(prep.audio) / 1000).toFixed(2)}, log-mel ${(per(prep.mel) / 1000).toFixed(2)}, encoder ${(per(prep.encoder) / 1000).toFixed(2)}, cross K/V ${(per(prep.kv) / 1000).toFixed(2)})`,
);
const cacheBytes = rt.memory().liveBytes - weightBytes;
log(`cross K/V cache: ${MB(cacheBytes)} MiB for ${rows.length} utterances`);

// ── training steps ──
const batchUtts = Array.from({ length: B }, (_, i) => utts[i % utts.length]);
const S = Math.max(...batchUtts.map((u) => u.seq.length - 1));
const batch = makeBatch(batchUtts, S, specialTokens(assets).eot);
interface MethodResult {
  method: string;
  fwd: number;
  bwd: number;
  opt: number;
  step: number;
  /** CPU ms of this process per step (median) */
  cpu: number;
  params: number;
  peak: number;
  engine: number;
  loss: number[];
}
const results: MethodResult[] = [];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
for (const method of methods) {
  rt.resetPeak();
  const before = rt.memory().liveBytes;
  const dec = await prepareDecoder(
    rt,
    weights,
    { B, S },
    { kind: method, estimator: 'flipout', r, alpha: 2 * r, dropout: 0.05, seed: 1, targets },
    cache,
    { maxGradNorm: 1, label: `bench-${method}` },
  );
  const drt = (dec as unknown as { rt: GpuRuntime }).rt;
  dec.setBatch(batch);
  const f: number[] = [];
  const b: number[] = [];
  const o: number[] = [];
  const loss: number[] = [];
  const cpus: number[] = [];
  for (let s = 1; s <= warmup + steps; s++) {
    const c0 = process.cpuUsage();
    let t0 = performance.now();
    dec.forward(s);
    await drt.sync();
    const tf = performance.now() - t0;
    t0 = performance.now();
    dec.backward(s);
    await drt.sync();
    const tb = performance.now() - t0;
    t0 = performance.now();
    dec.optimizerStep(s);
    await drt.sync();
    const to = performance.now() - t0;
    const cu = process.cpuUsage(c0);
    if (s > warmup) cpus.push((cu.user + cu.system) / 1000);
    loss.push((await dec.readLoss()).loss);
    log(
      `  ${method} step ${s}${s <= warmup ? ' (warm-up)' : ''}: fwd ${(tf / 1000).toFixed(2)} s, bwd ${(tb / 1000).toFixed(2)} s, opt ${(to / 1000).toFixed(3)} s, loss ${loss[loss.length - 1].toFixed(4)}`,
    );
    if (s > warmup) {
      f.push(tf);
      b.push(tb);
      o.push(to);
    }
  }
  const mem = rt.memory();
  const res = {
    method,
    fwd: median(f),
    bwd: median(b),
    opt: median(o),
    step: 0,
    cpu: median(cpus),
    params: dec.plan.size,
    peak: mem.peakBytes,
    engine: mem.peakBytes - before,
    loss,
  };
  res.step = res.fwd + res.bwd + res.opt;
  results.push(res);
  log(
    `${method}: step ${(res.step / 1000).toFixed(2)} s, ${(batch.tokens / (res.step / 1000)).toFixed(1)} tokens/s, peak GPU buffers ${MB(res.peak)} MiB (engine ${MB(res.engine)} MiB)`,
  );
  dec.destroy();
}
// ── greedy decoding (evaluation, Try it): token steps of the frozen model at batch sizes 1 … B ──
interface DecodeResult {
  batch: number;
  steps: number;
  msPerStep: number;
}
const decodes: DecodeResult[] = [];
for (const bd of [...new Set([1, 2, B].filter((x) => x <= B))]) {
  const greedy = await WgslGreedyDecoder.create(rt, weights, cache, assets, {
    maxBatch: bd,
    maxNewTokens: 32,
    label: `bench-greedy-B${bd}`,
  });
  const reqs = batchUtts.slice(0, bd).map((u) => ({ utterance: u.key, language: u.language }));
  await greedy.generate(reqs); // warm-up (pipelines)
  await greedy.generate(reqs);
  const st = greedy.stats;
  decodes.push({ batch: bd, steps: st.steps, msPerStep: st.stepMs / st.steps });
  log(`  greedy B=${bd}: ${st.steps} token steps, ${(st.stepMs / st.steps).toFixed(0)} ms per step`);
  greedy.destroy();
}
cache.destroy();
await ctx.destroy();

// ── report ──
const lora = results.find((x) => x.method === 'lora');
const blora = results.find((x) => x.method === 'blora');
const s2 = (ms: number): string => (ms / 1000).toFixed(2);
const cmd = `npm run bench -- ${argv.join(' ')}`.trim();
const lines: string[] = [];
lines.push(`<!-- bench:begin (generated by scripts/bench-engine.ts; edit outside the markers) -->`);
lines.push(`### Training step, Whisper base (generated ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`);
lines.push('');
lines.push(
  `Command: \`${cmd}\`${process.env.BLORA_WEBGPU_BACKEND ? ` with BLORA_WEBGPU_BACKEND=${process.env.BLORA_WEBGPU_BACKEND}` : ''}  `,
);
lines.push(`Adapter: ${adapterName} (${why})  `);
lines.push(
  `Machine load average at the end: ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' / ')} (1 / 5 / 15 min) — on software adapters wall times stretch when other jobs share the CPU.  `,
);
lines.push(
  `Batch: B=${B} demo clips × S=${S} tokens (${batch.tokens} real tokens, right-padded); adapters ${targets.join(', ')} of all ${weights.layers.length} layers, r=${r}, α=${2 * r}, dropout 0.05; AdamW, clip 1. Median of ${steps} step(s) after ${warmup} warm-up step(s).`,
);
lines.push('');
lines.push('| method | adapter values | fwd s | bwd s | opt s | step s | step CPU s | tokens/s | peak GPU buffers MiB | engine MiB |');
lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const x of results) {
  const name = x.method === 'blora' ? 'BLoRA (flipout)' : 'LoRA';
  lines.push(
    `| ${name} | ${x.params} | ${s2(x.fwd)} | ${s2(x.bwd)} | ${(x.opt / 1000).toFixed(3)} | ${s2(x.step)} | ${s2(x.cpu)} | ${(batch.tokens / (x.step / 1000)).toFixed(1)} | ${MB(x.peak)} | ${MB(x.engine)} |`,
  );
}
lines.push('');
if (lora && blora)
  lines.push(
    `BLoRA / LoRA step time: **${(blora.step / lora.step).toFixed(2)}×** wall, ${(blora.cpu / lora.cpu).toFixed(2)}× CPU time (step CPU s = this process's user + system CPU per step: where the software adapters and the wasm encoder run; comparable when the machine is shared).`,
  );
lines.push('');
const ref = blora ?? lora!;
const stepsPerEpoch = Math.ceil(rows.length / B);
lines.push(
  `Epoch cost (${rows.length} utterances, ${stepsPerEpoch} step(s) of B=${B} per epoch, ${ref.method === 'blora' ? 'BLoRA' : 'LoRA'} step): epoch 1 prepares every utterance once — audio decode + resample ${s2(per(prep.audio))} s, log-mel ${s2(per(prep.mel))} s, frozen encoder (onnxruntime-web wasm) ${s2(per(prep.encoder))} s, cross K/V projections into the cache ${s2(per(prep.kv))} s = **${s2(prepMs)} s per utterance** (${s2(prepCpu / rows.length)} s CPU) — then trains; epoch 2 only trains (cache hit).`,
);
const e1 = rows.length * prepMs + stepsPerEpoch * ref.step;
const e2 = stepsPerEpoch * ref.step;
const e1c = prepCpu + stepsPerEpoch * ref.cpu;
const e2c = stepsPerEpoch * ref.cpu;
lines.push(
  `Epoch 1 ≈ ${s2(e1)} s wall (${s2(e1c)} s CPU), epoch 2 ≈ ${s2(e2)} s wall (${s2(e2c)} s CPU): epoch 1 / epoch 2 = **${(e1 / e2).toFixed(2)}×** wall, ${(e1c / e2c).toFixed(2)}× CPU (in general, N utterances per epoch: 1 + N·prep / (⌈N/B⌉·step); with N a multiple of B: 1 + B·prep/step = 1 + ${B}·${s2(prepMs)}/${s2(ref.step)} = ${(1 + (B * prepMs) / ref.step).toFixed(2)}× wall).`,
);
lines.push('');
lines.push(
  `GPU memory (buffers the app allocated, counted by GpuRuntime): decoder weights ${MB(weightBytes)} MiB, cross K/V cache ${MB(cacheBytes / rows.length)} MiB per utterance.`,
);
lines.push('');
lines.push(
  `Greedy decoding (WgslGreedyDecoder, frozen model, the same clips, ≤ 32 new tokens, second of two runs): one token step = the decoder on B rows + the tied logits over the ${weights.dims.V.toLocaleString('en-US')}-token vocabulary + argmax.`,
);
lines.push('');
lines.push('| batch B | token steps | ms per token step | ms per token per utterance |');
lines.push('|---:|---:|---:|---:|');
for (const d of decodes) lines.push(`| ${d.batch} | ${d.steps} | ${d.msPerStep.toFixed(0)} | ${(d.msPerStep / d.batch).toFixed(0)} |`);
lines.push('<!-- bench:end -->');
const block = lines.join('\n');
log('\n' + block);
if (!flag('no-write')) {
  const prev = existsSync(out) ? readFileSync(out, 'utf8') : `# Benchmarks\n\n<!-- bench:begin -->\n<!-- bench:end -->\n`;
  const re = /<!-- bench:begin[^>]*-->[\s\S]*?<!-- bench:end -->/;
  writeFileSync(out, re.test(prev) ? prev.replace(re, block) : `${prev.trimEnd()}\n\n${block}\n`);
  log(`\nwrote ${basename(out)}`);
}
process.exit(0);

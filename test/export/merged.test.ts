/**
 * Merged exports (src/export/merged.ts, `blora-studio export`, src/cli/export.ts) on the REAL Whisper base.
 * The run folder is built by hand (as `blora-studio train --out` writes it: adapter/ PEFT files +
 * experiment.json naming the model), with a non-zero LoRA drawn by drawAdapterTheta (μ_A ~ U(±1/√in),
 * B ~ U(±B_SCALE)) on self_attn.q/v, encoder_attn.v and fc1 of every layer — training a few steps
 * would cost minutes and prove nothing more about the export. Proofs:
 *  (a) a LoRA whose B is zero exports a model bit-identical to the base: every tensor of the hf
 *      model.safetensors, and the transformers.js decoder ONNX file byte for byte;
 *  (b) on all 12 demo clips, the greedy transcripts of the engine's merged model (WgslGreedyDecoder with
 *      the adapter, encoder states from the baseline oracle) are reproduced by: transformers on the hf
 *      export, CTranslate2 on the ct2 export (same transformers features), the studio's ONNX Transcriber
 *      on the transformers.js export, transformers.js' pipeline (onnxruntime-node) on it — token for token.
 *      faster-whisper's transcribe() on the ct2 export with transformers' log-mel in its feature extractor
 *      (its decoding loop, prompt and suppression; asserted); with its own log-mel (which pads the
 *      spectrogram instead of the audio) it is run and its differences listed, not asserted.
 * Export sizes are printed. One Python process (tools/export_oracle.py) for transformers + CT2 + faster-whisper.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAudio16k } from '../../src/audio';
import { folderSizes, runExport, type ExportFormat, type ExportResult } from '../../src/cli/export';
import { main } from '../../src/cli/main';
import { EncoderKvCache } from '../../src/engine/decoder';
import { WgslGreedyDecoder } from '../../src/engine/generate';
import { drawAdapterTheta, moduleTensors, planAdapters, type AdapterConfig, type AdapterPlan } from '../../src/engine/adapters';
import type { DecoderWeights } from '../../src/engine/weights';
import { exportAdapter } from '../../src/export/peft';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { SafetensorsFile } from '../../src/model/safetensors';
import { FsModelSource } from '../../src/model/source';
import { loadWhisperAssets } from '../../src/model/whisperModel';
import { Transcriber } from '../../src/pipeline/transcriber';
import { DEMO_DIR, requireModel, requirePython, REPO } from '../support/env';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { baselineOracle, readF32 } from '../support/oracle';
import { loadDecoderWeights } from '../engine/decoder-parity-support';

process.env.BLORA_WEBGPU_BACKEND ??= 'gl-compat';

const MODEL = requireModel();
/** every demo clip (public/demo: 9 base-domain clips in en and es, 3 code-switched) */
const CLIPS = readFileSync(join(DEMO_DIR, 'manifest.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => basename(JSON.parse(l).audio_filepath, '.wav'));
const B_SCALE = 0.04;
const ADAPTER: AdapterConfig = {
  kind: 'lora',
  r: 8,
  alpha: 16,
  dropout: 0.05,
  seed: 7,
  targets: ['self_attn.q_proj', 'self_attn.v_proj', 'encoder_attn.v_proj', 'fc1'],
};
const tmp = mkdtempSync(join(tmpdir(), 'blora-merged-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

type Transcript = { tokens: number[]; text: string };
const EOS = 50257;
const strip = (t: number[]) => (t.at(-1) === EOS ? t.slice(0, -1) : t);

function writeRun(dir: string, plan: AdapterPlan, theta: Float32Array): void {
  mkdirSync(join(dir, 'adapter'), { recursive: true });
  const c = plan.config;
  const files = exportAdapter({
    method: 'lora',
    r: c.r,
    alpha: c.alpha,
    dropout: c.dropout,
    baseModel: 'openai/whisper-base',
    modules: plan.modules.map((m) => {
      const t = Object.fromEntries(moduleTensors(plan, m, theta).map((x) => [x.key, new Float32Array(x.data)]));
      return { name: m.name, inFeatures: m.nIn, outFeatures: m.nOut, A: t.A, B: t.B };
    }),
  });
  for (const [f, d] of Object.entries(files)) writeFileSync(join(dir, 'adapter', f), d);
  writeFileSync(join(dir, 'experiment.json'), JSON.stringify({ name: basename(dir), method: 'lora', model: MODEL }, null, 2));
}

function printSizes(r: ExportResult): void {
  console.log(`${r.format} export: ${r.bytes.toLocaleString('en-US')} bytes in ${r.files.length} files`);
  for (const f of r.files) if (f.bytes > 1e6) console.log(`    ${f.file}  ${f.bytes.toLocaleString('en-US')} bytes`);
}

describe('merged exports of a LoRA run (real Whisper base): transformers, transformers.js, CTranslate2', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  let weights: DecoderWeights;
  let plan: AdapterPlan;
  let theta: Float32Array;
  const out: Partial<Record<ExportFormat, ExportResult>> = {};
  const engine = new Map<string, Transcript>();
  const frozen = new Map<string, string>();
  const langs = new Map<string, string>();
  const t0 = performance.now();

  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('merged-export-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
    weights = loadDecoderWeights(rt, MODEL);
    plan = planAdapters(weights.dims, ADAPTER);
    theta = drawAdapterTheta(plan, 4321, { muB: B_SCALE, rhoB: 'uniform' });
    writeRun(join(tmp, 'run'), plan, theta);
    writeRun(join(tmp, 'run-zero'), plan, drawAdapterTheta(plan, 4321, { muB: 'zero', rhoB: 'uniform' }));
  });

  after(async () => {
    weights?.destroy();
    await ctx?.destroy();
    console.log(`merged export test: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  test('exports: hf (CLI), transformersjs, ct2, peft — sizes', async () => {
    const t = performance.now();
    // hf through the CLI, end to end; the others through runExport (what the command calls)
    assert.equal(await main(['export', '--run', join(tmp, 'run'), '--format', 'hf', '--out', join(tmp, 'hf')]), 0);
    const hfFiles = folderSizes(join(tmp, 'hf'));
    out.hf = { out: join(tmp, 'hf'), format: 'hf', files: hfFiles, bytes: hfFiles.reduce((a, f) => a + f.bytes, 0) };
    printSizes(out.hf);
    for (const format of ['transformersjs', 'ct2', 'peft'] as ExportFormat[]) {
      out[format] = await runExport({ run: join(tmp, 'run'), format, out: join(tmp, format), log: console.log });
      printSizes(out[format]!);
    }
    console.log(`exports: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const js = out.transformersjs!.report!;
    assert.equal(js.modules.length, plan.modules.length);
    for (const m of js.modules) assert.equal(m.targets.length, 1, `${m.name}: ${m.targets.join(', ')}`);
    assert.ok(
      js.modules.every((m) => m.targets[0].includes('(transposed)')),
      'torch.onnx stores Linear weights as MatMul [in, out]',
    );
    const hf = new SafetensorsFile(new Uint8Array(readFileSync(join(out.hf.out, 'model.safetensors'))));
    assert.equal(hf.info(`${plan.modules[0].name}.weight`).dtype, 'F16', 'the hf export keeps the source dtype (f16)');
    assert.ok(out.ct2!.files.some((f) => f.file === 'model.bin'));
    await assert.rejects(
      runExport({ run: join(tmp, 'run'), format: 'hf', out: join(tmp, 'x'), pruneSnr: 2, log: () => {} }),
      /SNR pruning needs a BLoRA posterior/,
    );
  });

  test('Export view zip (src/export/zip.ts): the merged transformers folder, identical to the CLI export', async () => {
    const { importAdapter } = await import('../../src/export/peft');
    const { mergedZip } = await import('../../src/export/zip');
    const { unzipSync } = await import('fflate');
    const files: Record<string, Uint8Array> = {};
    for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
      files[f] = new Uint8Array(readFileSync(join(tmp, 'run', 'adapter', f)));
    const z = await mergedZip(new FsModelSource(MODEL), importAdapter(files), 'hf', 'run-transformers');
    console.log(
      `zip of the transformers folder: ${z.zip.byteLength.toLocaleString('en-US')} bytes (${z.bytes.toLocaleString('en-US')} bytes of files)`,
    );
    const un = unzipSync(z.zip);
    for (const f of out.hf!.files) {
      assert.ok(
        Buffer.from(un[`run-transformers/${f.file}`]).equals(readFileSync(join(out.hf!.out, f.file))),
        `${f.file}: zip ≠ CLI export`,
      );
    }
  });

  test('(a) B = 0: the hf and transformers.js exports are bit-identical to the base', async () => {
    const hf = await runExport({ run: join(tmp, 'run-zero'), format: 'hf', out: join(tmp, 'zero-hf'), log: () => {} });
    const base = new SafetensorsFile(new Uint8Array(readFileSync(join(MODEL, 'model.safetensors'))));
    const got = new SafetensorsFile(new Uint8Array(readFileSync(join(hf.out, 'model.safetensors'))));
    assert.deepEqual([...got.tensors.keys()].sort(), [...base.tensors.keys()].sort());
    const raw = (st: SafetensorsFile, n: string) => {
      const i = st.info(n);
      const h = Number(new DataView(st.bytes.buffer, st.bytes.byteOffset).getBigUint64(0, true));
      return st.bytes.subarray(8 + h + i.begin, 8 + h + i.end);
    };
    for (const n of base.tensors.keys()) {
      assert.equal(got.info(n).dtype, base.info(n).dtype, n);
      assert.deepEqual(got.info(n).shape, base.info(n).shape, n);
      assert.ok(Buffer.from(raw(got, n)).equals(Buffer.from(raw(base, n))), `${n}: bytes differ from the base`);
    }
    const js = await runExport({ run: join(tmp, 'run-zero'), format: 'transformersjs', out: join(tmp, 'zero-js'), log: () => {} });
    for (const f of ['onnx/decoder_model_merged.onnx', 'onnx/encoder_model.onnx']) {
      assert.ok(readFileSync(join(js.out, f)).equals(readFileSync(join(MODEL, f))), `${f} differs from the base`);
    }
    console.log(`zero B: ${base.tensors.size} tensors of model.safetensors and both ONNX files bit-identical to the base`);
    rmSync(join(tmp, 'zero-hf'), { recursive: true });
    rmSync(join(tmp, 'zero-js'), { recursive: true });
  });

  test('(b) engine merged-model transcripts (WgslGreedyDecoder)', async () => {
    const oracle = baselineOracle(join(DEMO_DIR, 'manifest.jsonl'));
    const assets = await loadWhisperAssets(new FsModelSource(MODEL));
    const cache = new EncoderKvCache(rt, weights);
    const clips = CLIPS.map((id) => oracle.clips.find((c) => c.id === id)!);
    for (const c of clips) {
      await cache.add(c.id, readF32(join(oracle.dir, c.encoder.file)));
      frozen.set(c.id, c.text);
      langs.set(c.id, c.language!);
    }
    const dec = await WgslGreedyDecoder.create(rt, weights, cache, assets, { maxBatch: CLIPS.length, label: 'merged-export-engine' });
    try {
      await dec.setAdapter(plan, theta);
      const res = await dec.generate(clips.map((c) => ({ utterance: c.id, language: c.language })));
      res.forEach((r, i) => {
        engine.set(CLIPS[i], { tokens: strip(r.tokens), text: r.text });
        console.log(`  engine ${CLIPS[i]}: ${JSON.stringify(r.text)} (frozen ${JSON.stringify(frozen.get(CLIPS[i]))})`);
      });
    } finally {
      dec.destroy();
      cache.destroy();
    }
    assert.ok(
      CLIPS.some((id) => engine.get(id)!.text !== frozen.get(id)),
      'the adapter changed no transcript: the comparisons below would not show the merge is used',
    );
  });

  function compare(runtime: string, got: Record<string, Transcript>, { require = true } = {}): void {
    const differ = CLIPS.filter((id) => JSON.stringify(strip(got[id].tokens)) !== JSON.stringify(engine.get(id)!.tokens));
    console.log(`${runtime}: ${CLIPS.length - differ.length}/${CLIPS.length} transcripts identical to the engine's (tokens)`);
    for (const id of differ)
      console.log(`    ${id} differs: ${JSON.stringify(got[id].text)} vs engine ${JSON.stringify(engine.get(id)!.text)}`);
    for (const id of CLIPS)
      if (!differ.includes(id)) assert.equal(got[id].text.trim(), engine.get(id)!.text.trim(), `${runtime} ${id}: same tokens, other text`);
    if (require) assert.ok((CLIPS.length - differ.length) / CLIPS.length >= 0.99, `${runtime}: ${differ.join(', ')} differ`);
  }

  test('(b) transformers (hf export), CTranslate2 and faster-whisper (ct2 export): one Python process', () => {
    assert.ok(engine.size, 'needs the engine transcripts');
    const t = performance.now();
    const res = JSON.parse(
      execFileSync(
        requirePython(),
        [
          join(REPO, 'tools/export_oracle.py'),
          '--hf',
          out.hf!.out,
          '--ct2',
          out.ct2!.out,
          ...CLIPS.flatMap((id) => ['--clip', `${id}=${join(DEMO_DIR, `${id}.wav`)}:${langs.get(id)}`]),
        ],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
          env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
        },
      ),
    );
    console.log(
      `python: ${((performance.now() - t) / 1000).toFixed(1)} s (transformers ${res.hf_s.toFixed(1)} s, ctranslate2 ${res.ct2_s.toFixed(1)} s, faster-whisper ${res.faster_whisper_s.toFixed(1)} + ${res.faster_whisper_hf_features_s.toFixed(1)} s)`,
    );
    compare('transformers (hf export, f16 weights)', res.hf);
    compare('ctranslate2 (ct2 export, f16 weights, transformers features)', res.ct2);
    compare('faster-whisper transcribe() (ct2 export, transformers log-mel in its feature extractor)', res.faster_whisper_hf_features);
    // its own log-mel pads the spectrogram, not the audio: other input frames, so differences here are the front-end's
    compare('faster-whisper transcribe() (ct2 export, its own log-mel; reported only)', res.faster_whisper, { require: false });
    for (const id of CLIPS) assert.ok(res.faster_whisper[id].text.length > 0, `faster-whisper ${id}: empty transcript`);
  });

  test('(b) the studio Transcriber (onnxruntime-web wasm) on the transformers.js export', async () => {
    assert.ok(engine.size, 'needs the engine transcripts');
    const tr = await Transcriber.load(new FsModelSource(out.transformersjs!.out), { backend: 'wasm' });
    const got: Record<string, Transcript> = {};
    try {
      for (const id of CLIPS) {
        const s = await loadAudio16k(readFileSync(join(DEMO_DIR, `${id}.wav`)), `${id}.wav`);
        const r = await tr.transcribe(s, { language: langs.get(id)! });
        got[id] = { tokens: r.tokens, text: r.text };
      }
    } finally {
      await tr.encoder.release();
    }
    compare('studio Transcriber (transformers.js export, f32 ONNX)', got);
  });

  test('(b) transformers.js pipeline (onnxruntime-node) on the transformers.js export', async () => {
    assert.ok(engine.size, 'needs the engine transcripts');
    const { pipeline, env } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.localModelPath = dirname(out.transformersjs!.out) + '/';
    const asr = await pipeline('automatic-speech-recognition', basename(out.transformersjs!.out), { dtype: 'fp32', device: 'cpu' });
    const got: Record<string, Transcript> = {};
    try {
      for (const id of CLIPS) {
        const s = await loadAudio16k(readFileSync(join(DEMO_DIR, `${id}.wav`)), `${id}.wav`);
        const lang = { en: 'english', es: 'spanish' }[langs.get(id)!]!;
        const r = (await asr(s, { language: lang, task: 'transcribe', return_timestamps: false, max_new_tokens: 128 } as never)) as {
          text: string;
        };
        // the pipeline returns text only: compare the text (tokens stand in as the engine's when equal)
        got[id] = { tokens: r.text.trim() === engine.get(id)!.text.trim() ? engine.get(id)!.tokens : [-1], text: r.text };
      }
    } finally {
      await asr.dispose();
    }
    compare('transformers.js pipeline (text)', got);
  });

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

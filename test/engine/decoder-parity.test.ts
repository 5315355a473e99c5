/**
 * The WGSL training engine (src/engine/decoder.ts) against PyTorch on the REAL Whisper base decoder:
 * HF transformers WhisperForConditionalGeneration fp32 (tools/engine_oracle.py), PEFT LoRA for the
 * LoRA case, tools/blora_torch.py for BLoRA, with the engine's own noise replayed.
 *
 * Batch: 2 demo clips (en_01, es_02: SOT, language, transcribe, notimestamps, transcript, EOT; teacher
 * forcing, right padding, labels −100 on padding), their encoder states from the baseline oracle
 * cache ([1500, 512] each, the same states on both sides). Adapters on self_attn q_proj, v_proj of all
 * 6 layers, r = 8, α = 16, dropout 0.05 (spec default; the keep-masks are replayed), β = 1e-4,
 * σ_p = 0.01. AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 5e-4, clip at global norm 1.
 *
 * Initial values (NOT the spec init, on purpose): B (LoRA) and μ_B (BLoRA) ~ U(−0.02, 0.02) instead
 * of 0 — with B = 0 the gradient of A (and μ_A, ρ_A) is exactly 0 and would prove nothing; ρ_B ~
 * U(−5.5, −4.5) instead of −50 for flipout and lrt so B's noise path is exercised; the bbb case keeps
 * the spec's ρ_B = −50 (σ = e^ρ branch). A, μ_A ~ U(±1/√512), ρ_A ~ U(−5.5, −4.5) as in the spec.
 *
 * REQUIRED per case (lora, blora-flipout, blora-bbb, blora-lrt):
 *   loss of step 1 within 1e-4 relative; every adapter gradient tensor of step 1 within 1e-3
 *   (‖g_engine − g_torch‖ / ‖g_torch‖); every parameter tensor after 10 AdamW steps within 1e-3.
 * Results: test-results/parity/engine.json. Backend: gl-compat (llvmpipe) unless
 * BLORA_WEBGPU_BACKEND is set; BLORA_ENGINE_PARITY_STEPS (default 10) and BLORA_ENGINE_PARITY_CASES
 * (comma list) shorten a local run.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { EncoderKvCache, prepareDecoder, WHISPER_ENCODER_FRAMES } from '../../src/engine/decoder';
import { ADAPTER_TARGETS, type AdapterConfig, type AdapterPlan, moduleTensors, mulberry32, planAdapters } from '../../src/engine/adapters';
import type { AdamHyper } from '../../src/engine/kernels/adamw';
import type { DecoderWeights } from '../../src/engine/weights';
import { DEMO_DIR, MODEL_DIR, REPO, requirePython, resultsDir } from '../support/env';
import { baselineOracle, readF32, readF64 } from '../support/oracle';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { caseDir, F32Pack, loadDecoderWeights, stepNoise, tokenBatch, type TokenBatch } from './decoder-parity-support';

// llvmpipe (gl-compat) runs these kernels ~2× faster than SwiftShader; nodeTestGpu reads this at call time.
process.env.BLORA_WEBGPU_BACKEND ??= 'gl-compat';

const STEPS_DEFAULT = Number(process.env.BLORA_ENGINE_PARITY_STEPS ?? 10);
const CLIPS = ['en_01', 'es_02'];
const HYPER: AdamHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 5e-4 };
const MAX_GRAD_NORM = 1;
const TOL = { loss: 1e-4, grad: 1e-3, param: 1e-3 };

interface Case {
  name: string;
  adapters: AdapterConfig;
  /** optimizer steps (default STEPS) */
  steps?: number;
  /** ρ_B init: 'uniform' = U(−5.5, −4.5), or a constant */
  rhoB: 'uniform' | number;
  evalBefore?: boolean;
}
const common = { r: 8, alpha: 16, dropout: 0.05, targets: ['self_attn.q_proj', 'self_attn.v_proj'], seed: 20260 } as const;
const ALL_CASES: Case[] = [
  { name: 'lora', adapters: { ...common, targets: [...common.targets], kind: 'lora' }, rhoB: 'uniform' },
  { name: 'blora-flipout', adapters: { ...common, targets: [...common.targets], kind: 'blora', estimator: 'flipout' }, rhoB: 'uniform', evalBefore: true },
  { name: 'blora-bbb', adapters: { ...common, targets: [...common.targets], kind: 'blora', estimator: 'bbb' }, rhoB: -50 },
  { name: 'blora-lrt', adapters: { ...common, targets: [...common.targets], kind: 'blora', estimator: 'lrt' }, rhoB: 'uniform' },
  // Beyond the required q,v: every target (self/cross q,k,v,out, fc1, fc2) on layers 2 and 5 only —
  // cross-attention k/v adapters over the 2·1500 encoder frames (per-layer K/V, dK/dV), the MLP
  // adapters, and the backward stopping at layer 2 (nothing below is trained). 2 steps.
  {
    name: 'blora-flipout-all-targets-L2-L5',
    adapters: { ...common, targets: [...ADAPTER_TARGETS], layers: [2, 5], kind: 'blora', estimator: 'flipout' },
    rhoB: 'uniform',
    steps: 2,
  },
];
const only = process.env.BLORA_ENGINE_PARITY_CASES?.split(',').map((s) => s.trim());
const CASES = only ? ALL_CASES.filter((c) => only.includes(c.name)) : ALL_CASES;

function testTheta(plan: AdapterPlan, c: Case, seed: number): Float32Array {
  const rnd = mulberry32(seed);
  const theta = new Float32Array(plan.size);
  const uni = (off: number, n: number, lo: number, hi: number) => {
    for (let i = 0; i < n; i++) theta[off + i] = lo + (hi - lo) * rnd();
  };
  const r = plan.config.r;
  for (const m of plan.modules) {
    const bound = 1 / Math.sqrt(m.nIn);
    uni(m.off.muA, r * m.nIn, -bound, bound);
    if (m.off.rhoA >= 0) uni(m.off.rhoA, r * m.nIn, -5.5, -4.5);
    uni(m.off.muB, m.nOut * r, -0.02, 0.02);
    if (m.off.rhoB >= 0) {
      if (c.rhoB === 'uniform') uni(m.off.rhoB, m.nOut * r, -5.5, -4.5);
      else theta.fill(c.rhoB, m.off.rhoB, m.off.rhoB + m.nOut * r);
    }
  }
  return theta;
}

function relNorm(a: ArrayLike<number>, b: ArrayLike<number>): { rel: number; norm: number } {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return { rel: Math.sqrt(d) / Math.sqrt(n), norm: Math.sqrt(n) };
}

const fmt = (x: number) => x.toExponential(2);

interface TensorCmp {
  module: string;
  key: string;
  rel: number;
  norm: number;
}

function compareTensors(plan: AdapterPlan, engine: Float32Array | Float64Array, torch: Float32Array | Float64Array): TensorCmp[] {
  return plan.modules.flatMap((m) => {
    const e = moduleTensors<Float32Array | Float64Array>(plan, m, engine);
    const t = moduleTensors<Float32Array | Float64Array>(plan, m, torch);
    return e.map((x, i) => ({ module: m.name, key: x.key, ...relNorm(x.data, t[i].data) }));
  });
}

/** max rel per tensor kind (A, B, muA, rhoA, …) over the modules */
function byKey(cmp: TensorCmp[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of cmp) out[c.key] = Math.max(out[c.key] ?? 0, c.rel);
  return out;
}

describe('engine decoder parity: real Whisper base, WGSL engine vs PyTorch', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  let weights: DecoderWeights;
  let cache: EncoderKvCache;
  let batch: TokenBatch;
  let encoder: Float32Array;
  const report: Record<string, unknown> = {};
  const timings: Record<string, number> = {};

  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-decoder-parity'));
    console.log(`adapter ${describeAdapter(ctx)}`);
    let t0 = performance.now();
    weights = loadDecoderWeights(rt, MODEL_DIR);
    await rt.sync();
    timings.weights_upload_s = (performance.now() - t0) / 1000;
    const oracle = baselineOracle(join(DEMO_DIR, 'manifest.jsonl'));
    const clips = CLIPS.map((id) => {
      const c = oracle.clips.find((x) => x.id === id);
      if (!c) throw new Error(`clip ${id} not in the baseline oracle`);
      return c;
    });
    batch = tokenBatch(clips);
    const states = clips.map((c) => readF32(join(oracle.dir, c.encoder.file)));
    encoder = new Float32Array(states.reduce((n, s) => n + s.length, 0));
    states.reduce((o, s) => (encoder.set(s, o), o + s.length), 0);
    cache = new EncoderKvCache(rt, weights);
    t0 = performance.now();
    for (const [i, c] of clips.entries()) await cache.add(c.id, states[i]);
    timings.cross_kv_cache_s = (performance.now() - t0) / 1000;
    console.log(
      `weights ${(weights.bytes / 2 ** 20).toFixed(0)} MiB f32 in ${timings.weights_upload_s.toFixed(1)} s; ` +
        `cross K/V of ${clips.length} utterances × ${weights.dims.L} layers in ${timings.cross_kv_cache_s.toFixed(1)} s; ` +
        `batch B=${batch.B} S=${batch.S} lengths ${batch.lengths} (${clips.map((c) => c.id)})`,
    );
    Object.assign(report, {
      adapter: describeAdapter(ctx),
      model: MODEL_DIR,
      clips: CLIPS,
      B: batch.B,
      S: batch.S,
      lengths: batch.lengths,
      steps: STEPS_DEFAULT,
      hyper: HYPER,
      max_grad_norm: MAX_GRAD_NORM,
      tolerances: TOL,
      init_note:
        'B / μ_B ~ U(±0.02) (non-zero so dA ≠ 0); ρ_B ~ U(−5.5,−4.5) (flipout, lrt) or −50 (bbb); A, μ_A ~ U(±1/√in); ρ_A ~ U(−5.5,−4.5)',
      timings,
      cases: {},
    });
  });

  after(async () => {
    if (Object.keys(report).length) {
      const out = join(resultsDir('parity'), 'engine.json');
      writeFileSync(out, JSON.stringify(report, null, 1));
      console.log(`wrote ${out}`);
    }
    cache?.destroy();
    weights?.destroy();
    await ctx?.destroy();
  });

  for (const c of CASES) {
    const STEPS = c.steps ?? STEPS_DEFAULT;
    test(`${c.name}: loss, gradients, ${STEPS} AdamW steps`, async () => {
      const plan = planAdapters(weights.dims, c.adapters);
      const theta0 = testTheta(plan, c, 1234);
      const tCase = performance.now();
      const dec = await prepareDecoder(rt, weights, { B: batch.B, S: batch.S }, c.adapters, cache, {
        theta: theta0,
        hyper: HYPER,
        maxGradNorm: MAX_GRAD_NORM,
        label: `decoder[${c.name}]`,
      });
      const prepS = (performance.now() - tCase) / 1000;
      try {
        dec.setBatch(batch);
        let evalCe: number | undefined;
        if (c.evalBefore) {
          dec.forward(0, { eval: true });
          evalCe = (await dec.readLoss()).ce;
        }
        const losses: { ce: number; kl: number; loss: number }[] = [];
        let grads1: Float32Array | null = null;
        const tm = { forward: 0, backward: 0, optimizer: 0 };
        for (let step = 1; step <= STEPS; step++) {
          const tStep = performance.now();
          let t = tStep;
          dec.forward(step);
          await dec.rt.sync();
          tm.forward += performance.now() - t;
          t = performance.now();
          dec.backward(step);
          const L = await dec.readLoss();
          tm.backward += performance.now() - t;
          losses.push({ ce: L.ce, kl: L.kl, loss: L.loss });
          if (step === 1) grads1 = await dec.readGrads();
          t = performance.now();
          dec.optimizerStep(step);
          await dec.rt.sync();
          tm.optimizer += performance.now() - t;
          console.log(`  ${c.name} step ${step}: loss ${L.loss.toFixed(7)} (ce ${L.ce.toFixed(7)}, kl ${L.kl.toFixed(4)}) in ${((performance.now() - tStep) / 1000).toFixed(1)} s`);
        }
        const thetaN = await dec.readTheta();
        const engineS = (performance.now() - tCase) / 1000;

        // ---- oracle
        const cd = caseDir(join(resultsDir('parity'), 'engine-cases'), c.name);
        const pack = new F32Pack();
        const tNoise = performance.now();
        const noise = Array.from({ length: STEPS }, (_, i) => stepNoise(plan, dec.T, batch.B * WHISPER_ENCODER_FRAMES, i + 1, pack));
        pack.write(join(cd.dir, 'noise.f32'));
        const noiseS = (performance.now() - tNoise) / 1000;
        cd.write(
          {
            model_dir: MODEL_DIR, B: batch.B, S: batch.S, C: weights.dims.C, kind: plan.config.kind, estimator: plan.config.estimator,
            r: plan.config.r, alpha: plan.config.alpha, dropout: plan.config.dropout, bayesian_a_only: plan.config.bayesianAOnly,
            sigma_prior: plan.config.sigmaPrior, beta: plan.config.beta, theta_size: plan.size,
            modules: plan.modules.map((m) => ({ name: m.name, n_in: m.nIn, n_out: m.nOut, off: m.off })),
            steps: STEPS, adamw: { lr: HYPER.lr, betas: [HYPER.beta1, HYPER.beta2], eps: HYPER.eps, weight_decay: HYPER.weightDecay },
            max_grad_norm: MAX_GRAD_NORM, eval_before: !!c.evalBefore, noise,
          },
          { 'input_ids.i32': batch.inputIds, 'labels.i32': batch.labels, 'encoder.f32': encoder, 'theta0.f32': theta0 },
        );
        const f32 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
        writeFileSync(join(cd.dir, 'engine_grads1.f32'), f32(grads1!));
        writeFileSync(join(cd.dir, 'engine_theta.f32'), f32(thetaN));
        writeFileSync(join(cd.dir, 'engine.json'), JSON.stringify({ losses, eval_ce: evalCe }, null, 1));
        const tOracle = performance.now();
        const runOracle = (flags: string[]) =>
          execFileSync(requirePython(), [join(REPO, 'tools/engine_oracle.py'), ...flags, cd.dir], {
            stdio: ['ignore', 'inherit', 'inherit'],
            env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
          });
        runOracle([]);
        const oracleS = (performance.now() - tOracle) / 1000;
        runOracle(['--f64']);
        const o = JSON.parse(readFileSync(join(cd.dir, 'oracle.json'), 'utf8'));
        const tg = readF32(join(cd.dir, 'oracle_grads1.f32'));
        const tt = readF32(join(cd.dir, 'oracle_theta.f32'));
        const o64 = JSON.parse(readFileSync(join(cd.dir, 'oracle64.json'), 'utf8'));
        const tg64 = readF64(join(cd.dir, 'oracle64_grads1.f64'));
        const tt64 = readF64(join(cd.dir, 'oracle64_theta.f64'));

        // ---- compare
        const lossRel = losses.map((l, i) => Math.abs(l.loss - o.losses[i].loss) / Math.abs(o.losses[i].loss));
        const g = compareTensors(plan, grads1!, tg);
        const p = compareTensors(plan, thetaN, tt);
        const gMax = Math.max(...g.map((x) => x.rel));
        const pMax = Math.max(...p.map((x) => x.rel));
        const moved = relNorm(tt, theta0).rel; // ‖θ_N − θ_0‖ / ‖θ_0‖ (torch)
        const pAll = relNorm(thetaN, tt).rel;
        // elements whose AdamW trajectories parted by ≥ lr/2 (near-zero gradients: Adam's first steps
        // are ±lr by sign, so rounding-level gradient differences flip them)
        const flips = (a: ArrayLike<number>, b: ArrayLike<number>) => {
          let n = 0;
          for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) >= HYPER.lr / 2) n++;
          return n;
        };
        const flipCount = { engine_vs_torch: flips(thetaN, tt), torch32_vs_f64: flips(tt, tt64), engine_vs_f64: flips(thetaN, tt64), of: plan.size };
        // float64 oracle: where exact is, for both fp32 sides
        const exact = {
          loss_rel: { engine: Math.abs(losses[0].loss - o64.losses[0].loss) / o64.losses[0].loss, torch32: Math.abs(o.losses[0].loss - o64.losses[0].loss) / o64.losses[0].loss },
          grad_max_rel: { engine: Math.max(...compareTensors(plan, grads1!, tg64).map((x) => x.rel)), torch32: Math.max(...compareTensors(plan, tg, tg64).map((x) => x.rel)) },
          param_max_rel: { engine: Math.max(...compareTensors(plan, thetaN, tt64).map((x) => x.rel)), torch32: Math.max(...compareTensors(plan, tt, tt64).map((x) => x.rel)) },
          param_all_rel: { engine: relNorm(thetaN, tt64).rel, torch32: relNorm(tt, tt64).rel },
        };
        const evalRel = evalCe !== undefined ? Math.abs(evalCe - o.eval_ce) / o.eval_ce : undefined;
        const perStep = { forward_s: tm.forward / STEPS / 1000, backward_s: tm.backward / STEPS / 1000, optimizer_s: tm.optimizer / STEPS / 1000 };
        console.log(
          `${c.name}: loss[1] engine ${losses[0].loss.toFixed(8)} torch ${o.losses[0].loss.toFixed(8)} rel ${fmt(lossRel[0])}` +
            ` (max over ${STEPS} steps ${fmt(Math.max(...lossRel))})` +
            (evalRel !== undefined ? `; eval CE (means) rel ${fmt(evalRel)}` : '') +
            `\n  grads step 1: max rel ${fmt(gMax)} over ${g.length} tensors; per kind ${JSON.stringify(byKey(g), (_, v) => (typeof v === 'number' ? +v.toExponential(2) : v))}` +
            `\n  params after ${STEPS} steps: all ${fmt(pAll)}, max per tensor ${fmt(pMax)} (‖θ_N − θ_0‖/‖θ_0‖ = ${fmt(moved)}); per kind ${JSON.stringify(byKey(p), (_, v) => (typeof v === 'number' ? +v.toExponential(2) : v))}` +
            `\n  elements ≥ lr/2 apart after ${STEPS} steps: engine–torch ${flipCount.engine_vs_torch}, torch fp32–f64 ${flipCount.torch32_vs_f64}, engine–f64 ${flipCount.engine_vs_f64} of ${plan.size}` +
            `\n  vs float64 oracle (engine | torch fp32): loss ${fmt(exact.loss_rel.engine)} | ${fmt(exact.loss_rel.torch32)}; grads ${fmt(exact.grad_max_rel.engine)} | ${fmt(exact.grad_max_rel.torch32)}; params all ${fmt(exact.param_all_rel.engine)} | ${fmt(exact.param_all_rel.torch32)}, max per tensor ${fmt(exact.param_max_rel.engine)} | ${fmt(exact.param_max_rel.torch32)}` +
            `\n  time: prepare ${prepS.toFixed(1)} s, per step fwd ${perStep.forward_s.toFixed(1)} s + bwd ${perStep.backward_s.toFixed(1)} s + opt ${perStep.optimizer_s.toFixed(2)} s; ` +
            `engine total ${engineS.toFixed(0)} s; noise for the oracle ${noiseS.toFixed(1)} s; oracle ${oracleS.toFixed(1)} s (torch ${o.seconds.toFixed(1)} s; float64 ${o64.seconds.toFixed(1)} s)`,
        );
        (report.cases as Record<string, unknown>)[c.name] = {
          adapters: plan.config.kind === 'lora' ? 'LoRA (PEFT oracle)' : `BLoRA ${plan.config.estimator} (blora_torch oracle)`,
          rho_b_init: c.rhoB,
          params: plan.size,
          loss: { engine: losses.map((l) => l.loss), torch: o.losses.map((l: { loss: number }) => l.loss), rel: lossRel },
          ce_step1: { engine: losses[0].ce, torch: o.losses[0].ce },
          kl_step1: { engine: losses[0].kl, torch: o.losses[0].kl },
          eval_ce: evalCe !== undefined ? { engine: evalCe, torch: o.eval_ce, rel: evalRel } : undefined,
          grad_step1: { max_rel: gMax, by_kind: byKey(g), tensors: g },
          params_after: { steps: STEPS, all_rel: pAll, max_rel_per_tensor: pMax, moved_rel: moved, elements_apart: flipCount, by_kind: byKey(p), tensors: p },
          vs_float64: exact,
          timings_s: { prepare: prepS, ...perStep, engine_total: engineS, noise: noiseS, oracle: oracleS, torch: o.seconds, torch_f64: o64.seconds },
          versions: { torch: o.torch, transformers: o.transformers, peft: o.peft },
          pass: lossRel[0] <= TOL.loss && gMax <= TOL.grad && pAll <= TOL.param,
        };
        assert.ok(lossRel[0] <= TOL.loss, `${c.name}: loss rel ${lossRel[0]} > ${TOL.loss}`);
        assert.ok(gMax <= TOL.grad, `${c.name}: gradient rel ${gMax} > ${TOL.grad}`);
        assert.ok(pAll <= TOL.param, `${c.name}: params after ${STEPS} steps rel ${pAll} > ${TOL.param}`);
        if (evalRel !== undefined) assert.ok(evalRel <= TOL.loss, `${c.name}: eval CE rel ${evalRel}`);
      } finally {
        dec.destroy();
      }
    });
  }
});

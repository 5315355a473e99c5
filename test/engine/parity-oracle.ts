/**
 * Shared by the engine-vs-PyTorch parity tests (decoder-parity.test.ts, shape-parity.test.ts):
 * the Python oracle as one long-lived process (tools/engine_oracle.py --serve), the case folder it
 * reads (case.json + raw arrays, the contract documented in engine_oracle.py), and the comparison
 * helpers (per-tensor relative errors in the plan's layout).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type AdapterPlan, moduleTensors } from '../../src/engine/adapters';
import type { AdamHyper } from '../../src/engine/kernels/adamw';
import { REPO, requirePython } from '../support/env';
import { caseDir, F32Pack, stepNoise, type TokenBatch } from './decoder-parity-support';

// ---- the oracle process

/** torch + transformers are imported once per test file instead of once per case (~7 s each here). */
let oracleProc: ChildProcessWithoutNullStreams | null = null;
const oracleWaiters = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();

function oracleServer(): ChildProcessWithoutNullStreams {
  if (oracleProc) return oracleProc;
  const p = spawn(requirePython(), [join(REPO, 'tools/engine_oracle.py'), '--serve'], {
    env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
  });
  p.stderr.pipe(process.stderr);
  createInterface({ input: p.stdout }).on('line', (line) => {
    const m = /^@@(done|error) (\S+?)(?::? (.*))?$/.exec(line);
    if (!m) return console.log(line); // the oracle's own log lines
    const w = oracleWaiters.get(m[2]);
    oracleWaiters.delete(m[2]);
    if (m[1] === 'done') w?.resolve();
    else w?.reject(new Error(`engine_oracle.py failed on ${m[2]}: ${m[3]}`));
  });
  p.on('exit', (code) => {
    for (const w of oracleWaiters.values()) w.reject(new Error(`engine_oracle.py --serve exited (code ${code})`));
    oracleWaiters.clear();
    oracleProc = null;
  });
  oracleProc = p;
  return p;
}

/** Run the oracle on a case folder (flags: '--both', '--f64', '--ce-fp32'; none = fp32 only). */
export function runOracle(dir: string, flags: string[]): Promise<void> {
  if (/\s/.test(dir)) throw new Error(`oracle case folder must not contain spaces: ${dir}`);
  const p = oracleServer();
  return new Promise((resolve, reject) => {
    oracleWaiters.set(dir, { resolve, reject });
    p.stdin.write(`${flags.join(' ')} ${dir}\n`);
  });
}

/** End the oracle process (call from the test file's after hook). */
export function stopOracle(): void {
  oracleProc?.stdin.end();
}

// ---- the case folder

export interface OracleCaseSpec {
  modelDir: string;
  plan: AdapterPlan;
  batch: TokenBatch;
  /** d_model */
  C: number;
  /** encoder frames per utterance (the cross-attention length E) */
  frames: number;
  /** (B, E, C) encoder states of the batch */
  encoder: Float32Array;
  theta0: Float32Array;
  steps: number;
  hyper: AdamHyper;
  maxGradNorm: number;
  evalBefore?: boolean;
}

/**
 * Write root/name/{case.json, input_ids.i32, labels.i32, encoder.f32, theta0.f32, noise.f32} for
 * tools/engine_oracle.py: the engine's noise of steps 1..steps replayed from the CPU twin of the GPU RNG.
 * Returns the folder and the seconds spent on the noise.
 */
export function writeOracleCase(root: string, name: string, s: OracleCaseSpec): { dir: string; noiseS: number } {
  const { plan, batch } = s;
  const cd = caseDir(root, name);
  const pack = new F32Pack();
  const t0 = performance.now();
  const noise = Array.from({ length: s.steps }, (_, i) => stepNoise(plan, batch.B * batch.S, batch.B * s.frames, i + 1, pack));
  pack.write(join(cd.dir, 'noise.f32'));
  const noiseS = (performance.now() - t0) / 1000;
  cd.write(
    {
      model_dir: s.modelDir,
      B: batch.B,
      S: batch.S,
      C: s.C,
      kind: plan.config.kind,
      estimator: plan.config.estimator,
      r: plan.config.r,
      alpha: plan.config.alpha,
      dropout: plan.config.dropout,
      bayesian_a_only: plan.config.bayesianAOnly,
      sigma_prior: plan.config.sigmaPrior,
      beta: plan.config.beta,
      theta_size: plan.size,
      modules: plan.modules.map((m) => ({ name: m.name, n_in: m.nIn, n_out: m.nOut, off: m.off })),
      steps: s.steps,
      adamw: { lr: s.hyper.lr, betas: [s.hyper.beta1, s.hyper.beta2], eps: s.hyper.eps, weight_decay: s.hyper.weightDecay },
      max_grad_norm: s.maxGradNorm,
      eval_before: !!s.evalBefore,
      noise,
    },
    { 'input_ids.i32': batch.inputIds, 'labels.i32': batch.labels, 'encoder.f32': s.encoder, 'theta0.f32': s.theta0 },
  );
  return { dir: cd.dir, noiseS };
}

/** Raw little-endian f32 file. */
export function writeF32(path: string, a: Float32Array): void {
  writeFileSync(path, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
}

// ---- comparisons

export function relNorm(a: ArrayLike<number>, b: ArrayLike<number>): { rel: number; norm: number } {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return { rel: Math.sqrt(d) / Math.sqrt(n), norm: Math.sqrt(n) };
}

export const fmt = (x: number) => x.toExponential(2);

export interface TensorCmp {
  module: string;
  key: string;
  rel: number;
  norm: number;
  /** parameters only: elements ≥ lr/2 apart, and rel over the other elements */
  apart?: number;
  relRest?: number;
}

/** ‖engine − torch‖ / ‖torch‖ per adapter tensor (μ_A, ρ_A, … of every module). */
export function compareTensors(
  plan: AdapterPlan,
  engine: Float32Array | Float64Array,
  torch: Float32Array | Float64Array,
  apartAt?: number,
): TensorCmp[] {
  return plan.modules.flatMap((m) => {
    const e = moduleTensors<Float32Array | Float64Array>(plan, m, engine);
    const t = moduleTensors<Float32Array | Float64Array>(plan, m, torch);
    return e.map((x, i) => {
      const out: TensorCmp = { module: m.name, key: x.key, ...relNorm(x.data, t[i].data) };
      if (apartAt !== undefined) {
        let d = 0;
        let n = 0;
        let apart = 0;
        for (let j = 0; j < x.data.length; j++) {
          const diff = x.data[j] - t[i].data[j];
          if (Math.abs(diff) >= apartAt) apart++;
          else d += diff * diff;
          n += t[i].data[j] ** 2;
        }
        out.apart = apart;
        out.relRest = Math.sqrt(d / n);
      }
      return out;
    });
  });
}

/** max rel per tensor kind (A, B, muA, rhoA, …) over the modules */
export function byKey(cmp: TensorCmp[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of cmp) out[c.key] = Math.max(out[c.key] ?? 0, c.rel);
  return out;
}

/** JSON.stringify replacer: numbers with 3 significant digits */
export const small = (_: string, v: unknown) => (typeof v === 'number' ? +v.toExponential(2) : v);

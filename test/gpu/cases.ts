/**
 * GPU kernel test cases shared by the Node/Dawn tests (test/gpu/*.test.ts) and the headless
 * Chromium page (test/browser/gpu.html → gpu-page.ts), so both run exactly the same checks.
 * No Node or DOM APIs here.
 */
import { matmulBias, prepareMatmulBias } from '../../src/gpu/kernels/matmul';
import { errorBoundF32, matmulBiasRef } from '../../src/gpu/reference/matmul';
import { GpuRuntime, WgslCompileError } from '../../src/gpu/runtime';
import { randomF32 } from '../support/random';

export interface CaseResult {
  name: string;
  passed: boolean;
  /** Human-readable one-liner (errors, tolerances). */
  detail: string;
  maxAbsErr?: number;
  /** max over elements of |err| / bound — must be ≤ 1; typically ≪ 1. */
  maxErrOverBound?: number;
  /** max |Y_ref| for scale. */
  maxAbsRef?: number;
}

export interface MatmulCase {
  name: string;
  M: number;
  N: number;
  K: number;
  bias: boolean;
  seed: number;
}

/** Shapes M×N×K: degenerate, odd, tile-aligned, tile+1, and K=1. */
export const MATMUL_SHAPES: ReadonlyArray<readonly [number, number, number]> = [
  [1, 1, 1],
  [1, 7, 3],
  [17, 33, 65],
  [64, 64, 64],
  [129, 31, 257],
  [3, 512, 1],
  [65, 1, 130],
  [2, 384, 384], // Whisper-tiny d_model, decoder-ish M
];

export const MATMUL_CASES: MatmulCase[] = MATMUL_SHAPES.flatMap(([M, N, K], i) =>
  [false, true].map((bias) => ({
    name: `matmul_bias ${M}×${N}×${K} ${bias ? '+bias' : 'no-bias'}`,
    M,
    N,
    K,
    bias,
    seed: 1000 + 2 * i + (bias ? 1 : 0),
  })),
);

/**
 * Tolerance: every element must satisfy |y_gpu − y_ref| ≤ γ_{K+1} · (Σ_k |x_k w_k| + |b|),
 * γ_n = n·u/(1−n·u), u = 2⁻²⁴ — the rigorous worst-case bound for an f32 dot product in any
 * summation order (with or without FMA). The reference is float64 on the SAME f32 inputs, so its
 * own error (~K·2⁻⁵³) is negligible. Data are U[−1,1), so no subnormals/overflow.
 * The typical error grows ~√K·u·|y| and is far below this bound; we print max |err| and
 * max err/bound per case so a regression toward the bound is visible before it fails.
 */
export async function runMatmulCase(rt: GpuRuntime, c: MatmulCase): Promise<CaseResult> {
  const { M, N, K } = c;
  const X = randomF32(M * K, c.seed * 3 + 0);
  const W = randomF32(N * K, c.seed * 3 + 1);
  const b = c.bias ? randomF32(N, c.seed * 3 + 2) : null;
  const y = await matmulBias(rt, X, W, b, { M, N, K });
  const ref = matmulBiasRef(X, W, b, M, N, K);
  let maxAbsErr = 0;
  let maxErrOverBound = 0;
  let maxAbsRef = 0;
  let firstBad = -1;
  for (let i = 0; i < M * N; i++) {
    const err = Math.abs(y[i] - ref.y[i]);
    const bound = errorBoundF32(K + 1, ref.absSum[i]) + Number.MIN_VALUE;
    maxAbsErr = Math.max(maxAbsErr, err);
    maxAbsRef = Math.max(maxAbsRef, Math.abs(ref.y[i]));
    const r = err / bound;
    if (!(r <= 1) && firstBad < 0) firstBad = i; // also catches NaN
    if (r > maxErrOverBound || Number.isNaN(r)) maxErrOverBound = Number.isNaN(r) ? Infinity : r;
  }
  const passed = firstBad < 0;
  const where = firstBad >= 0 ? ` first bad Y[${Math.floor(firstBad / N)},${firstBad % N}] gpu=${y[firstBad]} ref=${ref.y[firstBad]}` : '';
  return {
    name: c.name,
    passed,
    maxAbsErr,
    maxErrOverBound,
    maxAbsRef,
    detail: `max|err|=${maxAbsErr.toExponential(2)} max err/bound=${maxErrOverBound.toExponential(2)} max|y|=${maxAbsRef.toFixed(2)}${where}`,
  };
}

/** A broken kernel must fail with its label and the WGSL line:col in the message. */
export async function runCompileErrorCase(rt: GpuRuntime): Promise<CaseResult> {
  const name = 'compile error names the kernel';
  const code = '@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = 1u;\n}\n';
  try {
    await rt.pipeline({ label: 'deliberately_broken_kernel', code });
    return { name, passed: false, detail: 'broken WGSL compiled without error' };
  } catch (e) {
    const msg = (e as Error).message;
    const passed = e instanceof WgslCompileError && msg.includes('deliberately_broken_kernel') && msg.includes(':3:');
    return { name, passed, detail: msg.split('\n').slice(0, 2).join(' | ') };
  }
}

export interface BenchResult {
  name: string;
  M: number;
  N: number;
  K: number;
  ms: number[];
  msBest: number;
  gflops: number;
}

/** GFLOP/s (2·M·N·K per run, bias add ignored) of matmul_bias at n³, wall clock, best of iters. */
export async function benchMatmul(rt: GpuRuntime, n: number, iters = 3): Promise<BenchResult> {
  const M = n;
  const N = n;
  const K = n;
  const x = rt.upload(`bench${n}:X`, randomF32(M * K, 1));
  const w = rt.upload(`bench${n}:W`, randomF32(N * K, 2));
  const bias = rt.upload(`bench${n}:b`, randomF32(N, 3));
  const y = rt.storage(`bench${n}:Y`, M * N * 4);
  const call = await prepareMatmulBias(rt, { M, N, K }, { x, w, bias, y }, `matmul_bias_bench${n}`);
  const ms = await rt.time(() => call.run(), iters, 1);
  call.destroy();
  for (const b of [x, w, bias, y]) b.destroy();
  const msBest = Math.min(...ms);
  return { name: `matmul_bias ${n}³`, M, N, K, ms, msBest, gflops: (2 * M * N * K) / (msBest * 1e6) };
}

export const BENCH_SIZES = [256, 512];

export interface AllResults {
  cases: CaseResult[];
  bench: BenchResult[];
}

/** Everything, in order (used by the browser page). */
export async function runAllGpuCases(rt: GpuRuntime, opts: { bench?: boolean } = {}): Promise<AllResults> {
  const cases: CaseResult[] = [];
  for (const c of MATMUL_CASES) {
    try {
      cases.push(await runMatmulCase(rt, c));
    } catch (e) {
      cases.push({ name: c.name, passed: false, detail: `threw: ${(e as Error).message}` });
    }
  }
  cases.push(await runCompileErrorCase(rt));
  const bench: BenchResult[] = [];
  if (opts.bench ?? true) for (const n of BENCH_SIZES) bench.push(await benchMatmul(rt, n));
  return { cases, bench };
}

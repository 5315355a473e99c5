/**
 * `npm run bench:kernel` — one kernel at a time, as llm.c's dev/cuda/*.cu mains: build random inputs, run the
 * kernel once and check it against its float64 CPU reference (max error vs the rigorous f32 bound), then time
 * it and print ms and GFLOP/s per variant (`main`: workgroup tiles for GPUs; `main_rt`: the register-tiled one
 * for CPU adapters).
 *
 *   npm run bench:kernel -- [matmul|linear_backward|all] [--M 64] [--N 2048] [--K 512] [--iters 10] [--variant main,main_rt]
 *
 * Device as the tests (BLORA_WEBGPU_BACKEND = vulkan | gl-compat; default vulkan: SwiftShader, or a GPU's
 * Vulkan driver). Shapes default to Whisper base's fc1 forward on 64 tokens (M 64, N 2048, K 512).
 */
import { parseArgs } from 'node:util';
import { acquireDevice, type NodeBackend } from '../src/gpu/device';
import { prepareMatmulBias } from '../src/gpu/kernels/matmul';
import { errorBoundF32, matmulBiasRef } from '../src/gpu/reference/matmul';
import { GpuRuntime } from '../src/gpu/runtime';
import { prepareLinearBackward } from '../src/engine/kernels/linear_backward';
import { linearBackwardRef } from '../src/engine/reference/linear_backward';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    M: { type: 'string', default: '64' },
    N: { type: 'string', default: '2048' },
    K: { type: 'string', default: '512' },
    iters: { type: 'string', default: '10' },
    variant: { type: 'string', default: 'main,main_rt' },
  },
});
const [M, N, K, iters] = [values.M, values.N, values.K, values.iters].map(Number);
const which = positionals[0] ?? 'all';
const variants = values.variant!.split(',');

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** Max |gpu − ref| / bound over the elements: ≤ 1 means within the rigorous f32 error bound. */
function worst(got: Float32Array, ref: Float64Array, absSum: Float64Array, terms: number): number {
  let w = 0;
  for (let i = 0; i < ref.length; i++) w = Math.max(w, Math.abs(got[i] - ref[i]) / Math.max(errorBoundF32(terms, absSum[i]), 1e-30));
  return w;
}

const backend = (process.env.BLORA_WEBGPU_BACKEND ?? 'vulkan') as NodeBackend;
const ctx = await acquireDevice({ label: 'bench-kernel', node: { backend } });
const rt = new GpuRuntime(ctx.device);
const a = ctx.caps.adapter;
console.log(
  `adapter: ${ctx.caps.backend} ${a.vendor}/${a.architecture} ${a.description || a.device}; shape M ${M} N ${N} K ${K}; ${iters} timed runs (best and median)`,
);
const rows: string[][] = [['kernel', 'variant', 'FLOP', 'best ms', 'median ms', 'GFLOP/s', 'max err / bound']];
const flops = 2 * M * N * K;
const record = (kernel: string, variant: string, ms: number[], err: number) => {
  const s = [...ms].sort((x, y) => x - y);
  rows.push([
    kernel,
    variant,
    `${(flops / 1e9).toFixed(2)} G`,
    s[0].toFixed(2),
    s[s.length >> 1].toFixed(2),
    (flops / (s[0] / 1000) / 1e9).toFixed(1),
    err.toFixed(3),
  ]);
  if (err > 1) console.error(`${kernel} ${variant}: error ${err.toFixed(2)}× the f32 bound — WRONG`);
};

try {
  if (which === 'matmul' || which === 'all') {
    // Y (M,N) = X (M,K) · Wᵀ + b
    const X = rand(M * K, 1),
      W = rand(N * K, 2),
      b = rand(N, 3);
    const ref = matmulBiasRef(X, W, b, M, N, K);
    const x = rt.upload('bench:X', X),
      w = rt.upload('bench:W', W),
      bias = rt.upload('bench:b', b),
      y = rt.storage('bench:Y', M * N * 4);
    for (const v of variants) {
      const call = await prepareMatmulBias(rt, { M, N, K }, { x, w, bias, y }, `bench:matmul_bias.${v}`, v === 'main_rt');
      call.run();
      const err = worst(await rt.readF32(y, M * N), ref.y, ref.absSum, K + 1);
      record('matmul_bias', v, await rt.time(() => call.run(), iters, 1), err);
      call.destroy();
    }
    for (const g of [x, w, bias, y]) g.destroy();
  }
  if (which === 'linear_backward' || which === 'all') {
    // dX (M,K) = dY (M,N) · W (N,K)
    const DY = rand(M * N, 4),
      W = rand(N * K, 5);
    const ref = linearBackwardRef(DY, W, M, N, K);
    const dy = rt.upload('bench:dY', DY),
      w = rt.upload('bench:W', W),
      dx = rt.storage('bench:dX', M * K * 4);
    for (const v of variants) {
      const call = await prepareLinearBackward(
        rt,
        { M, N, K },
        { dy, w, dx },
        { registerTiled: v === 'main_rt' },
        `bench:linear_backward.${v}`,
      );
      call.run();
      const err = worst(await rt.readF32(dx, M * K), ref.dx, ref.absSum, N);
      record('linear_backward', v, await rt.time(() => call.run(), iters, 1), err);
      call.destroy();
    }
    for (const g of [dy, w, dx]) g.destroy();
  }
  const width = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(width[c])).join('  '));
} finally {
  await ctx.destroy();
}

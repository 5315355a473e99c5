/**
 * Which matmul variant is faster on this device, measured: `main` (64×64 workgroup tiles in workgroup
 * memory, made for GPUs) or `main_rt` (16×16 register micro-tiles per thread, made for CPU adapters that run
 * invocations as SIMD lanes). Both give bit-identical results (test/gpu/matmul.test.ts), so the choice is
 * only about speed. Needed where the browser hides the adapter's vendor (Chromium reports "not disclosed"),
 * so GpuRuntime.softwareAdapter cannot be read from adapterInfo: a Linux machine without a GPU running
 * Chromium on llvmpipe would otherwise get the GPU variants, 2.5–3.5× slower there.
 *
 *   if (!rt.adapterKnown) rt.setSoftwareAdapter((await probeRegisterTiled(rt)).registerTiled);
 */
import { prepareMatmulBias, type MatmulShape } from './kernels/matmul';
import type { GpuRuntime } from './runtime';

export interface VariantProbe {
  /** true: main_rt was clearly faster (the device behaves like a CPU adapter) */
  registerTiled: boolean;
  /** median milliseconds per matmul, per variant */
  msMain: number;
  msRegisterTiled: number;
  shape: MatmulShape;
}

/** main_rt must beat main by this factor to be picked (on GPUs both take well under a millisecond here). */
const MARGIN = 1.5;

/** Times one (M×K)·(K×N) matmul in each variant (a decoder-sized projection; ~0.1 s per run on llvmpipe). */
export async function probeRegisterTiled(
  rt: GpuRuntime,
  shape: MatmulShape = { M: 128, N: 512, K: 512 },
  rounds = 5,
): Promise<VariantProbe> {
  const { M, N, K } = shape;
  const x = rt.upload('probe-variant:x', new Float32Array(M * K).fill(0.5));
  const w = rt.upload('probe-variant:w', new Float32Array(N * K).fill(0.25));
  const y = rt.storage('probe-variant:y', M * N * 4);
  const calls: Awaited<ReturnType<typeof prepareMatmulBias>>[] = [];
  try {
    for (const registerTiled of [false, true]) {
      calls.push(
        await prepareMatmulBias(rt, shape, { x, w, bias: null, y }, `probe-variant:${registerTiled ? 'main_rt' : 'main'}`, registerTiled),
      );
    }
    // Interleaved rounds, the fastest of each: on a loaded machine (a CPU adapter shares its cores with
    // everything else) a slow spike hits one run, not one variant, and the minimum is the variant's own
    // speed. A median of back-to-back runs once picked the wrong variant under load (26 vs 20 ms).
    const best = [Infinity, Infinity];
    for (const c of calls) await rt.time(() => c.run(), 0, 1); // compile + first dispatch
    for (let r = 0; r < rounds; r++) {
      for (const [i, c] of calls.entries()) best[i] = Math.min(best[i], ...(await rt.time(() => c.run(), 1, 0)));
    }
    const [msMain, msRegisterTiled] = best;
    return { registerTiled: msRegisterTiled * MARGIN < msMain, msMain, msRegisterTiled, shape };
  } finally {
    for (const c of calls) c.destroy();
    x.destroy();
    w.destroy();
    y.destroy();
  }
}

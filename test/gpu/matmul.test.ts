import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { prepareMatmulBias } from '../../src/gpu/kernels/matmul';
import { randomF32 } from '../support/random';
import { BENCH_SIZES, MATMUL_CASES, MATMUL_SHAPES, benchMatmul, runCompileErrorCase, runMatmulCase } from './cases';

describe('matmul_bias (Node / Dawn)', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;

  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('matmul-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });

  after(async () => {
    await ctx?.destroy();
  });

  for (const c of MATMUL_CASES) {
    test(c.name, async () => {
      const r = await runMatmulCase(rt, c);
      console.log(`${r.name}: ${r.detail}`);
      assert.ok(r.passed, `${r.name}: ${r.detail}`);
    });
  }

  // The cases above run the adapter's default variant (main_rt on software adapters, main on GPUs);
  // both variants sum over k in the same order, so the other one must agree BIT FOR BIT, which
  // checks it against the same float64 bound transitively (+ Whisper-base-like shapes here).
  test('main and main_rt variants: bit-identical', async () => {
    const shapes = [...MATMUL_SHAPES, [64, 512, 512], [70, 130, 100]] as const;
    for (const [i, [M, N, K]] of shapes.entries()) {
      const x = rt.upload('matmul-variants:x', randomF32(M * K, 500 + i));
      const w = rt.upload('matmul-variants:w', randomF32(N * K, 600 + i));
      const bias = i % 2 ? rt.upload('matmul-variants:b', randomF32(N, 700 + i)) : null;
      const out: Float32Array[] = [];
      for (const registerTiled of [false, true]) {
        const y = rt.upload('matmul-variants:y', new Float32Array(M * N).fill(NaN));
        const call = await prepareMatmulBias(rt, { M, N, K }, { x, w, bias, y }, `matmul-variants:${registerTiled}`, registerTiled);
        call.run();
        out.push(await rt.readF32(y, M * N));
        call.destroy();
        y.destroy();
      }
      let diff = 0;
      for (let j = 0; j < M * N; j++) if (out[0][j] !== out[1][j]) diff++;
      console.log(`variants ${M}×${N}×${K}${bias ? ' +bias' : ''}: ${diff} of ${M * N} elements differ`);
      assert.equal(diff, 0, `matmul_bias main vs main_rt ${M}×${N}×${K}: ${diff} elements differ`);
      for (const b of [x, w, bias]) b?.destroy();
    }
  });

  test('WGSL compile errors name the kernel and line', async () => {
    const r = await runCompileErrorCase(rt);
    console.log(`${r.name}: ${r.detail}`);
    assert.ok(r.passed, r.detail);
  });

  test('GFLOP/s (printed, not asserted)', async () => {
    for (const n of BENCH_SIZES) {
      const b = await benchMatmul(rt, n);
      console.log(
        `bench ${b.name} [${ctx.caps.backend}, ${ctx.caps.adapter.description || ctx.caps.adapter.device}]: ` +
          `${b.gflops.toFixed(2)} GFLOP/s (best run; runs ${b.ms.map((m) => m.toFixed(1)).join(', ')} ms)`,
      );
    }
  });

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

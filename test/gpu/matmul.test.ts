import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { BENCH_SIZES, MATMUL_CASES, benchMatmul, runCompileErrorCase, runMatmulCase } from './cases';

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

// The matmul variant probe (src/gpu/probe-variant.ts): the studio's training worker runs it when the
// browser hides the adapter's vendor. Here, on Dawn's software adapter (which names itself), the probe
// must reach the same verdict as adapterInfo — main_rt is the faster variant on a CPU — and the decision
// must reach every GpuRuntime of the device.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import { probeRegisterTiled } from '../../src/gpu/probe-variant';
import { GpuRuntime } from '../../src/gpu/runtime';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';

let ctx: GpuContext;
let rt: GpuRuntime;
before(async () => {
  ({ ctx, rt } = await nodeTestGpu('probe-variant-test'));
});
after(async () => {
  await ctx?.destroy();
});

test('on a software adapter the timing probe picks the register-tiled variant, as adapterInfo says', async () => {
  assert.ok(rt.adapterKnown, `Dawn names its adapter (${describeAdapter(ctx)})`);
  assert.equal(rt.softwareAdapter, true, 'the test machine has no GPU: a software adapter');
  const p = await probeRegisterTiled(rt);
  console.log(
    `probe ${JSON.stringify(p.shape)}: main ${p.msMain.toFixed(1)} ms, main_rt ${p.msRegisterTiled.toFixed(1)} ms → registerTiled ${p.registerTiled}`,
  );
  assert.ok(p.msMain > 0 && p.msRegisterTiled > 0);
  assert.equal(p.registerTiled, true, 'main_rt is 2.5–3.5× faster on CPU adapters (docs/benchmarks.md); the probe needs 1.5×');
});

test('setSoftwareAdapter decides for every GpuRuntime of the device', () => {
  const other = new GpuRuntime(ctx.device);
  rt.setSoftwareAdapter(false);
  assert.equal(other.softwareAdapter, false);
  assert.equal(new GpuRuntime(ctx.device).softwareAdapter, false);
  rt.setSoftwareAdapter(true);
  assert.equal(other.softwareAdapter, true);
});

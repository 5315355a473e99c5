/**
 * GpuRuntime GPU-buffer accounting (used by `npm run bench` for peak memory): every buffer made by
 * upload / storage / uniform / readback staging counts its allocated size until destroy(); a
 * double destroy() uncounts once; the peak survives frees and restarts at resetPeak(); two runtimes
 * of one device share the count.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import { GpuRuntime } from '../../src/gpu/runtime';
import { nodeTestGpu } from '../support/node-gpu';

let ctx: GpuContext;
let rt: GpuRuntime;
before(async () => {
  ({ ctx, rt } = await nodeTestGpu('runtime-memory-test'));
});
after(async () => {
  await ctx?.destroy();
});

test('live and peak GPU-buffer bytes', async () => {
  const base = rt.memory().liveBytes;
  const a = rt.storage('mem-test:a', 1000);
  const b = rt.upload('mem-test:b', new Float32Array([1, 2, 3])); // 12 B
  const u = rt.uniform('mem-test:u', new Uint32Array([7])); // padded to 16 B
  let m = rt.memory();
  assert.equal(m.liveBytes - base, 1000 + 12 + 16);
  assert.equal(m.top[0].label, 'mem-test:a');
  a.destroy();
  a.destroy(); // idempotent, counted once
  m = rt.memory();
  assert.equal(m.liveBytes - base, 28);
  assert.equal(m.peakBytes - base, 1028);
  // The readback staging buffer is counted while it lives, then freed.
  assert.deepEqual([...(await rt.readF32(b, 3))], [1, 2, 3]);
  assert.equal(rt.memory().liveBytes - base, 28);
  assert.ok(rt.memory().peakBytes - base >= 1028);
  rt.resetPeak();
  assert.equal(rt.memory().peakBytes, rt.memory().liveBytes);
  b.destroy();
  u.destroy();
  assert.equal(rt.memory().liveBytes, base);
  const other = new GpuRuntime(rt.device);
  const c = other.storage('mem-test:c', 64);
  assert.equal(rt.memory().liveBytes - base, 64);
  c.destroy();
  assert.equal(other.memory().liveBytes, base);
  assert.deepEqual(ctx.errors, []);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LIMITS_WE_NEED, probeCapabilities } from '../../src/gpu/device';
import { nodeTestGpu } from '../support/node-gpu';

test('probeCapabilities returns sane, JSON-serializable values', async () => {
  const { ctx } = await nodeTestGpu('probe-test');
  try {
    const caps = ctx.caps;
    console.log(`capabilities ${JSON.stringify(caps, null, 2).replace(/\n/g, '\n')}`);
    assert.deepEqual(JSON.parse(JSON.stringify(caps)), caps, 'round-trips through JSON');
    assert.equal(caps.platform, 'node');
    assert.ok(caps.adapter.description || caps.adapter.device || caps.adapter.vendor, 'adapter identifies itself');
    for (const k of LIMITS_WE_NEED) assert.ok(Number.isFinite(caps.limits[k]) && caps.limits[k] > 0, `limit ${k}`);
    // Spec minimums (compat mode included) — the engine assumes at least these.
    assert.ok(caps.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20);
    assert.ok(caps.limits.maxComputeWorkgroupStorageSize >= 16384);
    assert.ok(caps.limits.maxComputeInvocationsPerWorkgroup >= 128);
    assert.equal(caps.hasF16, caps.features.includes('shader-f16'));
    assert.equal(caps.hasSubgroups, caps.features.includes('subgroups'));
    assert.equal(caps.hasTimestamps, caps.features.includes('timestamp-query'));
    assert.ok(caps.featureLevel === 'core' || caps.featureLevel === 'compatibility');
    // The device really got the adapter's maxima and the optional features.
    for (const k of LIMITS_WE_NEED) {
      assert.equal((ctx.device.limits as unknown as Record<string, number>)[k], caps.limits[k], `device limit ${k}`);
    }
    for (const f of ['shader-f16', 'subgroups', 'timestamp-query'] as const) {
      assert.equal(ctx.device.features.has(f), caps.features.includes(f), `device feature ${f}`);
    }
    // Re-probing the same adapter gives the same answer.
    assert.deepEqual(probeCapabilities(ctx.adapter, { backend: caps.backend }).limits, caps.limits);
  } finally {
    await ctx.destroy();
  }
});

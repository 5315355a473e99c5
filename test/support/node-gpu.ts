/**
 * Node test helper: one Dawn device per test file, chosen by env
 *   BLORA_WEBGPU_BACKEND=vulkan (default; SwiftShader ICD when VK_ICD_FILENAMES is unset)
 *   BLORA_WEBGPU_BACKEND=gl-compat (Mesa llvmpipe via GLES, compatibility feature level)
 * Throws — never skips — when no adapter is found; the message names the missing package.
 */
import { acquireDevice, type GpuContext, type NodeBackend } from '../../src/gpu/device';
import { GpuRuntime } from '../../src/gpu/runtime';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE } from './env';

export async function nodeTestGpu(label: string): Promise<{ ctx: GpuContext; rt: GpuRuntime }> {
  const backend = (process.env.BLORA_WEBGPU_BACKEND ?? 'vulkan') as NodeBackend;
  if (backend !== 'vulkan' && backend !== 'gl-compat') {
    throw new Error(`BLORA_WEBGPU_BACKEND must be 'vulkan' or 'gl-compat', got '${backend}'`);
  }
  const ctx = await acquireDevice({ label, node: { backend } });
  return { ctx, rt: new GpuRuntime(ctx.device) };
}

/** Short adapter summary for logs. */
export function describeAdapter(ctx: GpuContext): string {
  const c = ctx.caps;
  const a = c.adapter;
  return `${c.backend}: ${a.vendor}/${a.architecture} ${a.description || a.device} (fallback=${c.isFallbackAdapter}, ${c.featureLevel})`;
}

/** Mesa lavapipe 25 from bookworm-backports, unpacked by scripts/setup.sh (step 2b) — a shader-f16 adapter. */
export const LAVAPIPE_BPO_ICD = process.env.BLORA_LAVAPIPE_ICD ?? join(CACHE, 'lavapipe-bpo/lvp_icd.json');

/**
 * A Dawn device on an adapter with `shader-f16` for the f16-storage tests: the lavapipe-bpo ICD of
 * setup (VK_ICD_FILENAMES is set for this whole process, so call it before any other device in the
 * file), or VK_ICD_FILENAMES as given when it already names a shader-f16 driver (a real GPU).
 * Returns { skip: reason } — printed loudly — only outside CI when setup could not provide it; in CI
 * (CI=true) a missing f16 adapter throws, so the f16 tests cannot silently disappear.
 */
export async function nodeF16Gpu(label: string): Promise<{ ctx: GpuContext; rt: GpuRuntime } | { skip: string }> {
  const fail = (reason: string): { skip: string } => {
    if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(`f16 tests need a shader-f16 adapter (CI): ${reason}`);
    console.warn(`\n*** SKIPPING f16-storage tests: ${reason} ***\n`);
    return { skip: reason };
  };
  if (!process.env.VK_ICD_FILENAMES) {
    if (!existsSync(LAVAPIPE_BPO_ICD))
      return fail(`no ${LAVAPIPE_BPO_ICD} — run scripts/setup.sh (step 2b unpacks lavapipe from bookworm-backports)`);
    process.env.VK_ICD_FILENAMES = LAVAPIPE_BPO_ICD;
  }
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Mesa's WSI complains on stderr without it (harmless)
  const ctx = await acquireDevice({ label, node: { backend: 'vulkan' } });
  if (!ctx.caps.hasF16) {
    await ctx.destroy();
    return fail(`adapter '${ctx.caps.adapter.description}' (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES}) has no shader-f16`);
  }
  return { ctx, rt: new GpuRuntime(ctx.device) };
}

/**
 * Node test helper: one Dawn device per test file, chosen by env
 *   BLORA_WEBGPU_BACKEND=vulkan (default; SwiftShader ICD when VK_ICD_FILENAMES is unset)
 *   BLORA_WEBGPU_BACKEND=gl-compat (Mesa llvmpipe via GLES, compatibility feature level)
 * Throws — never skips — when no adapter is found; the message names the missing package.
 */
import { acquireDevice, type GpuContext, type NodeBackend } from '../../src/gpu/device';
import { GpuRuntime } from '../../src/gpu/runtime';

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

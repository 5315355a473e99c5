// Which adapter the studio uses in the browser. Core first; a software (fallback) core adapter is slow,
// so when the browser also offers a hardware-backed compatibility-mode adapter (e.g. Chromium on
// OpenGL ES / Mesa llvmpipe), that one wins. Shared by the UI's probe and onnxruntime-web's setup.

export function isFallbackAdapter(a: GPUAdapter): boolean {
  const info = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return Boolean(info?.isFallbackAdapter ?? (a as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter);
}

export async function requestBestAdapter(gpu: GPU): Promise<{ adapter: GPUAdapter; level: 'core' | 'compatibility' } | null> {
  const core = await gpu.requestAdapter().catch(() => null);
  if (core && !isFallbackAdapter(core)) return { adapter: core, level: 'core' };
  const compat = await gpu.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions).catch(() => null);
  if (compat && (!core || !isFallbackAdapter(compat))) return { adapter: compat, level: 'compatibility' };
  return core ? { adapter: core, level: 'core' } : null;
}

/**
 * GPUDevice acquisition for the browser (navigator.gpu) and Node (Dawn via npm `webgpu`).
 *
 * Node backends (see /work/shared/webgpu-on-cpu.md for measurements):
 *  - 'vulkan' (default): Dawn on Vulkan. Without a GPU this needs Debian `libvulkan1` (the loader)
 *    and an ICD; when VK_ICD_FILENAMES is unset and Chromium's SwiftShader ICD exists we point
 *    VK_ICD_FILENAMES at it (a real GPU's ICD is then ignored — set VK_ICD_FILENAMES yourself, or
 *    pass `node.icd: 'system'`, on GPU machines where you want the hardware driver).
 *  - 'gl-compat': Dawn on OpenGL ES (Mesa llvmpipe, EGL_PLATFORM=surfaceless) with
 *    featureLevel 'compatibility': ~10× faster on CPU, but no f16/subgroups, 128 MiB bindings.
 *  Never use Dawn's 'null' backend: its adapter "computes" garbage.
 *
 * Browser: `navigator.gpu` (window or worker). Headless Chromium needs `--enable-unsafe-webgpu`
 * (CPU adapters are blocklisted otherwise); see test/support/chromium.ts.
 */
import { bloraCacheRoot } from '../runtime/cache-dir';

export type NodeBackend = 'vulkan' | 'gl-compat';
export type FeatureLevel = 'core' | 'compatibility';

export interface AcquireOptions {
  /** Label of the GPUDevice (shows in Dawn/Chrome error messages). */
  label?: string;
  /** Adapter feature level; 'compatibility' is required for GL-compat adapters. Default: per backend. */
  featureLevel?: FeatureLevel;
  powerPreference?: GPUPowerPreference;
  /** Optional features to enable when the adapter has them. Default: OPTIONAL_FEATURES. */
  optionalFeatures?: GPUFeatureName[];
  /** Features the caller cannot do without; acquisition fails with a clear message when missing. */
  requiredFeatures?: GPUFeatureName[];
  /** Node only. */
  node?: {
    backend?: NodeBackend;
    /** 'swiftshader' (default): use Chromium's SwiftShader ICD if VK_ICD_FILENAMES is unset.
     *  'system': leave the Vulkan loader alone (real GPU drivers). */
    icd?: 'swiftshader' | 'system';
    /** Extra Dawn options for `create()`, e.g. 'enable-dawn-features=dump_shaders'. */
    dawnOptions?: string[];
  };
  /** Called for every uncaptured GPU error (already logged to console.error). */
  onUncapturedError?: (message: string) => void;
  /** Called when the device is lost for a reason other than our own destroy(). */
  onLost?: (info: { reason: string; message: string }) => void;
}

/** JSON-serializable description of an adapter, for the engine and the UI. */
export interface GpuCapabilities {
  platform: 'node' | 'browser';
  /** Node: which Dawn backend we asked for; browser: 'browser'. */
  backend: NodeBackend | 'browser';
  adapter: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    subgroupMinSize: number | null;
    subgroupMaxSize: number | null;
  };
  isFallbackAdapter: boolean;
  featureLevel: FeatureLevel;
  features: string[];
  wgslLanguageFeatures: string[];
  limits: Record<LimitName, number>;
  hasF16: boolean;
  hasSubgroups: boolean;
  hasTimestamps: boolean;
}

/** Limits the WGSL engine depends on; we request the adapter's maximum for each. */
export const LIMITS_WE_NEED = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
  'maxBindingsPerBindGroup',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;
export type LimitName = (typeof LIMITS_WE_NEED)[number];

export const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

const isNode = (): boolean =>
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string' &&
  !(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu;

/** Plain-JSON snapshot of an adapter's identity, features and the limits that matter. */
export function probeCapabilities(adapter: GPUAdapter, opts: { gpu?: GPU; backend?: GpuCapabilities['backend'] } = {}): GpuCapabilities {
  const info = adapter.info as GPUAdapterInfo & {
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
    isFallbackAdapter?: boolean;
  };
  const features = [...adapter.features].map(String).sort();
  const limits = {} as Record<LimitName, number>;
  for (const k of LIMITS_WE_NEED) limits[k] = Number((adapter.limits as unknown as Record<string, number>)[k]);
  const legacyFallback = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const wgslLf = opts.gpu?.wgslLanguageFeatures;
  return {
    platform: isNode() ? 'node' : 'browser',
    backend: opts.backend ?? (isNode() ? 'vulkan' : 'browser'),
    adapter: {
      vendor: info.vendor ?? '',
      architecture: info.architecture ?? '',
      device: info.device ?? '',
      description: info.description ?? '',
      subgroupMinSize: info.subgroupMinSize ?? null,
      subgroupMaxSize: info.subgroupMaxSize ?? null,
    },
    isFallbackAdapter: Boolean(info.isFallbackAdapter ?? legacyFallback ?? false),
    // Core adapters expose 'core-features-and-limits'; compatibility-mode adapters do not.
    // (Dawn-node does not expose adapter.featureLevel.)
    featureLevel: features.includes('core-features-and-limits') ? 'core' : 'compatibility',
    features,
    wgslLanguageFeatures: wgslLf ? [...wgslLf].map(String).sort() : [],
    limits,
    hasF16: features.includes('shader-f16'),
    hasSubgroups: features.includes('subgroups'),
    hasTimestamps: features.includes('timestamp-query'),
  };
}

export interface GpuContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  caps: GpuCapabilities;
  /** Uncaptured errors seen so far (tests assert this stays empty). */
  readonly errors: string[];
  /** Resolves when the device is lost for any reason (including destroy()). */
  readonly lost: Promise<GPUDeviceLostInfo>;
  /** Destroy the device and drop the Dawn instance so a Node process can exit. Idempotent. */
  destroy(): Promise<void>;
}

async function nodeGpu(opts: AcquireOptions): Promise<{ gpu: GPU; backend: NodeBackend }> {
  const proc = (globalThis as { process?: NodeJS.Process }).process!;
  const fs = proc.getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined;
  const backend = opts.node?.backend ?? 'vulkan';
  const dawnOptions = [...(opts.node?.dawnOptions ?? [])];
  // Mesa's drivers here (lavapipe, llvmpipe) compile every pipeline with LLVM: minutes for the decoder's kernels
  // on 2 cores, in every process. Their disk cache (keyed by shader and driver build) turns a later run's
  // compiles into reads; keep it with blora-studio's other caches, not in $HOME. MESA_SHADER_CACHE_DIR or
  // MESA_SHADER_CACHE_DISABLE set by the caller win.
  if (!proc.env.MESA_SHADER_CACHE_DIR && !proc.env.MESA_SHADER_CACHE_DISABLE)
    proc.env.MESA_SHADER_CACHE_DIR = `${bloraCacheRoot(proc.env)}/mesa-shader-cache`;
  if (backend === 'vulkan') {
    if ((opts.node?.icd ?? 'swiftshader') === 'swiftshader' && !proc.env.VK_ICD_FILENAMES) {
      // Must be set before Dawn loads the Vulkan loader (first create()).
      if (fs?.existsSync(SWIFTSHADER_ICD)) proc.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    }
    dawnOptions.push('backend=vulkan');
  } else {
    proc.env.EGL_PLATFORM ??= 'surfaceless';
    dawnOptions.push('backend=opengles');
  }
  // Variable specifier + @vite-ignore: Vite must never try to bundle the native Dawn addon.
  const spec = 'webgpu';
  let mod: { create(o: string[]): GPU; globals: object };
  try {
    mod = (await import(/* @vite-ignore */ spec)) as typeof mod;
  } catch (e) {
    throw new Error(`WebGPU for Node unavailable: cannot import npm package 'webgpu' (${(e as Error).message}). Run npm install.`);
  }
  // GPUBufferUsage, GPUMapMode, GPUShaderStage … as globals, like in a browser.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  return { gpu: mod.create(dawnOptions), backend };
}

function noAdapterHint(platform: 'node' | 'browser', backend: string): string {
  if (platform === 'browser') {
    return (
      'navigator.gpu.requestAdapter() returned null. Headless Chromium without a GPU needs ' +
      '--enable-unsafe-webgpu (CPU adapters are blocklisted); for GL-compat also ' +
      "--use-angle=gl-egl --use-webgpu-adapter=opengles and featureLevel 'compatibility'."
    );
  }
  if (backend === 'gl-compat') {
    return (
      "Dawn (npm 'webgpu', backend=opengles) found no adapter. Needs Mesa EGL/GLES " +
      '(libegl1, libgles2, libgl1-mesa-dri) and EGL_PLATFORM=surfaceless.'
    );
  }
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  return (
    "Dawn (npm 'webgpu', backend=vulkan) found no adapter. Without a GPU it needs the Vulkan " +
    'loader (Debian package libvulkan1: "libvulkan.so.1") and a software ICD: SwiftShader from ' +
    `Debian package chromium (${SWIFTSHADER_ICD}), pointed to by VK_ICD_FILENAMES ` +
    `(currently ${proc?.env.VK_ICD_FILENAMES ?? 'unset'}). ` +
    "Alternatively pass node.backend 'gl-compat' (Mesa llvmpipe)."
  );
}

/**
 * Acquire a GPUDevice with the adapter's maxima for LIMITS_WE_NEED and every optional feature
 * present. Throws (never returns null) with a hint naming the missing package/flag.
 */
export async function acquireDevice(opts: AcquireOptions = {}): Promise<GpuContext> {
  let gpu: GPU | undefined;
  let backend: GpuCapabilities['backend'];
  let platform: 'node' | 'browser';
  if (isNode()) {
    ({ gpu, backend } = await nodeGpu(opts));
    platform = 'node';
  } else {
    gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    backend = 'browser';
    platform = 'browser';
    if (!gpu) {
      throw new Error(
        'WebGPU unavailable: navigator.gpu is undefined (insecure context, old browser, or ' +
          'Chromium started without WebGPU; headless Chromium needs --enable-unsafe-webgpu).',
      );
    }
  }
  const featureLevel = opts.featureLevel ?? (backend === 'gl-compat' ? 'compatibility' : 'core');
  const adapter = await gpu.requestAdapter({
    featureLevel,
    ...(opts.powerPreference ? { powerPreference: opts.powerPreference } : {}),
  } as GPURequestAdapterOptions);
  if (!adapter) throw new Error(`No WebGPU adapter (${platform}, ${backend}). ${noAdapterHint(platform, backend)}`);

  const caps = probeCapabilities(adapter, { gpu, backend });
  const missing = (opts.requiredFeatures ?? []).filter((f) => !adapter.features.has(f));
  if (missing.length) {
    throw new Error(`Adapter ${caps.adapter.description || caps.adapter.device} lacks required features: ${missing.join(', ')}`);
  }
  const requiredFeatures = [...new Set([...(opts.requiredFeatures ?? []), ...(opts.optionalFeatures ?? OPTIONAL_FEATURES)])].filter((f) =>
    adapter.features.has(f),
  );
  const requiredLimits: Record<string, number> = {};
  for (const k of LIMITS_WE_NEED) requiredLimits[k] = caps.limits[k];

  const label = opts.label ?? 'blora-device';
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ label, requiredFeatures, requiredLimits });
  } catch (e) {
    throw new Error(`requestDevice failed on ${caps.adapter.description}: ${(e as Error).message}`);
  }

  const errors: string[] = [];
  let destroyed = false;
  const onError = (ev: Event): void => {
    const err = (ev as GPUUncapturedErrorEvent).error;
    const msg = `[${label}] uncaptured ${err?.constructor?.name ?? 'GPUError'}: ${err?.message ?? String(err)}`;
    errors.push(msg);
    console.error(msg);
    opts.onUncapturedError?.(msg);
  };
  device.addEventListener('uncapturederror', onError);
  const lost = device.lost.then((info) => {
    if (!destroyed) {
      console.error(`[${label}] GPU device lost (reason: ${info.reason}): ${info.message}`);
      opts.onLost?.({ reason: String(info.reason), message: info.message });
    }
    return info;
  });

  const ctx: GpuContext = {
    device,
    adapter,
    caps,
    errors,
    lost,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      device.removeEventListener('uncapturederror', onError);
      try {
        await device.queue.onSubmittedWorkDone();
      } catch {
        /* device already lost */
      }
      device.destroy();
      await lost;
      // Drop our references to the Dawn instance (dawn.node keeps the process alive while it lives).
      gpu = undefined;
    },
  };
  return ctx;
}

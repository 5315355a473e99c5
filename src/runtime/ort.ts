// onnxruntime-web, configured once. In the browser the WebGPU execution provider is tried first and the
// wasm (CPU) provider is the fallback; in Node onnxruntime-web only has its wasm backend.

import * as ort from 'onnxruntime-web';
import { isFallbackAdapter, requestBestAdapter } from '../gpu/adapter';
import { acquireDevice } from '../gpu/device';
import { probeRegisterTiled, type VariantProbe } from '../gpu/probe-variant';
import { GpuRuntime } from '../gpu/runtime';

export { ort };
export type OrtBackend = 'webgpu' | 'wasm';

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined' && typeof self === 'undefined';

let configured = false;
export function configureOrt(opts: { wasmPaths?: string; threads?: number } = {}): void {
  if (configured) return;
  configured = true;
  const cores = typeof navigator !== 'undefined' && navigator.hardwareConcurrency ? navigator.hardwareConcurrency : 2;
  // Threads need crossOriginIsolated in the browser (the dev server sends COOP/COEP headers).
  const canThread = isNode || (typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated);
  ort.env.wasm.numThreads = canThread ? (opts.threads ?? Math.min(4, cores)) : 1;
  if (opts.wasmPaths) ort.env.wasm.wasmPaths = opts.wasmPaths;
  ort.env.logLevel = 'error';
}

/** Which backend to use: WebGPU when the browser has an adapter, else wasm. */
export async function pickBackend(prefer: OrtBackend | 'auto' = 'auto'): Promise<{ backend: OrtBackend; reason: string }> {
  if (isNode) return { backend: 'wasm', reason: prefer === 'wasm' ? 'wasm requested' : 'onnxruntime-web has no WebGPU backend in Node' };
  if (prefer === 'wasm') return { backend: 'wasm', reason: `wasm requested${await probeNote()}` };
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) return { backend: 'wasm', reason: 'this browser has no WebGPU (navigator.gpu missing)' };
  const best = await requestBestAdapter(gpu);
  if (!best) return { backend: 'wasm', reason: 'WebGPU is present but no adapter was offered' };
  const { adapter, level } = best;
  const info = adapter.info;
  // A CPU adapter (llvmpipe, SwiftShader) runs onnxruntime's WebGPU kernels far slower than its wasm ones
  // (the demo data took 404 s to encode on llvmpipe's WebGPU, seconds per clip on wasm). Browsers hide the
  // vendor, so when it is not named, time the engine's two matmul variants on this adapter, as the training
  // worker does: the CPU-tuned one clearly winning means a CPU behind the adapter.
  const named = `${info?.vendor ?? ''} ${info?.architecture ?? ''} ${info?.description ?? ''}`;
  if (isFallbackAdapter(adapter) || /llvmpipe|lavapipe|swiftshader|software/i.test(named)) {
    return {
      backend: 'wasm',
      reason: `the WebGPU adapter is a software one (${named.trim() || 'fallback adapter'}): wasm is faster there`,
    };
  }
  if (!info?.vendor && prefer === 'auto') {
    const probe = await probeCpuLike(level).catch((e: Error) => ({ error: e.message }));
    if ('error' in probe) return { backend: 'wasm', reason: `the WebGPU adapter could not be timed (${probe.error}): wasm to be safe` };
    const times = `WGSL matmul probe: GPU tiles ${probe.msMain.toFixed(1)} ms, CPU-tuned ${probe.msRegisterTiled.toFixed(1)} ms`;
    if (probe.registerTiled) return { backend: 'wasm', reason: `the WebGPU adapter behaves like a CPU (${times}): wasm is faster there` };
    (ort.env.webgpu as { adapter?: unknown }).adapter = adapter;
    return { backend: 'webgpu', reason: `WebGPU adapter (vendor not disclosed; ${times}: a GPU) (${level})` };
  }
  // Hand onnxruntime-web the adapter we chose, so it does not request a different one.
  (ort.env.webgpu as { adapter?: unknown }).adapter = adapter;
  return {
    backend: 'webgpu',
    reason:
      `WebGPU adapter ${info?.vendor || '(vendor not disclosed)'} ${info?.architecture || ''} (${level}${isFallbackAdapter(adapter) ? ', software' : ''})`.replace(
        /\s+/g,
        ' ',
      ),
  };
}

/**
 * With wasm requested the encoder needs no adapter, but the training engine still runs on it: where the browser
 * hides the vendor, the probe's times go into the reason, so the run estimate (src/ui/estimate.ts) reads this
 * adapter's speed instead of assuming one.
 */
async function probeNote(): Promise<string> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  const best = gpu ? await requestBestAdapter(gpu).catch(() => null) : null;
  if (!best || best.adapter.info?.vendor) return '';
  const probe = await probeCpuLike(best.level).catch(() => null);
  return probe ? ` (WGSL matmul probe: GPU tiles ${probe.msMain.toFixed(1)} ms, CPU-tuned ${probe.msRegisterTiled.toFixed(1)} ms)` : '';
}

/**
 * An ONNX graph over 2 GB keeps its weights in an external-data file beside it (protobuf's limit): the
 * transformers.js layout names it `<graph>.onnx_data`, and the graph refers to it by that file name.
 */
export interface ExternalData {
  path: string;
  data: Uint8Array;
}

/** Read a graph and its external-data file, if the folder has one. */
export async function readOnnx(
  source: {
    read(path: string, onProgress?: (l: number, t: number | null) => void): Promise<Uint8Array>;
    has(path: string): Promise<boolean>;
  },
  file: string,
  onProgress?: (l: number, t: number | null) => void,
): Promise<{ bytes: Uint8Array; externalData?: ExternalData[] }> {
  const bytes = await source.read(file, onProgress);
  const dataFile = `${file}_data`;
  if (!(await source.has(dataFile))) return { bytes };
  return { bytes, externalData: [{ path: dataFile.split('/').pop()!, data: await source.read(dataFile, onProgress) }] };
}

export async function createSession(
  bytes: Uint8Array,
  backend: OrtBackend,
  label: string,
  externalData?: ExternalData[],
): Promise<ort.InferenceSession> {
  configureOrt();
  try {
    return await ort.InferenceSession.create(bytes, {
      ...(externalData ? { externalData } : {}),
      executionProviders: backend === 'webgpu' ? ['webgpu'] : ['wasm'],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3, // errors only: node-placement warnings are expected (shape ops stay on the CPU)
    });
  } catch (e) {
    throw new Error(`onnxruntime-web could not load ${label} on ${backend}: ${(e as Error).message}`);
  }
}

/**
 * The training kernels' variant probe on a device of its own (an adapter can hand out one device). The page keeps
 * one adapter, so the answer is kept per feature level: a second model load does not open a device and time it
 * again (about 1 s on a software adapter). A failed probe is not kept, so the next load tries again.
 */
const probes = new Map<'core' | 'compatibility', Promise<VariantProbe>>();
function probeCpuLike(level: 'core' | 'compatibility'): Promise<VariantProbe> {
  let p = probes.get(level);
  if (!p) {
    p = (async () => {
      const ctx = await acquireDevice({ featureLevel: level, label: 'encoder-backend-probe' });
      try {
        return await probeRegisterTiled(new GpuRuntime(ctx.device));
      } finally {
        await ctx.destroy();
      }
    })();
    p.catch(() => probes.delete(level));
    probes.set(level, p);
  }
  return p;
}

// onnxruntime-web, configured once. In the browser the WebGPU execution provider is tried first and the
// wasm (CPU) provider is the fallback; in Node onnxruntime-web only has its wasm backend.

import * as ort from 'onnxruntime-web';
import { isFallbackAdapter, requestBestAdapter } from '../gpu/adapter';

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
  if (prefer === 'wasm') return { backend: 'wasm', reason: 'wasm requested' };
  if (isNode) return { backend: 'wasm', reason: 'onnxruntime-web has no WebGPU backend in Node' };
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) return { backend: 'wasm', reason: 'this browser has no WebGPU (navigator.gpu missing)' };
  const best = await requestBestAdapter(gpu);
  if (!best) return { backend: 'wasm', reason: 'WebGPU is present but no adapter was offered' };
  // Hand onnxruntime-web the adapter we chose, so it does not request a different one.
  const { adapter, level } = best;
  (ort.env.webgpu as { adapter?: unknown }).adapter = adapter;
  const info = adapter.info;
  return { backend: 'webgpu', reason: `WebGPU adapter ${info?.vendor || '(vendor not disclosed)'} ${info?.architecture || ''} (${level}${isFallbackAdapter(adapter) ? ', software' : ''})`.replace(/\s+/g, ' ') };
}

export async function createSession(bytes: Uint8Array, backend: OrtBackend, label: string): Promise<ort.InferenceSession> {
  configureOrt();
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: backend === 'webgpu' ? ['webgpu'] : ['wasm'],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3, // errors only: node-placement warnings are expected (shape ops stay on the CPU)
    });
  } catch (e) {
    throw new Error(`onnxruntime-web could not load ${label} on ${backend}: ${(e as Error).message}`);
  }
}

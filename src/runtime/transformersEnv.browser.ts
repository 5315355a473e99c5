// Browser only (imported by the model worker). transformers.js runs a small onnxruntime-web graph for
// the mel-filter matmul of WhisperFeatureExtractor, through its own onnxruntime-web instance, and by
// default fetches that instance's wasm from a CDN. The studio works offline: serve the files ourselves.
import { env } from '@huggingface/transformers';
import asyncifyMjs from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.mjs?url';
import asyncifyWasm from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';

const onnx = env.backends.onnx as { wasm?: { wasmPaths?: unknown } };
if (onnx.wasm) {
  onnx.wasm.wasmPaths = { mjs: new URL(asyncifyMjs, self.location.href).href, wasm: new URL(asyncifyWasm, self.location.href).href };
}
env.allowRemoteModels = false; // the studio reads model files itself (src/model/source.ts)

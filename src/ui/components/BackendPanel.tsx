// Which compute the studio got: the WebGPU adapter (and its limits/features) or the wasm fallback.
import { chooseStorageFor } from '../../gpu/storage-choice';
import { useStudio } from '../store';

export function BackendPanel() {
  const gpu = useStudio((s) => s.gpu);
  const model = useStudio((s) => s.model);
  const caps = gpu.caps;
  return (
    <section className="panel" data-testid="backend-panel">
      <h2>Compute</h2>
      {gpu.status === 'probing' && <p>Probing WebGPU…</p>}
      {gpu.status === 'webgpu' && caps && (
        <>
          <p data-testid="backend">
            <span className="badge ok">WebGPU</span> {caps.adapter.vendor || 'adapter (vendor not disclosed by the browser)'}{' '}
            {caps.adapter.architecture} {caps.adapter.description && <span className="muted">({caps.adapter.description})</span>}
            {caps.isFallbackAdapter && (
              <span className="badge warn" title="a CPU (software) adapter: correct but slow">
                software adapter
              </span>
            )}
          </p>
          <p className="muted small">
            {caps.featureLevel} · max storage binding {(caps.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB · workgroup
            storage {caps.limits.maxComputeWorkgroupStorageSize} B · f16 {caps.hasF16 ? 'yes' : 'no'} · subgroups{' '}
            {caps.hasSubgroups ? 'yes' : 'no'} · timestamps {caps.hasTimestamps ? 'yes' : 'no'}
          </p>
          {/* the engine's choice (src/engine/weights.ts chooseStorage) is this function of shader-f16 */}
          <p className="small" data-testid="storage" data-storage={chooseStorageFor(caps.hasF16).storage}>
            storage: {chooseStorageFor(caps.hasF16).reason}
            <span className="muted"> (frozen weights and cross-attention K/V; math, adapters and optimizer state in f32)</span>
          </p>
        </>
      )}
      {gpu.status === 'none' && (
        <p data-testid="backend">
          <span className="badge warn">wasm fallback</span> No WebGPU: {gpu.reason}. The frozen encoder runs on onnxruntime-web's CPU (wasm)
          backend, which is slower; training needs WebGPU (Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu).
        </p>
      )}
      {model.info && (
        <p className="small" data-testid="model-backends">
          Encoder on <b>{model.info.encoderBackend}</b> ({model.info.backendReason}); frozen ONNX decoder on{' '}
          <b>{model.info.decoderBackend}</b>.
        </p>
      )}
    </section>
  );
}

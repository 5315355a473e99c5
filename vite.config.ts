import { existsSync } from 'node:fs';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// COOP/COEP make the page crossOriginIsolated, which onnxruntime-web's multi-threaded wasm needs.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  plugins: [react()],
  server: { headers: isolation, fs: { allow: ['.'] } },
  preview: { headers: isolation },
  // onnxruntime-web locates its .wasm next to its own module; pre-bundling would move it.
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    rollupOptions: {
      // audio-decode lazily imports optional decoders that are not installed (ape, …); they are never
      // reached for the formats the studio accepts, so leave those imports to fail at run time.
      external: (id: string) => /^@audio\/decode-/.test(id) && !existsSync(`node_modules/${id}`),
    },
  },
});

// The UI side of the model worker: one worker, promises per request, progress into the store.
import type { FromWorker, ModelInfo, ModelLocation, ToWorker, Trainability } from './protocol';
import type { LoadProgress, TranscribeTiming } from '../pipeline/transcriber';
import type { OrtBackend } from '../runtime/ort';

export interface TranscriptMsg {
  text: string;
  language: string | null;
  tokens: number;
  truncated: boolean;
  timing: TranscribeTiming;
}

export class ModelClient {
  private worker = new Worker(new URL('./model.worker.ts', import.meta.url), { type: 'module', name: 'model-worker' });
  private pending = new Map<string, { resolve: (t: TranscriptMsg) => void; reject: (e: Error) => void }>();
  private encodes = new Map<string, { resolve: (r: { cached: boolean; ms: number }) => void; reject: (e: Error) => void }>();
  private loadWaiter: { resolve: (i: ModelInfo) => void; reject: (e: Error) => void } | null = null;
  private seq = 0;

  constructor(
    private onProgress: (p: LoadProgress) => void,
    private onTrainability: (modelId: string, t: Trainability) => void = () => {},
  ) {
    this.worker.onmessage = (ev: MessageEvent<FromWorker>) => this.handle(ev.data);
    this.worker.onerror = (ev) => {
      const err = new Error(`model worker crashed: ${ev.message}`);
      this.loadWaiter?.reject(err);
      for (const p of this.pending.values()) p.reject(err);
      for (const p of this.encodes.values()) p.reject(err);
      this.pending.clear();
      this.encodes.clear();
    };
  }

  private send(m: ToWorker, transfer: Transferable[] = []) {
    this.worker.postMessage(m, transfer);
  }

  private handle(m: FromWorker) {
    switch (m.type) {
      case 'progress':
        this.onProgress(m.progress);
        break;
      case 'loaded':
        this.loadWaiter?.resolve(m.info);
        this.loadWaiter = null;
        break;
      case 'trainability':
        this.onTrainability(m.modelId, m.trainability);
        break;
      case 'load-error':
        this.loadWaiter?.reject(new Error(m.message));
        this.loadWaiter = null;
        break;
      case 'transcript': {
        const { id, type: _t, ...rest } = m;
        this.pending.get(id)?.resolve(rest);
        this.pending.delete(id);
        break;
      }
      case 'encoded':
        this.encodes.get(m.id)?.resolve({ cached: m.cached, ms: m.ms });
        this.encodes.delete(m.id);
        break;
      case 'encode-error':
        this.encodes.get(m.id)?.reject(new Error(m.message));
        this.encodes.delete(m.id);
        break;
      case 'transcribe-error':
        this.pending.get(m.id)?.reject(new Error(m.message));
        this.pending.delete(m.id);
        break;
    }
  }

  load(location: ModelLocation, backend: OrtBackend | 'auto' = 'auto'): Promise<ModelInfo> {
    return new Promise((resolve, reject) => {
      this.loadWaiter = { resolve, reject };
      this.send({ type: 'load', location, backend });
    });
  }

  transcribe(samples: Float32Array, language: string | null): Promise<TranscriptMsg> {
    const id = String(++this.seq);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const copy = samples.slice();
      this.send({ type: 'transcribe', id, samples: copy, language }, [copy.buffer]);
    });
  }

  /** Encoder states of `samples` into the persistent cache under `key` (the utterance hash). */
  encode(samples: Float32Array, key: string): Promise<{ cached: boolean; ms: number }> {
    const id = String(++this.seq);
    return new Promise((resolve, reject) => {
      this.encodes.set(id, { resolve, reject });
      const copy = samples.slice();
      this.send({ type: 'encode', id, samples: copy, key }, [copy.buffer]);
    });
  }

  terminate() {
    this.worker.terminate();
  }
}

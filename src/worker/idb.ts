// A small IndexedDB wrapper shared by the UI thread and the workers (both have IndexedDB).
//   encoder      `${modelId}|${utteranceKey}` → Float32Array (1500, d_model) frozen-encoder states
//   runs         run id → RunSummary (config, records, status) — what the compare view lists
//   checkpoints  run id → trainer checkpoint (opaque bytes + step) for resume after a reload
//   evals        frozen-model evaluation key → its EvalRecords + transcripts (step 0 is the same for every
//                run on the same model, eval sets and decoding settings: computed once, reused)
//   datasets     dataset id → the data panel's entry once encoded (names, roles, transcripts, cache keys;
//                no audio): a reload keeps the datasets, the encoder states are already cached
// A full quota is reported as StorageFullError with what to delete, never swallowed.

const DB_NAME = 'blora-studio';
const DB_VERSION = 2;
export const STORES = ['encoder', 'runs', 'checkpoints', 'evals', 'datasets'] as const;
export type StoreName = (typeof STORES)[number];

export class StorageFullError extends Error {
  constructor(what: string) {
    super(
      `Browser storage is full while saving ${what}. Delete old runs (Compare view → delete) or clear the ` +
        'encoder cache (Data panel → clear cache), then retry.',
    );
    this.name = 'StorageFullError';
  }
}

let dbPromise: Promise<IDBDatabase> | null = null;

function openDb(): Promise<IDBDatabase> {
  dbPromise ??= new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') return reject(new Error('IndexedDB is not available in this browser context'));
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      for (const s of STORES) if (!req.result.objectStoreNames.contains(s)) req.result.createObjectStore(s);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`IndexedDB ${DB_NAME}: ${req.error?.message ?? 'open failed'}`));
    req.onblocked = () => reject(new Error(`IndexedDB ${DB_NAME}: blocked by another tab holding an old version`));
  });
  return dbPromise;
}

function wrap<T>(req: IDBRequest<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => {
      const e = req.error;
      reject(e?.name === 'QuotaExceededError' ? new StorageFullError(what) : new Error(`IndexedDB (${what}): ${e?.message ?? 'failed'}`));
    };
  });
}

async function tx(store: StoreName, mode: IDBTransactionMode): Promise<IDBObjectStore> {
  return (await openDb()).transaction(store, mode).objectStore(store);
}

export async function idbGet<T>(store: StoreName, key: string): Promise<T | undefined> {
  return wrap((await tx(store, 'readonly')).get(key), `${store}/${key}`) as Promise<T | undefined>;
}

export async function idbPut(store: StoreName, key: string, value: unknown): Promise<void> {
  await wrap((await tx(store, 'readwrite')).put(value, key), `${store}/${key}`);
}

export async function idbDelete(store: StoreName, key: string): Promise<void> {
  await wrap((await tx(store, 'readwrite')).delete(key), `${store}/${key}`);
}

/**
 * Several writes to one store as ONE transaction, resolved when it has committed: all of them land or none
 * (a full quota aborts the transaction — e.g. a checkpoint and its records never end up half written).
 * `f` gets the store and may read (request callbacks) before writing.
 */
export async function idbAtomic(store: StoreName, what: string, f: (s: IDBObjectStore) => void): Promise<void> {
  const t = (await openDb()).transaction(store, 'readwrite');
  const done = new Promise<void>((resolve, reject) => {
    const fail = () => {
      const e = t.error;
      reject(
        e?.name === 'QuotaExceededError'
          ? new StorageFullError(what)
          : new Error(`IndexedDB (${what}): ${e?.message ?? 'transaction aborted'}`),
      );
    };
    t.oncomplete = () => resolve();
    t.onabort = fail; // a failed request aborts the transaction (its error is t.error)
  });
  f(t.objectStore(store));
  return done;
}

export async function idbHas(store: StoreName, key: string): Promise<boolean> {
  return (await wrap((await tx(store, 'readonly')).count(key), `${store}/${key}`)) > 0;
}

export async function idbAll<T>(store: StoreName): Promise<T[]> {
  return wrap((await tx(store, 'readonly')).getAll(), store) as Promise<T[]>;
}

export async function idbClear(store: StoreName): Promise<void> {
  await wrap((await tx(store, 'readwrite')).clear(), store);
}

/** Cache key of an utterance's encoder states: the model and the audio (hash of the 16-kHz samples). */
export function encoderCacheKey(modelId: string, utteranceKey: string): string {
  return `${modelId}|${utteranceKey}`;
}

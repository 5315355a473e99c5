/**
 * Which storage type the engine uses for frozen weights and the K/V cache (issue 13 item 1), and the
 * words the Compute panel and the logs show for it. No imports: the UI uses it without pulling in the
 * shaders. The engine's choice (src/engine/weights.ts chooseStorage) is this function of the device's
 * 'shader-f16' feature, so the panel's line (from the adapter's features) says what the worker does.
 */
export type StorageType = 'f32' | 'f16';

export interface StorageChoice {
  storage: StorageType;
  /** 'f16 (shader-f16)', 'f32 — this adapter has no shader-f16', … */
  reason: string;
}

/** `requested` 'f16' | 'f32' wins (f16 without shader-f16 is an error); undefined / 'auto': f16 iff hasF16. */
export function chooseStorageFor(hasF16: boolean, requested?: StorageType | 'auto'): StorageChoice {
  if (requested === 'f16') {
    if (!hasF16) throw new Error("storage 'f16' asked for, but this adapter has no 'shader-f16' feature (use 'f32' or 'auto')");
    return { storage: 'f16', reason: 'f16 (shader-f16, asked for)' };
  }
  if (requested === 'f32')
    return { storage: 'f32', reason: hasF16 ? 'f32 (asked for; the adapter has shader-f16)' : 'f32 — this adapter has no shader-f16' };
  if (requested !== undefined && requested !== 'auto')
    throw new Error(`storage must be 'f16', 'f32' or 'auto', got '${String(requested)}'`);
  return hasF16 ? { storage: 'f16', reason: 'f16 (shader-f16)' } : { storage: 'f32', reason: 'f32 — this adapter has no shader-f16' };
}

// The data panel's actions: read a dropped dataset (src/data/manifest.ts formats), decode every clip
// (WebAudio on this thread; workers have none), report bad files one by one, then have the model
// worker compute the frozen encoder's states into the persistent IndexedDB cache. Encoded datasets are
// saved too (entries without audio), so a reload keeps them; dropping one again re-decodes the audio to
// hash it, which is cheap, but never recomputes features or the encoder.
import { loadAudio16k } from '../audio';
import { readDataset } from '../data/manifest';
import { utteranceKey } from '../encoder/encoder';
import { idbAll, idbClear, idbDelete, idbPut } from '../worker/idb';
import type { RunData, UttRef } from '../worker/train-protocol';
import { trainMixPlan, type TrainMixPlan } from './mix';
import { getClient, whenModelReady } from './actions';
import type { DroppedDataset } from './files';
import { useStudio, type DatasetEntry, type DatasetRole, type DatasetUtt } from './store';

/** Whisper sees 30-s windows; longer clips would be cut, so they are reported instead of trained on. */
export const MAX_CLIP_SECONDS = 30;

let seq = 0;
let encodeChain: Promise<void> = Promise.resolve();

function guessRole(name: string, taken: DatasetRole[]): DatasetRole {
  if (/base|mono/i.test(name)) return 'base';
  if (/train/i.test(name)) return 'train';
  if (/dev|test|eval|valid/i.test(name)) return 'new';
  return (['train', 'new', 'base'] as DatasetRole[]).find((r) => !taken.includes(r)) ?? 'train';
}

export async function addDatasets(list: DroppedDataset[], roles?: DatasetRole[]): Promise<void> {
  await Promise.all(list.map((d, i) => addDataset(d, roles?.[i])));
}

export async function addDataset(dropped: DroppedDataset, role?: DatasetRole): Promise<void> {
  const { set, updateDataset } = useStudio.getState();
  const id = `ds${++seq}-${Date.now().toString(36)}`;
  const taken = useStudio.getState().datasets.map((d) => d.role);
  const entry: DatasetEntry = {
    id,
    name: dropped.name,
    role: role ?? guessRole(dropped.name, taken),
    utts: [],
    issues: [],
    status: 'reading',
  };
  set({ datasets: [...useStudio.getState().datasets, entry] });
  const upd = (f: (d: DatasetEntry) => DatasetEntry) => updateDataset(id, f);
  const files = dropped.files;
  let ds;
  try {
    // readBytes: the reader then refuses a manifest that is not UTF-8 (Blob.text() would silently repair it).
    ds = await readDataset({
      paths: [...files.keys()],
      readText: (p) => files.get(p)!.text(),
      readBytes: async (p) => new Uint8Array(await files.get(p)!.arrayBuffer()),
    });
  } catch (e) {
    return upd((d) => ({ ...d, status: 'error', error: `${dropped.name}: ${(e as Error).message}` }));
  }
  upd((d) => ({
    ...d,
    format: ds.format,
    status: 'decoding',
    issues: ds.errors.map((er) => ({ file: er.file, line: er.line, message: er.message })),
    utts: ds.rows.map((r) => ({ id: r.id, audio: r.audio, text: r.text, language: r.language, duration: r.duration, status: 'pending' })),
  }));

  // Decode every clip; keep the samples only until the worker has them (they are re-decoded on reload).
  const samplesOf = new Map<string, Float32Array>();
  for (const u of ds.rows) {
    try {
      const samples = await loadAudio16k(await files.get(u.audio)!.arrayBuffer(), u.audio);
      const dur = samples.length / 16000;
      if (dur > MAX_CLIP_SECONDS)
        throw new Error(`${u.audio}: too long (${dur.toFixed(1)} s > ${MAX_CLIP_SECONDS} s, Whisper's window); cut it into shorter clips`);
      if (dur < 0.1) throw new Error(`${u.audio}: too short (${(dur * 1000).toFixed(0)} ms)`);
      samplesOf.set(u.id, samples);
      upd((d) => ({ ...d, utts: d.utts.map((x) => (x.id === u.id ? { ...x, duration: dur, key: utteranceKey(samples) } : x)) }));
    } catch (e) {
      const msg = (e as Error).message;
      upd((d) => ({
        ...d,
        issues: [...d.issues, { file: u.audio, message: /too (long|short)/.test(msg) ? msg : `unreadable audio: ${msg}` }],
        utts: d.utts.filter((x) => x.id !== u.id),
      }));
    }
  }

  upd((d) => ({ ...d, status: 'waiting-model' }));
  await whenModelReady();
  // One encoding queue for all datasets: the model worker runs one utterance at a time anyway.
  encodeChain = encodeChain.then(() => encodeAll(id, samplesOf));
  await encodeChain;
}

async function encodeAll(id: string, samplesOf: Map<string, Float32Array>): Promise<void> {
  const { updateDataset } = useStudio.getState();
  const upd = (f: (d: DatasetEntry) => DatasetEntry) => updateDataset(id, f);
  const current = () => useStudio.getState().datasets.find((d) => d.id === id);
  const todo = current()?.utts ?? [];
  upd((d) => ({ ...d, status: 'encoding', progress: { done: 0, total: todo.length, startedAt: performance.now(), cached: 0 } }));
  let cached = 0;
  for (const [i, u] of todo.entries()) {
    if (!current()) return; // removed meanwhile
    const setU = (p: Partial<DatasetUtt>) => upd((d) => ({ ...d, utts: d.utts.map((x) => (x.id === u.id ? { ...x, ...p } : x)) }));
    setU({ status: 'encoding' });
    try {
      const r = await getClient().encode(samplesOf.get(u.id)!, u.key!);
      if (r.cached) cached++;
      setU({ status: 'encoded', cached: r.cached });
    } catch (e) {
      upd((d) => ({
        ...d,
        issues: [...d.issues, { file: u.audio, message: `encoder failed: ${(e as Error).message}` }],
        utts: d.utts.filter((x) => x.id !== u.id),
      }));
    }
    samplesOf.delete(u.id);
    upd((d) => ({ ...d, progress: { ...d.progress!, done: i + 1, cached } }));
  }
  upd((d) => ({ ...d, status: 'ready' }));
  saveDataset(id);
}

/** A dataset as saved in IndexedDB: its entry (no audio) and the model its encoder states belong to. */
interface SavedDataset {
  entry: DatasetEntry;
  modelId?: string;
  savedAt: number;
}

function saveDataset(id: string): void {
  const entry = useStudio.getState().datasets.find((d) => d.id === id);
  if (!entry || entry.status !== 'ready') return;
  const saved: SavedDataset = {
    entry: { ...entry, progress: undefined },
    modelId: useStudio.getState().model.info?.modelId,
    savedAt: Date.now(),
  };
  idbPut('datasets', id, saved).catch((e) =>
    useStudio.getState().set({ setupError: `could not save dataset ${entry.name}: ${(e as Error).message}` }),
  );
}

/** On page load: the encoded datasets of the last session (their encoder states are in the cache). */
export async function restoreDatasets(): Promise<void> {
  const saved = (await idbAll<SavedDataset>('datasets')).sort((a, b) => a.savedAt - b.savedAt);
  if (!saved.length) return;
  const have = new Set(useStudio.getState().datasets.map((d) => d.id));
  useStudio
    .getState()
    .set({ datasets: [...saved.filter((x) => !have.has(x.entry.id)).map((x) => x.entry), ...useStudio.getState().datasets] });
}

export function setRole(id: string, role: DatasetRole): void {
  useStudio.getState().updateDataset(id, (d) => ({ ...d, role }));
  saveDataset(id);
}

export function removeDataset(id: string): void {
  const { set, datasets } = useStudio.getState();
  set({ datasets: datasets.filter((d) => d.id !== id) });
  void idbDelete('datasets', id);
}

/** Frees the browser storage of the encoder states; the datasets built on them go too (drop them again to re-encode). */
export async function clearEncoderCache(): Promise<void> {
  await idbClear('encoder');
  await idbClear('datasets');
  const { set, datasets } = useStudio.getState();
  set({ datasets: datasets.filter((d) => d.status !== 'ready') });
}

/** The demo clips as three datasets: code-switched train (2), code-switched eval (1), monolingual base eval. */
export async function loadDemoData(): Promise<void> {
  const res = await fetch('/demo/manifest.jsonl');
  if (!res.ok) throw new Error(`/demo/manifest.jsonl: HTTP ${res.status}`);
  const rows = (await res.text())
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => ({ line: l, r: JSON.parse(l) as { audio_filepath: string; domain: string; language: string } }));
  const cs = rows.filter((x) => x.r.domain === 'code-switched');
  const base = rows.filter((x) => x.r.domain !== 'code-switched');
  // base eval: one clip per language keeps the demo's evaluation short on software WebGPU
  const baseOne = [...new Map(base.map((x) => [x.r.language, x])).values()];
  const make = async (name: string, sel: typeof rows) => {
    const files = new Map<string, Blob>([['manifest.jsonl', new Blob([sel.map((x) => x.line).join('\n') + '\n'])]]);
    for (const x of sel) {
      const a = await fetch(`/demo/${x.r.audio_filepath}`);
      if (!a.ok) throw new Error(`/demo/${x.r.audio_filepath}: HTTP ${a.status}`);
      files.set(x.r.audio_filepath, await a.blob());
    }
    return { name, files };
  };
  const sets = [
    await make('demo code-switched (train)', cs.slice(0, 2)),
    await make('demo code-switched (eval)', cs.slice(2)),
    await make('demo monolingual (base eval)', baseOne),
  ];
  await addDatasets(sets, ['train', 'new', 'base']);
}

const ref = (u: DatasetUtt): UttRef => ({ id: u.id, key: u.key!, text: u.text, language: u.language });

/** How the studio's train datasets make data.train and data.trainMix (src/ui/mix.ts), or why they cannot. */
export function studioTrainMix(): TrainMixPlan | string {
  const encoded = (d: DatasetEntry) => d.utts.filter((u) => u.status === 'encoded').length;
  return trainMixPlan(
    useStudio
      .getState()
      .datasets.filter((d) => d.role === 'train')
      .map((d) => ({ name: d.name, n: encoded(d), mix: d.mix })),
  );
}

/** What a run trains and evaluates on: every encoded utterance of the datasets, by role. */
export function runData(): RunData | string {
  const { datasets, model } = useStudio.getState();
  if (model.status !== 'ready' || !model.info) return 'load a model first';
  const ok = (d: DatasetEntry) => d.utts.filter((u) => u.status === 'encoded');
  const trainDs = datasets.filter((d) => d.role === 'train');
  if (!trainDs.flatMap(ok).length) return 'add a training dataset (role: train) and wait for its encoding';
  if (datasets.some((d) => d.status !== 'ready' && d.status !== 'error')) return 'wait until every dataset is encoded';
  const mix = studioTrainMix();
  if (typeof mix === 'string') return mix;
  const train = mix.order.flatMap((i) => ok(trainDs[i])).map(ref);
  const evalSets = datasets
    .filter((d) => (d.role === 'new' || d.role === 'base') && ok(d).length)
    .map((d) => ({ name: d.name, role: d.role as 'new' | 'base', utts: ok(d).map(ref) }));
  const dev = datasets
    .filter((d) => d.role === 'dev')
    .flatMap(ok)
    .map(ref);
  return {
    modelId: model.info.modelId,
    model: model.info.location,
    train,
    ...(mix.trainSets ? { trainSets: mix.trainSets } : {}),
    eval: evalSets,
    ...(dev.length ? { dev } : {}),
  };
}

/** The Data panel's mixing share of a training dataset (p in (0, 1); undefined: concatenated with the first). */
export function setMix(id: string, mix: number | undefined): void {
  useStudio.getState().updateDataset(id, (d) => ({ ...d, mix }));
}

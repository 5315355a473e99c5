// Turning what a user gives the data panel into datasets: a folder (file input with webkitdirectory, or
// a dropped directory), zip files (fflate), or loose files. Each dataset is a map of paths relative to
// its root → Blob, which src/data/manifest.ts reads.
import { unzipSync } from 'fflate';

export type FileMap = Map<string, Blob>;

export interface DroppedDataset {
  name: string;
  files: FileMap;
}

/** Strip a folder prefix shared by every path ("demo/metadata.csv" → "metadata.csv"). */
export function stripCommonRoot(files: FileMap): { root: string | null; files: FileMap } {
  const paths = [...files.keys()];
  const first = paths[0]?.split('/')[0];
  if (!first || !paths.every((p) => p.startsWith(`${first}/`))) return { root: null, files };
  return { root: first, files: new Map([...files].map(([p, b]) => [p.slice(first.length + 1), b])) };
}

const IGNORED = /(^|\/)(__MACOSX|\.DS_Store|Thumbs\.db)(\/|$)/;

export async function unzip(name: string, blob: Blob): Promise<DroppedDataset> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(new Uint8Array(await blob.arrayBuffer()));
  } catch (e) {
    throw new Error(`${name}: not a readable zip file (${(e as Error).message})`);
  }
  const files: FileMap = new Map();
  for (const [p, bytes] of Object.entries(entries)) {
    if (p.endsWith('/') || IGNORED.test(p)) continue;
    files.set(p, new Blob([bytes as Uint8Array<ArrayBuffer>]));
  }
  const s = stripCommonRoot(files);
  return { name: s.root ?? name.replace(/\.zip$/i, ''), files: s.files };
}

/** A FileList from an <input webkitdirectory>: one dataset (the chosen folder). */
export function fromDirectoryInput(list: FileList | File[]): DroppedDataset[] {
  const files: FileMap = new Map();
  for (const f of list) {
    const p = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    if (!IGNORED.test(p)) files.set(p, f);
  }
  if (!files.size) return [];
  const s = stripCommonRoot(files);
  return [{ name: s.root ?? 'dataset', files: s.files }];
}

/** Files from the zip/files input: each zip is a dataset; loose files together form one more. */
export async function fromFileInput(list: FileList | File[]): Promise<DroppedDataset[]> {
  const out: DroppedDataset[] = [];
  const loose: FileMap = new Map();
  for (const f of list) {
    if (/\.zip$/i.test(f.name)) out.push(await unzip(f.name, f));
    else loose.set(f.name, f);
  }
  if (loose.size) out.push({ name: 'files', files: loose });
  return out;
}

type Entry = FileSystemEntry;

function readAllEntries(dir: FileSystemDirectoryEntry): Promise<Entry[]> {
  const reader = dir.createReader();
  const all: Entry[] = [];
  return new Promise((resolve, reject) => {
    // readEntries returns at most ~100 entries per call: call until it returns none.
    const next = () =>
      reader.readEntries((batch) => {
        if (!batch.length) return resolve(all);
        all.push(...batch);
        next();
      }, reject);
    next();
  });
}

async function walk(entry: Entry, prefix: string, files: FileMap): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    const p = prefix + entry.name;
    if (!IGNORED.test(p)) files.set(p, file);
  } else if (entry.isDirectory) {
    for (const e of await readAllEntries(entry as FileSystemDirectoryEntry)) await walk(e, `${prefix}${entry.name}/`, files);
  }
}

/** Drag and drop: each dropped folder or zip is a dataset; loose files together form one more. */
export async function fromDataTransfer(dt: DataTransfer): Promise<DroppedDataset[]> {
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is Entry => !!e);
  const out: DroppedDataset[] = [];
  const loose: File[] = [];
  if (!entries.length) return fromFileInput([...dt.files]);
  for (const e of entries) {
    if (e.isDirectory) {
      const files: FileMap = new Map();
      await walk(e, '', files);
      const s = stripCommonRoot(files);
      out.push({ name: e.name, files: s.files });
    } else {
      loose.push(await new Promise<File>((res, rej) => (e as FileSystemFileEntry).file(res, rej)));
    }
  }
  return out.concat(await fromFileInput(loose));
}

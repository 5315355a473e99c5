// Node: a dataset folder as DatasetFiles, read so that nothing outside the folder is ever opened and
// nothing that is not a regular file is opened at all (a named pipe would block the read forever, a
// device never ends). Node modules are imported lazily so the browser bundle never loads them.
import type { Stats } from 'node:fs';
import { FOLDER, isDatasetPath } from './paths';
import { DatasetError } from './text';

/** Enough for any manifest (Common Voice's largest validated.tsv is ~300 MB… per language, at most). */
export const MAX_MANIFEST_BYTES = 512 * 2 ** 20;
/** One audio file; decodeAudio's duration limit refuses long audio anyway, this bounds the read itself. */
export const MAX_AUDIO_BYTES = 1024 * 2 ** 20;
const MAX_DEPTH = 32;
const MAX_ENTRIES = 500_000;

/** What a non-regular file is, for the message. */
export function kindOf(st: Stats): string {
  if (st.isDirectory()) return FOLDER;
  if (st.isFIFO()) return 'a named pipe (FIFO), not a regular file';
  if (st.isCharacterDevice()) return 'a character device, not a regular file';
  if (st.isBlockDevice()) return 'a block device, not a regular file';
  if (st.isSocket()) return 'a socket, not a regular file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

export interface NodeDatasetFiles {
  /** Regular files (or symbolic links to regular files inside the folder), relative, '/'-separated. */
  paths: string[];
  /** Everything else that was found, with the reason it is not read. */
  refused: Map<string, string>;
  /** The folder's real path (symbolic links resolved). */
  root: string;
  readText(path: string): Promise<string>;
  readBytes(path: string, maxBytes?: number): Promise<Uint8Array>;
}

export async function nodeDirectoryFiles(dir: string): Promise<NodeDatasetFiles> {
  const fs = await import('node:fs/promises');
  const { join, relative, sep } = await import('node:path');
  let root: string;
  try {
    root = await fs.realpath(dir);
    if (!(await fs.stat(root)).isDirectory()) throw new DatasetError(dir, 'not a folder');
  } catch (e) {
    if (e instanceof DatasetError) throw e;
    throw new DatasetError(dir, `cannot open the dataset folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const inside = (real: string) => real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
  const paths: string[] = [];
  const refused = new Map<string, string>();
  let entries = 0;

  const walk = async (d: string, depth: number): Promise<void> => {
    let list;
    try {
      list = await fs.readdir(d, { withFileTypes: true });
    } catch (e) {
      refused.set(relative(root, d).split(sep).join('/'), `unreadable folder (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      return;
    }
    for (const e of list) {
      if (++entries > MAX_ENTRIES) throw new DatasetError(dir, `more than ${MAX_ENTRIES} files and folders: not read`);
      const full = join(d, e.name);
      const rel = relative(root, full).split(sep).join('/');
      if (e.isDirectory()) {
        // Recorded too: a folder named like a clip or a manifest is reported as what it is.
        refused.set(rel, FOLDER);
        if (depth >= MAX_DEPTH) continue;
        await walk(full, depth + 1);
      } else if (e.isFile()) paths.push(rel);
      else if (e.isSymbolicLink()) {
        let real: string;
        try {
          real = await fs.realpath(full);
        } catch {
          refused.set(rel, 'a symbolic link to nothing (dangling)');
          continue;
        }
        // The target is not named: it lies outside what the user handed over.
        if (!inside(real)) {
          refused.set(rel, 'a symbolic link that leads outside the dataset folder (not followed)');
          continue;
        }
        const st = await fs.stat(real).catch(() => null);
        if (st?.isFile()) paths.push(rel);
        else
          refused.set(
            rel,
            st?.isDirectory()
              ? 'a symbolic link to a folder (not followed)'
              : `a symbolic link to ${st ? kindOf(st) : 'something unreadable'}`,
          );
      } else {
        const st = await fs.lstat(full).catch(() => null);
        refused.set(rel, st ? kindOf(st) : 'not a regular file');
      }
    }
  };
  await walk(root, 0);
  paths.sort();

  const readBytes = async (p: string, maxBytes = MAX_AUDIO_BYTES): Promise<Uint8Array> => {
    if (!isDatasetPath(p)) throw new DatasetError(p, 'not a path inside the dataset folder; refused');
    const why = refused.get(p);
    if (why) throw new DatasetError(p, `refused: ${why}`);
    // Checked again at read time: the folder may have changed since it was listed.
    let real: string;
    try {
      real = await fs.realpath(join(root, p));
    } catch (e) {
      throw new DatasetError(
        p,
        (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot open (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    if (!inside(real)) throw new DatasetError(p, 'refused: it leads outside the dataset folder');
    const st = await fs.stat(real);
    if (!st.isFile()) throw new DatasetError(p, `refused: ${kindOf(st)}`);
    if (st.size > maxBytes) throw new DatasetError(p, `too large (${st.size} bytes; at most ${maxBytes} are read)`);
    // O_NONBLOCK: should a pipe be swapped in after the stat, opening it cannot block; fstat then refuses it.
    const { constants } = await import('node:fs');
    const fh = await fs.open(real, constants.O_RDONLY | constants.O_NONBLOCK | (constants.O_NOFOLLOW ?? 0));
    try {
      const hst = await fh.stat();
      if (!hst.isFile() || hst.ino !== st.ino || hst.dev !== st.dev)
        throw new DatasetError(p, 'refused: the file changed while it was being opened');
      // Read at most maxBytes + 1, whatever the size says (a file may grow while it is read).
      const buf = new Uint8Array(Math.min(hst.size, maxBytes) + 1);
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n === buf.length) break;
      }
      if (n > maxBytes) throw new DatasetError(p, `too large (more than ${maxBytes} bytes)`);
      return buf.subarray(0, n);
    } finally {
      await fh.close();
    }
  };

  return {
    paths,
    refused,
    root,
    readBytes,
    readText: async (p) => new TextDecoder('utf-8').decode(await readBytes(p, MAX_MANIFEST_BYTES)),
  };
}

// Two generations of a run's checkpoint in its --out folder (Node): checkpoint.safetensors (newest) and
// checkpoint.prev.safetensors (the one before). A save writes a temporary file first and then renames, so a
// crash or a full disk mid-write never damages either generation; a damaged newest (checksum, truncation) is
// skipped for the previous one (src/train/trainer.ts pickCheckpoint).
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { type Checkpoint, encodeCheckpoint, pickCheckpoint } from '../train/trainer';

export class RunFolderCheckpoints {
  readonly newest: string;
  readonly previous: string;

  constructor(
    readonly dir: string,
    private readonly log: (s: string) => void = () => {},
  ) {
    this.newest = join(dir, 'checkpoint.safetensors');
    this.previous = join(dir, 'checkpoint.prev.safetensors');
  }

  /** A new run in this folder: the checkpoints of an earlier run there are not its own. */
  clear(): void {
    for (const f of [this.newest, this.previous, `${this.newest}.tmp`]) rmSync(f, { force: true });
  }

  async save(ck: Checkpoint): Promise<void> {
    const tmp = `${this.newest}.tmp`;
    try {
      const fd = openSync(tmp, 'w');
      try {
        writeSync(fd, encodeCheckpoint(ck));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      rmSync(tmp, { force: true });
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new Error(
          `the disk is full writing the checkpoint of step ${ck.step} to ${tmp}: free space there (old run folders under runs/, ` +
            `their adapter/ and *.safetensors files) and run again; the checkpoints already in ${this.dir} are intact`,
        );
      }
      throw new Error(`cannot write the checkpoint of step ${ck.step} to ${tmp}: ${(e as Error).message}`);
    }
    if (existsSync(this.newest)) renameSync(this.newest, this.previous);
    renameSync(tmp, this.newest);
  }

  /** The newest generation that verifies (a damaged one is named in the log), or null. */
  async load(): Promise<Checkpoint | null> {
    const read = (f: string) => (existsSync(f) ? new Uint8Array(readFileSync(f)) : undefined);
    const got = pickCheckpoint([
      { name: this.newest, bytes: read(this.newest) },
      { name: this.previous, bytes: read(this.previous) },
    ]);
    for (const s of got?.skipped ?? []) this.log(s);
    if (got && got.name !== this.newest) this.log(`using the previous checkpoint ${got.name} (step ${got.ck.step})`);
    return got?.ck ?? null;
  }
}

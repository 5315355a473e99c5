// WAV header reading for the corpus tests (test/data/corpus.test.ts, real-speech.test.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

/** The fields of a canonical WAV header that matter here (RIFF chunks walked, not assumed at fixed offsets). */
export function wavInfo(path: string) {
  const b = readFileSync(path);
  assert.equal(b.toString('ascii', 0, 4), 'RIFF', `${path}: not RIFF`);
  assert.equal(b.toString('ascii', 8, 12), 'WAVE', `${path}: not WAVE`);
  let off = 12,
    fmt: { format: number; channels: number; rate: number; bits: number } | undefined,
    dataBytes = -1;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4),
      size = b.readUInt32LE(off + 4);
    if (id === 'fmt ')
      fmt = {
        format: b.readUInt16LE(off + 8),
        channels: b.readUInt16LE(off + 10),
        rate: b.readUInt32LE(off + 12),
        bits: b.readUInt16LE(off + 22),
      };
    if (id === 'data') dataBytes = size;
    off += 8 + size + (size & 1);
  }
  assert.ok(fmt && dataBytes > 0, `${path}: no fmt/data chunk`);
  return { ...fmt, seconds: dataBytes / (fmt.rate * fmt.channels * (fmt.bits / 8)) };
}

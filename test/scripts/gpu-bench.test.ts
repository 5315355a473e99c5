/**
 * scripts/gpu-bench.sh's pieces that need no GPU and no bundle build (issue 13 item 4): the size check
 * fails over the limit and names the byte count, passes under it; table.py turns engine + torch JSON
 * lines into the one table (ratio, tokens/s, matmul TFLOP/s against the given peak, a row per storage).
 * Light: no build, no GPU (the end-to-end proof is `bash scripts/gpu-bench.sh --dry-run`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const tmp = mkdtempSync(join(tmpdir(), 'gpu-bench-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('size check: over the limit fails with the number, under passes', () => {
  const f = join(tmp, 'bundle.tar.xz');
  writeFileSync(f, Buffer.alloc(1000));
  const over = spawnSync('bash', ['scripts/gpu-bench.sh', '--check-size', f, '999'], { encoding: 'utf8' });
  assert.equal(over.status, 1);
  assert.match(over.stderr, /is 1000 bytes .* over the limit of 999 bytes/);
  const under = spawnSync('bash', ['scripts/gpu-bench.sh', '--check-size', f, '1001'], { encoding: 'utf8' });
  assert.equal(under.status, 0, under.stderr);
  assert.match(under.stdout, /is 1000 bytes .* < limit 1001 bytes/);
});

test('table.py: one row per (shape, method, storage) with ratio, tokens/s and TFLOP/s vs peak', () => {
  const base = {
    shape: 'whisper-base',
    C: 512,
    F: 2048,
    L: 6,
    V: 51865,
    H: 8,
    B: 8,
    S: 64,
    r: 32,
    targets: ['q', 'v'],
    tokens: 512,
    storage: 'f32',
  };
  const eng = join(tmp, 'engine.jsonl');
  const tor = join(tmp, 'torch.jsonl');
  const engRows = [
    { ...base, side: 'engine', method: 'lora', ms: 20, adapter: 'x' },
    { ...base, side: 'engine', method: 'blora-flipout', ms: 25, adapter: 'x' },
    { ...base, side: 'engine', method: 'lora', storage: 'f16', ms: 16, adapter: 'x' },
  ];
  writeFileSync(eng, engRows.map((d) => JSON.stringify(d)).join('\n') + '\n');
  writeFileSync(
    tor,
    [{ ...base, side: 'torch', method: 'lora', ms: 10, impl: 'PEFT LoRA', device: 'd' }].map((d) => JSON.stringify(d)).join('\n') + '\n',
  );
  const table = (engFile: string) =>
    spawnSync('python3', ['scripts/gpu-bench/table.py', engFile, tor, '--peak-tflops', '67'], { encoding: 'utf8' });
  const r = table(eng);
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.split('\n').filter((l) => l.startsWith('| whisper-base'));
  assert.equal(rows.length, 3);
  const lora = rows[0].split('|').map((c) => c.trim());
  assert.equal(lora[3], 'f32');
  assert.equal(lora[4], '20.0');
  assert.equal(lora[5], '10.0');
  assert.equal(lora[6], '2.00');
  assert.equal(lora[7], '25,600');
  assert.match(lora[9], /^[\d.]+ \([\d.]+ %\)$/);
  assert.equal(lora[10], '67');
  assert.match(rows[1], /BLoRA flipout \| f32 \| 25\.0 \| — \| —/);
  // the f16 row is set against the same (f32) torch step
  assert.match(rows[2], /LoRA \(torch: PEFT LoRA\) \| f16 \| 16\.0 \| 10\.0 \| 1\.60 \|/);
  assert.match(r.stdout, /torch is f32 on every row/);
  // without f16 rows (an adapter without shader-f16) the table says so
  const eng32 = join(tmp, 'engine32.jsonl');
  writeFileSync(
    eng32,
    engRows
      .slice(0, 2)
      .map((d) => JSON.stringify(d))
      .join('\n') + '\n',
  );
  const r32 = table(eng32);
  assert.equal(r32.status, 0, r32.stderr);
  assert.match(r32.stdout, /f32 rows only — the engine adapter has no 'shader-f16'/);
});

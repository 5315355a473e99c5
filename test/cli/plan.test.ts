/**
 * `blora-studio plan` (src/cli/plan.ts): the memory plan of a run from the model's config alone — the
 * prepared base folder and random:<size> of the model table, --json fields, a run that does not fit
 * (exit 0, fits false, with fixes) and bad flags (exit 2). --limits defaults: no GPU is touched.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, requireModel } from '../support/env';

const cli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'src/cli/main.ts'), 'plan', ...args], { cwd: REPO, encoding: 'utf8' });

test('plan --json for the table sizes and the prepared base', () => {
  const cases: [string[], (j: Record<string, any>) => void][] = [
    [
      ['--model', 'random:large-v3-turbo', '--targets', 'self_attn.q_proj,self_attn.v_proj', '--json'],
      (j) => {
        assert.equal(j.kvBytesPerUtterance, 9 * 1500 * 1280 * 4); // (2·4 + 1)·E·C f32 (self-attention targets: the cross K/V cache is shared)
        assert.equal(j.fits, true);
        assert.equal(j.limits.maxBufferSize, 256 * 2 ** 20);
        assert.equal(j.limits.source, 'WebGPU defaults');
      },
    ],
    [
      ['--model', 'random:large-v3-turbo', '--targets', 'self_attn.q_proj,self_attn.v_proj', '--storage', 'f16', '--json'],
      (j) => assert.equal(j.kvBytesPerUtterance, (2 * 4 * 2 + 4) * 1500 * 1280),
    ], // 2L K/V rows f16, the encoder states f32
    [
      ['--model', requireModel(), '--json', '--batch', '4'],
      (j) => {
        assert.equal(j.dims.C, 512);
        assert.equal(j.batch, 4);
      },
    ],
    // large-v3 f32 at batch 32: over the 4 GiB default budget; the fixes include f16 storage
    [
      ['--model', 'random:large-v3', '--batch', '32', '--json'],
      (j) => {
        assert.equal(j.fits, false);
        assert.ok(
          j.fixes.some((f: string) => f.includes('f16')),
          j.fixes.join('; '),
        );
      },
    ],
  ];
  for (const [args, check] of cases) {
    const r = cli(...args);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    for (const k of ['weightsBytes', 'kvBytesPerUtterance', 'activationBytes', 'adapterStateBytes', 'totalBytes', 'fits', 'limits'])
      assert.ok(k in j, `${args.join(' ')}: ${k}`);
    check(j);
  }
});

test('plan text and bad flags', () => {
  const r = cli('--model', 'random:base', '--limits', 'defaults', '--batch', '8');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /needs .*: weights .*, K\/V 8 × 39\.9 MB, activations .*fits WebGPU defaults/);
  for (const args of [
    ['--model', 'random:huge'],
    ['--targets', 'fc3'],
    ['--storage', 'f8'],
    ['--batch', '0'],
    ['--limits', 'gpu'],
  ]) {
    const b = cli(...args, '--json');
    assert.equal(b.status, 2, `${args.join(' ')}: ${b.stderr}`);
  }
});

// The headless CLI as a user runs it: help, clear errors for wrong flags and paths, and `eval` on the
// demo set, whose transcripts must be the frozen model's (the same as Python transformers').
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DEMO_DIR, REPO, requireModel } from '../support/env';
import { baselineOracle } from '../support/oracle';

const tmp = mkdtempSync(join(tmpdir(), 'blora-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [join(REPO, 'bin/blora-studio.mjs'), ...args], { encoding: 'utf8', cwd: REPO });

describe('blora-studio CLI', () => {
  test('--help documents every eval flag', () => {
    const r = cli('--help');
    assert.equal(r.status, 0);
    for (const f of ['--model', '--data', '--language', '--limit', '--max-new-tokens', '--out']) assert.match(r.stdout, new RegExp(f));
  });

  test('wrong flags and bad paths are clear errors with exit code 2', () => {
    let r = cli('eval', '--bogus', '1');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown option "--bogus" for eval/);
    r = cli('eval', '--data', join(tmp, 'nope'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--data .*nope: no such file or folder/);
    r = cli('eval', '--data', DEMO_DIR, '--limit', 'x');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--limit must be a positive integer, got "x"/);
    r = cli('frobnicate');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
  });

  test('eval on the demo set transcribes as the frozen model does and reports WER', () => {
    const out = join(tmp, 'eval.jsonl');
    const r = cli('eval', '--model', requireModel(), '--data', DEMO_DIR, '--limit', '3', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /en: WER \d+\.\d % over 3 utterances/);
    assert.match(r.stderr, /eval .* 3\/3 100%/); // progress with ETA
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const oracle = baselineOracle(join(DEMO_DIR, 'manifest.jsonl'));
    assert.equal(lines.length, 3);
    for (const l of lines) assert.equal(l.hypothesis, oracle.clips.find((c) => c.id === l.id)!.text, l.id);
    console.log(r.stdout.trim());
  });
});

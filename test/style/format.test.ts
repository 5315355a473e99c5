/**
 * The formatter (prettier, .prettierrc.json): every TypeScript / JavaScript source is as `npm run format` leaves
 * it, so a diff shows what changed and not how someone's editor wraps lines. The file list is package.json's
 * format:check script (one place); a file that is not formatted is named in the failure.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const REPO = join(import.meta.dirname, '../..');

test('sources are formatted (npm run format)', () => {
  const script: string = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).scripts['format:check'];
  assert.match(script, /^prettier --check /);
  const r = spawnSync('bash', ['-c', `node_modules/.bin/${script}`], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, `not formatted — run npm run format:\n${(r.stdout + r.stderr).slice(-3000)}`);
});

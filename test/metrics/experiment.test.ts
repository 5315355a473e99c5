/**
 * The experiment metrics (src/metrics/experiment.ts) and their Python twin (tools/experiment_metrics.py, used by
 * the experiment runner's aggregator) on the same hand-computed cases (experiment-cases.json), and the definition
 * texts printed next to the results identical in both.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  adapterSparsity,
  backwardGain,
  deltaW,
  domainWer,
  forgetting,
  formatMeanStd,
  meanStd,
  METRIC_DEFINITIONS,
  newDomainDrop,
  sparsity,
  type AdapterFactors,
} from '../../src/metrics/experiment';
import { REPO, requirePython } from '../support/env';

interface Case {
  name: string;
  fn: string;
  args: unknown[];
  expect?: unknown;
  undefined?: boolean;
  error?: boolean;
}
const CASES: Case[] = JSON.parse(readFileSync(join(REPO, 'test/metrics/experiment-cases.json'), 'utf8')).cases;

function callTs(c: Case): unknown {
  const a = c.args as never[];
  switch (c.fn) {
    case 'forgetting':
      return forgetting(a[0], a[1]);
    case 'backwardGain':
      return backwardGain(a[0], a[1]);
    case 'newDomainDrop':
      return newDomainDrop(a[0], a[1]);
    case 'sparsity':
      return sparsity(a[0], a[1]);
    case 'deltaW':
      return Array.from(deltaW(a[0], a[1], a[2], a[3], a[4], a[5]));
    case 'adapterSparsity':
      return adapterSparsity(a[0] as AdapterFactors[], a[1]);
    case 'meanStd':
      return meanStd(a[0]);
    case 'domainWer':
      return domainWer(a[0], a[1]);
    default:
      throw new Error(`unknown fn ${c.fn}`);
  }
}

/** Deep comparison with numbers within 1e-12 (absolute) — hand values like 0.54 are not exact in binary. */
function close(got: unknown, want: unknown, path: string): void {
  if (typeof want === 'number') {
    assert.equal(typeof got, 'number', `${path}: expected a number, got ${JSON.stringify(got)}`);
    assert.ok(Math.abs((got as number) - want) <= 1e-12, `${path}: ${got} ≠ ${want}`);
  } else if (Array.isArray(want)) {
    assert.ok(Array.isArray(got) && got.length === want.length, `${path}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
    want.forEach((w, i) => close((got as unknown[])[i], w, `${path}[${i}]`));
  } else if (want !== null && typeof want === 'object') {
    for (const [k, w] of Object.entries(want)) close((got as Record<string, unknown>)[k], w, `${path}.${k}`);
  } else {
    assert.equal(got, want, path);
  }
}

function check(c: Case, outcome: { ok?: unknown; error?: string }, who: string): void {
  const where = `${who}: ${c.name}`;
  if (c.error) {
    assert.ok(outcome.error !== undefined, `${where}: expected an error, got ${JSON.stringify(outcome.ok)}`);
    return;
  }
  assert.equal(outcome.error, undefined, `${where}: ${outcome.error}`);
  const got = outcome.ok;
  if (c.undefined) {
    const g = got as { value: unknown; reason?: string };
    assert.equal(g.value, null, `${where}: expected undefined, got ${JSON.stringify(g)}`);
    assert.match(g.reason ?? '', /^undefined: /, `${where}: the reason is missing`);
    return;
  }
  const want = ['backwardGain', 'newDomainDrop'].includes(c.fn) ? { value: c.expect } : c.expect;
  close(got, want, where);
}

test('experiment metrics (TypeScript) on the hand-computed cases', () => {
  assert.ok(CASES.length >= 20);
  for (const c of CASES) {
    let outcome: { ok?: unknown; error?: string };
    try {
      outcome = { ok: callTs(c) };
    } catch (e) {
      outcome = { error: (e as Error).message };
    }
    check(c, outcome, 'ts');
  }
});

test('the Python twin (tools/experiment_metrics.py) gives the same results and the same definitions', () => {
  const out = execFileSync(requirePython(), [join(REPO, 'tools/experiment_metrics.py')], {
    input: JSON.stringify({ cases: CASES }),
    encoding: 'utf8',
  });
  const res = JSON.parse(out) as { definitions: unknown; results: { ok?: unknown; error?: string }[] };
  assert.equal(res.results.length, CASES.length);
  CASES.forEach((c, i) => check(c, res.results[i], 'python'));
  assert.deepEqual(
    res.definitions,
    METRIC_DEFINITIONS,
    'definition texts differ between src/metrics/experiment.ts and tools/experiment_metrics.py',
  );
});

test('definitions name every reported metric; formatting of mean ± std', () => {
  for (const k of ['forgetting', 'backwardGain', 'newDomainDrop', 'sparsity', 'werNew', 'werBase']) {
    assert.ok(
      METRIC_DEFINITIONS.some((d) => d.key === k),
      `no definition for ${k}`,
    );
  }
  assert.equal(formatMeanStd(meanStd([0.1, 0.2, 0.3])), '20.0 ± 10.0');
  assert.equal(formatMeanStd(meanStd([0.5])), '50.0');
  assert.equal(formatMeanStd(meanStd([null])), 'n/a');
  // the definitions in the spec's words: a 54 % gain and a 4 % drop are what the paper reports
  assert.ok(Math.abs(backwardGain(0.1, 0.046).value! - 0.54) < 1e-12);
  assert.ok(Math.abs(newDomainDrop(0.26, 0.25).value! - 0.04) < 1e-12);
});

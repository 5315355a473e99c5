// Chart ticks and read-outs (src/ui/format.ts): short, exact enough, no cut-off mantissas (issue 17: the
// learning-rate axis showed ".500e-4").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTick, formatValue } from '../../src/ui/format';

test('ticks: learning rates, losses, counts', () => {
  const cases: [number, string][] = [
    [0, '0'],
    [5e-4, '5e-4'],
    [1.5e-4, '1.5e-4'],
    [1e-3, '0.001'],
    [2.5e-3, '0.0025'],
    [0.25, '0.25'],
    [1, '1'],
    [12.34, '12.3'],
    [100, '100'],
    [99999, '1e5'],
    [2e5, '2e5'],
    [-3e-5, '-3e-5'],
    [1.234e-7, '1.23e-7'],
  ];
  for (const [v, want] of cases) assert.equal(formatTick(v), want, `formatTick(${v})`);
  for (const v of [5e-4, 1.5e-4, 0.25, 12.3, 2e5]) assert.ok(formatTick(v).length <= 7, `${v} → ${formatTick(v)} fits the axis`);
  assert.equal(formatTick(NaN), 'NaN');
});

test('read-outs keep 4 significant digits', () => {
  assert.equal(formatValue(0.123456), '0.1235');
  assert.equal(formatValue(3.5), '3.5');
  assert.equal(formatValue(5e-4), '5e-4');
  assert.equal(formatValue(1.23456e-5), '1.235e-5');
  assert.equal(formatValue(1234.5), '1235');
  assert.equal(formatValue(undefined), 'undefined');
});

// The grid every 1-D dispatch uses: enough workgroups for the items, folded into (x, y) past maxDim.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkDims, grid1d } from '../../src/engine/kernels/kernel-util';

test('grid1d: ceil(items / per) workgroups, x ≤ maxDim, x·y covers them; checkDims rejects non-u32 values', () => {
  assert.deepEqual(grid1d(0, 256), [0, 1, 1]);
  assert.deepEqual(grid1d(1000, 256), [4, 1, 1]);
  assert.deepEqual(grid1d(70_000), [65535, 2, 1]);
  for (const [n, per, max] of [
    [1, 1, 4],
    [17, 1, 4],
    [1025, 64, 4],
    [10 ** 7, 256, 65535],
    [65535 * 3 + 1, 1, 65535],
  ]) {
    const [x, y, z] = grid1d(n, per, max);
    const groups = Math.ceil(n / per);
    assert.ok(x <= max && z === 1 && x * y >= groups && x * (y - 1) < groups, `${n}/${per} (max ${max}): ${x}×${y}`);
  }
  assert.throws(() => checkDims('k', { T: 1.5 }), /k: bad T=1.5/);
  assert.throws(() => checkDims('k', { T: -1 }), /bad T=-1/);
  checkDims('k', { T: 0, C: 2 ** 32 - 1 });
});

test('UniformStruct: the WGSL struct and the packed words come from one table, values by name', async () => {
  const { UniformStruct } = await import('../../src/engine/kernels/uniform-pack');
  const s = new UniformStruct('P', [
    ['n', 'u32', 'rows'],
    ['scale', 'f32'],
  ] as const);
  assert.equal(s.wgsl(), 'struct P {\n  n: u32,     // rows\n  scale: f32,\n  _tail0: u32,\n  _tail1: u32,\n}');
  const words = new DataView(s.pack({ n: 7, scale: 0.5 }).bytes());
  assert.equal(words.byteLength, 16);
  assert.equal(words.getUint32(0, true), 7);
  assert.equal(words.getFloat32(4, true), 0.5);
  assert.throws(() => s.pack({ n: 1 } as never), /P: scale not given/);
  assert.throws(() => s.pack({ n: 1, scale: 1, extra: 2 } as never), /unknown field\(s\) extra/);
  assert.throws(() => s.inject('fn main() {}', 'x.wgsl'), /x\.wgsl: no '\/\/ @uniform P' line/);
  assert.match(s.inject('// @uniform P  (from a table)\nfn f() {}', 'x.wgsl'), /^struct P \{[^]*\}\nfn f/);
});

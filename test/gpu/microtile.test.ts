// The _rt entry points' micro-tile directives (src/gpu/microtile.ts): what they expand to, and errors that name
// the file. The kernels themselves are checked against float64 references in matmul, linear_backward and
// logits_ce tests (both variants), so a wrong expansion fails there too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expandMicroTiles } from '../../src/gpu/microtile';
import { wgsl } from '../../src/gpu/shaders';

test('a 16×16 micro-tile from five directives: row/col offsets, 64 accumulators, 256 FMAs per k, 16 stores', () => {
  const src = [
    '  // @microtile16 rows xr = min(r + {i}u, rm) * K',
    '  // @microtile16 cols wr = min(c + {i}u, cm) * K',
    '  // @microtile16 acc',
    '  for (var k = 0u; k < K; k++) {',
    '    // @microtile16 fma w = ldW(wr{i} + k); x = X[xr{i} + k]',
    '  }',
    '  // @microtile16 store st(r + {i}u, array<vec4<f32>, 4>({acc})) | acc = a{i}_{q} + b[{q}]',
  ].join('\n');
  const out = expandMicroTiles(src, 't.wgsl');
  assert.ok(!out.includes('@microtile16'));
  assert.match(out, /^ {2}let xr15 = min\(r \+ 15u, rm\) \* K;$/m);
  assert.match(out, /^ {2}let wr7 = min\(c \+ 7u, cm\) \* K;$/m);
  assert.equal((out.match(/var a\d+_\d = vec4<f32>\(0\.0\);/g) ?? []).length, 64);
  assert.match(out, /^ {4}let w3 = vec4<f32>\(ldW\(wr12 \+ k\), ldW\(wr13 \+ k\), ldW\(wr14 \+ k\), ldW\(wr15 \+ k\)\);$/m);
  assert.match(out, /^ {4}let x9 = vec4<f32>\(X\[xr9 \+ k\]\);$/m);
  assert.equal((out.match(/= fma\(x\d+, w\d, a\d+_\d\)/g) ?? []).length, 64); // 64 vec4 FMAs = 256 scalar
  assert.match(out, /^ {2}st\(r \+ 15u, array<vec4<f32>, 4>\(a15_0 \+ b\[0\], a15_1 \+ b\[1\], a15_2 \+ b\[2\], a15_3 \+ b\[3\]\)\);$/m);
  assert.throws(() => expandMicroTiles('// @microtile16 rows nonsense', 'bad.wgsl'), /bad\.wgsl: @microtile16 rows: expected/);
  assert.throws(() => expandMicroTiles('// @microtile16 twirl', 'bad.wgsl'), /bad\.wgsl: @microtile16 twirl: unknown directive/);
});

test('the shaders load expanded: every _rt entry point has its 64 accumulators and no directive is left', () => {
  for (const [name, entries] of [
    ['matmul_bias', 1],
    ['engine_linear_backward', 1],
    ['engine_logits_ce', 2],
  ] as const) {
    const code = wgsl(name);
    assert.ok(!code.includes('// @microtile16 '), name); // no directive line left (prose may name them)
    assert.equal((code.match(/var a15_3 = vec4<f32>\(0\.0\);/g) ?? []).length, entries, name);
    assert.equal((code.match(/a15_3 = fma\(/g) ?? []).length, entries, name);
  }
});

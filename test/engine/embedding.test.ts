/**
 * engine_embedding: X = E[tok] + P[pos] must equal fl32(E + P) bit for bit (one correctly rounded
 * f32 add), whatever the number of vocab tiles E is bound in; markers (tok ≥ V, pos ≥ NP) → zeros.
 * No backward exists: E and P are frozen and have no adapter, and token ids are discrete.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { embeddingForward } from '../../src/engine/kernels/embedding';
import { planVocabTiles } from '../../src/engine/kernels/vocab_tiles';
import { embeddingForwardRef } from '../../src/engine/reference/embedding';
import { randomF32 } from '../support/random';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { randomInts } from './decoder-pieces-support';

/** Padded batch of B sequences of lengths lens (max S): tokens/positions (B·S,), pads use `padTok`. */
function paddedBatch(lens: number[], V: number, seed: number, padTok: number) {
  const S = Math.max(...lens);
  const T = lens.length * S;
  const tokens = new Uint32Array(T);
  const positions = new Uint32Array(T);
  const ids = randomInts(T, V, seed);
  lens.forEach((len, b) => {
    for (let s = 0; s < S; s++) {
      const t = b * S + s;
      tokens[t] = s < len ? ids[t] : padTok;
      positions[t] = s;
    }
  });
  return { tokens, positions, T };
}

function bitExact(got: Float32Array, ref: Float64Array): { mismatches: number; first: number } {
  let mismatches = 0;
  let first = -1;
  for (let i = 0; i < ref.length; i++) {
    if (!Object.is(got[i], ref[i]) && !(got[i] === 0 && ref[i] === 0)) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  return { mismatches, first };
}

describe('engine_embedding', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;

  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-embedding-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  test('vocab tile planner: aligned offsets, bindings within the cap, full cover', () => {
    for (const [V, C, cap] of [
      [51865, 512, 128 * 2 ** 20],
      [51865, 384, 8 * 2 ** 20],
      [51865, 37, 2 ** 20],
      [50, 16, 512],
      [7, 1, 256],
    ]) {
      const tiles = planVocabTiles(V, C, { maxBindingBytes: cap, offsetAlignment: 256 });
      let next = 0;
      for (const t of tiles) {
        assert.equal(t.v0, next);
        assert.equal(t.offsetBytes % 256, 0, `offset ${t.offsetBytes}`);
        assert.ok(t.sizeBytes <= cap && t.rows > 0);
        next += t.rows;
      }
      assert.equal(next, V);
    }
    assert.throws(() => planVocabTiles(100, 37, { maxBindingBytes: 1000, offsetAlignment: 256 }), /multiple of 64 rows/);
  });

  for (const c of [
    { name: 'one tile, padded batch (pads = token 0)', V: 50, C: 13, NP: 6, lens: [6, 2, 4], cap: undefined },
    { name: 'many tiles (cap 512 B → 8 rows/tile)', V: 50, C: 16, NP: 6, lens: [5, 6, 1], cap: 512 },
  ]) {
    test(`GPU vs reference bit-exact: ${c.name}`, async () => {
      const { tokens, positions, T } = paddedBatch(c.lens, c.V, 5, 0);
      tokens[1] = c.V - 1; // last row of E
      tokens[2] = c.V; // out of range → zero row
      tokens[3] = 0xffffffff; // marker → zero row
      positions[4] = c.NP; // position out of range → zero row
      const E = randomF32(c.V * c.C, 6);
      const P = randomF32(c.NP * c.C, 7, -0.1, 0.1);
      const shape = { T, C: c.C, V: c.V, NP: c.NP };
      const { x, tiles } = await embeddingForward(rt, tokens, positions, E, P, shape, { maxBindingBytes: c.cap });
      const ref = embeddingForwardRef(tokens, positions, E, P, T, c.C, c.V, c.NP);
      const r = bitExact(x, ref);
      console.log(`embedding ${c.name}: T=${T} C=${c.C} V=${c.V}, ${tiles.length} tile(s), ${r.mismatches} mismatches of ${ref.length}`);
      assert.equal(r.mismatches, 0, `first mismatch X[${r.first}] gpu=${x[r.first]} ref=${ref[r.first]}`);
      for (const t of [2, 3, 4])
        assert.ok(
          x.subarray(t * c.C, (t + 1) * c.C).every((v) => v === 0),
          `row ${t} not zero`,
        );
    });
  }

  test('Whisper vocabulary V = 51865 (C = 48), browser-like cap → several tiles, bit-exact', async () => {
    const V = 51865;
    const C = 48;
    const NP = 448;
    const { tokens, positions, T } = paddedBatch([9, 5], V, 8, 50257);
    tokens.set([0, 51864, 50257, 50258], 0);
    const E = randomF32(V * C, 9);
    const P = randomF32(NP * C, 10, -0.05, 0.05);
    const { x, tiles } = await embeddingForward(rt, tokens, positions, E, P, { T, C, V, NP }, { maxBindingBytes: 2 ** 20 });
    const ref = embeddingForwardRef(tokens, positions, E, P, T, C, V, NP);
    const r = bitExact(x, ref);
    console.log(`embedding V=${V} C=${C} T=${T}: ${tiles.length} tiles of ≤ ${tiles[0].rows} rows, ${r.mismatches} mismatches`);
    assert.ok(tiles.length > 1);
    assert.equal(r.mismatches, 0, `first mismatch X[${r.first}]`);
  });

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

// The merge's arithmetic without a model: float64 → float16 / bfloat16 rounding (once, to nearest even),
// the f32 export equal to the engine's mergeLora bit for bit, and a zero update keeping W's bits (−0 too).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFloats, f64ToBf16Bits, f64ToHalfBits, mergeF64 } from '../../src/export/merged';
import { mergeLora } from '../../src/engine/generate';
import { bf16ToFloat, halfToFloat } from '../../src/model/safetensors';
import { mulberry32 } from '../../src/engine/adapters';

test('f64 → f16: every half round-trips; midpoints go to the even neighbour; a hair above goes up', () => {
  for (let h = 0; h < 0x10000; h++) {
    const v = halfToFloat(h);
    if (Number.isNaN(v)) continue;
    assert.equal(f64ToHalfBits(v), h, `half 0x${h.toString(16)}`);
    const next = halfToFloat(h + 1);
    if ((h & 0x7fff) >= 0x7bff || h === 0x7fff || Number.isNaN(next) || h === 0x8000 - 1) continue;
    const mid = (v + next) / 2; // exact in f64
    const even = (h & 1) === 0 ? h : h + 1;
    assert.equal(f64ToHalfBits(mid), even, `midpoint after 0x${h.toString(16)}`);
    assert.equal(
      f64ToHalfBits(mid + Math.abs(next - v) * 2 ** -30 * Math.sign(next)),
      h + 1,
      `above the midpoint after 0x${h.toString(16)}`,
    );
  }
  assert.equal(f64ToHalfBits(65519.99), 0x7bff);
  assert.equal(f64ToHalfBits(65520), 0x7c00);
  assert.equal(f64ToHalfBits(-0), 0x8000);
});

test('f64 → bf16 round-trips and rounds to nearest even', () => {
  for (let h = 0; h < 0x10000; h += 7) {
    const v = bf16ToFloat(h);
    if (!Number.isFinite(v)) continue;
    assert.equal(f64ToBf16Bits(v), h, `bf16 0x${h.toString(16)}`);
  }
  assert.equal(f64ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie → even (1.0)
  assert.equal(f64ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie → even (1 + 2^-6)
});

test('mergeF64 rounded to f32 = mergeLora (the engine) bit for bit; a zero B keeps W (−0 included)', () => {
  const rnd = mulberry32(5);
  const [nOut, nIn, r] = [7, 13, 3];
  const W = Float32Array.from({ length: nOut * nIn }, (_, i) => (i === 3 ? -0 : rnd() - 0.5));
  const A = Float32Array.from({ length: r * nIn }, () => rnd() - 0.5);
  const B = Float32Array.from({ length: nOut * r }, () => (rnd() - 0.5) * 0.1);
  const f32 = new Float32Array(encodeFloats(mergeF64(W, A, B, 2, nOut, nIn, r), 'F32').buffer);
  assert.deepEqual(new Uint32Array(f32.buffer), new Uint32Array(mergeLora(W, A, B, 2, nOut, nIn, r).buffer));
  const zero = new Float32Array(encodeFloats(mergeF64(W, A, new Float32Array(nOut * r), 2, nOut, nIn, r), 'F32').buffer);
  assert.deepEqual(new Uint32Array(zero.buffer), new Uint32Array(W.buffer));
});

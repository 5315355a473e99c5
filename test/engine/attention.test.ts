/**
 * Multi-head attention (engine_attention.wgsl):
 *  (1) float64 reference backward vs central differences of the float64 forward (L = Σ G ⊙ O),
 *      causal + key mask (incl. a row with no visible key) and cross-attention;
 *  (2) GPU forward (O) and backward (dQ, dK, dV) vs the reference with a per-element bound.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { prepareAttention } from '../../src/engine/kernels/attention';
import { attentionBackwardRef, attentionForwardRef, type AttnShape } from '../../src/engine/reference/attention';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { randomF32 } from '../support/random';
import { compare, dot, fdCheck, U32 } from './blora-check';

interface Case extends AttnShape {
  name: string;
  /** valid key positions per batch row: [from, to) ; null = no mask */
  keys: [number, number][] | null;
  amp: number; // q, k ~ U(−amp, amp): softmax peakiness
}

const CASES: Case[] = [
  {
    name: 'self causal, right-padded',
    B: 2,
    S: 7,
    Skv: 7,
    H: 3,
    D: 8,
    causal: true,
    keys: [
      [0, 7],
      [0, 4],
    ],
    amp: 2,
  },
  {
    name: 'self causal, left-padded (empty row), odd D',
    B: 2,
    S: 6,
    Skv: 6,
    H: 2,
    D: 5,
    causal: true,
    keys: [
      [0, 6],
      [1, 6],
    ],
    amp: 2,
  },
  { name: 'self causal, S=70 > chunk, D=64 (Whisper)', B: 1, S: 70, Skv: 70, H: 2, D: 64, causal: true, keys: [[0, 66]], amp: 1.5 },
  { name: 'cross, E=130 frames', B: 2, S: 5, Skv: 130, H: 2, D: 16, causal: false, keys: null, amp: 1.5 },
  { name: 'causal with KV offset (Skv > S)', B: 1, S: 3, Skv: 9, H: 1, D: 4, causal: true, keys: [[0, 9]], amp: 2 },
  // Tiling edges of the D ≤ 64 kernels (16-query blocks × 64-key tiles): S = 19 = 16 + 3 queries,
  // Skv = 67 = 64 + 3 keys, masked keys on both sides of the tile boundary, a batch row whose
  // visible keys all lie in the second tile.
  {
    name: 'cross, S=19 (block+3), Skv=67 (tile+3), masked',
    B: 2,
    S: 19,
    Skv: 67,
    H: 2,
    D: 64,
    causal: false,
    keys: [
      [3, 62],
      [64, 67],
    ],
    amp: 1.5,
  },
  // Causal with a KV offset of 65 (> one key tile) and left padding (empty rows in block 1, the
  // offset makes the diagonal cross tiles inside one query block); odd D.
  {
    name: 'causal, KV offset 65, S=18, left-padded',
    B: 2,
    S: 18,
    Skv: 83,
    H: 1,
    D: 7,
    causal: true,
    keys: [
      [0, 83],
      [70, 83],
    ],
    amp: 2,
  },
  // D > 64: the per-query row kernels (kept for D ≤ 256).
  { name: 'cross, D=80 (row kernels)', B: 1, S: 4, Skv: 70, H: 2, D: 80, causal: false, keys: null, amp: 1 },
  // One query (greedy decoding): forward_decode (backward: the row kernels, from its STATS), over a masked
  // KV cache (keys not yet written), over Whisper's 1500 encoder frames, and with odd D and a batch row
  // that sees no key at all.
  {
    name: 'one query (forward_decode), D=64, masked KV cache',
    B: 1,
    S: 1,
    Skv: 130,
    H: 8,
    D: 64,
    causal: false,
    keys: [[0, 77]],
    amp: 1.5,
  },
  { name: 'one query (forward_decode), cross over E=1500 frames', B: 1, S: 1, Skv: 1500, H: 8, D: 64, causal: false, keys: null, amp: 1.5 },
  {
    name: 'one query (forward_decode), odd D, a row with no visible key',
    B: 2,
    S: 1,
    Skv: 45,
    H: 3,
    D: 5,
    causal: false,
    keys: [
      [2, 40],
      [0, 0],
    ],
    amp: 2,
  },
];

function maskOf(c: Case): Uint32Array | null {
  if (!c.keys) return null;
  const m = new Uint32Array(c.B * c.Skv);
  c.keys.forEach(([a, z], b) => {
    for (let j = a; j < z; j++) m[b * c.Skv + j] = 1;
  });
  return m;
}

describe('engine attention', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-attention-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  for (const base of [CASES[0], CASES[1], CASES[3], CASES[4]]) {
    test(`FD check of the float64 reference: ${base.name}`, () => {
      const c: Case =
        base.Skv === base.S
          ? {
              ...base,
              S: Math.min(base.S, 5),
              Skv: Math.min(base.S, 5),
              D: 3,
              keys: base.keys?.map(([a, z]) => [a, Math.min(z, 5) - 1]) as [number, number][],
            }
          : { ...base, S: 3, Skv: base.causal ? 5 : 6, D: 3 };
      const mask = maskOf(c);
      const nq = c.B * c.S * c.H * c.D;
      const nk = c.B * c.Skv * c.H * c.D;
      const q = Float64Array.from(randomF32(nq, 1, -c.amp, c.amp));
      const k = Float64Array.from(randomF32(nk, 2, -c.amp, c.amp));
      const v = Float64Array.from(randomF32(nk, 3));
      const G = Float64Array.from(randomF32(nq, 4));
      const loss = (): number => dot(G, attentionForwardRef(q, k, v, mask, c).o);
      const an = attentionBackwardRef(q, k, v, mask, G, c);
      for (const r of [fdCheck('dq', q, an.dq, loss), fdCheck('dk', k, an.dk, loss), fdCheck('dv', v, an.dv, loss)]) {
        console.log(`${c.name} ${r.line}`);
        assert.ok(r.rel < 1e-7, `${c.name} ${r.line}`);
      }
    });
  }

  for (const c of CASES) {
    test(`GPU vs float64 reference: ${c.name} B=${c.B} S=${c.S} Skv=${c.Skv} H=${c.H} D=${c.D}`, async () => {
      const mask = maskOf(c);
      const nq = c.B * c.S * c.H * c.D;
      const nk = c.B * c.Skv * c.H * c.D;
      const q = randomF32(nq, 11, -c.amp, c.amp);
      const k = randomF32(nk, 12, -c.amp, c.amp);
      const v = randomF32(nk, 13);
      const dO = randomF32(nq, 14);
      const b = {
        q: rt.upload('attn-test:q', q),
        k: rt.upload('attn-test:k', k),
        v: rt.upload('attn-test:v', v),
        mask: mask ? rt.upload('attn-test:mask', mask) : null,
        o: rt.storage('attn-test:o', nq * 4),
        stats: rt.storage('attn-test:stats', c.B * c.H * c.S * 8),
        dO: rt.upload('attn-test:dO', dO),
        dq: rt.upload('attn-test:dq', new Float32Array(nq).fill(NaN)), // must be overwritten
        dk: rt.upload('attn-test:dk', new Float32Array(nk).fill(NaN)),
        dv: rt.upload('attn-test:dv', new Float32Array(nk).fill(NaN)),
      };
      const call = await prepareAttention(rt, c, b);
      call.forward();
      call.backward();
      const [o, dq, dk, dv] = await Promise.all([rt.readF32(b.o, nq), rt.readF32(b.dq, nq), rt.readF32(b.dk, nk), rt.readF32(b.dv, nk)]);
      call.destroy();
      for (const x of Object.values(b)) x?.destroy();

      const f = attentionForwardRef(q, k, v, mask, c);
      const g = attentionBackwardRef(q, k, v, mask, dO, c);
      // Error model. Scores carry |δs| ≤ Δ = γ_D·max_j scale·Σ_d|q_d k_d| (+1 ulp for q·scale), so
      // p_ij has relative error ≤ 2Δ (softmax is shift-invariant: δ log p_j = δs_j − Σ p δs) plus
      // exp's (3 + 2|x|) ulp and the normalising sum's γ_Skv. Each output is a sum over keys (or
      // queries) of p-weighted terms, so |err| ≤ ε·Σ|terms| with
      //   ε = 4·Δmax + (2·(D + Skv) + 64)·u      (×2 margin on every piece)
      // where Σ|terms| are the reference's abs companions (oAbs, dqAbs, …: built from |dO|, |v|,
      // p, and D_i's abs scale Σ|dO|·oAbs).
      const Dmax = Math.max(...f.scoreAbs) * (c.D + 1) * U32;
      const eps = 4 * Dmax + (2 * (c.D + c.Skv) + 64) * U32;
      const results = [
        compare('O', o, f.o, (i) => eps * f.oAbs[i] + 2 * U32 * Math.abs(f.o[i])),
        compare('dQ', dq, g.dq, (i) => eps * g.dqAbs[i]),
        compare('dK', dk, g.dk, (i) => eps * g.dkAbs[i]),
        compare('dV', dv, g.dv, (i) => eps * g.dvAbs[i]),
      ];
      for (const r of results) console.log(`${c.name} ${r.line}  (ε=${eps.toExponential(2)})`);
      for (const r of results) assert.ok(r.ok, `${c.name} ${r.line}`);
      c.keys?.forEach(([a, z], b1) => {
        // A batch row with no visible key: O = 0 and dQ = 0 exactly.
        if (a < z) return;
        const off = b1 * c.S * c.H * c.D;
        for (let d = 0; d < c.S * c.H * c.D; d++) {
          assert.equal(o[off + d], 0);
          assert.equal(dq[off + d], 0);
        }
      });
      if (c.causal && c.keys && c.keys.some(([a]) => a > 0)) {
        // Causal: query 0 of a left-padded row sees no key: O = 0 and dQ = 0 exactly.
        const b1 = c.keys.findIndex(([a]) => a > 0);
        const off = b1 * c.S * c.H * c.D;
        for (let d = 0; d < c.H * c.D; d++) {
          assert.equal(o[off + d], 0);
          assert.equal(dq[off + d], 0);
        }
      }
    });
  }

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

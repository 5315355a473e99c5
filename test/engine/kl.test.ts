/**
 * BLoRA KL (engine_kl.wgsl): (1) float64 reference gradients vs central differences of the float64
 * KL; (2) GPU KL value and accumulated β-scaled gradients vs the reference, over ρ from −50 (the
 * spec's B init) to +25, a large matrix (several partial workgroups + grid-stride) and n = 1.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GpuContext } from '../../src/gpu/device';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { prepareKl } from '../../src/engine/kernels/kl';
import { klRef, logSoftplusRef, sigmoidOverSoftplusRef, sigmoidRef, softplusRef } from '../../src/engine/reference/kl';
import { describeAdapter, nodeTestGpu } from '../support/node-gpu';
import { randomF32 } from '../support/random';
import { compare, fdCheck, U32 } from './blora-check';

const SIGMA_P = 0.01;
const BETA = 1e-4;

/** ρ values: uniform in [lo, hi) plus the regime edges. */
function rhoValues(n: number, seed: number): Float32Array {
  const r = randomF32(n, seed, -8, 3);
  const special = [-50, -25, -20.5, -19.5, -5.5, -4.5, 0, 1e-3, 20.5, 25, -87, -100];
  for (let i = 0; i < Math.min(n, special.length); i++) r[(i * 7919) % n] = special[i];
  return r;
}

describe('engine kl', () => {
  let ctx: GpuContext;
  let rt: GpuRuntime;
  before(async () => {
    ({ ctx, rt } = await nodeTestGpu('engine-kl-test'));
    console.log(`adapter ${describeAdapter(ctx)}`);
  });
  after(async () => {
    await ctx?.destroy();
  });

  test('FD check of the float64 reference (∂KL/∂μ, ∂KL/∂ρ)', () => {
    for (const sp of [0.01, 0.2]) {
      const mu = Float64Array.from(randomF32(40, 1, -0.05, 0.05));
      const rho = Float64Array.from(randomF32(40, 2, -7, 2));
      rho[3] = -19; // close to the exp branch, where the derivative is still well resolved
      rho[5] = -21;
      const an = klRef(mu, rho, sp);
      const loss = (): number => klRef(mu, rho, sp).kl;
      for (const r of [fdCheck(`dμ σp=${sp}`, mu, an.dmu, loss, 1e-6), fdCheck(`dρ σp=${sp}`, rho, an.drho, loss, 1e-6)]) {
        console.log(r.line);
        assert.ok(r.rel < 1e-6, r.line);
      }
    }
    // Regime switch at ρ = −20 (exp vs softplus) is continuous to ~1e-9 relative.
    for (const [f, name] of [
      [softplusRef, 'softplus'],
      [sigmoidOverSoftplusRef, 'sigmoid/softplus'],
      [logSoftplusRef, 'log softplus'],
    ] as const) {
      const a = f(-20 - 1e-12);
      const b = f(-20 + 1e-12);
      assert.ok(Math.abs(a - b) <= 1e-8 * Math.abs(a), `${name} jump at −20: ${a} vs ${b}`);
    }
    assert.ok(Math.abs(sigmoidRef(-50) / softplusRef(-50) - 1) < 1e-15);
  });

  test("FD check of the float64 reference with log(σ + ε), ε = 1e-6 (the authors' KL)", () => {
    const mu = Float64Array.from(randomF32(40, 3, -0.05, 0.05));
    const rho = Float64Array.from(randomF32(40, 4, -9, 2));
    rho[2] = -13; // σ ≈ 2e-6 ~ ε: both terms of σ + ε matter
    rho[6] = -50; // σ ≪ ε: log(σ + ε) ≈ log ε, and ∂/∂ρ of it ≈ 0 (the exact term's is −1/n)
    const eps = 1e-6;
    const an = klRef(mu, rho, SIGMA_P, eps);
    const loss = (): number => klRef(mu, rho, SIGMA_P, eps).kl;
    for (const r of [fdCheck('dμ ε=1e-6', mu, an.dmu, loss, 1e-6), fdCheck('dρ ε=1e-6', rho, an.drho, loss, 1e-6)]) {
      console.log(r.line);
      assert.ok(r.rel < 1e-6, r.line);
    }
    const exact = klRef(mu, rho, SIGMA_P);
    // the noiseless element: ~50 − 13.8 nats less, and its ρ gradient from the log term gone
    assert.ok(Math.abs((exact.kl - an.kl) * 40 - (50 + Math.log(eps))) < 0.5, `KL difference ${(exact.kl - an.kl) * 40}`);
    assert.ok(
      Math.abs(an.drho[6]) < 1e-12 && Math.abs(exact.drho[6] + 1 / 40) < 1e-9,
      `dρ at −50: ${an.drho[6]} vs exact ${exact.drho[6]}`,
    );
  });

  for (const [n, eps] of [
    [1, 0],
    [1000, 0],
    [300_001, 0],
    [1000, 1e-6],
  ] as const) {
    test(`GPU vs float64 reference, n=${n}${eps ? `, log(σ + ${eps})` : ''}`, async () => {
      const mu = randomF32(n, 10 + n, -0.05, 0.05);
      const rho = rhoValues(n, 20 + n);
      // Layout: ρ before μ, odd offsets; gradient slots prefilled (accumulation).
      const rhoOff = 5;
      const muOff = 5 + n + 2;
      const theta = new Float32Array(muOff + n);
      theta.set(rho, rhoOff);
      theta.set(mu, muOff);
      const gradMuOff = 0;
      const gradRhoOff = n + 1;
      const grads0 = randomF32(2 * n + 1, 30 + n, -1e-6, 1e-6);
      const b = {
        theta: rt.upload('kl-test:theta', theta),
        grads: rt.upload('kl-test:grads', grads0),
        klOut: rt.upload('kl-test:out', new Float32Array([7, 7, 7])),
      };
      const call = await prepareKl(
        rt,
        { n, muOff, rhoOff, gradMuOff, gradRhoOff, slot: 1, sigmaPrior: SIGMA_P, beta: BETA, logEps: eps },
        b,
      );
      call.run();
      const [out, grads] = await Promise.all([rt.readF32(b.klOut, 3), rt.readF32(b.grads, 2 * n + 1)]);
      call.destroy();
      Object.values(b).forEach((x) => x.destroy());

      const ref = klRef(mu, rho, SIGMA_P, eps);
      const logS = (r: number) => (eps ? Math.log(softplusRef(r) + eps) : logSoftplusRef(r));
      const sigOverS = (r: number) => (eps ? sigmoidRef(r) / (softplusRef(r) + eps) : sigmoidOverSoftplusRef(r));
      // KL bound: every term is a sum of O(1) pieces |log σ_p| + |log σ| + (σ²+μ²)/(2σ_p²) + ½,
      // each evaluated to a few ulp (own ln, softplus via exp + atanh series); then the f32 sums
      // (≤ n/P grid-stride terms per thread, 8 tree levels, ≤ 256 partials + 8 levels) on
      // non-negative terms. Bound: (16 + n/P + 2·8 + 256)·u·Σ pieces (Higham γ with margin).
      let pieces = 0;
      const vp = SIGMA_P * SIGMA_P;
      for (let i = 0; i < n; i++) {
        const s = softplusRef(rho[i]);
        pieces += Math.abs(Math.log(SIGMA_P)) + Math.abs(logS(rho[i])) + (s * s + mu[i] * mu[i]) / (2 * vp) + 0.5;
      }
      const P = Math.min(Math.ceil(n / 256), 256) * 256;
      const klBound = ((16 + Math.ceil(n / P) + 16 + 256) * U32 * pieces) / n;
      const kl = compare('KL', [out[1]], [ref.kl], () => klBound);
      console.log(`n=${n} ${kl.line} (KL=${ref.kl.toExponential(6)})`);
      assert.ok(kl.ok, kl.line);
      assert.equal(out[0], 7);
      assert.equal(out[2], 7);
      // Gradients: per element, grad0 + β·g with g evaluated to a few ulp of its two pieces; exp's
      // WGSL accuracy 3 + 2|x| ulp is the dominant allowance for |ρ| up to 100.
      const gmu = compare(
        'β·dμ + g0',
        grads.subarray(gradMuOff, gradMuOff + n),
        ref.dmu.map((v, i) => grads0[gradMuOff + i] + BETA * v),
        (i) => 8 * U32 * (Math.abs(BETA * ref.dmu[i]) + Math.abs(grads0[gradMuOff + i])),
      );
      const grho = compare(
        'β·dρ + g0',
        grads.subarray(gradRhoOff, gradRhoOff + n),
        ref.drho.map((v, i) => grads0[gradRhoOff + i] + BETA * v),
        (i) => {
          const r = rho[i];
          const pieceA = (softplusRef(r) * sigmoidRef(r)) / vp;
          const pieceB = sigOverS(r);
          return (16 + 4 * Math.abs(r)) * U32 * (BETA / n) * (pieceA + pieceB) + 2 * U32 * Math.abs(grads0[gradRhoOff + i]);
        },
      );
      for (const r of [gmu, grho]) {
        console.log(`n=${n} ${r.line}`);
        assert.ok(r.ok, r.line);
      }
      assert.equal(grads[n], grads0[n], 'gap between slots untouched');
    });
  }

  test('no uncaptured GPU errors', () => {
    assert.deepEqual(ctx.errors, []);
  });
});

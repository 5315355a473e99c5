/**
 * Browser side of test/browser/gpu.test.ts: runs the shared cases (test/gpu/cases.ts) on
 * navigator.gpu and publishes { ok, caps, cases, bench, error } on window.__results.
 */
import { acquireDevice, type GpuCapabilities } from '../../src/gpu/device';
import { GpuRuntime } from '../../src/gpu/runtime';
import { runAllGpuCases, type BenchResult, type CaseResult } from '../gpu/cases';

export interface PageResults {
  ok: boolean;
  caps?: GpuCapabilities;
  cases: CaseResult[];
  bench: BenchResult[];
  uncapturedErrors: string[];
  error?: string;
}

declare global {
  interface Window {
    __results?: PageResults;
  }
}

async function main(): Promise<PageResults> {
  const q = new URLSearchParams(location.search);
  const compat = q.get('backend') === 'gl-compat';
  const ctx = await acquireDevice({ label: 'browser-test', featureLevel: compat ? 'compatibility' : 'core' });
  try {
    const rt = new GpuRuntime(ctx.device);
    const { cases, bench } = await runAllGpuCases(rt, { bench: q.get('bench') !== '0' });
    await rt.sync();
    const uncapturedErrors = [...ctx.errors];
    return {
      ok: cases.every((c) => c.passed) && uncapturedErrors.length === 0,
      caps: ctx.caps,
      cases,
      bench,
      uncapturedErrors,
    };
  } finally {
    await ctx.destroy();
  }
}

const out = document.getElementById('out')!;
main()
  .catch((e: unknown): PageResults => {
    const err = e as Error;
    return { ok: false, cases: [], bench: [], uncapturedErrors: [], error: `${err.name}: ${err.message}` };
  })
  .then((r) => {
    out.textContent = JSON.stringify(r, null, 2);
    window.__results = r;
  });

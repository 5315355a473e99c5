/**
 * The WGSL kernel cases of test/gpu/cases.ts, run in headless Chromium (SwiftShader and GL-compat
 * WebGPU adapters) through a programmatic Vite server. Run: node --import tsx --test test/browser/gpu.test.ts
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { forwardPageErrors, launchChromium, type LaunchedChromium } from '../support/chromium';
import { startViteServer, type TestServer } from '../support/vite-server';
import type { PageResults } from './gpu-page';

const RESULT_TIMEOUT_MS = Number(process.env.BLORA_BROWSER_TIMEOUT_MS ?? 240_000);

describe('WGSL kernels in headless Chromium', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startViteServer();
  });
  after(async () => {
    await srv?.close();
  });

  for (const webgpu of ['swiftshader', 'gl-compat'] as const) {
    test(`cases pass on the ${webgpu} adapter`, { timeout: RESULT_TIMEOUT_MS + 60_000 }, async () => {
      let chrome: LaunchedChromium | undefined;
      try {
        chrome = await launchChromium({ webgpu });
        const page = await chrome.context.newPage();
        const errors = forwardPageErrors(page, `chromium/${webgpu}`);
        const url = `${srv.url}/test/browser/gpu.html${webgpu === 'gl-compat' ? '?backend=gl-compat' : ''}`;
        await page.goto(url);
        try {
          await page.waitForFunction(() => window.__results !== undefined, undefined, {
            timeout: RESULT_TIMEOUT_MS,
            polling: 250,
          });
        } catch (e) {
          throw new Error(
            `no window.__results after ${RESULT_TIMEOUT_MS} ms on ${url}` +
              (errors.length ? `; page errors:\n${errors.join('\n')}` : ' (no page errors)'),
            { cause: e },
          );
        }
        const r = (await page.evaluate(() => window.__results)) as PageResults;
        if (r.error) assert.fail(`page failed: ${r.error}`);
        const a = r.caps!.adapter;
        console.log(
          `chromium/${webgpu} adapter: ${a.vendor}/${a.architecture} "${a.description || a.device}" ` +
            `fallback=${r.caps!.isFallbackAdapter} ${r.caps!.featureLevel} f16=${r.caps!.hasF16} ` +
            `subgroups=${r.caps!.hasSubgroups} timestamps=${r.caps!.hasTimestamps} ` +
            `maxStorageBinding=${r.caps!.limits.maxStorageBufferBindingSize}`,
        );
        for (const c of r.cases) console.log(`chromium/${webgpu} ${c.passed ? 'ok ' : 'FAIL'} ${c.name}: ${c.detail}`);
        for (const b of r.bench) {
          console.log(
            `chromium/${webgpu} bench ${b.name}: ${b.gflops.toFixed(2)} GFLOP/s ` +
              `(best run; runs ${b.ms.map((m) => m.toFixed(1)).join(', ')} ms)`,
          );
        }
        assert.ok(r.cases.length > 0, 'no cases ran');
        const failed = r.cases.filter((c) => !c.passed);
        assert.deepEqual(failed, [], `failed cases on ${webgpu}`);
        assert.deepEqual(r.uncapturedErrors, [], 'uncaptured GPU errors in page');
        assert.ok(r.ok);
        if (webgpu === 'gl-compat') assert.equal(r.caps!.featureLevel, 'compatibility');
      } finally {
        await chrome?.close();
      }
    });
  }
});

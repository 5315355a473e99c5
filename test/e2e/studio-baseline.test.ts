// End to end, as a user: open the studio in headless Chromium, see the backend, watch the default model
// load, transcribe a demo clip on WebGPU (software: Mesa llvmpipe through Chromium's GL-compat adapter,
// the fastest WebGPU path on a CPU-only machine) and get the same text as Python transformers; drop a
// corrupt file and get an error naming it. Screenshots go to test-results/e2e/.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { DEMO_DIR, resultsDir } from '../support/env';
import { forwardPageErrors, launchChromium, type LaunchedChromium } from '../support/chromium';
import { baselineOracle } from '../support/oracle';
import { startStudioServer } from '../support/studio-server';

const SHOTS = resultsDir('e2e');
const CLIP = 'en_01';

describe('studio E2E: baseline transcription in headless Chromium', { timeout: 20 * 60_000 }, () => {
  let server: Awaited<ReturnType<typeof startStudioServer>>;
  let chrome: LaunchedChromium;
  let page: Page;
  const expected = baselineOracle(join(DEMO_DIR, 'manifest.jsonl')).clips.find((c) => c.id === CLIP)!;

  before(async () => {
    server = await startStudioServer();
    chrome = await launchChromium({ webgpu: 'gl-compat' });
    page = await chrome.context.newPage();
    forwardPageErrors(page);
  });
  after(async () => {
    await chrome?.close();
    await server?.close();
  });

  test('the page shows its WebGPU backend and loads the default model with progress', async () => {
    const t0 = Date.now();
    await page.goto(`${server.url}/?encoder=webgpu`);
    await page.getByTestId('backend').waitFor();
    const backend = await page.getByTestId('backend').textContent();
    assert.match(backend ?? '', /WebGPU/, 'the compute panel names the WebGPU adapter');
    await page.getByTestId('progress').first().waitFor({ timeout: 60_000 }); // a progress bar while loading
    await page.locator('[data-testid=model-status]', { hasText: /ready|error/ }).waitFor({ timeout: 5 * 60_000 });
    const status = await page.getByTestId('model-status').textContent();
    assert.equal(
      status,
      'ready',
      (await page
        .getByTestId('model-error')
        .textContent()
        .catch(() => null)) ?? 'model failed',
    );
    assert.match((await page.getByTestId('model-backends').textContent()) ?? '', /Encoder on webgpu/);
    assert.match((await page.getByTestId('model-summary').textContent()) ?? '', /multilingual \(99 languages\)/);
    console.log(`studio loaded the default model in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${backend}`);
    await page.screenshot({ path: join(SHOTS, 'studio-loaded.png'), fullPage: true });
  });

  test(`a demo clip (${CLIP}) is transcribed on WebGPU, as Python transformers does`, async () => {
    const row = page.getByTestId(`clip-${CLIP}`);
    await page.locator('[data-testid=demo-clips] > summary').click(); // the Setup tab shows the demo clips collapsed
    const t0 = Date.now();
    await row.getByTestId('transcribe').click();
    await row.locator('[data-testid=transcript], [data-testid=clip-error]').waitFor({ timeout: 15 * 60_000 });
    const err = await row
      .getByTestId('clip-error')
      .textContent()
      .catch(() => null);
    assert.equal(err, null, `transcription failed: ${err}`);
    const text = await row.getByTestId('transcript').textContent();
    console.log(
      `${CLIP} on WebGPU in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(text)} (python: ${JSON.stringify(expected.text)})`,
    );
    assert.equal(text, expected.text);
    await page.screenshot({ path: join(SHOTS, 'studio-transcribed.png'), fullPage: true });
  });

  test('a corrupt audio file gets an error naming the file and the cause', async () => {
    const bad = join(resultsDir('e2e'), 'broken-clip.mp3');
    writeFileSync(bad, '<html><body>not audio</body></html>');
    await page.getByTestId('own-clip-input').setInputFiles(bad);
    const error = page.getByTestId('own-result').getByTestId('clip-error');
    await error.waitFor({ timeout: 60_000 });
    const msg = (await error.textContent()) ?? '';
    assert.match(msg, /broken-clip\.mp3/);
    assert.match(msg, /not a supported audio format|HTML/i);
    await page.screenshot({ path: join(SHOTS, 'studio-bad-file.png'), fullPage: true });
  });
});

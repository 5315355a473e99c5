// Faults during training in the studio (issue 16, item 3), in real headless Chromium (WebGPU through the
// GL-compat adapter, the encoder on wasm), with the page opened with ?test-hooks=1 — the only way the
// training worker accepts an injected fault (src/ui/training.ts → 'test-hooks', 'test-fault'):
//   1. device loss mid-step: the worker's GPUDevice is destroyed between backward and the loss read-back of
//      step 2 of 2; the worker recovers on its own (new device, model and K/V cache, the checkpoint of step 1),
//      the run says so (run-recoveries) and finishes with one CE point per step, none lost or doubled.
//   2. NaN in the loss of step 2: the run stops with the divergence message, its checkpoint stays at step 1.
//   3. storage quota (Storage.overrideQuotaForOrigin over the DevTools protocol, set to what the origin
//      already uses): the first checkpoint of a new run cannot be stored — the run stops with the message
//      that says what to delete, and the earlier runs' checkpoints in IndexedDB still verify (read back from
//      the page, decoded with their checksum).
//   4. β changed live while paused before step 2; 5. the demo button at ?demo-size=tiny (its estimate, three
//      runs, the Compare view with its sentence); every Start asserts the time estimate shown before it.
// The prepared default model (Whisper base), one demo clip with a short transcript, BLoRA r 2, B 1, every
// step an eval step (no eval sets: a checkpoint per step, nothing to decode).
// Measured on the 2-core machine at load average ~12 (other test runs beside it): 308 s — model + data 33 s,
// device loss 193 s (the first step and the first step on the new device each compile the engine's pipelines,
// ~40–100 s at that load; the rebuild itself 17 s), NaN 44 s, quota 37 s. Over the ~3 min aimed at; the
// fault runs are already at their minimum (2 steps, r 2, one clip, no eval sets).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { decodeCheckpoint } from '../../src/train/trainer';
import { DEMO_DIR } from '../support/env';
import { forwardPageErrors, launchChromium, type LaunchedChromium } from '../support/chromium';
import { startStudioServer } from '../support/studio-server';
import { waitFor } from '../support/e2e';

// A guard against a hang, not a time limit: the five runs took 903 s (over the old 15 min) in a fresh-clone CI on a
// slower VM of this kind (2026-12-07, beside the studio-train E2E), 224 s on an earlier one.
describe('studio E2E: device loss, NaN and a full quota during training', { timeout: 30 * 60_000 }, () => {
  let server: Awaited<ReturnType<typeof startStudioServer>>;
  let chrome: LaunchedChromium;
  let page: Page;
  let data: string;
  const t0 = Date.now();
  const lap = (what: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${what}`);
  const status = () =>
    page
      .getByTestId('run-view')
      .getAttribute('data-status')
      .catch(() => null);
  const runId = () =>
    page
      .getByTestId('run-view')
      .getAttribute('data-run')
      .catch(() => null);
  const points = async (id: string) =>
    Number(
      (await page
        .getByTestId(`chart-${id}`)
        .getAttribute('data-points')
        .catch(() => '0')) ?? 0,
    );
  const runError = async () =>
    (await page
      .getByTestId('run-error')
      .textContent()
      .catch(() => null)) ?? '';
  const runs: string[] = [];
  /** seconds shown before each Start */
  const estimates: number[] = [];

  before(async () => {
    data = mkdtempSync(join(tmpdir(), 'blora-e2e-faults-'));
    const dir = join(data, 'faults-train');
    mkdirSync(dir);
    writeFileSync(join(dir, 'metadata.csv'), 'file_name,transcription,language\nes_02.wav,¿Me puedes pasar la sal?,es\n');
    copyFileSync(join(DEMO_DIR, 'es_02.wav'), join(dir, 'es_02.wav'));
    server = await startStudioServer();
    chrome = await launchChromium({ webgpu: 'gl-compat', contextOptions: { viewport: { width: 1200, height: 900 } } });
    page = await chrome.context.newPage();
    forwardPageErrors(page);
    page.on('console', (msg) => msg.text().startsWith('[train-worker') && console.log(`  ${msg.text()}`));
  });
  after(async () => {
    await chrome?.close();
    await server?.close();
    if (data) rmSync(data, { recursive: true, force: true });
  });

  /** Start a run of `steps` steps; `fault` is armed once the worker exists (before its first step). */
  async function start(name: string, steps: number, fault?: ['device-loss' | 'nan' | 'pause', number]): Promise<string> {
    await page.getByTestId('tab-setup').click();
    await page.getByTestId('exp-name').fill(name);
    await page.getByTestId('exp-steps').fill(String(steps));
    // the time before Start: an estimate until a run of this adapter has finished, then measured
    const est = page.getByTestId('run-estimate');
    const kind = await est.getAttribute('data-kind');
    assert.equal(kind, estimates.length === 0 ? 'estimate' : 'measured', (await est.textContent()) ?? '');
    const seconds = Number(await est.getAttribute('data-seconds'));
    assert.ok(seconds > 0, `estimate ${seconds} s`);
    estimates.push(seconds);
    console.log(`  estimate before Start of ${name}: ${kind} ${seconds} s — ${await est.textContent()}`);
    const before = await runId();
    await page.getByTestId('start-run').click();
    await waitFor(page, `run ${name} to start`, async () => (await runId()) !== null && (await runId()) !== before, 60_000);
    if (fault)
      await page.evaluate(
        ([f, at]) => (globalThis as unknown as { __bloraTrainFault(f: string, at: number): void }).__bloraTrainFault(f, at),
        fault,
      );
    const id = (await runId())!;
    runs.push(id);
    return id;
  }

  test('the default model and one clip through the folder input', async () => {
    await page.goto(`${server.url}/?encoder=wasm&test-hooks=1&demo-size=tiny`);
    await page.locator('[data-testid=model-status]', { hasText: /ready|error/ }).waitFor({ timeout: 5 * 60_000 });
    assert.equal(await page.getByTestId('model-status').textContent(), 'ready');
    await page.getByTestId('data-folder-input').setInputFiles(join(data, 'faults-train'));
    await waitFor(
      page,
      'the dataset encoded',
      async () => (await page.locator('[data-testid=dataset][data-status=ready]').count()) === 1,
      3 * 60_000,
    );
    assert.equal(await page.locator('[data-testid=dataset]').getAttribute('data-role'), 'train');
    await page.getByTestId('exp-method').selectOption('blora');
    await page.getByTestId('exp-batch').fill('1');
    await page.getByTestId('exp-r').fill('2');
    await page.getByTestId('exp-alpha').fill('4');
    await page.getByTestId('exp-warmup').fill('0');
    await page.getByTestId('exp-eval-interval').fill('1'); // a checkpoint after every step
    lap('model and data');
  });

  test('device lost mid-step 2: the worker resumes from the checkpoint of step 1, says so, every record once', async () => {
    await start('faults device', 2, ['device-loss', 2]);
    await waitFor(page, 'the run to finish', async () => ['done', 'error', 'stopped'].includes((await status()) ?? ''), 8 * 60_000);
    assert.equal(await status(), 'done', await runError());
    const rec = (await page.getByTestId('run-recoveries').textContent()) ?? '';
    assert.match(rec, /GPU device was lost during step 2 \(destroyed.*resumed from the checkpoint at step 1 \(recovery 1 of at most 3\)/);
    assert.equal(await points('ce'), 2, 'one CE point per step');
    assert.match((await page.getByTestId('run-checkpoint').textContent()) ?? '', /step 2/);
    lap('device loss recovered');
  });

  test('NaN in the loss of step 2: the run stops, its checkpoint stays at step 1', async () => {
    await start('faults nan', 2, ['nan', 2]);
    await waitFor(page, 'the run to stop', async () => ['done', 'error', 'stopped'].includes((await status()) ?? ''), 6 * 60_000);
    assert.equal(await status(), 'error');
    assert.match(
      await runError(),
      /training stopped at step 2: the cross-entropy is not finite.*rolled back to the last good checkpoint \(step 1\)/,
    );
    assert.match((await page.getByTestId('run-checkpoint').textContent()) ?? '', /step 1/);
    assert.equal(await points('ce'), 1);
    lap('NaN stopped the run');
  });

  test('β changed live (paused before step 2): the next step takes it, the schedule and the charts show it', async () => {
    const lines: string[] = [];
    const onLine = (msg: { text(): string }) => void lines.push(msg.text());
    page.on('console', onLine);
    await start('faults beta', 2, ['pause', 2]);
    await waitFor(
      page,
      'the run to pause before step 2',
      async () => ['paused', 'done', 'error'].includes((await status()) ?? ''),
      6 * 60_000,
    );
    assert.equal(await status(), 'paused', await runError());
    assert.equal(await points('ce'), 1);
    await page.getByTestId('run-beta').fill('-2'); // log10 β
    assert.equal(await page.getByTestId('run-beta-value').textContent(), '1e-2');
    await page.getByTestId('run-beta-apply').click();
    await waitFor(
      page,
      'the worker to take the new β',
      async () => /step 2: 1e-2/.test((await page.getByTestId('run-beta-schedule').textContent()) ?? ''),
      60_000,
    );
    await page.getByTestId('resume').click();
    await waitFor(page, 'the run to finish', async () => ['done', 'error', 'stopped'].includes((await status()) ?? ''), 6 * 60_000);
    page.off('console', onLine);
    assert.equal(await status(), 'done', await runError());
    assert.ok(
      lines.some((l) => /: β = 0\.01 from step 2$/.test(l)),
      'the worker logs the change',
    );
    // β of the step after the last is the changed one; the loss and KL charts mark step 2
    assert.equal(Number(await page.getByTestId('run-beta-control').getAttribute('data-beta')), 0.01);
    assert.equal(await page.getByTestId('chart-loss').getAttribute('data-beta-marks'), '2');
    assert.equal(await page.getByTestId('chart-kl').getAttribute('data-beta-marks'), '2');
    assert.equal(await points('ce'), 2);
    lap('live β change');
  });

  test('storage quota exceeded: the message says what to delete, the stored checkpoints still verify', async () => {
    const origin = new URL(server.url).origin;
    const cdp = await chrome.context.newCDPSession(page);
    const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0);
    // Room for the run's summary, not for its first checkpoint (≈ 0.6 MB).
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 64 * 1024 });
    try {
      await start('faults quota', 2);
      await waitFor(page, 'the run to stop', async () => ['done', 'error', 'stopped'].includes((await status()) ?? ''), 6 * 60_000);
      assert.equal(await status(), 'error');
      assert.match(
        await runError(),
        /Browser storage is full while saving .*Delete old runs \(Compare view → delete\) or clear the encoder cache/,
      );
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    }
    // Nothing damaged: the earlier runs' checkpoints decode and verify.
    // (a string: tsx would wrap inner functions of a page function in its __name helper, unknown in the page)
    const stored = (await page.evaluate(`(async (ids) => {
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open('blora-studio');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const get = (k) => new Promise((res) => {
        const r = db.transaction('checkpoints').objectStore('checkpoints').get(k);
        r.onsuccess = () => res(r.result);
        r.onerror = () => res(undefined);
      });
      const b64 = (b) => {
        let str = '';
        for (let i = 0; i < b.length; i += 0x8000) str += String.fromCharCode(...b.subarray(i, i + 0x8000));
        return btoa(str);
      };
      const out = {};
      for (const id of ids) for (const k of [id, id + '|prev']) {
        const b = await get(k);
        out[k] = b ? b64(b) : null;
      }
      return out;
    })(${JSON.stringify(runs)})`)) as Record<string, string | null>;
    const [device, nan, beta, quota] = runs;
    const step = (k: string) => decodeCheckpoint(new Uint8Array(Buffer.from(stored[k]!, 'base64')), k).step;
    assert.equal(step(device), 2);
    assert.equal(step(`${device}|prev`), 1);
    assert.equal(step(nan), 1);
    assert.equal(step(beta), 2);
    assert.ok(stored[quota] === null, 'no half-written checkpoint');
    lap('quota');
  });

  test('the demo button (reduced size): its estimate, three runs, the Compare view with the summary sentence', async () => {
    await page.getByTestId('tab-setup').click();
    assert.equal(await page.getByTestId('demo-cta').getAttribute('data-size'), 'tiny');
    const est = page.getByTestId('demo-estimate');
    const seconds = Number(await est.getAttribute('data-seconds'));
    assert.ok(seconds > 0, `demo estimate: ${await est.textContent()}`);
    // the earlier runs finished on this adapter: the demo's time comes from their measured speed
    assert.match((await est.textContent()) ?? '', /Time for the three runs: .*measured/);
    const t = Date.now();
    await page.getByTestId('demo-run').click();
    await waitFor(
      page,
      'the demo to land on the Compare view',
      async () =>
        (await page
          .getByTestId('demo-status')
          .getAttribute('data-stage')
          .catch(() => null)) === 'done',
      12 * 60_000,
    );
    const took = (Date.now() - t) / 1000;
    await page.getByTestId('compare-view').waitFor();
    const sentence = (await page.getByTestId('compare-summary').textContent()) ?? '';
    assert.match(sentence, /LoRA/);
    assert.match(sentence, /BLoRA β/);
    // "β=1" is a prefix of "β=10": that name must not be followed by a digit
    for (const name of [/demo LoRA/, /demo BLoRA β=1(?!\d)/, /demo BLoRA β=10/]) {
      assert.equal(await page.locator('[data-testid=compare-row]', { hasText: name }).count(), 1, `a compare row for ${name}`);
    }
    await page.getByTestId('tab-setup').click();
    const roles = await page.locator('[data-testid=dataset]').evaluateAll((els) => els.map((e) => e.getAttribute('data-role')));
    assert.deepEqual(roles, ['train', 'new', 'base'], 'the demo replaced the datasets: train, code-switched eval, base eval');
    console.log(`  demo (tiny) in ${took.toFixed(0)} s, estimated ${seconds} s: ${sentence}`);
    lap('demo button');
  });
});

// End to end, as a user, in real headless Chromium (WebGPU through the GL-compat adapter, Mesa
// llvmpipe; the encoder on wasm, which the studio's own timing probe picks there): point the studio at a local Hub (test/support/local-hub.ts) and load
// the ONNX-only repo onnx-community/whisper-base from it — the Model panel says it trains from the
// weights repo openai/whisper-base and how much that fetches; the training worker then fetches only the
// decoder tensors by Range requests (the Hub counts the bytes), survives a connection cut mid-tensor by
// resuming, and after the reload reads them from Cache Storage; add three datasets through the real folder input (a corrupt clip
// among the training files must show its error and leave the rest usable), train BLoRA for 2 steps on
// the real Whisper base, watch the charts and the |μ| histogram get data, reload the tab mid-run and
// see the run resume from its IndexedDB checkpoint; then train LoRA on the same data (the frozen-model
// evaluation is reused), see both runs on the compare view with backward gain and new-domain drop, and
// export the BLoRA adapter and check the downloaded safetensors header (PEFT keys and shapes). The BLoRA run
// decodes its eval sets with 2 posterior samples at the end: the Run view's "where the adapter is unsure" table.
// Last, a 2-step LoRA run with a second training set mixed in at 50 % (data.trainMix) and a dev set: dev CE at every
// step, the adapter of the lowest kept, and the exported experiment.json says so.
// Screenshots of each view go to test-results/e2e/ and the README's docs/img/studio-{run,compare}.png
// are refreshed from them. Measured alone on the idle 2-core machine: 445 s (datasets 37 s, BLoRA with the
// reload 229 s, LoRA 102 s, compare + Try it 56 s, export with the pruned evaluation 21 s); in the suite,
// beside another test file (scripts/test.sh runs two at a time): 601 s. The mixing run added at the end: 79 s (its lap
// lines, 383 s → 462 s, in a run of this file beside the corpus generator).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { DEMO_DIR, REPO, resultsDir } from '../support/env';
import { forwardPageErrors, launchChromium, type LaunchedChromium } from '../support/chromium';
import { startStudioServer } from '../support/studio-server';
import { waitFor } from '../support/e2e';
import { HUB_REPOS, readSafetensorsHeader, startLocalHub, type LocalHub } from '../support/local-hub';
import { requireModel } from '../support/env';

const SHOTS = resultsDir('e2e');
const STEPS = 2;
/** the LoRA baseline: one step moves its B off zero, enough for a compare row (suite time) */
const LORA_STEPS = 1;
const R = 8;

function audiofolder(root: string, name: string, rows: [string, string, string][], extra: Record<string, string | Buffer> = {}): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const csv = ['file_name,transcription,language', ...rows.map(([f, t, l]) => `${f},"${t.replace(/"/g, '""')}",${l}`)].join('\n') + '\n';
  writeFileSync(join(dir, 'metadata.csv'), csv);
  for (const [f] of rows) if (!(f in extra)) copyFileSync(join(DEMO_DIR, f), join(dir, f));
  for (const [f, data] of Object.entries(extra)) writeFileSync(join(dir, f), data);
  return dir;
}

describe('studio E2E: Hub model → data → BLoRA training → reload/resume → LoRA → compare → export', { timeout: 45 * 60_000 }, () => {
  let server: Awaited<ReturnType<typeof startStudioServer>>;
  let hub: LocalHub;
  /** bytes of the decoder tensors in the weights repo's model.safetensors (f16: what a load fetches) */
  let decoderBytes = 0;
  /** weights-repo bytes served when the tab reloads (the cached load after it must add only headers) */
  let servedAtReload = -1;
  let chrome: LaunchedChromium;
  let page: Page;
  let data: string;
  const t0 = Date.now();
  const lap = (what: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${what}`);
  const manifest = readFileSync(join(DEMO_DIR, 'manifest.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const row = (f: string): [string, string, string] => {
    const m = manifest.find((x) => x.audio_filepath === f);
    return [f, m.text, m.language];
  };
  let blora = '';
  const status = () =>
    page
      .getByTestId('run-view')
      .getAttribute('data-status')
      .catch(() => null);
  const points = async (id: string) =>
    Number(
      (await page
        .getByTestId(`chart-${id}`)
        .getAttribute('data-points')
        .catch(() => '0')) ?? 0,
    );

  before(async () => {
    data = mkdtempSync(join(tmpdir(), 'blora-e2e-data-'));
    audiofolder(data, 'cs-train', [row('cs_01.wav'), row('cs_02.wav'), ['broken.wav', 'this clip is corrupt', 'en']], {
      'broken.wav': Buffer.from('RIFF\x10\x00\x00\x00WAVEjunk-not-a-real-wav-file'),
    });
    audiofolder(data, 'cs-eval', [row('cs_03.wav')]);
    audiofolder(data, 'base-eval', [row('en_01.wav')]);
    audiofolder(data, 'replay', [row('en_02.wav')]); // the last test: mixed into training at 50 %
    audiofolder(data, 'cs-dev', [row('es_01.wav')]);
    server = await startStudioServer();
    hub = await startLocalHub();
    for (const [name, t] of readSafetensorsHeader(join(requireModel(), 'model.safetensors')).tensors) {
      if (name.startsWith('model.decoder.')) decoderBytes += t.end - t.begin;
    }
    chrome = await launchChromium({
      webgpu: 'gl-compat',
      contextOptions: { acceptDownloads: true, viewport: { width: 1200, height: 900 } },
    });
    page = await chrome.context.newPage();
    forwardPageErrors(page);
    // The training worker's stage log (model, kernel-variant probe, K/V, steps) makes a slow run readable.
    page.on('console', (msg) => msg.text().startsWith('[train-worker') && console.log(`  ${msg.text()}`));
  });
  after(async () => {
    await chrome?.close();
    await server?.close();
    await hub?.close();
    if (data) rmSync(data, { recursive: true, force: true });
  });

  test('an ONNX-only repo from the (local) Hub: the Model panel says it trains from its weights repo', async () => {
    // No ?encoder=: the studio decides the encoder's backend itself — on llvmpipe (vendor hidden by Chromium)
    // its matmul timing probe must find a CPU behind the adapter and pick wasm (WebGPU took 404 s for the data).
    await page.goto(server.url);
    await page.locator('[data-testid=model-status]', { hasText: /ready|error/ }).waitFor({ timeout: 5 * 60_000 }); // the default loads first
    assert.match(
      (await page.getByTestId('model-backends').textContent()) ?? '',
      /Encoder on wasm \(the WebGPU adapter behaves like a CPU \(WGSL matmul probe: GPU tiles [\d.]+ ms, CPU-tuned [\d.]+ ms\)/,
    );
    await page.locator('[data-testid=model-advanced] summary').click();
    await page.getByTestId('hub-endpoint').fill(hub.url);
    await page.getByTestId('hub-endpoint-save').click();
    await page.getByTestId('model-pick').selectOption(HUB_REPOS.onnx);
    assert.match(
      (await page.getByTestId('model-pick-info').textContent()) ?? '',
      /decoder weights for training \(f32, from openai\/whisper-base/,
    );
    await page.getByTestId('model-load-hub').click();
    await page.locator('[data-testid=model-label]', { hasText: `Hub: ${HUB_REPOS.onnx}` }).waitFor();
    await page.locator('[data-testid=model-status]', { hasText: /ready|error/ }).waitFor({ timeout: 5 * 60_000 });
    assert.equal(
      await page.getByTestId('model-status').textContent(),
      'ready',
      (await page
        .getByTestId('model-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    await page.locator('[data-testid=model-trainable]:not([data-trainable=checking])').waitFor({ timeout: 60_000 });
    const trainable = (await page.getByTestId('model-trainable').textContent()) ?? '';
    assert.equal(await page.getByTestId('model-trainable').getAttribute('data-trainable'), 'true', trainable);
    assert.match(trainable, new RegExp(`${HUB_REPOS.weights}.*${Math.round(decoderBytes / 1e6)} MB to fetch`));
    // So far only the safetensors header was read from the weights repo, by Range requests.
    const weightsGets = hub.requests({ repo: HUB_REPOS.weights, file: 'model.safetensors', method: 'GET' });
    assert.ok(weightsGets.length > 0 && weightsGets.every((r) => r.status === 302 || r.range !== null), 'Range requests only');
    assert.ok(
      hub.bytesServed({ repo: HUB_REPOS.weights }) < 1e5,
      `headers only before training (${hub.bytesServed({ repo: HUB_REPOS.weights })} B)`,
    );
    assert.equal(hub.bytesServed({ repo: HUB_REPOS.onnx, file: 'model.safetensors' }), 0);
    // The training worker's first large tensor response is cut after 2 MB: it must resume, not restart.
    hub.cutNext('model.safetensors', 2 << 20, HUB_REPOS.weights);
    lap('model from the local Hub');
  });

  test('datasets through the folder input: counts, roles, a corrupt clip reported, encoder states cached', async () => {
    for (const d of ['cs-train', 'cs-eval', 'base-eval']) await page.getByTestId('data-folder-input').setInputFiles(join(data, d));
    await waitFor(
      page,
      'three datasets encoded',
      async () => (await page.locator('[data-testid=dataset][data-status=ready]').count()) === 3,
      5 * 60_000,
    );
    lap('datasets encoded');
    const train = page.locator('[data-testid=dataset][data-name=cs-train]');
    assert.equal(await train.getAttribute('data-role'), 'train');
    assert.equal(await train.getByTestId('dataset-count').textContent(), '2', 'the corrupt clip is skipped, the two good ones stay');
    const issue = (await train.getByTestId('dataset-issue').allTextContents()).join('\n');
    assert.match(issue, /broken\.wav/);
    assert.match(issue, /unreadable audio/);
    assert.equal(await page.locator('[data-testid=dataset][data-name=cs-eval]').getAttribute('data-role'), 'new');
    assert.equal(await page.locator('[data-testid=dataset][data-name=base-eval]').getAttribute('data-role'), 'base');
    await page.screenshot({ path: join(SHOTS, 'studio-data.png'), fullPage: true });
  });

  test(`a ${STEPS}-step BLoRA run streams records, survives a reload mid-run and finishes`, async () => {
    await page.getByTestId('exp-method').selectOption('blora');
    await page.getByTestId('exp-name').fill('e2e blora');
    await page.getByTestId('exp-steps').fill(String(STEPS));
    await page.getByTestId('exp-batch').fill('2');
    await page.getByTestId('exp-r').fill(String(R));
    await page.getByTestId('exp-alpha').fill(String(2 * R));
    await page.getByTestId('exp-warmup').fill('0');
    await page.getByTestId('exp-eval-interval').fill('0');
    await page.getByTestId('exp-max-tokens').fill('32');
    await page.getByTestId('exp-posterior-samples').fill('2'); // "where the adapter is unsure" after training
    await page.getByTestId('exp-beta').fill('-4'); // log10 β
    assert.equal(await page.getByTestId('exp-beta-value').textContent(), '1e-4');
    await page.screenshot({ path: join(SHOTS, 'studio-experiment.png'), fullPage: true });
    // The reload is fired from the worker's own log line "checkpoint … saved at step 1": the worker goes
    // straight on to step 2, so the tab reloads mid-step. (Polling the page for the checkpoint is not
    // enough: while a step runs on software WebGPU, DOM queries can wait a whole step for Chromium, and
    // under load the run had already finished when such a poll returned.)
    let reload: Promise<unknown> | null = null;
    const onCheckpoint = (msg: { text(): string }) => {
      if (!reload && /^\[train-worker\] checkpoint of \S+ saved at step 1$/.test(msg.text())) {
        // 'commit', not 'load': the old worker's submitted step keeps the GPU process busy, which delays the
        // load event (and the new page's first frames) until that command buffer has run.
        servedAtReload = hub.bytesServed({ repo: HUB_REPOS.weights });
        reload = page.reload({ waitUntil: 'commit', timeout: 5 * 60_000 });
      }
    };
    page.on('console', onCheckpoint);
    // Listening from the start: the new tab's worker can resume (and log it) before the poll above sees the
    // reload, when the old page is slow to answer under load — a listener attached after it missed the line.
    let resumedAt: number | null = null;
    page.on('console', (msg) => {
      const m = /^\[train-worker\] (\S+) resumed from its checkpoint at step (\d+)$/.exec(msg.text());
      if (m && m[1] === blora) resumedAt = Number(m[2]);
    });
    await page.getByTestId('start-run').click();
    await page.getByTestId('run-view').waitFor();
    blora = (await page.getByTestId('run-view').getAttribute('data-run')) ?? '';
    // The histogram is drawn from real |μ| values once the run starts (step 0 = the init): bars in more than one log bin.
    await waitFor(
      page,
      'the |μ| histogram',
      async () =>
        Number(
          (await page
            .getByTestId('mu-histogram')
            .getAttribute('data-nonzero')
            .catch(() => '0')) ?? 0,
        ) > 1 || (await status()) === 'error',
      15 * 60_000,
    );
    await waitFor(
      page,
      'the checkpoint after step 1 (and the reload it triggers)',
      async () => reload !== null || (await status()) === 'error',
      15 * 60_000,
    );
    assert.ok(
      reload,
      (await page
        .getByTestId('run-error')
        .textContent()
        .catch(() => null)) ?? 'the run failed before step 1',
    );
    page.off('console', onCheckpoint);
    lap('step 1 + checkpoint');
    // No screenshot here: while a step runs, software WebGPU keeps Chromium's GPU process (which also
    // composites the page) busy, so screenshots and clicks wait for it; the views are shot when idle.
    await reload;
    lap('reloaded');
    // The new tab's worker resumes the run from its IndexedDB checkpoint (its log says from which step);
    // 'done' counts too: the page may be slow to answer while the resumed step runs.
    // …with the records up to that checkpoint (the CE point of step 1) in the new tab.
    await waitFor(
      page,
      'the resumed run with the CE point of step 1',
      async () => resumedAt !== null && ['running', 'starting', 'done'].includes((await status()) ?? '') && (await points('ce')) >= 1,
      8 * 60_000,
    );
    assert.equal(resumedAt, 1, 'resumed from the checkpoint of step 1');
    await waitFor(page, 'the run to finish', async () => ['done', 'error', 'stopped'].includes((await status()) ?? ''), 20 * 60_000);
    assert.equal(
      await status(),
      'done',
      (await page
        .getByTestId('run-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    lap('run done');
    // The decoder weights: decoder tensors only, fetched once despite the cut (Range requests from where it
    // stopped), and after the reload from Cache Storage (only the headers again).
    const gets = hub.requests({ repo: HUB_REPOS.weights, file: 'model.safetensors', method: 'GET' }).filter((r) => r.status !== 302);
    assert.ok(
      gets.every((r) => r.range !== null),
      'every GET of the weights is a Range request',
    );
    const cut = gets.find((r) => r.cut);
    assert.ok(cut?.range, 'the cut happened');
    // …and the next request for that tensor starts where the cut one stopped, not at its start.
    const resumed = gets.find((r) => r.range && r !== cut && r.range[1] === cut.range![1] && r.range[0] > cut.range![0]);
    assert.ok(resumed, `a Range request resuming the cut tensor (cut at bytes ${cut.range[0]}+${cut.bytes})`);
    const served = hub.bytesServed({ repo: HUB_REPOS.weights });
    console.log(
      `weights repo: ${served} B served in ${gets.length} requests (decoder tensors ${decoderBytes} B; ${servedAtReload} B before the reload; the cut tensor resumed at +${resumed.range![0] - cut.range[0]} B)`,
    );
    assert.ok(servedAtReload >= decoderBytes, 'all decoder tensors were fetched before the reload');
    // Bytes in flight when the connection dropped may be lost and fetched again: at most the cut response.
    assert.ok(
      served <= decoderBytes + (cut.bytes - (resumed.range![0] - cut.range[0])) + 1e6,
      `no tensor fetched twice, nothing but decoder tensors (+ headers): ${served} B`,
    );
    assert.ok(served - servedAtReload < 1e6, `after the reload the tensors come from the cache (${served - servedAtReload} B)`);
    assert.equal(await points('ce'), STEPS, 'one CE point per step, none duplicated by the resume');
    assert.equal(
      (await page.locator('[data-testid=chart-ce] .recharts-line-dots circle, [data-testid=chart-ce] .recharts-dot').count()) >= STEPS,
      true,
    );
    assert.match((await page.getByTestId('latest-ce').textContent()) ?? '', /CE \d+\.\d+/);
    assert.equal(await points('wer'), 2, 'WER before training and after');
    assert.match((await page.getByTestId('kpi-wer-base').textContent()) ?? '', /\d+\.\d %/);
    assert.match((await page.getByTestId('kpi-forgetting').textContent()) ?? '', /^[+-]?\d+\.\d pts$/);
    assert.equal(await page.getByTestId('mu-histogram').getAttribute('data-step'), String(STEPS));
    // posterior uncertainty of the final adapter: 2 samples, a score per eval utterance, AUROC/ECE per domain
    await waitFor(page, 'the uncertainty table', async () => (await page.getByTestId('run-uncertainty').count()) > 0, 2 * 60_000);
    assert.match((await page.getByTestId('run-uncertainty').textContent()) ?? '', /2 posterior samples of the adapter/);
    assert.match(
      (await page.getByTestId('run-uncertainty-new').textContent()) ?? '',
      /new domain: AUROC disagreement (n\/a|\d\.\d\d), entropy (n\/a|\d\.\d\d); ECE \d\.\d\d \(\d+\/\d+ wrong\)/,
    );
    assert.ok((await page.locator('[data-testid=run-uncertainty] tbody tr').count()) >= 2, 'a row per eval utterance');
    assert.ok((await page.locator('[data-testid=mu-histogram] .recharts-bar-rectangle').count()) > 1, 'histogram bars are drawn');
    await page.screenshot({ path: join(SHOTS, 'studio-run.png'), fullPage: true });
    copyFileSync(join(SHOTS, 'studio-run.png'), join(REPO, 'docs/img/studio-run.png'));
  });

  test(`a ${LORA_STEPS}-step LoRA run on the same data reuses the frozen-model evaluation`, async () => {
    await page.getByTestId('tab-setup').click();
    assert.equal(await page.getByTestId('exp-steps').inputValue(), String(STEPS), 'the experiment settings survive the reload');
    assert.equal(await page.locator('[data-testid=dataset][data-status=ready]').count(), 3, 'the encoded datasets survive the reload');
    await page.getByTestId('exp-method').selectOption('lora');
    await page.getByTestId('exp-name').fill('e2e lora');
    await page.getByTestId('exp-steps').fill(String(LORA_STEPS));
    await page.getByTestId('start-run').click();
    await waitFor(
      page,
      'the LoRA run to start',
      async () =>
        (await page
          .getByTestId('run-view')
          .getAttribute('data-run')
          .catch(() => null)) !== blora && (await status()) !== null,
      60_000,
    );
    await waitFor(page, 'the LoRA run to finish', async () => ['done', 'error', 'stopped'].includes((await status()) ?? ''), 20 * 60_000);
    assert.equal(
      await status(),
      'done',
      (await page
        .getByTestId('run-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    lap('LoRA run done');
    assert.equal(await points('ce'), LORA_STEPS);
    assert.equal(await points('wer'), 2, 'WER before training (reused) and after');
    assert.equal(await page.getByTestId('mu-histogram').getAttribute('data-step'), String(LORA_STEPS));
  });

  test('compare view lists both runs with their final WERs and BLoRA vs LoRA; try-it shows base vs adapted', async () => {
    await page.getByTestId('tab-compare').click();
    assert.equal(await page.getByTestId('compare-row').count(), 2);
    for (const w of await page.getByTestId('compare-wer-new').allTextContents()) assert.match(w, /\d+\.\d %/);
    for (const w of await page.getByTestId('compare-wer-base').allTextContents()) assert.match(w, /\d+\.\d %/);
    assert.equal(await page.getByTestId('tradeoff').getAttribute('data-points'), '2');
    // BLoRA's row is measured against the LoRA run: a ratio, or n/a with the definition's reason.
    const bloraRow = page.locator(`[data-testid=compare-row][data-run="${blora}"]`);
    const gain = bloraRow.getByTestId('compare-backward-gain');
    const gainText = (await gain.textContent()) ?? '';
    if (gainText === 'n/a') assert.match((await gain.getAttribute('title')) ?? '', /LoRA did not forget/);
    else assert.match(gainText, /^[+-]?\d+\.\d %$/);
    assert.match((await bloraRow.getByTestId('compare-new-drop').textContent()) ?? '', /^(n\/a|[+-]?\d+\.\d %)$/);
    console.log(
      `compare: BLoRA backward gain ${gainText} ${(await gain.getAttribute('title')) ?? ''}, new-domain drop ${await bloraRow.getByTestId('compare-new-drop').textContent()}`,
    );
    await page.screenshot({ path: join(SHOTS, 'studio-compare.png'), fullPage: true });
    copyFileSync(join(SHOTS, 'studio-compare.png'), join(REPO, 'docs/img/studio-compare.png'));
    await page.getByTestId('tab-try').click();
    await page.getByTestId('try-clip').selectOption('cs-eval/cs_03');
    const evalBase = ((await page.getByTestId('try-base').textContent()) ?? '').trim();
    const evalAdapted = ((await page.getByTestId('try-adapted').textContent()) ?? '').trim();
    assert.ok(evalBase.length > 0);
    // The same clip dropped as a file: encoded and decoded again by both models; the transcripts must be
    // the run's own (frozen = its step-0 evaluation, adapted = its final one).
    const [, , lang] = row('cs_03.wav');
    await page.getByTestId('try-language').selectOption(lang);
    await page.getByTestId('try-clip-input').setInputFiles(join(DEMO_DIR, 'cs_03.wav'));
    await waitFor(
      page,
      'your clip through both models',
      async () => (await page.getByTestId('try-own-adapted').count()) > 0 || (await page.getByTestId('try-own-error').count()) > 0,
      10 * 60_000,
    );
    assert.equal(
      await page.getByTestId('try-own-error').count(),
      0,
      (await page
        .getByTestId('try-own-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    assert.equal(((await page.getByTestId('try-own-base').textContent()) ?? '').trim(), evalBase);
    assert.equal(((await page.getByTestId('try-own-adapted').textContent()) ?? '').trim(), evalAdapted);
    // …with the adapter's uncertainty on it: token entropy, and for BLoRA the disagreement of posterior samples
    assert.match(
      (await page.getByTestId('try-own-uncertainty').textContent()) ?? '',
      /mean token entropy \d+\.\d\d nats(; \d+ posterior samples disagree with its transcript by \d+ % of the words| \(LoRA has no posterior to sample\))/,
    );
    lap('try-it with a dropped clip');
    await page.screenshot({ path: join(SHOTS, 'studio-try.png'), fullPage: true });
  });

  test('export: the downloaded adapter_model.safetensors has the PEFT keys and shapes', async () => {
    await page.getByTestId('tab-export').click();
    await page.getByTestId('export-run').selectOption(blora);
    await page.getByTestId('export-snr').fill('0.5');
    await page.getByTestId('export-button').click();
    await page.getByTestId('download-adapter_model.safetensors').waitFor({ timeout: 10 * 60_000 }); // export + the pruned adapter's evaluation
    const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-adapter_model.safetensors').click()]);
    const bytes = readFileSync((await dl.path())!);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
    const keys = Object.keys(header)
      .filter((k) => k !== '__metadata__')
      .sort();
    // the default targets (the authors'): q, v of self- and cross-attention
    assert.equal(keys.length, 6 * 4 * 2, '6 layers × (self, cross) × q,v × A,B');
    for (const k of keys) {
      assert.match(k, /^base_model\.model\.model\.decoder\.layers\.[0-5]\.(self_attn|encoder_attn)\.(q|v)_proj\.lora_(A|B)\.weight$/);
      assert.deepEqual(header[k].shape, k.includes('lora_A') ? [R, 512] : [512, R], k);
      assert.equal(header[k].dtype, 'F32');
    }
    assert.match((await page.getByTestId('export-pruning').textContent()) ?? '', /% of [\d,]+ μ elements set to 0/);
    // …and the WER that pruning costs: the eval sets decoded again with the pruned means.
    for (const role of ['new', 'base'])
      assert.match((await page.getByTestId(`export-cost-${role}`).textContent()) ?? '', /\d+\.\d %.*\d+\.\d %/);
    const cfgDl = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-adapter_config.json').click()]);
    const cfg = JSON.parse(readFileSync((await cfgDl[0].path())!, 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, R);
    assert.equal(await page.getByTestId('download-blora_posterior.safetensors').count(), 1);
    assert.equal(await page.getByTestId('download-experiment.json').count(), 1);
    await page.screenshot({ path: join(SHOTS, 'studio-export.png'), fullPage: true });
    lap('exported');
  });

  test('a LoRA run that mixes a second training set in at 50 % and keeps the adapter of the lowest dev CE', async () => {
    await page.getByTestId('tab-setup').click();
    for (const d of ['replay', 'cs-dev']) await page.getByTestId('data-folder-input').setInputFiles(join(data, d));
    await waitFor(
      page,
      'five datasets encoded',
      async () => (await page.locator('[data-testid=dataset][data-status=ready]').count()) === 5,
      5 * 60_000,
    );
    const replay = page.locator('[data-testid=dataset][data-name=replay]');
    await replay.getByTestId('dataset-role').selectOption('train');
    await page.locator('[data-testid=dataset][data-name=cs-dev]').getByTestId('dataset-role').selectOption('dev');
    assert.equal(
      await page.locator('[data-testid=dataset][data-name=cs-train]').getByTestId('dataset-mix').count(),
      0,
      'the first training set takes the rest: no share to set',
    );
    await replay.getByTestId('dataset-mix').fill('50');
    await page.getByTestId('exp-method').selectOption('lora');
    await page.getByTestId('exp-name').fill('e2e mix');
    await page.getByTestId('exp-steps').fill('2');
    await page.getByTestId('exp-dev-interval').fill('1');
    await page.getByTestId('exp-select').selectOption('dev-ce');
    await page.getByTestId('start-run').click();
    await waitFor(page, 'the mixing run to start', async () => !['done', null].includes(await status()), 60_000);
    const run = (await page.getByTestId('run-view').getAttribute('data-run')) ?? '';
    await waitFor(page, 'the mixing run to finish', async () => ['done', 'error', 'stopped'].includes((await status()) ?? ''), 20 * 60_000);
    assert.equal(
      await status(),
      'done',
      (await page
        .getByTestId('run-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    lap('mixing run done');
    // dev CE at steps 0, 1, 2 (the worker's Trainer got the two sets: it refuses sizes that do not cover data.train)
    const dev = (await page.getByTestId('run-dev').textContent()) ?? '';
    assert.match(dev, /step 0: \d+\.\d{4} step 1: \d+\.\d{4} step 2: \d+\.\d{4}/);
    assert.match(dev, /the run's adapter is the one of step [012] \(lowest dev CE\)/);
    await page.getByTestId('tab-export').click();
    await page.getByTestId('export-run').selectOption(run);
    await page.getByTestId('export-button').click(); // a LoRA run: no pruning, the files only
    await page.getByTestId('download-experiment.json').waitFor({ timeout: 5 * 60_000 });
    const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-experiment.json').click()]);
    const cfg = JSON.parse(readFileSync((await dl.path())!, 'utf8'));
    assert.equal(cfg.data.train, 'cs-train');
    assert.deepEqual(cfg.data.trainMix, [{ path: 'replay', p: 0.5 }]);
    assert.deepEqual(cfg.data.dev, [{ path: 'cs-dev', name: 'cs-dev' }]);
    assert.equal(cfg.eval.select, 'dev-ce');
  });
});

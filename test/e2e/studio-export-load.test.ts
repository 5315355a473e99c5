// A merged export loaded back into the studio (issue 15 item 4), in headless Chromium: a transformers.js
// export of a random LoRA on the real Whisper base (src/export/merged.ts, as the Export view writes it) is
// dropped onto the Model panel's folder input; the panel names its base (blora-export.json); Try it loads
// that base in a second model worker and transcribes one clip with both. Each side is checked against an
// independent reference: the base against Python transformers (the oracle), the export against the same
// export transcribed in Node (src/pipeline/transcriber.ts on onnxruntime-web wasm). The adapter is strong
// enough that the two references differ, so a swapped or unchanged side fails.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { loadAudio16k } from '../../src/audio';
import { EXPORT_NOTE, exportTransformersJs, layoutOnnxFiles } from '../../src/export/merged';
import type { AdapterExport } from '../../src/export/peft';
import { FsModelSource } from '../../src/model/source';
import { Transcriber } from '../../src/pipeline/transcriber';
import { DEMO_DIR, requireModel } from '../support/env';
import { forwardPageErrors, launchChromium, type LaunchedChromium } from '../support/chromium';
import { waitFor } from '../support/e2e';
import { baselineOracle } from '../support/oracle';
import { randomF32 } from '../support/random';
import { startStudioServer } from '../support/studio-server';

const CLIP = 'en_02';
const R = 8;

/** q,v of every decoder layer; A ~ U(±1/√512), B ~ U(±0.25), α = 2r: a change the greedy transcript shows. */
function randomAdapter(layers: number, C: number): AdapterExport {
  const modules = [];
  for (let l = 0; l < layers; l++) {
    for (const [k, p] of ['q_proj', 'v_proj'].entries()) {
      const seed = 1000 + 10 * l + k;
      modules.push({
        name: `model.decoder.layers.${l}.self_attn.${p}`,
        inFeatures: C,
        outFeatures: C,
        A: randomF32(R * C, seed, -1 / Math.sqrt(C), 1 / Math.sqrt(C)),
        B: randomF32(C * R, seed + 5, -0.25, 0.25),
      });
    }
  }
  return { method: 'lora', r: R, alpha: 2 * R, dropout: 0, baseModel: 'openai/whisper-base', modules };
}

describe('studio E2E: a merged transformers.js export loaded back, compared with its base in Try it', { timeout: 20 * 60_000 }, () => {
  let server: Awaited<ReturnType<typeof startStudioServer>>;
  let chrome: LaunchedChromium;
  let page: Page;
  let tmp: string;
  let exportDir: string;
  let nodeExport: string;
  const base = baselineOracle(join(DEMO_DIR, 'manifest.jsonl')).clips.find((c) => c.id === CLIP)!;
  const t0 = Date.now();
  const lap = (what: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${what}`);

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'blora-e2e-export-'));
    exportDir = join(tmp, 'whisper-base-lora-merged');
    const src = new FsModelSource(requireModel());
    const { files, report } = await exportTransformersJs(src, randomAdapter(6, 512), await layoutOnnxFiles(src));
    assert.equal(report.skipped.length, 0, JSON.stringify(report.skipped));
    for (const [f, bytes] of Object.entries(files)) {
      mkdirSync(dirname(join(exportDir, f)), { recursive: true });
      writeFileSync(join(exportDir, f), bytes);
    }
    lap(`export written: ${Object.keys(files).length} files`);
    const tr = await Transcriber.load(new FsModelSource(exportDir), { backend: 'wasm' });
    try {
      nodeExport = (await tr.transcribe(await loadAudio16k(readFileSync(base.audio), base.audio), { language: 'en' })).text;
    } finally {
      await tr.encoder.release();
    }
    lap(`the export in Node: ${JSON.stringify(nodeExport)}; the base (Python): ${JSON.stringify(base.text)}`);
    assert.notEqual(nodeExport.trim(), base.text.trim(), 'the random adapter must change the transcript, or the comparison proves nothing');
    server = await startStudioServer();
    chrome = await launchChromium({ webgpu: 'gl-compat', contextOptions: { viewport: { width: 1200, height: 900 } } });
    page = await chrome.context.newPage();
    forwardPageErrors(page);
  });
  after(async () => {
    await chrome?.close();
    await server?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the export folder dropped on the Model panel loads, and the panel names its base', async () => {
    await page.goto(`${server.url}/?encoder=wasm`);
    await page.locator('[data-testid=model-status]', { hasText: /ready|error/ }).waitFor({ timeout: 5 * 60_000 });
    assert.equal(
      await page.getByTestId('model-status').textContent(),
      'ready',
      (await page
        .getByTestId('model-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    assert.equal(await page.getByTestId('model-export-of').count(), 0, 'the prepared base is not an export');
    await page.getByTestId('model-folder-input').setInputFiles(exportDir);
    await waitFor(
      page,
      'the export to load',
      async () => (await page.getByTestId('model-export-of').count()) === 1 || (await page.getByTestId('model-error').count()) === 1,
      5 * 60_000,
    );
    assert.equal(
      await page.getByTestId('model-status').textContent(),
      'ready',
      (await page
        .getByTestId('model-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    const note = (await page.getByTestId('model-export-of').textContent()) ?? '';
    assert.match(note, /merged export of openai\/whisper-base/);
    assert.match(note, /LoRA, r 8, 12 modules/);
    assert.ok(JSON.parse(readFileSync(join(exportDir, EXPORT_NOTE), 'utf8')).merge.includes('float64'));
    lap('export loaded in the studio');
  });

  test('Try it loads the base in a second worker and shows both transcripts of a clip', async () => {
    await page.getByTestId('tab-try').click();
    const sec = page.getByTestId('try-export');
    assert.match((await sec.textContent()) ?? '', /Its base: default model \(Whisper base, prepared locally\)/);
    await page.getByTestId('try-export-load-base').click();
    await waitFor(
      page,
      'the base to load',
      async () => ['ready', 'error'].includes((await page.getByTestId('try-export-base-status').getAttribute('data-status')) ?? ''),
      5 * 60_000,
    );
    assert.equal(
      await page.getByTestId('try-export-base-status').getAttribute('data-status'),
      'ready',
      (await page
        .getByTestId('try-export-base-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    lap('base loaded');
    await page.getByTestId('try-export-clip-input').setInputFiles(join(DEMO_DIR, `${CLIP}.wav`));
    await waitFor(
      page,
      'both transcripts',
      async () =>
        (await page.getByTestId('try-export-adapted').count()) === 1 || (await page.getByTestId('try-export-error').count()) === 1,
      5 * 60_000,
    );
    assert.equal(
      await page.getByTestId('try-export-error').count(),
      0,
      (await page
        .getByTestId('try-export-error')
        .textContent()
        .catch(() => null)) ?? '',
    );
    const words = async (id: string) => ((await page.getByTestId(id).textContent()) ?? '').replace(/\s+/g, ' ').trim();
    const [b, e] = [await words('try-export-base'), await words('try-export-adapted')];
    lap(`Try it: base ${JSON.stringify(b)}, export ${JSON.stringify(e)}`);
    assert.equal(b, base.text.replace(/\s+/g, ' ').trim(), 'the base side = Python transformers on the base');
    assert.equal(e, nodeExport.replace(/\s+/g, ' ').trim(), 'the export side = the export transcribed in Node');
    assert.ok((await page.locator('[data-testid=try-export-adapted] .diff-ins').count()) > 0, 'the words the export changed are marked');
  });
});

/**
 * decodeAudio / loadAudio16k in a real headless Chromium (WebAudio decodeAudioData), compared with
 * the Node path on the same sox-made files. Fails when Chromium or sox is missing (npm run setup
 * installs both; CHROMIUM_PATH may point at another Chromium).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import type { Browser, Page } from 'playwright-core';

import { decodeAudio, loadAudio16k } from '../../src/audio/index';
import { bestLag, makeTempDir, maxAbsDiff, sine, snrDb, sox, requireSox, writeWavF32 } from './helpers';

const chromium = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']
  .filter((p): p is string => !!p)
  .find((p) => existsSync(p));
if (!chromium) throw new Error('no Chromium found: run "npm run setup" (apt-get install chromium) or set CHROMIUM_PATH');
const skip = requireSox(['wav', 'flac', 'mp3', 'vorbis']);

interface BrowserResult {
  ok: boolean;
  sampleRate?: number;
  channels?: number[][];
  lengths?: number[];
  mono16k?: number[];
  mono16kLength?: number;
  error?: { name: string; message: string; reason: string; file: string };
}

describe('decodeAudio in headless Chromium (WebAudio)', { skip, timeout: 120_000 }, () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let browser: Browser | undefined;
  let page: Page;

  const inBrowser = async (bytes: Uint8Array, name: string, keep = 20000, backend = 'auto'): Promise<BrowserResult> =>
    page.evaluate(
      async ({ b64, name, keep, backend }: { b64: string; name: string; keep: number; backend: string }) => {
        const bin = atob(b64);
        const u8 = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
        const A = (globalThis as unknown as { BloraAudio: typeof import('../../src/audio/index') }).BloraAudio;
        try {
          const d = await A.decodeAudio(u8, name, { backend: backend as 'auto' | 'webaudio' });
          const m = await A.loadAudio16k(u8, name);
          return {
            ok: true,
            sampleRate: d.sampleRate,
            lengths: d.channels.map((c: Float32Array) => c.length),
            channels: d.channels.map((c: Float32Array) => Array.from(c.subarray(0, keep))),
            mono16k: Array.from(m.subarray(0, keep)),
            mono16kLength: m.length,
          };
        } catch (e) {
          const err = e as { name: string; message: string; reason: string; file: string };
          return { ok: false, error: { name: err.name, message: err.message, reason: err.reason, file: err.file } };
        }
      },
      { b64: Buffer.from(bytes).toString('base64'), name, keep, backend },
    );

  before(async () => {
    tmp = makeTempDir();
    const src = join(tmp.dir, 'src.wav');
    writeWavF32(src, [sine(440, 44100, 44100, 0.5), sine(660, 44100, 44100, 0.3, 1)], 44100);
    sox([src, '-D', '-b', '16', join(tmp.dir, 'a16.wav')]);
    sox([src, '-D', '-b', '16', join(tmp.dir, 'a.flac')]);
    sox([src, '-C', '128', join(tmp.dir, 'a.mp3')]);
    sox([src, '-C', '5', join(tmp.dir, 'a.ogg')]);
    sox([src, '-r', '16000', '-c', '1', '-D', '-b', '16', join(tmp.dir, 'm16.flac')]);

    const esbuild = await import('esbuild');
    const entry = fileURLToPath(new URL('../../src/audio/index.ts', import.meta.url));
    const built = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      format: 'iife',
      globalName: 'BloraAudio',
      platform: 'browser',
      target: 'es2022',
      write: false,
      external: ['audio-decode'], // only needed when WebAudio fails
    });
    const { chromium: pw } = await import('playwright-core');
    browser = await pw.launch({ executablePath: chromium, args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'] });
    page = await browser.newPage();
    await page.setContent('<!doctype html><title>audio test</title>');
    await page.addScriptTag({ content: built.outputFiles[0].text });
  });
  after(async () => {
    await browser?.close();
    tmp?.cleanup();
  });

  for (const f of ['a16.wav', 'a.flac', 'a.ogg', 'm16.flac']) {
    it(`${f}: same rate, channels, length and samples as in Node`, async () => {
      const bytes = new Uint8Array(readFileSync(join(tmp.dir, f)));
      const node = await decodeAudio(bytes, f);
      const r = await inBrowser(bytes, f);
      assert.ok(r.ok, JSON.stringify(r.error));
      assert.equal(r.sampleRate, node.sampleRate, 'native rate kept (context made at the file rate)');
      const ogg = f.endsWith('.ogg');
      if (ogg) {
        // Chromium drops the last 128 samples of this Vorbis stream; the rest is identical.
        r.lengths!.forEach((len, c) => assert.ok(len <= node.channels[c].length && len >= node.channels[c].length - 1024, `length ${len}`));
      } else {
        assert.deepEqual(
          r.lengths,
          node.channels.map((c) => c.length),
        );
      }
      r.channels!.forEach((ch, c) => {
        const d = maxAbsDiff(ch, node.channels[c]);
        // lossless: the same int16 scaling (1/32768) after normalisation; Vorbis: two decoder builds
        assert.ok(d <= (ogg ? 1e-5 : 0), `channel ${c}: max |diff| ${d}`);
      });
      const m = await loadAudio16k(bytes, f);
      if (!ogg) assert.equal(r.mono16kLength, m.length);
      // (for Ogg, leave out the last 200 outputs, which the 128 missing input samples reach)
      const d16 = maxAbsDiff(r.mono16k!, m, 0, ogg ? r.mono16kLength! - 200 : m.length);
      assert.ok(d16 <= 1e-5, `16 kHz mono: max |diff| ${d16}`);
    });
  }

  it("WAV forced through Chromium's decodeAudioData gives exactly the built-in reader's samples", async () => {
    const bytes = new Uint8Array(readFileSync(join(tmp.dir, 'a16.wav')));
    const node = await decodeAudio(bytes, 'a16.wav');
    const r = await inBrowser(bytes, 'a16.wav', 44100, 'webaudio');
    assert.ok(r.ok, JSON.stringify(r.error));
    assert.equal(r.sampleRate, 44100);
    r.channels!.forEach((ch, c) => assert.equal(maxAbsDiff(ch, node.channels[c]), 0));
  });

  it('a.mp3: Chromium and Node agree after alignment (decoders differ in encoder-delay handling)', async () => {
    const bytes = new Uint8Array(readFileSync(join(tmp.dir, 'a.mp3')));
    const node = await decodeAudio(bytes, 'a.mp3');
    const r = await inBrowser(bytes, 'a.mp3', 40000);
    assert.ok(r.ok, JSON.stringify(r.error));
    assert.equal(r.sampleRate, 44100);
    assert.equal(r.lengths!.length, 2);
    const br = Float32Array.from(r.channels![0]);
    const nd = node.channels[0];
    // align either way round
    const a = bestLag(br.subarray(4000, 12000), nd.subarray(4000), 3000);
    const b = bestLag(nd.subarray(4000, 12000), br.subarray(4000), 3000);
    const snr = a.corr >= b.corr ? snrDb(br, nd, a.lag, 2000, 30000) : snrDb(nd, br, b.lag, 2000, 30000);
    assert.ok(Math.max(a.corr, b.corr) > 0.999 && snr > 40, `corr ${a.corr}/${b.corr}, SNR ${snr}`);
  });

  it('errors in the browser name the file and the cause', async () => {
    const html = new TextEncoder().encode('<!doctype html><html><body>Not found</body></html>');
    let r = await inBrowser(html, 'clip7.mp3');
    assert.equal(r.ok, false);
    assert.equal(r.error!.name, 'AudioDecodeError');
    assert.equal(r.error!.file, 'clip7.mp3');
    assert.equal(r.error!.message, 'Cannot decode "clip7.mp3": not a supported audio format (first bytes: 3c 21 64 6f = HTML?)');
    const ogg = new Uint8Array(readFileSync(join(tmp.dir, 'a.ogg')));
    r = await inBrowser(ogg.subarray(0, Math.floor(ogg.length / 2)), 'half.ogg');
    assert.equal(r.error!.reason, 'truncated');
    r = await inBrowser(new Uint8Array(0), 'empty.wav');
    assert.equal(r.error!.message, 'Cannot decode "empty.wav": empty file (0 bytes)');
  });
});

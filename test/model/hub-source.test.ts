// The Hub loading path without the Hub: the local Hub (test/support/local-hub.ts) lays the prepared model
// out as the Hub does (/<owner>/<name>/resolve/<revision>/<path>, ONNX files behind a 302 to its "CDN"),
// and the studio loads and transcribes from it by repo id. A missing file answers 404, which must surface
// as an error naming that file.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAudio16k } from '../../src/audio';
import { hubModelSource, ModelFileError } from '../../src/model/source';
import { loadWhisperAssets } from '../../src/model/whisperModel';
import { Transcriber } from '../../src/pipeline/transcriber';
import { DEMO_DIR } from '../support/env';
import { HUB_REPOS, type LocalHub, startLocalHub } from '../support/local-hub';
import { baselineOracle } from '../support/oracle';

const REPO_ID = HUB_REPOS.onnx;
let hub: LocalHub;

before(async () => {
  hub = await startLocalHub();
});
after(() => hub?.close());

describe('model from a Hub-style URL layout', () => {
  test('loads by repo id and transcribes a demo clip as the frozen model does', async () => {
    const tr = await Transcriber.load(hubModelSource(REPO_ID, 'main', hub.url), { backend: 'wasm' });
    assert.equal(tr.assets.hasSafetensors, false, 'this "repo" has no model.safetensors (like onnx-community repos)');
    const clip = baselineOracle(join(DEMO_DIR, 'manifest.jsonl')).clips.find((c) => c.id === 'en_02')!;
    const r = await tr.transcribe(await loadAudio16k(readFileSync(clip.audio), clip.audio), { language: 'en' });
    assert.equal(r.text, clip.text);
    const requests = hub.log.map((q) => `${q.method} ${q.url}`);
    assert.ok(requests.some((q) => q.startsWith('GET /onnx-community/whisper-base/resolve/main/onnx/encoder_model.onnx')));
    // the ONNX graph came through the Hub's redirect to its CDN, as on huggingface.co
    assert.ok(hub.requests({ repo: REPO_ID, file: 'onnx/encoder_model.onnx', method: 'GET' }).some((q) => q.status === 302));
    assert.ok(hub.bytesServed({ repo: REPO_ID, file: 'onnx/encoder_model.onnx' }) > 0);
    await tr.encoder.release();
  });

  test('a repo without the files gives an error naming the file and the HTTP status', async () => {
    await assert.rejects(loadWhisperAssets(hubModelSource('someone/not-whisper', 'main', hub.url)), (e: Error) => {
      assert.ok(e instanceof ModelFileError);
      assert.match(e.message, /"config\.json" in Hub repo someone\/not-whisper@main: HTTP 404/);
      return true;
    });
  });

  test('a malformed repo id is refused before any request', () => {
    assert.throws(() => hubModelSource('not a repo id'), /not a Hub repo id of the form "owner\/name"/);
  });
});

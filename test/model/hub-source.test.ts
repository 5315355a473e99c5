// The Hub loading path without the Hub: a local HTTP server lays the prepared model out as the Hub
// does (/<owner>/<name>/resolve/<revision>/<path>), and the studio loads and transcribes from it by repo
// id. A missing file answers 404, which must surface as an error naming that file.
import assert from 'node:assert/strict';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAudio16k } from '../../src/audio';
import { hubModelSource, ModelFileError } from '../../src/model/source';
import { loadWhisperAssets } from '../../src/model/whisperModel';
import { Transcriber } from '../../src/pipeline/transcriber';
import { DEMO_DIR, requireModel } from '../support/env';
import { baselineOracle } from '../support/oracle';

const MODEL = requireModel();
const REPO_ID = 'onnx-community/whisper-base';
let server: Server;
let host = '';
const requests: string[] = [];

before(async () => {
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const m = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? '');
    const file = m && m[1] === REPO_ID && m[2] === 'main' ? join(MODEL, decodeURIComponent(m[3])) : null;
    let size = -1;
    try {
      size = file ? statSync(file).size : -1;
    } catch {}
    if (!file || size < 0 || m![3].includes('..') || m![3] === 'model.safetensors') {
      res.writeHead(404).end('Entry not found');
      return;
    }
    res.writeHead(200, { 'content-length': String(size) });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  server.keepAliveTimeout = 60_000; // as real CDNs: idle sockets stay open while the model loads
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server?.close());

describe('model from a Hub-style URL layout', () => {
  test('loads by repo id and transcribes a demo clip as the frozen model does', async () => {
    const tr = await Transcriber.load(hubModelSource(REPO_ID, 'main', host), { backend: 'wasm' });
    assert.equal(tr.assets.hasSafetensors, false, 'this "repo" has no model.safetensors (like onnx-community repos)');
    const clip = baselineOracle(join(DEMO_DIR, 'manifest.jsonl')).clips.find((c) => c.id === 'en_02')!;
    const r = await tr.transcribe(await loadAudio16k(readFileSync(clip.audio), clip.audio), { language: 'en' });
    assert.equal(r.text, clip.text);
    assert.ok(requests.some((q) => q.startsWith('GET /onnx-community/whisper-base/resolve/main/onnx/encoder_model.onnx')));
    await tr.encoder.release();
  });

  test('a repo without the files gives an error naming the file and the HTTP status', async () => {
    await assert.rejects(loadWhisperAssets(hubModelSource('someone/not-whisper', 'main', host)), (e: Error) => {
      assert.ok(e instanceof ModelFileError);
      assert.match(e.message, /"config\.json" in Hub repo someone\/not-whisper@main: HTTP 404/);
      return true;
    });
  });

  test('a malformed repo id is refused before any request', () => {
    assert.throws(() => hubModelSource('not a repo id'), /not a Hub repo id of the form "owner\/name"/);
  });
});

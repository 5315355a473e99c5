// The engine's decoder weights fetched from a Hub (the local one, test/support/local-hub.ts, serving the
// prepared Whisper base): only the safetensors header and the decoder tensors move, one Range request per
// tensor behind the Hub's 302 to its CDN; the values equal the local model.safetensors bit for bit; a cut
// connection resumes mid-tensor; a second load comes from the cache; shards, F32 / F16 / BF16, dropped
// files; and errors that name the file, the repo, the tensor and the fix. No GPU.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decoderDims } from '../../src/engine/weights';
import {
  DecoderWeightsError,
  HubFileError,
  loadDecoderWeights,
  neededDecoderTensors,
  NodeFsByteCache,
  planDecoderFetch,
  type DecoderFetchProgress,
  type DecoderTensors,
} from '../../src/model/decoder-weights';
import { weightsRepoFor, whisperModelFor } from '../../src/model/hub';
import { bf16ToFloat, SafetensorsFile } from '../../src/model/safetensors';
import { hubModelSource } from '../../src/model/source';
import type { WhisperConfig } from '../../src/model/whisperModel';
import { writeTinyWhisper } from '../engine/decoder-parity-support';
import { requireModel } from '../support/env';
import {
  GATED_TOKEN,
  HUB_REPOS,
  type LocalHub,
  readSafetensorsHeader,
  type RawTensor,
  startLocalHub,
  writeSafetensorsRaw,
} from '../support/local-hub';

const MODEL = requireModel();
const ST_PATH = join(MODEL, 'model.safetensors');
const config = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')) as WhisperConfig;
const tmp = mkdtempSync(join(tmpdir(), 'blora-decoder-weights-'));
let hub: LocalHub;
let local: SafetensorsFile;
const header = readSafetensorsHeader(ST_PATH);
const decoderNames = neededDecoderTensors(config)
  .filter((t) => header.tensors.has(t.name))
  .map((t) => t.name);
const decoderBytes = decoderNames.reduce((s, n) => s + header.tensors.get(n)!.end - header.tensors.get(n)!.begin, 0);
const encoderRanges = [...header.tensors.entries()].filter(([n]) => !n.startsWith('model.decoder.')).map(([, t]) => t);
let n = 0;
const freshCache = () => new NodeFsByteCache(join(tmp, `cache-${n++}`));

before(async () => {
  hub = await startLocalHub({ sharded: true });
  local = new SafetensorsFile(new Uint8Array(readFileSync(ST_PATH)), ST_PATH);
});
after(async () => {
  await hub?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** bit-for-bit: same source bytes and the same f32 values (compared as bit patterns) */
function assertSameAsLocal(w: DecoderTensors) {
  assert.deepEqual([...w.tensors.keys()].sort(), [...decoderNames].sort());
  for (const name of decoderNames) {
    const t = header.tensors.get(name)!;
    assert.equal(w.info(name).dtype, t.dtype, name);
    assert.deepEqual(w.info(name).shape, t.shape, name);
    assert.ok(Buffer.from(w.bytes(name)).equals(readRaw(t.begin, t.end)), `${name}: bytes differ`);
    const a = w.float32(name);
    const b = local.float32(name);
    assert.ok(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
      `${name}: f32 values differ`,
    );
  }
}
const readRaw = (a: number, b: number) => Buffer.from(local.bytes.buffer, local.bytes.byteOffset + a, b - a);

/** the served ranges of the weights file, as [begin, end) */
const servedRanges = (repo: string, file = 'model.safetensors') =>
  hub
    .requests({ repo, file, method: 'GET' })
    .filter((q) => q.range)
    .map((q) => ({ begin: q.range![0], end: q.range![0] + q.bytes, q }));

function assertNoEncoderBytes(repo: string) {
  for (const r of servedRanges(repo)) {
    for (const e of encoderRanges)
      assert.ok(r.end <= e.begin || r.begin >= e.end, `range ${r.begin}-${r.end} reads encoder bytes ${e.begin}-${e.end}`);
  }
}

describe('decoder weights from a Hub', () => {
  const cache = freshCache();

  test('ONNX-only repo + its weights repo: only the header and the decoder tensors, through the 302, equal to the local file', async () => {
    assert.equal(weightsRepoFor(HUB_REPOS.onnx), HUB_REPOS.weights);
    hub.resetLog();
    const progress: DecoderFetchProgress[] = [];
    const t0 = performance.now();
    const w = await loadDecoderWeights({
      config,
      model: hubModelSource(HUB_REPOS.onnx, 'main', hub.url),
      endpoint: hub.url,
      cache,
      onProgress: (p) => progress.push(p),
    });
    console.log(`# ${(decoderBytes / 2 ** 20).toFixed(1)} MiB of decoder tensors in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(w.from, `Hub repo ${HUB_REPOS.weights}@main`);
    assertSameAsLocal(w);
    assert.deepEqual(w.dtypes, ['F16']); // the prepared base is float16: widened exactly
    decoderDims(w, config.decoder_attention_heads); // usable where a SafetensorsFile was

    const served = hub.bytesServed({ repo: HUB_REPOS.weights });
    assert.equal(hub.bytesServed({ repo: HUB_REPOS.onnx }), 0, 'nothing but a HEAD from the ONNX repo');
    assert.ok(
      served >= decoderBytes && served <= decoderBytes + header.headerBytes + 4096,
      `served ${served}, decoder ${decoderBytes} + header ${header.headerBytes}`,
    );
    assert.ok(served < local.bytes.byteLength * 0.8, 'the encoder half of the file was not downloaded');
    assertNoEncoderBytes(HUB_REPOS.weights);
    const gets = hub.requests({ repo: HUB_REPOS.weights, file: 'model.safetensors', method: 'GET' });
    assert.ok(
      gets.some((q) => q.status === 302 && q.url.includes('/resolve/main/')),
      'the Hub redirected to its CDN',
    );
    assert.equal(gets.filter((q) => q.status === 206).length, decoderNames.length + 2, 'one request per tensor + 2 for the header');
    assert.equal(w.bytesFetched, decoderBytes);

    const last = progress.at(-1)!;
    assert.equal(last.loaded, decoderBytes);
    assert.equal(last.total, decoderBytes);
    assert.equal(last.etaS, 0);
    assert.ok(progress.some((p) => p.loaded < p.total && p.etaS !== null && p.rate > 0 && p.tensor?.startsWith('model.decoder.')));
    // cache layout: $BLORA_CACHE/hub/<repo>/<rev>/<etag>/<file>.ranges/<begin>-<end>
    const emb = header.tensors.get('model.decoder.embed_tokens.weight')!;
    const etag = hub
      .requests({ repo: HUB_REPOS.weights })
      .find((q) => q.url.startsWith('/cdn/'))!
      .url.split('/')[2];
    assert.ok(existsSync(join(cache.root, 'openai/whisper-base/main', etag, `model.safetensors.ranges/${emb.begin}-${emb.end}`)));
  });

  test('a second load comes from the cache: no tensor byte served; the plan says nothing is left to fetch', async () => {
    hub.resetLog();
    const w = await loadDecoderWeights({ config, modelId: HUB_REPOS.onnx, endpoint: hub.url, cache });
    assertSameAsLocal(w);
    assert.equal(hub.bytesServed({ repo: HUB_REPOS.weights }), header.headerBytes, 'only the header (the version check)');
    assert.equal(w.bytesFetched, 0);
    const plan = await planDecoderFetch({ config, modelId: HUB_REPOS.onnx, endpoint: hub.url, cache });
    assert.equal(plan.tensorBytes, decoderBytes);
    assert.equal(plan.cachedBytes, decoderBytes);
    assert.equal(plan.fetchBytes, 0);
    const fresh = await planDecoderFetch({ config, modelId: HUB_REPOS.onnx, endpoint: hub.url, cache: freshCache() });
    assert.equal(fresh.fetchBytes, decoderBytes);
    assert.deepEqual(fresh.dtypes, ['F16']);
    // the table's size (f32, as openai/whisper-base publishes it) is this file's decoder tensors at 4 bytes
    assert.equal(whisperModelFor(HUB_REPOS.onnx)!.decoderBytes, 2 * fresh.tensorBytes);
  });

  test('a connection cut mid-tensor resumes from the bytes received; no tensor is downloaded twice', async () => {
    hub.resetLog();
    const CUT = 3_000_000;
    hub.cutNext('model.safetensors', CUT, HUB_REPOS.weights);
    const w = await loadDecoderWeights({ config, weights: HUB_REPOS.weights, endpoint: hub.url, cache: freshCache(), retryDelayMs: 10 });
    assertSameAsLocal(w);
    const ranges = servedRanges(HUB_REPOS.weights);
    const cut = ranges.find((r) => r.q.cut)!;
    assert.ok(cut, 'the connection was cut');
    const resumed = ranges.find((r) => r.q !== cut.q && r.q.range![1] === cut.q.range![1]);
    assert.ok(resumed, 'the cut tensor was asked for again');
    assert.ok(resumed.begin > cut.begin && resumed.begin <= cut.end, `resumed at ${resumed.begin}, cut at ${cut.end}`);
    const served = hub.bytesServed({ repo: HUB_REPOS.weights });
    assert.ok(served <= decoderBytes + header.headerBytes + 65536, `served ${served}: a tensor was downloaded twice`);
    for (const name of decoderNames) {
      const t = header.tensors.get(name)!;
      assert.equal(ranges.filter((r) => r.begin === t.begin).length, 1, `${name} started twice`);
    }
    assertNoEncoderBytes(HUB_REPOS.weights);
  });

  test('out of retries: an error naming the file and the bytes done; the next load resumes from the kept bytes', async () => {
    const c = freshCache();
    hub.resetLog();
    hub.cutNext('model.safetensors', 2_000_000, HUB_REPOS.weights);
    await assert.rejects(
      loadDecoderWeights({ config, weights: HUB_REPOS.weights, endpoint: hub.url, cache: c, retries: 0 }),
      (e: Error) => {
        assert.ok(e instanceof DecoderWeightsError, String(e));
        assert.match(
          e.message,
          /\/openai\/whisper-base\/resolve\/main\/model\.safetensors: connection lost 1 time reading tensor model\.decoder\.\S+; 2000000 of \d+ bytes of it received \(kept in the cache: run again to resume\)/,
        );
        return true;
      },
    );
    const cut = servedRanges(HUB_REPOS.weights).find((r) => r.q.cut)!;
    hub.resetLog();
    const w = await loadDecoderWeights({ config, weights: HUB_REPOS.weights, endpoint: hub.url, cache: c });
    assertSameAsLocal(w);
    const again = servedRanges(HUB_REPOS.weights).find((r) => r.q.range![1] === cut.q.range![1])!;
    assert.equal(again.begin, cut.begin + 2_000_000, 'resumed where the cut left off');
    assert.ok(hub.bytesServed({ repo: HUB_REPOS.weights }) <= decoderBytes - 2_000_000 + header.headerBytes);
  });

  test("a sharded checkpoint: the index, the shards' headers and the decoder tensors only", async () => {
    hub.resetLog();
    const w = await loadDecoderWeights({ config, weights: HUB_REPOS.sharded, endpoint: hub.url, cache: freshCache() });
    assertSameAsLocal(w);
    const files = new Set(hub.requests({ repo: HUB_REPOS.sharded, method: 'GET' }).map((q) => q.file));
    assert.ok(files.has('model.safetensors.index.json') && files.has('model-00001-of-00002.safetensors'));
    const served = hub.bytesServed({ repo: HUB_REPOS.sharded });
    assert.ok(served <= decoderBytes + 2 * header.headerBytes + 65536, `served ${served}`);
    assert.ok(new Set([...w.tensors.values()].map((t) => t.file.replace(/.*\//, ''))).size === 2, 'tensors from both shards');
  });

  test('404 and 401/403: errors naming the file, the repo and what to do; a token opens the gated repo', async () => {
    await assert.rejects(loadDecoderWeights({ config, weights: 'someone/no-such-weights', endpoint: hub.url, cache: null }), (e: Error) => {
      assert.ok(e instanceof HubFileError && e.status === 404, String(e));
      assert.match(e.message, /file "model\.safetensors" not found in Hub repo someone\/no-such-weights@main/);
      assert.match(e.message, /--weights owner\/name .*or drop its model\.safetensors/);
      return true;
    });
    await assert.rejects(
      loadDecoderWeights({ config, weights: HUB_REPOS.onnx, endpoint: hub.url, cache: null }),
      /file "model\.safetensors" not found in Hub repo onnx-community\/whisper-base@main \(nor model\.safetensors\.index\.json/,
    );
    await assert.rejects(
      loadDecoderWeights({ config, weights: HUB_REPOS.gated, endpoint: hub.url, cache: null, token: null }),
      (e: Error) => {
        assert.ok(e instanceof HubFileError && e.status === 401, String(e));
        assert.match(
          e.message,
          /Hub repo test\/gated-whisper@main refused "model\.safetensors" \(HTTP 401, no token sent\): the repo is gated or private\. Accept its licence at http:\/\/127\.0\.0\.1:\d+\/test\/gated-whisper and use a token with access \(CLI: HF_TOKEN=hf_…\), or drop its model\.safetensors instead/,
        );
        return true;
      },
    );
    await assert.rejects(
      planDecoderFetch({ config, weights: HUB_REPOS.gated, endpoint: hub.url, cache: null, token: 'hf_wrong_secret' }),
      (e: Error) => {
        assert.match(e.message, /HTTP 403, the token was not accepted/);
        assert.doesNotMatch(e.message, /hf_wrong_secret/, 'the token is never in a message');
        return true;
      },
    );
    const plan = await planDecoderFetch({ config, weights: HUB_REPOS.gated, endpoint: hub.url, cache: null, token: GATED_TOKEN });
    assert.equal(plan.tensorBytes, decoderBytes);
    assert.ok(hub.requests({ repo: HUB_REPOS.gated }).some((q) => q.auth && q.status === 302));
  });

  test('weights of another model: an error naming the file and the tensor, before any tensor byte moves', async () => {
    const wrong = { ...config, d_model: 384 };
    hub.addRepo('test/whisper-base-wrong-dims', {
      'config.json': new TextEncoder().encode(JSON.stringify(wrong)),
      'model.safetensors': ST_PATH,
    });
    hub.resetLog();
    await assert.rejects(
      loadDecoderWeights({ config: wrong, model: hubModelSource('test/whisper-base-wrong-dims', 'main', hub.url), cache: null }),
      (e: Error) => {
        assert.ok(e instanceof DecoderWeightsError, String(e));
        assert.match(
          e.message,
          /^http:\/\/127\.0\.0\.1:\d+\/test\/whisper-base-wrong-dims\/resolve\/main\/model\.safetensors: tensor model\.decoder\.embed_tokens\.weight is \[51865,512\] but config\.json \(d_model 384, decoder_layers 6, .*\) needs \[51865,384\]/,
        );
        return true;
      },
    );
    assert.equal(hub.bytesServed({ repo: 'test/whisper-base-wrong-dims' }), header.headerBytes, 'only the header was read');
    const fewer = { ...config, decoder_layers: 4 };
    await assert.rejects(
      planDecoderFetch({ config: fewer, weights: HUB_REPOS.weights, endpoint: hub.url, cache: null }),
      /model\.safetensors: has tensor model\.decoder\.layers\.4\.fc1\.weight, but config\.json .* has 4 decoder layers/,
    );
  });

  test('F32 and BF16 checkpoints (a tiny random Whisper), and a dropped file', async () => {
    const dims = { d_model: 16, heads: 2, ffn: 32, layers: 2, vocab: 40, positions: 12 };
    const dir = join(tmp, 'tiny');
    writeTinyWhisper(dir, dims, 7);
    const tinyCfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as WhisperConfig;
    const f32 = new SafetensorsFile(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))));
    // BF16: round to nearest even of the f32 bits, as torch's .to(torch.bfloat16)
    const raw: Record<string, RawTensor> = {};
    for (const [name, t] of f32.tensors) {
      const v = f32.float32(name);
      const u = new Uint32Array(v.buffer);
      const h = new Uint16Array(v.length);
      for (let i = 0; i < v.length; i++) h[i] = (u[i] + 0x7fff + ((u[i] >> 16) & 1)) >>> 16;
      raw[name] = { dtype: 'BF16', shape: t.shape, data: new Uint8Array(h.buffer) };
    }
    const bf16Bytes = writeSafetensorsRaw(raw);
    hub.addRepo('test/tiny-f32', { 'config.json': join(dir, 'config.json'), 'model.safetensors': join(dir, 'model.safetensors') });
    hub.addRepo('test/tiny-bf16', { 'config.json': join(dir, 'config.json'), 'model.safetensors': bf16Bytes });

    const a = await loadDecoderWeights({ config: tinyCfg, weights: 'test/tiny-f32', endpoint: hub.url, cache: freshCache() });
    assert.deepEqual(a.dtypes, ['F32']);
    for (const name of f32.tensors.keys()) assert.deepEqual(a.float32(name), f32.float32(name), name);
    assert.deepEqual(decoderDims(a, dims.heads), { C: 16, H: 2, D: 8, F: 32, L: 2, V: 40, NP: 12 });

    const b = await loadDecoderWeights({ config: tinyCfg, weights: 'test/tiny-bf16', endpoint: hub.url, cache: freshCache() });
    assert.deepEqual(b.dtypes, ['BF16']);
    for (const name of f32.tensors.keys()) {
      const h = new Uint16Array(raw[name].data.buffer);
      const got = b.float32(name);
      const want = f32.float32(name);
      for (let i = 0; i < h.length; i++) {
        assert.equal(got[i], bf16ToFloat(h[i]), `${name}[${i}]`);
        assert.ok(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 2 ** -8, `${name}[${i}] ${got[i]} vs ${want[i]}`);
      }
    }
    // a dropped model.safetensors (Blob): no network
    const c = await loadDecoderWeights({ config: tinyCfg, weights: new Blob([bf16Bytes as BlobPart]) });
    assert.equal(c.from, 'the dropped model.safetensors');
    for (const name of f32.tensors.keys()) assert.deepEqual(c.float32(name), b.float32(name));
    // a path on disk
    const d = await loadDecoderWeights({ config: tinyCfg, weights: join(dir, 'model.safetensors') });
    for (const name of f32.tensors.keys()) assert.deepEqual(d.float32(name), f32.float32(name));
    // the shape check names the tensor of a tiny file too
    await assert.rejects(
      loadDecoderWeights({ config: { ...tinyCfg, decoder_ffn_dim: 64 }, weights: new Blob([bf16Bytes as BlobPart]) }),
      /the dropped model\.safetensors: tensor model\.decoder\.layers\.0\.fc1\.weight is \[32,16\] but config\.json .* needs \[64,16\]/,
    );
  });
});

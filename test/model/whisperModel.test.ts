// The model loader on the real prepared Whisper base, and its errors on broken copies of it:
// a missing file, a tokenizer of another model, a preprocessor that does not fit. Every error names the file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadWhisperAssets, ModelMismatchError } from '../../src/model/whisperModel';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors';
import { DroppedFilesSource, FsModelSource, ModelFileError } from '../../src/model/source';
import { requireModel, requirePython } from '../support/env';

const MODEL = requireModel();
const tmp = mkdtempSync(join(tmpdir(), 'blora-model-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the model folder made of symlinks, minus `drop`, with `replace` files written fresh. */
function brokenCopy(name: string, drop: string[] = [], replace: Record<string, string> = {}): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  for (const sub of ['', 'onnx']) {
    for (const f of readdirSync(join(MODEL, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${f.name}` : f.name;
      if (f.isDirectory() || drop.includes(rel) || rel in replace) continue;
      symlinkSync(join(MODEL, rel), join(dir, rel));
    }
  }
  for (const [rel, text] of Object.entries(replace)) writeFileSync(join(dir, rel), text);
  return dir;
}

describe('loadWhisperAssets', () => {
  test('loads the prepared Whisper base and validates it', async () => {
    const a = await loadWhisperAssets(new FsModelSource(MODEL));
    assert.deepEqual(a.summary, { layers: 6, dModel: 512, vocab: 51865, melBins: 80, multilingual: true, languages: 99 });
    assert.equal(a.decoder.kind, 'merged');
    assert.ok(a.hasSafetensors);
    const ids = a.tokenizer.encode(' Hallo Welt', { add_special_tokens: false });
    assert.equal(a.tokenizer.decode(ids), ' Hallo Welt');
  });

  test('a dropped folder (paths under its own top folder) loads the same way', async () => {
    const files: [string, Blob][] = [];
    for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      files.push([`whisper-base/${f}`, new Blob([readFileSync(join(MODEL, f))])]);
    }
    // The ONNX files are only checked for presence here (their bytes are read when the sessions load).
    files.push(['whisper-base/onnx/encoder_model.onnx', new Blob([])], ['whisper-base/onnx/decoder_model.onnx', new Blob([])]);
    await assert.rejects(
      loadWhisperAssets(new DroppedFilesSource(files)),
      /decoder_model_merged\.onnx" in the dropped folder: file not found \(nor the pair onnx\/decoder_model\.onnx \+ onnx\/decoder_with_past_model\.onnx\)/,
    );
    files.push(['whisper-base/onnx/decoder_with_past_model.onnx', new Blob([])]);
    const a = await loadWhisperAssets(new DroppedFilesSource(files));
    assert.deepEqual(a.decoder, { kind: 'split', first: 'onnx/decoder_model.onnx', withPast: 'onnx/decoder_with_past_model.onnx' });
    assert.equal(a.summary.languages, 99);
  });

  test('a missing encoder names the file', async () => {
    const dir = brokenCopy('no-encoder', ['onnx/encoder_model.onnx']);
    await assert.rejects(loadWhisperAssets(new FsModelSource(dir)), (e: Error) => {
      assert.ok(e instanceof ModelFileError);
      assert.match(e.message, /onnx\/encoder_model\.onnx/);
      assert.match(e.message, /not found/);
      return true;
    });
  });

  test('a missing decoder names the expected files', async () => {
    const dir = brokenCopy('no-decoder', ['onnx/decoder_model_merged.onnx']);
    await assert.rejects(
      loadWhisperAssets(new FsModelSource(dir)),
      /decoder_model_merged\.onnx.*decoder_model\.onnx \+ onnx\/decoder_with_past_model\.onnx/,
    );
  });

  test('a missing config.json names it', async () => {
    const dir = brokenCopy('no-config', ['config.json']);
    await assert.rejects(loadWhisperAssets(new FsModelSource(dir)), /"config\.json".*file not found/);
  });

  test('an English-only tokenizer (ids shifted by one) is rejected as not matching', async () => {
    const tok = JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8'));
    // English-only Whisper tokenizers have no language tokens and <|endoftext|> = 50256: shift added tokens down.
    for (const t of tok.added_tokens) t.id -= 1;
    const dir = brokenCopy('tok-mismatch', [], { 'tokenizer.json': JSON.stringify(tok) });
    await assert.rejects(loadWhisperAssets(new FsModelSource(dir)), (e: Error) => {
      assert.ok(e instanceof ModelMismatchError, String(e));
      assert.match(e.message, /"tokenizer\.json".*<\|endoftext\|> is id 50256 there, but generation_config\.json eos_token_id is 50257/);
      return true;
    });
  });

  test('a tokenizer larger than the model vocabulary is rejected', async () => {
    const tok = JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8'));
    tok.added_tokens.push({
      id: 52000,
      content: '<|extra|>',
      special: true,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
    });
    const dir = brokenCopy('tok-big', [], { 'tokenizer.json': JSON.stringify(tok) });
    await assert.rejects(loadWhisperAssets(new FsModelSource(dir)), /"tokenizer\.json".*52001 tokens but config\.json vocab_size is 51865/);
  });

  test('a preprocessor with the wrong number of mel bins is rejected', async () => {
    const pp = JSON.parse(readFileSync(join(MODEL, 'preprocessor_config.json'), 'utf8'));
    pp.feature_size = 128;
    const dir = brokenCopy('pp', [], { 'preprocessor_config.json': JSON.stringify(pp) });
    await assert.rejects(
      loadWhisperAssets(new FsModelSource(dir)),
      /"preprocessor_config\.json".*feature_size 128 but config\.json num_mel_bins is 80/,
    );
  });

  test('invalid JSON names the file', async () => {
    const dir = brokenCopy('badjson', [], { 'generation_config.json': '{ not json' });
    await assert.rejects(loadWhisperAssets(new FsModelSource(dir)), /"generation_config\.json".*not valid JSON/);
  });
});

describe('model.safetensors (weights for the WGSL engine)', () => {
  test('decoder tensors read from fp16 safetensors equal PyTorch state_dict values', () => {
    const st = new SafetensorsFile(readFileSync(join(MODEL, 'model.safetensors')));
    const names = [
      'model.decoder.embed_tokens.weight',
      'model.decoder.layers.3.self_attn.q_proj.weight',
      'model.decoder.layers.5.encoder_attn.v_proj.bias',
      'model.decoder.layer_norm.weight',
    ];
    const py = execFileSync(
      requirePython(),
      [
        '-c',
        `
import json, sys, torch
from transformers import WhisperForConditionalGeneration
sd = WhisperForConditionalGeneration.from_pretrained(sys.argv[1], dtype=torch.float32).state_dict()
out = {}
for n in sys.argv[2:]:
    t = sd[n].double()
    out[n] = {"shape": list(t.shape), "sum": t.sum().item(), "sumsq": (t * t).sum().item(), "first": t.flatten()[:5].tolist()}
print(json.dumps(out))
`,
        MODEL,
        ...names,
      ],
      { encoding: 'utf8', env: { ...process.env, TRANSFORMERS_VERBOSITY: 'error' } },
    );
    const ref = JSON.parse(py.trim().split('\n').pop()!);
    for (const n of names) {
      const data = st.float32(n);
      assert.deepEqual(st.info(n).shape, ref[n].shape, n);
      let sum = 0,
        sumsq = 0;
      for (const v of data) {
        sum += v;
        sumsq += v * v;
      }
      assert.ok(Math.abs(sum - ref[n].sum) <= 1e-9 * Math.max(1, Math.abs(ref[n].sumsq)), `${n}: sum ${sum} vs ${ref[n].sum}`);
      assert.ok(Math.abs(sumsq - ref[n].sumsq) <= 1e-9 * ref[n].sumsq, `${n}: sumsq ${sumsq} vs ${ref[n].sumsq}`);
      assert.deepEqual([...data.subarray(0, 5)], ref[n].first, n);
    }
  });

  test('writeSafetensors round-trips and Python safetensors reads it', () => {
    const a = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    const b = Float32Array.from([Math.PI]);
    const bytes = writeSafetensors({ 'x.lora_A.weight': { shape: [2, 3], data: a }, y: { shape: [1], data: b } }, { format: 'pt' });
    const back = new SafetensorsFile(bytes);
    assert.deepEqual([...back.float32('x.lora_A.weight')], [...a]);
    const path = join(tmp, 'rt.safetensors');
    writeFileSync(path, bytes);
    const py = execFileSync(
      requirePython(),
      [
        '-c',
        `
import json, sys
from safetensors.numpy import load_file
d = load_file(sys.argv[1])
print(json.dumps({k: [list(v.shape), v.astype(float).flatten().tolist()] for k, v in d.items()}))
`,
        path,
      ],
      { encoding: 'utf8' },
    );
    const got = JSON.parse(py);
    assert.deepEqual(got['x.lora_A.weight'], [[2, 3], [...a]]);
    assert.deepEqual(got.y, [[1], [b[0]]]);
  });
});

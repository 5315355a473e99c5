// ONNX graphs over 2 GB (the f32 encoders of large-v3 / turbo, distil-large) keep their weights in an
// external-data file beside the graph (`onnx/encoder_model.onnx_data`, protobuf's 2-GB limit). The
// prepared base's encoder is re-saved that way (Python `onnx`, the same layout the exporters write) and the
// studio's loader must find and hand the data file to onnxruntime, transcribing as before.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadAudio16k } from '../../src/audio';
import { FsModelSource } from '../../src/model/source';
import { Transcriber } from '../../src/pipeline/transcriber';
import { DEMO_DIR, requireModel, requirePython } from '../support/env';
import { baselineOracle } from '../support/oracle';

const MODEL = requireModel();
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'blora-external-data-'));
  for (const f of readdirSync(MODEL)) if (f !== 'onnx') symlinkSync(join(MODEL, f), join(dir, f));
  mkdirSync(join(dir, 'onnx'));
  symlinkSync(join(MODEL, 'onnx/decoder_model_merged.onnx'), join(dir, 'onnx/decoder_model_merged.onnx'));
  const py = [
    'import sys, onnx',
    'm = onnx.load(sys.argv[1])',
    "onnx.save_model(m, sys.argv[2], save_as_external_data=True, all_tensors_to_one_file=True, location='encoder_model.onnx_data', size_threshold=1024)",
  ].join('\n');
  execFileSync(requirePython(), ['-c', py, join(MODEL, 'onnx/encoder_model.onnx'), join(dir, 'onnx/encoder_model.onnx')], {
    stdio: 'inherit',
  });
});
after(() => dir && rmSync(dir, { recursive: true, force: true }));

test('an encoder with external data loads and transcribes as the single-file one does', async () => {
  const graph = statSync(join(dir, 'onnx/encoder_model.onnx')).size;
  const data = statSync(join(dir, 'onnx/encoder_model.onnx_data')).size;
  assert.ok(graph < 1e6 && data > 8e7, `the weights are in the data file (graph ${graph} B, data ${data} B)`);
  const tr = await Transcriber.load(new FsModelSource(dir), { backend: 'wasm' });
  try {
    const clip = baselineOracle(join(DEMO_DIR, 'manifest.jsonl')).clips.find((c) => c.id === 'en_02')!;
    const r = await tr.transcribe(await loadAudio16k(readFileSync(clip.audio), clip.audio), { language: 'en' });
    assert.equal(r.text, clip.text);
  } finally {
    await tr.encoder.release();
  }
});

// Parity of the baseline path with Python transformers on the real Whisper base and the demo clips:
//   features (transformers.js vs WhisperFeatureExtractor)  max |Δ| ≤ 1e-4
//   encoder  (onnxruntime-web wasm, fp32): within 1e-3 of the exact (float64 PyTorch) hidden states, like
//            PyTorch fp32 itself; vs PyTorch fp32 the two rounding errors add up (≤ 2e-3; the share of
//            clips within 1e-3 is reported)
//   greedy transcripts (our KV-cache loop vs generate)      identical on ≥ 95 % of clips (differences listed)
// The numbers go to test-results/parity/baseline.json; `npm run parity:docs` renders them into docs/parity.md.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAudio16k } from '../../src/audio';
import { FsModelSource } from '../../src/model/source';
import { Transcriber } from '../../src/pipeline/transcriber';
import { computeWer } from '../../src/metrics/wer';
import { DEMO_DIR, requireModel, resultsDir } from '../support/env';
import { baselineOracle, maxAbsDiff, readF32, readF64, type OracleIndex } from '../support/oracle';

const MANIFEST = join(DEMO_DIR, 'manifest.jsonl');

describe('baseline parity with Python transformers (Whisper base, demo clips)', () => {
  let oracle: OracleIndex;
  let tr: Transcriber;
  const audio = new Map<string, Float32Array>();
  const report: Record<string, unknown> = {};

  before(async () => {
    oracle = baselineOracle(MANIFEST);
    tr = await Transcriber.load(new FsModelSource(requireModel()), { backend: 'wasm' });
    for (const c of oracle.clips) audio.set(c.id, await loadAudio16k(readFileSync(c.audio), c.audio));
  });
  after(async () => {
    await tr?.encoder.release();
    report.oracle = { transformers: oracle?.transformers, torch: oracle?.torch };
    writeFileSync(join(resultsDir('parity'), 'baseline.json'), JSON.stringify(report, null, 1));
  });

  test('log-mel features match WhisperFeatureExtractor within 1e-4', async () => {
    const rows = [];
    for (const c of oracle.clips) {
      const mel = await tr.features.compute(audio.get(c.id)!);
      assert.deepEqual([mel.melBins, mel.frames], c.features.shape, `${c.id}: feature shape`);
      rows.push({ id: c.id, maxAbs: maxAbsDiff(mel.data, readF32(join(oracle.dir, c.features.file))) });
    }
    const worst = Math.max(...rows.map((r) => r.maxAbs));
    console.log(`features: ${rows.length} clips, max |Δ| = ${worst.toExponential(2)} (tolerance 1e-4)`);
    report.features = { clips: rows.length, maxAbs: worst, tolerance: 1e-4, rows };
    for (const r of rows) assert.ok(r.maxAbs <= 1e-4, `${r.id}: features differ by ${r.maxAbs}`);
  });

  test('encoder hidden states: within 1e-3 of float64 PyTorch, as PyTorch fp32 is; vs PyTorch fp32 reported', async () => {
    const rows: { id: string; vsTorchFp32: number; vsExact: number; torchFp32VsExact: number; maxRefAbs: number; ms: number }[] = [];
    for (const c of oracle.clips) {
      const t0 = performance.now();
      const enc = await tr.encode(audio.get(c.id)!);
      const ms = performance.now() - t0;
      assert.deepEqual([enc.frames, enc.dModel], c.encoder.shape, `${c.id}: encoder shape`);
      const ref = readF32(join(oracle.dir, c.encoder.file));
      const exact = readF64(join(oracle.dir, c.encoder.file64));
      let maxRef = 0;
      for (const v of ref) maxRef = Math.max(maxRef, Math.abs(v));
      rows.push({
        id: c.id,
        vsTorchFp32: maxAbsDiff(enc.data, ref),
        vsExact: maxAbsDiff(enc.data, exact),
        torchFp32VsExact: c.encoder.torch_fp32_vs_f64_max_abs,
        maxRefAbs: maxRef,
        ms: Math.round(ms),
      });
    }
    const max = (k: 'vsTorchFp32' | 'vsExact' | 'torchFp32VsExact') => Math.max(...rows.map((r) => r[k]));
    const within = rows.filter((r) => r.vsTorchFp32 <= 1e-3).length;
    const meanMs = rows.reduce((a, r) => a + r.ms, 0) / rows.length;
    console.log(
      `encoder: ${rows.length} clips (|h| up to ${Math.max(...rows.map((r) => r.maxRefAbs)).toFixed(1)}), ${meanMs.toFixed(0)} ms/clip on onnxruntime-web wasm\n` +
        `  max |ours − PyTorch f64| = ${max('vsExact').toExponential(2)} (PyTorch fp32 − f64: ${max('torchFp32VsExact').toExponential(2)}; tolerance 1e-3)\n` +
        `  max |ours − PyTorch fp32| = ${max('vsTorchFp32').toExponential(2)}; ${within}/${rows.length} clips within 1e-3 (tolerance 2e-3 = two fp32 error budgets)`,
    );
    report.encoder = {
      clips: rows.length,
      maxAbsVsExact: max('vsExact'),
      maxAbsTorchFp32VsExact: max('torchFp32VsExact'),
      maxAbs: max('vsTorchFp32'),
      within1e3: within,
      backend: 'onnxruntime-web wasm (Node)',
      meanMs,
      rows,
    };
    for (const r of rows) {
      assert.ok(r.vsExact <= 1e-3, `${r.id}: encoder is ${r.vsExact} from the float64 reference`);
      assert.ok(r.vsTorchFp32 <= 2e-3, `${r.id}: encoder differs from PyTorch fp32 by ${r.vsTorchFp32}`);
    }
  });

  test('greedy transcripts equal transformers generate on ≥ 95 % of clips', async () => {
    const rows = [];
    for (const c of oracle.clips) {
      const r = await tr.transcribe(audio.get(c.id)!, { language: c.language, maxNewTokens: 128 });
      const ours = r.tokens.filter((t) => t < tr.assets.generation.eos_token_id);
      rows.push({
        id: c.id,
        language: c.language,
        ours: r.text,
        python: c.text,
        same: r.text === c.text,
        sameTokens: JSON.stringify(ours) === JSON.stringify(c.tokens),
        reference: c.reference,
      });
    }
    const same = rows.filter((r) => r.same).length;
    console.log(`transcripts: ${same}/${rows.length} identical to transformers generate`);
    for (const r of rows)
      console.log(
        `  ${r.same ? '=' : '≠'} ${r.id} [${r.language}] ${JSON.stringify(r.ours)}${r.same ? '' : ` vs python ${JSON.stringify(r.python)}`}`,
      );
    // The frozen model's WER against the references, per group: the base domain must be clearly easier
    // than the code-switched one, or there is nothing to adapt.
    const groups: Record<string, { refs: string[]; hyps: string[]; language: string }> = {};
    for (const r of rows) {
      const g = r.id.startsWith('cs_') ? 'code-switched (es+en)' : `base (${r.language})`;
      (groups[g] ??= { refs: [], hyps: [], language: r.language ?? 'en' }).refs.push(r.reference);
      groups[g].hyps.push(r.ours);
    }
    const werByGroup = Object.fromEntries(
      Object.entries(groups).map(([g, v]) => [g, computeWer(v.refs, v.hyps, { language: v.language }).value]),
    );
    console.log(
      `frozen-model WER on the demo clips: ${Object.entries(werByGroup)
        .map(([g, w]) => `${g} ${(w * 100).toFixed(1)} %`)
        .join(', ')}`,
    );
    report.transcripts = { clips: rows.length, identical: same, werByGroup, rows };
    assert.equal(tr.cache.misses, oracle.clips.length, 'encoder outputs came from the per-utterance cache');
    assert.ok(same / rows.length >= 0.95, `only ${same}/${rows.length} transcripts identical`);
  });
});

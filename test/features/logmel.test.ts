// Log-mel features of src/features/logmel.ts (transformers.js WhisperFeatureExtractor) against Python
// transformers' WhisperFeatureExtractor at both Whisper mel-bin counts, on every demo clip:
//   80 bins  (tiny … medium, large-v1/v2)               max |Δ| ≤ 1e-4 (measured 3.7e-5)
//   128 bins (large-v3, large-v3-turbo: feature_size 128) max |Δ| ≤ 1e-4 (measured 5.3e-5)
// The extractor gets openai/whisper-large-v3's preprocessor_config.json values (feature_size set per
// case): the mel filter bank is derived from feature_size on both sides (slaney, 0–8 kHz).
// Python side: tools/logmel_oracle.py (one process for all clips and both bin counts).
// Time: 12 s on the 2-core machine (≈ 5 s the Python oracle, 3–4 s per bin count for 12 clips in JS).
// No code change was needed for 128 bins: both sides derive the filter bank from feature_size, and nothing
// in src/ assumes 80 (the encoder input shape comes from the features, whisperModel.ts checks
// feature_size = config.num_mel_bins).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAudio16k } from '../../src/audio';
import { LogMelExtractor } from '../../src/features/logmel';
import type { PreprocessorConfig } from '../../src/model/whisperModel';
import { DEMO_DIR, REPO, requirePython } from '../support/env';
import { maxAbsDiff, readF32 } from '../support/oracle';

/** openai/whisper-large-v3 preprocessor_config.json (feature_size replaced per case) */
const LARGE_V3: PreprocessorConfig = {
  feature_size: 128,
  hop_length: 160,
  n_fft: 400,
  chunk_length: 30,
  n_samples: 480000,
  nb_max_frames: 3000,
  sampling_rate: 16000,
  padding_value: 0.0,
  return_attention_mask: false,
  feature_extractor_type: 'WhisperFeatureExtractor',
};
const BINS = [80, 128];
const TOL = 1e-4;

interface MelIndex {
  transformers: string;
  clips: { id: string; audio: string; bins: Record<string, { file: string; shape: number[] }> }[];
}

describe('log-mel features vs Python WhisperFeatureExtractor (80 and 128 bins, demo clips)', () => {
  let dir: string;
  let index: MelIndex;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'blora-logmel-'));
    execFileSync(
      requirePython(),
      [join(REPO, 'tools/logmel_oracle.py'), '--manifest', join(DEMO_DIR, 'manifest.jsonl'), '--bins', BINS.join(','), '--out', dir],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
      },
    );
    index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  for (const bins of BINS) {
    test(`${bins} mel bins: [${bins}, 3000] within ${TOL} on every clip`, async () => {
      const fe = new LogMelExtractor({ ...LARGE_V3, feature_size: bins });
      assert.ok(index.clips.length >= 10, `only ${index.clips.length} demo clips`);
      let worst = 0;
      for (const c of index.clips) {
        const samples = await loadAudio16k(readFileSync(c.audio), c.audio);
        const mel = await fe.compute(samples);
        const ref = c.bins[String(bins)];
        assert.deepEqual([mel.melBins, mel.frames], ref.shape, `${c.id}: shape`);
        assert.deepEqual(ref.shape, [bins, 3000]);
        const d = maxAbsDiff(mel.data, readF32(join(dir, ref.file)));
        worst = Math.max(worst, d);
        assert.ok(d <= TOL, `${c.id} at ${bins} bins: max |Δ| ${d} > ${TOL}`);
      }
      console.log(
        `${bins} bins: ${index.clips.length} clips, max |Δ| = ${worst.toExponential(2)} (tolerance ${TOL}; transformers ${index.transformers})`,
      );
    });
  }
});

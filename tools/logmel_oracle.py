#!/usr/bin/env python3
"""Log-mel features from Python `transformers`' WhisperFeatureExtractor at given mel-bin counts, for
test/features/logmel.test.ts (80 = tiny … medium, large-v1/v2; 128 = large-v3 and large-v3-turbo).

The extractor is built from constructor arguments only (no model folder): feature_size = bins, the other
arguments at their defaults, which are openai/whisper-large-v3's preprocessor_config.json values
(hop_length 160, n_fft 400, chunk_length 30 → n_samples 480000, nb_max_frames 3000, sampling_rate 16000,
padding_value 0.0).

For every clip of a JSONL manifest (`audio_filepath`) and every bin count:
  <out>/<stem>.mel<bins>.f32   little-endian float32, row-major [bins, 3000]
and <out>/index.json: {transformers, clips: [{id, audio, bins: {"<bins>": {file, shape}}}]}.

Usage: python tools/logmel_oracle.py --manifest public/demo/manifest.jsonl --bins 80,128 --out DIR
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from transformers import WhisperFeatureExtractor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--bins", default="80,128")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bins = [int(b) for b in args.bins.split(",")]
    extractors = {b: WhisperFeatureExtractor(feature_size=b) for b in bins}
    rows = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    clips = []
    for row in rows:
        audio = (args.manifest.parent / row["audio_filepath"]).resolve()
        samples, sr = sf.read(audio, dtype="float32", always_2d=True)
        if sr != 16000:
            raise SystemExit(f"{audio}: {sr} Hz; expected 16 kHz (the demo set is 16 kHz)")
        samples = samples.mean(axis=1).astype(np.float32) if samples.shape[1] > 1 else samples[:, 0]
        cid = audio.stem
        entry = {"id": cid, "audio": str(audio), "bins": {}}
        for b, fe in extractors.items():
            feats = fe(samples, sampling_rate=16000, return_tensors="np").input_features[0]  # [bins, 3000]
            f = f"{cid}.mel{b}.f32"
            feats.astype("<f4").tofile(args.out / f)
            entry["bins"][str(b)] = {"file": f, "shape": list(feats.shape)}
        clips.append(entry)
    index = {"transformers": __import__("transformers").__version__, "clips": clips}
    (args.out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"# logmel oracle: {len(clips)} clips × bins {bins} → {args.out}", flush=True)


if __name__ == "__main__":
    main()

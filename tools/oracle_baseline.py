#!/usr/bin/env python3
"""Reference outputs from Python `transformers` for the studio's baseline parity tests.

For every clip of a JSONL manifest (`audio_filepath`, `text`, `language`), on the given model folder:
  - log-mel features from `WhisperFeatureExtractor`          → <out>/<id>.features.f32  [mel, 3000]
  - encoder last hidden state (`WhisperModel` encoder, fp32) → <out>/<id>.encoder.f32   [1500, d_model]
  - the same in float64 (the exact reference both fp32 runtimes are measured against)
                                                              → <out>/<id>.encoder.f64   [1500, d_model]
  - greedy transcript from `WhisperForConditionalGeneration.generate` (language and task given,
    no timestamps, max_new_tokens capped) and the decoder prompt generate used → <out>/index.json
An English-only model (generation_config `is_multilingual` false, e.g. tiny.en) gets neither language nor
task (HF generate refuses both there; its prompt is <|startoftranscript|> <|notimestamps|>), and clips in
another language than English are skipped (listed in index.json).
Raw files are little-endian float32, row-major. The TypeScript tests compare against these.

Usage: python tools/oracle_baseline.py --model DIR --manifest public/demo/manifest.jsonl --out DIR
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--limit", type=int, default=0, help="only the first N clips (0 = all)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)

    fe = WhisperFeatureExtractor.from_pretrained(args.model)
    tok = WhisperTokenizerFast.from_pretrained(args.model)
    model = WhisperForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    english_only = not getattr(model.generation_config, "is_multilingual", True)
    no_ts = model.generation_config.no_timestamps_token_id
    encoder64 = WhisperForConditionalGeneration.from_pretrained(args.model, dtype=torch.float64).eval().model.encoder
    args.out.mkdir(parents=True, exist_ok=True)

    rows = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    clips = []
    skipped = []
    t0 = time.time()
    for i, row in enumerate(rows):
        cid = Path(row["audio_filepath"]).stem
        if english_only and row.get("language") not in (None, "en"):
            skipped.append(cid)
            continue
        audio_path = (args.manifest.parent / row["audio_filepath"]).resolve()
        samples, sr = sf.read(audio_path, dtype="float32", always_2d=True)
        if sr != 16000:
            raise SystemExit(f"{audio_path}: {sr} Hz; the oracle expects 16 kHz clips (the demo set is 16 kHz)")
        samples = samples.mean(axis=1).astype(np.float32) if samples.shape[1] > 1 else samples[:, 0]
        feats = fe(samples, sampling_rate=16000, return_tensors="pt").input_features  # [1, mel, 3000]
        with torch.no_grad():
            enc = model.model.encoder(feats).last_hidden_state  # [1, 1500, d]
            enc64 = encoder64(feats.double()).last_hidden_state
            prompt_args = {} if english_only else {"language": row.get("language"), "task": "transcribe"}
            gen = model.generate(feats, **prompt_args, do_sample=False,
                                 num_beams=1, max_new_tokens=args.max_new_tokens, return_timestamps=False,
                                 return_dict_in_generate=True)  # sequences then include the decoder prompt
        seq = gen.sequences[0].tolist()
        prompt = seq[: seq.index(no_ts) + 1]
        ids = seq[len(prompt):]  # the generated tokens (all that generate returns without the dict)
        text = tok.decode(ids, skip_special_tokens=True).strip()
        special = set(tok.all_special_ids)
        feats.numpy()[0].astype("<f4").tofile(args.out / f"{cid}.features.f32")
        enc.numpy()[0].astype("<f4").tofile(args.out / f"{cid}.encoder.f32")
        enc64.numpy()[0].astype("<f8").tofile(args.out / f"{cid}.encoder.f64")
        clips.append({
            "id": cid, "audio": str(audio_path), "language": row.get("language"), "reference": row.get("text"),
            "features": {"file": f"{cid}.features.f32", "shape": list(feats.shape[1:])},
            "encoder": {"file": f"{cid}.encoder.f32", "file64": f"{cid}.encoder.f64", "shape": list(enc.shape[1:]),
                        "torch_fp32_vs_f64_max_abs": float((enc.double() - enc64).abs().max())},
            "prompt": prompt, "tokens": [t for t in ids if t not in special], "text": text,
            "reached_cap": len([t for t in ids if t not in special]) >= args.max_new_tokens,
        })
        print(f"[oracle {time.time() - t0:5.1f}s] {i + 1}/{len(rows)} {cid}: {text!r}", flush=True)
    index = {"model": str(args.model), "manifest": str(args.manifest), "max_new_tokens": args.max_new_tokens,
             "transformers": __import__("transformers").__version__, "torch": torch.__version__,
             "english_only": english_only, "skipped": skipped, "clips": clips}
    (args.out / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

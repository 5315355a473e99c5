#!/usr/bin/env python3
"""Greedy transcripts of Whisper + an exported adapter loaded by Python `peft` (issue 3 item 6).

    python tools/peft_transcribe.py --model MODEL_DIR --adapter RUN/adapter --clips clips.jsonl --out out.json

clips.jsonl: one {"id", "audio" (path, 16 kHz), "language"} per line. The base model is the prepared
folder's transformers Whisper (model.safetensors + config.json) in fp32; the adapter is loaded with
`peft.PeftModel.from_pretrained` (adapter_model.safetensors + adapter_config.json — PEFT ignores the
BLoRA posterior file beside them; the means it loads are what the engine merges). Decoding:
`generate(language=…, task="transcribe", num_beams=1, do_sample=False)`, as tools/oracle_baseline.py.
Also writes the transcripts of the base model without the adapter (`base`), to show the adapter
changed something.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--adapter", required=True, type=Path)
    ap.add_argument("--clips", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    import peft
    import transformers
    from peft import PeftModel
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

    for f in ("adapter_model.safetensors", "adapter_config.json"):
        if not (args.adapter / f).is_file():
            raise SystemExit(f"{args.adapter / f}: missing (export the adapter first)")
    fe = WhisperFeatureExtractor.from_pretrained(args.model)
    tok = WhisperTokenizerFast.from_pretrained(args.model)
    base = WhisperForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base, str(args.adapter)).eval()
    adapted = sorted(n for n, m in model.named_modules() if hasattr(m, "lora_A") and len(getattr(m, "lora_A")))
    clips = [json.loads(line) for line in args.clips.read_text().splitlines() if line.strip()]
    t0 = time.time()
    out = []
    for c in clips:
        samples, sr = sf.read(c["audio"], dtype="float32", always_2d=True)
        if sr != 16000:
            raise SystemExit(f"{c['audio']}: {sr} Hz; expected 16 kHz")
        samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        feats = fe(samples.astype(np.float32), sampling_rate=16000, return_tensors="pt").input_features
        kw = dict(language=c.get("language"), task="transcribe", do_sample=False, num_beams=1,
                  max_new_tokens=args.max_new_tokens, return_timestamps=False)
        with torch.no_grad():
            ids = model.generate(input_features=feats, **kw)[0].tolist()
            with model.disable_adapter():
                base_ids = model.generate(input_features=feats, **kw)[0].tolist()
        text = tok.decode(ids, skip_special_tokens=True).strip()
        base_text = tok.decode(base_ids, skip_special_tokens=True).strip()
        out.append({"id": c["id"], "language": c.get("language"), "text": text, "base": base_text})
        print(f"[peft {time.time() - t0:5.1f}s] {c['id']}: {text!r}", flush=True)
    args.out.write_text(json.dumps({"peft": peft.__version__, "transformers": transformers.__version__,
                                    "torch": torch.__version__, "adapted_modules": adapted, "clips": out},
                                   indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

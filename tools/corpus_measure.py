"""Frozen-Whisper WER of a corpus folder's splits (tools/make_corpus.py --measure, tools/real_speech.py --measure).

Transcribes each split with the frozen Whisper (transformers, greedy, language forced to the clip's matrix language,
max_new_tokens 128), prints the WER per split and per group (pair, switch type, voice, speaker, ...) with and
without runaway hypotheses, and writes measure.json and measure-<split>.jsonl (every reference and hypothesis)
beside the corpus. A module of its own so that changing how a corpus is measured does not change the corpus's
fingerprint (which covers tools/make_corpus.py and the sentence material).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from make_corpus import SAMPLE_RATE, fmt_s, log, read_split, read_wav


def measure(out: Path, model_dir: str, splits: list[str], batch: int) -> dict:
    import torch
    import jiwer
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(os.cpu_count() or 1)
    proc = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    norm = BasicTextNormalizer()
    results: dict[str, dict] = {}
    log(f"\nWhisper {model_dir}: transformers greedy, language forced to the matrix language, max_new_tokens 128, "
        f"BasicTextNormalizer + jiwer WER")
    t0 = time.time()
    for split in splits:
        rows = read_split(out, split)
        hyps: dict[int, str] = {}
        by_lang: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            by_lang.setdefault(r["language"], []).append(i)
        n_done = 0
        for lang, idx in by_lang.items():
            for b in range(0, len(idx), batch):
                ii = idx[b:b + batch]
                audio = [read_wav(out / split / rows[i]["file_name"]).astype(np.float32) for i in ii]
                feats = proc(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
                with torch.no_grad():
                    ids = model.generate(feats, language=lang, task="transcribe", max_new_tokens=128)
                for i, h in zip(ii, proc.batch_decode(ids, skip_special_tokens=True)):
                    hyps[i] = h.strip()
                n_done += len(ii)
                el = time.time() - t0
                log(f"  {split}: {n_done}/{len(rows)} clips transcribed, {fmt_s(el)} elapsed")
        refs_n = [norm(r["transcription"]) for r in rows]
        hyps_n = [norm(hyps[i]) for i in range(len(rows))]
        groups: dict[str, list[int]] = {"all": list(range(len(rows)))}
        for i, r in enumerate(rows):
            keys = [r["pair"], r["switch_type"], f"{r['pair']}:{r['switch_type']}", "noisy" if r["noise"] != "none" else "clean",
                    "variant " + (r["voice"].split("+")[1].split("/")[0] if "+" in r["voice"] else "default")] \
                if r["domain"] == "code-switched" else [r["language"], "voice " + r["voice"]]
            if r.get("tts"):  # corpus v2: espeak-ng vs the neural voice, and each neural speaker
                keys = [k for k in keys if not (r["tts"] == "kokoro" and k.startswith("variant "))]
                keys += [f"tts {r['tts']}", f"{r['pair'] or r['language']}:{r['tts']}"]
                if r["tts"] == "kokoro":
                    keys.append(f"speaker {r['speaker']}")
            for k in keys:
                groups.setdefault(k, []).append(i)
        # runaway hypotheses (generate repeating itself up to max_new_tokens) dominate a pooled WER: count them and
        # also give every group's WER without them
        runaway = {i for i in range(len(rows)) if len(hyps_n[i].split()) > 2 * len(refs_n[i].split()) + 5}
        res = {}
        for k, ii in groups.items():
            keep = [i for i in ii if i not in runaway]
            res[k] = {"clips": len(ii), "wer": float(jiwer.wer([refs_n[i] for i in ii], [hyps_n[i] for i in ii])),
                      "runaway": len(ii) - len(keep),
                      "wer_without_runaway": float(jiwer.wer([refs_n[i] for i in keep], [hyps_n[i] for i in keep])) if keep else None}
        results[split] = res
        with open(out / f"measure-{split}.jsonl", "w", encoding="utf-8") as f:
            for i, r in enumerate(rows):
                f.write(json.dumps({"file_name": r["file_name"], "language": r["language"], "reference": r["transcription"],
                                    "hypothesis": hyps[i], "wer": float(jiwer.wer(refs_n[i], hyps_n[i])) if refs_n[i] else None},
                                   ensure_ascii=False) + "\n")
    log(f"\n{'split':10} {'group':28} {'clips':>5} {'WER':>7} {'runaway':>7} {'WER without':>11}")
    for split, res in results.items():
        for k, v in sorted(res.items(), key=lambda kv: (kv[0] != "all", kv[0])):
            w = v["wer_without_runaway"]
            log(f"{split:10} {k:28} {v['clips']:5d} {100 * v['wer']:6.1f}% {v['runaway']:7d} "
                + ("        n/a" if w is None else f"{100 * w:10.1f}%"))
    summary = {"model": model_dir, "decoding": "greedy, language forced to matrix language, max_new_tokens 128",
               "normalizer": "BasicTextNormalizer", "seconds": round(time.time() - t0, 1), "splits": results}
    (out / "measure.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"measured in {fmt_s(time.time() - t0)}; per-clip transcripts in {out}/measure-<split>.jsonl")
    return summary

#!/usr/bin/env python3
"""Greedy transcripts of merged exports in their own runtimes, for test/export/merged.test.ts (one process):
  --hf DIR    transformers WhisperForConditionalGeneration.from_pretrained (float32 compute), generate with
              the language and task given, no timestamps, num_beams 1 (as tools/oracle_baseline.py)
  --ct2 DIR   ctranslate2.models.Whisper.generate on transformers' log-mel features of the clip (the model
              compared alone: same features as --hf), greedy (beam_size 1), CPU float32, prompt
              <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|>; and faster-whisper WhisperModel.transcribe
              on CPU (compute_type float32), beam_size 1, temperature 0, the language given, without_timestamps,
              no conditioning, no VAD, no no-speech skip, the generation config's suppress_tokens — one segment
              per clip — twice: with its own log-mel (faster_whisper) and with transformers' log-mel swapped
              into its feature extractor (faster_whisper_hf_features: the export compared alone)
  --base DIR  optionally a second transformers model (e.g. the source) for a bit-identity check of a
              zero-B export: every tensor of --hf equal to --base's
Clips: --clip ID=PATH:LANG (repeatable). Prints one JSON object: {hf: {id: {tokens, text}}, ct2: {...}, ...}.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf", type=Path)
    ap.add_argument("--ct2", type=Path)
    ap.add_argument("--clip", action="append", default=[], help="ID=PATH:LANG")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--same-as", nargs=2, action="append", default=[], metavar=("A", "B"),
                    help="two transformers folders whose state dicts must be bit-identical")
    a = ap.parse_args()
    out: dict = {}
    clips = []
    for c in a.clip:
        cid, rest = c.split("=", 1)
        path, lang = rest.rsplit(":", 1)
        s, sr = sf.read(path, dtype="float32", always_2d=True)
        if sr != 16000:
            sys.exit(f"{path}: {sr} Hz; expected 16 kHz")
        clips.append((cid, s.mean(axis=1).astype(np.float32), lang))

    if a.hf or a.same_as:
        import torch
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast
        torch.set_num_threads(2)
    for x, y in a.same_as:
        sx = WhisperForConditionalGeneration.from_pretrained(x, dtype=torch.float32).state_dict()
        sy = WhisperForConditionalGeneration.from_pretrained(y, dtype=torch.float32).state_dict()
        diff = [k for k in sx if k not in sy or not torch.equal(sx[k], sy[k])]
        out.setdefault("same", []).append({"a": x, "b": y, "tensors": len(sx), "differ": diff})
    if a.hf:
        t0 = time.time()
        fe = WhisperFeatureExtractor.from_pretrained(a.hf)
        tok = WhisperTokenizerFast.from_pretrained(a.hf)
        model = WhisperForConditionalGeneration.from_pretrained(a.hf, dtype=torch.float32).eval()
        no_ts = model.generation_config.no_timestamps_token_id
        res = {}
        for cid, samples, lang in clips:
            feats = fe(samples, sampling_rate=16000, return_tensors="pt").input_features
            with torch.no_grad():
                gen = model.generate(feats, language=lang, task="transcribe", do_sample=False, num_beams=1,
                                     max_new_tokens=a.max_new_tokens, return_timestamps=False, return_dict_in_generate=True)
            seq = gen.sequences[0].tolist()
            ids = seq[seq.index(no_ts) + 1:]
            res[cid] = {"tokens": ids, "text": tok.decode(ids, skip_special_tokens=True).strip()}
        out["hf"] = res
        out["hf_s"] = time.time() - t0
    if a.ct2:
        t0 = time.time()
        import ctranslate2
        from transformers import WhisperFeatureExtractor, WhisperTokenizerFast
        fe = WhisperFeatureExtractor.from_pretrained(a.ct2)
        tok = WhisperTokenizerFast.from_pretrained(a.ct2)
        cm = ctranslate2.models.Whisper(str(a.ct2), device="cpu", compute_type="float32", intra_threads=2)
        res = {}
        for cid, samples, lang in clips:
            feats = fe(samples, sampling_rate=16000, return_tensors="np").input_features.astype(np.float32)
            prompt = tok.convert_tokens_to_ids(["<|startoftranscript|>", f"<|{lang}|>", "<|transcribe|>", "<|notimestamps|>"])
            r = cm.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), [prompt], beam_size=1,
                            max_length=a.max_new_tokens + len(prompt), return_scores=False)[0]
            ids = r.sequences_ids[0]
            res[cid] = {"tokens": ids, "text": tok.decode(ids, skip_special_tokens=True).strip()}
        out["ct2"] = res
        out["ct2_s"] = time.time() - t0
        from faster_whisper import WhisperModel
        m = WhisperModel(str(a.ct2), device="cpu", compute_type="float32", cpu_threads=2)
        own_fe = m.feature_extractor
        # the ct2 folder has no generation config: take the transformers export's list (what the engine and
        # --hf suppress), else faster-whisper's default (-1: the tokenizer's non-speech tokens)
        gen_cfg = [d / "generation_config.json" for d in (a.ct2, a.hf) if d and (d / "generation_config.json").exists()]
        suppress = json.loads(gen_cfg[0].read_text())["suppress_tokens"] if gen_cfg else [-1]

        class TransformersFeatures:
            """faster-whisper's FeatureExtractor with transformers' log-mel (audio zero-padded to 30 s before the
            STFT, as the studio and --hf do; faster-whisper pads the log-mel instead, which changes the frames
            past the speech and the dynamic-range floor). One frame more than 3000, because transcribe()
            counts content frames as shape[-1] - 1."""

            def __getattr__(self, name):
                return getattr(own_fe, name)

            def __call__(self, waveform, padding=160, chunk_length=None):
                f = fe(waveform, sampling_rate=16000, return_tensors="np").input_features[0].astype(np.float32)
                return np.concatenate([f, f[:, -1:]], axis=1)

        for key, extractor in (("faster_whisper", own_fe), ("faster_whisper_hf_features", TransformersFeatures())):
            t0 = time.time()
            m.feature_extractor = extractor
            res = {}
            for cid, samples, lang in clips:
                segs, _ = m.transcribe(samples, language=lang, task="transcribe", beam_size=1, best_of=1, temperature=0.0,
                                       without_timestamps=True, condition_on_previous_text=False, vad_filter=False,
                                       no_speech_threshold=None, suppress_tokens=list(suppress), suppress_blank=True)
                segs = list(segs)
                res[cid] = {"tokens": [t for s in segs for t in s.tokens], "text": "".join(s.text for s in segs).strip()}
            out[key] = res
            out[key + "_s"] = time.time() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()

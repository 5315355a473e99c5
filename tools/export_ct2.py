#!/usr/bin/env python3
"""A merged transformers Whisper folder (blora-studio export --format hf) → a CTranslate2 folder for
faster-whisper: model.bin + config.json + tokenizer.json + preprocessor_config.json.

The conversion is CTranslate2's own (ctranslate2.converters.TransformersConverter, PyPI ctranslate2),
with the weights kept in the dtype of the source's model.safetensors (float16 for the prepared Whisper
base: the f16 values are widened to f32 to load and narrowed back, exactly). --quantization overrides it.

  python tools/export_ct2.py --hf DIR --out DIR [--quantization float16|float32|bfloat16|int8...]
"""
import argparse
import json
import struct
import sys
from pathlib import Path

DTYPES = {"F16": "float16", "F32": "float32", "BF16": "bfloat16"}


def source_dtype(hf: Path) -> str:
    """The dtype of the decoder weights in model.safetensors (what the export keeps)."""
    with open(hf / "model.safetensors", "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    key = "model.decoder.layers.0.self_attn.q_proj.weight"
    if key not in header:
        sys.exit(f"{hf}/model.safetensors: no {key} (not a Whisper checkpoint?)")
    dt = header[key]["dtype"]
    if dt not in DTYPES:
        sys.exit(f"{hf}/model.safetensors: {key} is {dt}; expected one of {', '.join(DTYPES)}")
    return DTYPES[dt]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf", required=True, type=Path, help="merged transformers folder")
    ap.add_argument("--out", required=True, type=Path, help="CTranslate2 output folder")
    ap.add_argument("--quantization", default=None, help="default: the source dtype")
    a = ap.parse_args()
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (a.hf / f).exists():
            sys.exit(f"{a.hf}: {f} is missing (give the folder of blora-studio export --format hf)")
    try:
        import ctranslate2
        from ctranslate2.converters import TransformersConverter
    except ImportError as e:
        sys.exit(f"export_ct2.py: ctranslate2 is not installed in {sys.executable} ({e}); pip install -r tools/requirements.txt")
    q = a.quantization or source_dtype(a.hf)
    copy = [f for f in ("tokenizer.json", "preprocessor_config.json") if (a.hf / f).exists()]
    TransformersConverter(str(a.hf), copy_files=copy).convert(str(a.out), quantization=q, force=True)
    print(f"ctranslate2 {ctranslate2.__version__}: {a.hf} → {a.out} ({q}; {', '.join(sorted(p.name for p in a.out.iterdir()))})", file=sys.stderr)


if __name__ == "__main__":
    main()

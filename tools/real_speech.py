#!/usr/bin/env python3
"""Build the real-speech base domain (corpus v2 part) from Debian's Asterisk core sound prompts.

    ~/.cache/blora-studio/venv/bin/python tools/real_speech.py             # -> ~/.cache/blora-studio/corpora/real-v1
    ~/.cache/blora-studio/venv/bin/python tools/real_speech.py --measure   # + frozen-Whisper WER of real-test, real-dev

Source: the Debian packages asterisk-core-sounds-{en,es,fr} (transcripts, core-sounds-LL.txt.gz, `key: text`
lines) and asterisk-core-sounds-{en,es,fr}-wav (8 kHz 16-bit mono WAV, one file per key), version 1.6.1-1:
professional voice prompts recorded by Allison Smith (English, Mexican Spanish) and June Wallack (Canadian
French), CC-BY-SA-3.0. The .deb files are fetched with `apt-get download` into $BLORA_CACHE/debs/ (only when
missing: with them there, nothing touches the network) and unpacked there with `dpkg-deb -x`.

Transcripts: editorial notes in [brackets], (parentheses) and <angle brackets> are removed (except the spoken
parenthesis of two French prompts, SPOKEN_PARENS) and whitespace collapsed; the text is otherwise kept as written (digits stay digits; the Spanish and much of the French text is written without
accents). A clip is kept when its cleaned transcript has at least 3 words (tokens with a letter or digit), its
wav exists and it is at most 30 s long.

Audio: resampled to 16 kHz mono 16-bit by sox in repeatable mode (-R), so reruns give identical bytes.

Splits: real-dev/ and real-test/, each an audiofolder with the same metadata.csv columns as make_corpus.py's
base-test (domain base, switch_type none, voice asterisk-LL, template asterisk:<key>). Within a language, a sentence
recorded under several keys is kept once (its first key), and a clip goes to real-dev when
sha256("<seed>:<key>") falls in the first third of the hash range, else to real-test: stable per key, and
the same key in the three languages (a prompt and its translations) lands in the same split; no key and no
sentence in both splits. `corpus.json` at the top is written last,
with the package versions and sha256s, a digest of the selection, the licence and the counts; a folder with a matching corpus.json is
skipped on a rerun. LICENSE-asterisk-sounds.txt is the packages' Debian copyright file.

--limit N keeps the first N clips (in key order) per language in each split (tests). --measure transcribes
real-test and real-dev with the frozen Whisper by tools/corpus_measure.py's measure() and prints WER per split and
language. Needs numpy, sox, apt-get and dpkg-deb (+ torch, transformers, jiwer for --measure).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_corpus as mc  # noqa: E402  (the shared writer columns, cache path and wav helpers)

VERSION = "real-v1"  # bump when the output format or the selection rules change
DEB_VERSION = "1.6.1-1"
LANGS = ["en", "es", "fr"]
SPLITS = ["real-dev", "real-test"]
DEV_FRACTION = 1 / 3
MIN_WORDS = 3
MAX_SECONDS = 30.0
SAMPLE_RATE = mc.SAMPLE_RATE
LICENCE = "CC-BY-SA-3.0"
ATTRIBUTION = {
    "en": "Allison Smith (http://www.theivrvoice.com), financial contributions by Digium, Inc.",
    "es": "Allison Smith (http://www.theivrvoice.com), financial contributions by Digium, Inc.",
    "fr": "June Wallack (http://www.junewallack.com); translated into French by Clod Patry, Kristopher Lalletti and "
          "June Wallack; financial contributions by Digium, Inc., Unlimitel, BGM Informatique",
}


def log(msg: str = "") -> None:
    print(msg, flush=True)


def fail(msg: str) -> NoReturn:
    raise SystemExit(f"real_speech: error: {msg}")


# --- packages ------------------------------------------------------------------------------------------------------
def packages() -> list[str]:
    return [f"asterisk-core-sounds-{l}{s}" for l in LANGS for s in ("", "-wav")]


def deb_path(debs: Path, pkg: str) -> Path:
    return debs / f"{pkg}_{DEB_VERSION}_all.deb"


def fetch_debs(debs: Path) -> None:
    """apt-get download the missing packages into `debs` (a temp dir first, then moved: no half files)."""
    missing = [p for p in packages() if not deb_path(debs, p).exists()]
    if not missing:
        return
    debs.mkdir(parents=True, exist_ok=True)
    log(f"fetching {len(missing)} package(s) with apt-get download into {debs}: {', '.join(missing)}")
    for attempt in (1, 2):
        with tempfile.TemporaryDirectory(prefix="blora-debs-", dir=debs) as t:
            r = subprocess.run(["apt-get", "download", *[f"{p}={DEB_VERSION}" for p in missing]], cwd=t,
                               capture_output=True, text=True)
            if r.returncode == 0:
                for p in missing:
                    f = Path(t) / deb_path(debs, p).name
                    if not f.exists():
                        fail(f"apt-get download {p}={DEB_VERSION} succeeded but left no {f.name} (got: "
                             f"{', '.join(sorted(x.name for x in Path(t).iterdir()))})")
                    os.replace(f, deb_path(debs, p))
                return
        err = (r.stderr or r.stdout).strip().splitlines()
        if attempt == 1 and os.geteuid() == 0 and any("Unable to locate" in e or "Can't find a source" in e or
                                                     "Version" in e for e in err):
            log("apt-get download failed; running apt-get update once and retrying")
            subprocess.run(["apt-get", "update", "-qq"], check=False)
            continue
        fail(f"apt-get download {' '.join(missing)} failed (rc {r.returncode}): {' | '.join(err[-3:])}; the package "
             f"lists may be missing (run `sudo apt-get update`), or put the .deb files into {debs} by hand")


def deb_field(deb: Path, field: str) -> str:
    r = subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{deb}: dpkg-deb -f failed: {r.stderr.strip()}")
    return r.stdout.strip()


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def unpack(debs: Path, pkg: str) -> Path:
    """dpkg-deb -x into debs/<pkg>_<version>/ once (a stamp file marks a complete extraction)."""
    deb = deb_path(debs, pkg)
    dest = debs / deb.stem
    if (dest / ".unpacked").exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    part = debs / (deb.stem + ".part")
    if part.exists():
        shutil.rmtree(part)
    r = subprocess.run(["dpkg-deb", "-x", str(deb), str(part)], capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(part, ignore_errors=True)
        fail(f"{deb}: dpkg-deb -x failed: {r.stderr.strip()}")
    (part / ".unpacked").write_text(sha256_file(deb) + "\n")
    os.replace(part, dest)
    return dest


# --- transcripts ---------------------------------------------------------------------------------------------------
NOTE = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
WORD = re.compile(r"\w", re.UNICODE)
# Parentheses that are spoken, not notes (checked by ear through the frozen Whisper base, which hears "ne m'appelez
# plus jamais" in both French prompts): the words are kept, the parentheses dropped. "[temporales]" in the Spanish
# vm-tempgreetactive is not spoken and is removed like the other notes.
SPOKEN_PARENS = {("fr", "priv-callee-options"), ("fr", "screen-callee-options")}


def clean(text: str, lang: str = "", key: str = "") -> str:
    t = re.sub(r"[()]", " ", text) if (lang, key) in SPOKEN_PARENS else NOTE.sub(" ", text)
    if re.search(r"[][()<>]", t):  # unbalanced bracket: drop from it to the end
        t = re.split(r"[][()<>]", t, maxsplit=1)[0]
    t = " ".join(t.split())
    return re.sub(r" ([,.;:!?])", r"\1", t)  # "poli (note), 4" -> "poli, 4"


def words(text: str) -> list[str]:
    return [w for w in text.split() if WORD.search(w)]


def read_transcripts(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{path}: cannot read the transcripts: {e}")
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith(";"):
            continue
        key, sep, text = s.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_./-]+", key.strip()):
            fail(f"{path}:{n}: not a `key: text` line: {s[:80]!r}")
        out.setdefault(key.strip(), text.strip())  # first definition wins (none is repeated in 1.6.1)
    return out


def wav_info(path: Path) -> tuple[int, int, int, float]:
    try:
        with wave.open(str(path)) as w:
            return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate()
    except (wave.Error, EOFError, OSError) as e:
        fail(f"{path}: not a readable PCM wav: {e}")


def group_key(text: str) -> str:
    return mc.norm_text(text)


def dev_or_test(seed: int, key: str) -> str:
    """By the key alone, not the language: a prompt and its translations (same key) land in the same split."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2 ** 64
    return "real-dev" if h < DEV_FRACTION else "real-test"


def select(debs: Path, seed: int, limit: int | None) -> tuple[dict[str, list[dict]], dict]:
    """The clips of each split in key order per language, and selection statistics."""
    plan: dict[str, list[dict]] = {s: [] for s in SPLITS}
    stats: dict[str, dict] = {}
    for lang in LANGS:
        txt_dir = unpack(debs, f"asterisk-core-sounds-{lang}")
        wav_dir = unpack(debs, f"asterisk-core-sounds-{lang}-wav")
        txt = txt_dir / "usr/share/doc" / f"asterisk-core-sounds-{lang}" / f"core-sounds-{lang}.txt.gz"
        if not txt.exists():
            fail(f"asterisk-core-sounds-{lang}: no {txt.relative_to(txt_dir)} in the package")
        voices = sorted((wav_dir / "usr/share/asterisk/sounds").glob(f"{lang}_*"))
        if len(voices) != 1:
            fail(f"asterisk-core-sounds-{lang}-wav: expected one usr/share/asterisk/sounds/{lang}_* folder, found "
                 f"{[v.name for v in voices]}")
        st = {"transcripts": 0, "short_text": 0, "duplicate_text": 0, "no_wav": 0, "too_long": 0, "kept": 0,
              "recording": voices[0].name}
        kept, seen = [], set()
        for key, raw in sorted(read_transcripts(txt).items()):
            st["transcripts"] += 1
            text = clean(raw, lang, key)
            if len(words(text)) < MIN_WORDS:
                st["short_text"] += 1
                continue
            wav = voices[0] / f"{key}.wav"
            if not wav.exists():
                st["no_wav"] += 1
                continue
            rate, ch, width, secs = wav_info(wav)
            if (rate, ch, width) != (8000, 1, 2):
                fail(f"{wav}: expected 8 kHz mono 16-bit, got {rate} Hz, {ch} channel(s), {8 * width}-bit")
            if secs > MAX_SECONDS:
                st["too_long"] += 1
                continue
            if group_key(text) in seen:  # the same sentence under another key: keep the first only
                st["duplicate_text"] += 1
                continue
            seen.add(group_key(text))
            kept.append({"key": key, "text": text, "raw": raw, "src": wav, "lang": lang})
        st["kept"] = len(kept)
        per = {s: [c for c in kept if dev_or_test(seed, c["key"]) == s] for s in SPLITS}
        for s in SPLITS:
            clips = per[s][:limit] if limit is not None else per[s]
            for i, c in enumerate(clips):
                c["file_name"] = f"{lang}-{i:05d}.wav"
            plan[s].extend(clips)
        stats[lang] = st
    return plan, stats


# --- corpus --------------------------------------------------------------------------------------------------------
def resample(src: Path, dst: Path) -> float:
    part = dst.with_suffix(".part.wav")
    r = subprocess.run(["sox", "-R", "-V1", str(src), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                        str(part)], capture_output=True, text=True)
    if r.returncode != 0:
        part.unlink(missing_ok=True)
        fail(f"{src}: sox resampling failed: {r.stderr.strip()}")
    os.replace(part, dst)
    return mc.wav_seconds(dst)


def config_of(debs: Path, seed: int, limit: int | None) -> dict:
    pk = {}
    for p in packages():
        d = deb_path(debs, p)
        pk[p] = {"version": deb_field(d, "Version"), "file": d.name, "sha256": sha256_file(d)}
    return {"version": VERSION, "seed": seed, "limit": limit, "packages": pk}


def plan_digest(plan: dict[str, list[dict]]) -> str:
    """What the selection and split rules chose (a rule change that changes the output changes this)."""
    rows = [[s, c["file_name"], c["key"], c["text"]] for s in SPLITS for c in plan[s]]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def generate(out: Path, debs: Path, seed: int, limit: int | None, jobs: int, force: bool) -> dict:
    t0 = time.time()
    fetch_debs(debs)
    config = config_of(debs, seed, limit)
    plan, stats = select(debs, seed, limit)
    config["selection_sha256"] = plan_digest(plan)
    meta_path = out / "corpus.json"
    if meta_path.exists() and not force:
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in config.items()):
            log(f"corpus complete at {out} ({meta['total']['clips']} clips, {meta['total']['hours']:.2f} h); nothing to do")
            return meta
        log(f"{meta_path} is from another configuration, source or generator version: regenerating")
    if out.exists() and any(out.iterdir()) and not (meta_path.exists() or (out / ".partial.json").exists()):
        fail(f"{out} is not empty and not a real-speech corpus folder; choose another --out")
    log(f"real_speech {VERSION} seed={seed}" + (f" limit={limit}" if limit is not None else "") + f" -> {out}")
    out.mkdir(parents=True, exist_ok=True)
    (out / ".partial.json").write_text(json.dumps({"version": VERSION}) + "\n")
    meta_path.unlink(missing_ok=True)
    for f in out.glob("measure*.json*"):  # measurements of an older corpus
        f.unlink()

    for lang, st in stats.items():
        log(f"  {lang} ({st['recording']}): {st['transcripts']} transcripts, {st['kept']} kept; dropped {st['short_text']} "
            f"under {MIN_WORDS} words, {st['duplicate_text']} repeated sentences, {st['no_wav']} without wav, {st['too_long']} over {MAX_SECONDS:.0f} s")
    for s in SPLITS:
        d = out / s
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
    todo = [(s, c) for s in SPLITS for c in plan[s]]
    durations: dict[tuple[str, str], float] = {}
    done, last = 0, 0.0
    with cf.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(resample, c["src"], out / s / c["file_name"]): (s, c["file_name"]) for s, c in todo}
        for fut in cf.as_completed(futs):
            durations[futs[fut]] = fut.result()
            done += 1
            el = time.time() - t0
            if done == len(todo) or done == 1 or el - last >= 5:
                last = el
                log(f"  {done}/{len(todo)} clips resampled to 16 kHz, "
                    f"{sum(durations.values()) / 60:.1f} min of audio, {mc.fmt_s(el)} elapsed")

    summary: dict[str, dict] = {}
    for s in SPLITS:
        rows = []
        for c in plan[s]:
            lang, text = c["lang"], c["text"]
            rows.append({
                "file_name": c["file_name"], "transcription": text, "language": lang, "languages": lang,
                "domain": "base", "pair": "", "switch_type": "none", "duration": f"{durations[(s, c['file_name'])]:.3f}",
                "voice": f"asterisk-{lang}", "rate_wpm": "", "pitch": "", "noise": "none", "snr_db": "",
                "template": f"asterisk:{c['key']}", "segments": json.dumps([[lang, text]], ensure_ascii=False),
                "word_langs": " ".join(lang for _ in text.split()),
            })
        with open(out / s / "metadata.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, mc.COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        secs = sum(durations[(s, c["file_name"])] for c in plan[s])
        groups: dict[str, int] = {}
        for c in plan[s]:
            groups[c["lang"]] = groups.get(c["lang"], 0) + 1
        summary[s] = {"clips": len(plan[s]), "seconds": round(secs, 1), "hours": round(secs / 3600, 4), "groups": groups}
    check_disjoint(out)

    copyrights = {p: (unpack(debs, p) / "usr/share/doc" / p / "copyright") for p in packages()}
    for p, f in copyrights.items():
        if not f.exists():
            fail(f"{p}: no usr/share/doc/{p}/copyright in the package")
    texts = {f.read_bytes() for f in copyrights.values()}
    if len(texts) != 1:
        fail("the packages' copyright files differ; expected one shared file (" + ", ".join(copyrights) + ")")
    (out / "LICENSE-asterisk-sounds.txt").write_bytes(texts.pop())

    total_s = sum(v["seconds"] for v in summary.values())
    elapsed = time.time() - t0
    meta = {
        **config,
        "created_by": "tools/real_speech.py" + (f" --seed {seed}" if seed else "") + (f" --limit {limit}" if limit is not None else ""),
        "source": "Debian bookworm asterisk-core-sounds-{en,es,fr} (transcripts) + asterisk-core-sounds-{en,es,fr}-wav "
                  "(8 kHz 16-bit mono WAV), upstream asterisk-core-sounds 1.6.1 (http://downloads.asterisk.org/pub/telephony/sounds/)",
        "licence": LICENCE,
        "licence_file": "LICENSE-asterisk-sounds.txt",
        "attribution": ATTRIBUTION,
        "recordings": {l: st["recording"] for l, st in stats.items()},
        "selection": {"min_words": MIN_WORDS, "max_seconds": MAX_SECONDS, "dev_fraction": round(DEV_FRACTION, 4),
                      "cleaning": "[..] and (..) notes removed, whitespace collapsed; text otherwise as in the package "
                                  "(Spanish without accents, French partly without)", "per_language": stats},
        "tools": {"sox": mc.run(["sox", "--version"]).split("SoX v")[-1].strip()},
        "splits": summary,
        "total": {"clips": sum(v["clips"] for v in summary.values()), "seconds": round(total_s, 1),
                  "hours": round(total_s / 3600, 4)},
        "generation_seconds": round(elapsed, 1),
    }
    log(f"{'split':10} {'clips':>6} {'minutes':>8}  per language")
    for k, v in summary.items():
        log(f"{k:10} {v['clips']:6d} {v['seconds'] / 60:8.2f}  " + ", ".join(f"{g} {n}" for g, n in sorted(v["groups"].items())))
    log(f"{meta['total']['clips']} clips, {total_s / 3600:.3f} h of audio, built in {mc.fmt_s(elapsed)}")
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, meta_path)
    (out / ".partial.json").unlink(missing_ok=True)
    return meta


def check_disjoint(out: Path) -> None:
    """Read back: no key and no sentence (normalised, any language) in both splits, no sentence twice in a language.
    (make_corpus.check_disjoint wants every sentence once in all; here "N B S" is spoken in all three languages.)"""
    seen: dict[str, str] = {}
    keys: dict[str, str] = {}
    for split in SPLITS:
        mine: set[tuple[str, str]] = set()
        for r in mc.read_split(out, split):
            n, k = mc.norm_text(r["transcription"]), r["template"]
            if seen.get(n, split) != split:
                fail(f"sentence in both {seen[n]} and {split}: {r['transcription']}")
            if keys.get(k, split) != split:
                fail(f"{k} in both {keys[k]} and {split}")
            if (r["language"], n) in mine:
                fail(f"{split}: sentence twice in {r['language']}: {r['transcription']}")
            mine.add((r["language"], n))
            seen[n], keys[k] = split, split


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--out", help=f"output folder (default: $BLORA_CACHE/corpora/{VERSION}[-seed<N>][-limit<N>])")
    ap.add_argument("--debs", help="where the .deb files are kept and unpacked (default: $BLORA_CACHE/debs)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the dev/test split (default 0)")
    ap.add_argument("--limit", type=int, help="keep only the first N clips per language in each split (tests)")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel sox jobs")
    ap.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    ap.add_argument("--measure", nargs="?", const="", metavar="MODEL_DIR",
                    help="transcribe the splits with this HF Whisper (default: $BLORA_MODEL_DIR or the prepared whisper-base)")
    ap.add_argument("--measure-splits", default="real-test,real-dev", help="splits to transcribe with --measure")
    ap.add_argument("--batch", type=int, default=8, help="batch size for --measure")
    args = ap.parse_args()
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be at least 1")

    cache = mc.default_cache()
    out = Path(args.out) if args.out else cache / "corpora" / (
        VERSION + (f"-seed{args.seed}" if args.seed else "") + (f"-limit{args.limit}" if args.limit is not None else ""))
    debs = Path(args.debs) if args.debs else cache / "debs"
    generate(out, debs, args.seed, args.limit, max(1, args.jobs), args.force)
    if args.measure is not None:
        model = args.measure or os.environ.get("BLORA_MODEL_DIR") or str(cache / "models" / "whisper-base")
        from corpus_measure import measure
        measure(out, model, [s for s in args.measure_splits.split(",") if s], args.batch)
    log(f"corpus at {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

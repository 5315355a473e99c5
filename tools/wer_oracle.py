#!/usr/bin/env python3
"""Reference WER/CER/mixed-error-rate numbers for the TypeScript metrics (src/metrics).

Reads JSON on stdin:
    {"pairs": [{"ref": str, "hyp": str, "language": str}, ...],
     "texts": [{"text": str, "language": str}, ...],         # optional
     "word_pairs": [[ref, hyp], ...]}                         # optional
and prints JSON:
    {"versions": {...},
     "pairs": [{"ref": norm, "hyp": norm, "wer": M, "cer": M, "mixed": M}, ...],
     "aggregate": {"all": {"wer": M, "cer": M, "mixed": M},
                   "by_language": {lang: {"wer": M, "cer": M, "mixed": M}}},
     "texts": [norm, ...],
     "word_pairs": [M, ...]}
with M = {"value", "substitutions", "deletions", "insertions", "hits",
          "ref_tokens", "hyp_tokens"}.

Normalization uses transformers' copies of the Whisper normalizers
(EnglishTextNormalizer with src/metrics/normalizers/english-spelling.json for
English, BasicTextNormalizer() otherwise); scores come from jiwer 4 (jiwer.wer /
jiwer.cer for the value, process_words / process_characters for the counts).
"all" aggregates over every pair using the already-normalized strings.
"word_pairs" are scored as-is with jiwer.process_words (no normalization); they
exercise the alignment tie-breaking that decides S/D/I counts.
"mixed" = jiwer.wer on space-joined tokens, one token per CJK character and one per
run of other non-space characters (same ranges as CJK_RANGES in src/metrics/wer.ts).
It is not jiwer.mer (match error rate).
"""

import importlib.util
import json
import re
import sys
from importlib.metadata import version
from pathlib import Path

import jiwer


def _load_transformers_normalizers():
    # Load the module file directly: importing the transformers package costs seconds
    # and the normalizer only needs re/unicodedata/regex.
    spec = importlib.util.find_spec("transformers")
    path = Path(spec.origin).parent / "models" / "whisper" / "english_normalizer.py"
    mod_spec = importlib.util.spec_from_file_location("whisper_english_normalizer", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.BasicTextNormalizer, module.EnglishTextNormalizer


BasicTextNormalizer, EnglishTextNormalizer = _load_transformers_normalizers()

ROOT = Path(__file__).resolve().parent.parent
SPELLING = ROOT / "src" / "metrics" / "normalizers" / "english-spelling.json"

CJK = (
    "\u3005-\u3007\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0002fa1f\U00030000-\U000323af"
)
MIXED_TOKEN_RE = re.compile(f"[{CJK}]|[^\\s{CJK}]+")

ENGLISH = {"en", "english"}


def base_language(language: str) -> str:
    return re.split(r"[-_]", language.strip().lower())[0]


def mixed_join(s: str) -> str:
    return " ".join(MIXED_TOKEN_RE.findall(s))


def measure(refs, hyps, kind):
    """jiwer numbers for lists of (already normalized) strings."""
    if kind == "cer":
        value = jiwer.cer(refs, hyps)
        out = jiwer.process_characters(refs, hyps)
        ref_tokens = sum(len(r) for r in out.references)
        hyp_tokens = sum(len(h) for h in out.hypotheses)
    else:
        if kind == "mixed":
            refs = [mixed_join(r) for r in refs]
            hyps = [mixed_join(h) for h in hyps]
        value = jiwer.wer(refs, hyps)
        out = jiwer.process_words(refs, hyps)
        ref_tokens = sum(len(r) for r in out.references)
        hyp_tokens = sum(len(h) for h in out.hypotheses)
    return {
        "value": value,
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "hits": out.hits,
        "ref_tokens": ref_tokens,
        "hyp_tokens": hyp_tokens,
    }


def all_measures(refs, hyps):
    return {kind: measure(refs, hyps, kind) for kind in ("wer", "cer", "mixed")}


def main():
    request = json.load(sys.stdin)
    english = EnglishTextNormalizer(json.loads(SPELLING.read_text(encoding="utf-8")))
    basic = BasicTextNormalizer()

    def normalize(text, language):
        return (english if base_language(language) in ENGLISH else basic)(text)

    pairs = []
    groups = {}
    all_refs, all_hyps = [], []
    for p in request.get("pairs", []):
        lang = p.get("language", "en")
        ref, hyp = normalize(p["ref"], lang), normalize(p["hyp"], lang)
        entry = {"ref": ref, "hyp": hyp, **all_measures([ref], [hyp])}
        # single-pair values straight from jiwer.wer/cer on plain strings too
        entry["wer"]["value"] = jiwer.wer(ref, hyp)
        entry["cer"]["value"] = jiwer.cer(ref, hyp)
        entry["mixed"]["value"] = jiwer.wer(mixed_join(ref), mixed_join(hyp))
        pairs.append(entry)
        g = groups.setdefault(lang, ([], []))
        g[0].append(ref)
        g[1].append(hyp)
        all_refs.append(ref)
        all_hyps.append(hyp)

    result = {
        "versions": {
            "python": sys.version.split()[0],
            "jiwer": version("jiwer"),
            "rapidfuzz": version("rapidfuzz"),
            "transformers": version("transformers"),
        },
        "pairs": pairs,
        "aggregate": {
            "all": all_measures(all_refs, all_hyps) if pairs else None,
            "by_language": {lang: all_measures(r, h) for lang, (r, h) in groups.items()},
        },
        "texts": [normalize(t["text"], t.get("language", "en")) for t in request.get("texts", [])],
        "word_pairs": [measure([r], [h], "wer") for r, h in request.get("word_pairs", [])],
    }
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference PIER counts for src/metrics/pier.ts (test/metrics/pier.test.ts).

There is no PIER package on PyPI; the authors' implementation is a jiwer fork on GitHub
(enesyugan/PIER-CodeSwitching-Evaluation, jiwer/process.py: process_pier, get_idsh). This script
re-implements its counting rule independently, on rapidfuzz's Levenshtein.editops as that fork does:
substitutions / deletions whose src_pos is a point-of-interest (POI) index, insertions whose src_pos
is a POI index, plus insertions after the last word when the last word is a POI.

Reads JSON on stdin:
    {"cases": [{"ref": [tok, ...], "langs": [tag, ...], "hyp": [tok, ...], "matrix": tag}, ...],      # normalized tokens
     "texts": [{"ref": str, "word_langs": [tag, ...], "hyp": str, "matrix": tag, "language": str}, ...]}  # optional
and prints {"rapidfuzz": version, "cases": [C, ...], "texts": [C + {"ref_tokens", "ref_langs", "hyp_tokens"}, ...]}
with C = {"S", "D", "I", "H", "poi", "ops"} (ops counts every editop: the WER numerator).
"texts" are normalized as tools/wer_oracle.py does (transformers' Whisper normalizers: English for
English, basic otherwise, by "language"), split on whitespace, and the tags (one per whitespace word
of "ref") carried to the normalized tokens as src/metrics/pier.ts does: each word normalized alone;
when the pieces do not join up to the normalized whole, aligned to it with editops (a replaced piece
gives its tag, a token without a piece takes its left neighbour's, else the right one's).
text_counts() is importable (e.g. for the PyTorch backend's eval records).
"""
import json
import re
import sys
from importlib.metadata import version
from pathlib import Path

from rapidfuzz.distance import Levenshtein


def counts(ref: list[str], langs: list[str], hyp: list[str], matrix: str) -> dict:
    poi = {i for i, lang in enumerate(langs) if lang != matrix}
    n = len(ref)
    ops = Levenshtein.editops(ref, hyp)
    s = sum(1 for op in ops if op.tag == "replace" and op.src_pos in poi)
    d = sum(1 for op in ops if op.tag == "delete" and op.src_pos in poi)
    i = sum(1 for op in ops if op.tag == "insert" and op.src_pos in poi)
    if n - 1 in poi:
        i += sum(1 for op in ops if op.tag == "insert" and op.src_pos >= n)
    return {"S": s, "D": d, "I": i, "H": len(poi) - s - d, "poi": len(poi), "ops": len(ops)}


def tag_tokens(words: list[str], langs: list[str], normalize) -> tuple[list[str], list[str]]:
    """Normalized whitespace tokens of " ".join(words) and one tag each (see the module docstring)."""
    whole = normalize(" ".join(words)).split()
    pieces, piece_langs = [], []
    for w, lang in zip(words, langs, strict=True):
        for t in normalize(w).split():
            pieces.append(t)
            piece_langs.append(lang)
    if pieces == whole:
        return whole, piece_langs
    tags: list = [None] * len(whole)
    for op in Levenshtein.opcodes(pieces, whole):
        if op.tag in ("equal", "replace"):
            for k in range(op.dest_end - op.dest_start):
                tags[op.dest_start + k] = piece_langs[op.src_start + k]
    for k in range(1, len(tags)):
        if tags[k] is None:
            tags[k] = tags[k - 1]
    for k in range(len(tags) - 1, -1, -1):
        if tags[k] is None:
            tags[k] = tags[k + 1] if k + 1 < len(tags) else (langs[0] if langs else "")
    return whole, tags


def text_counts(ref: str, word_langs: list[str], hyp: str, matrix: str, normalize) -> dict:
    words = ref.split()
    toks, tags = tag_tokens(words, word_langs, normalize)
    hyp_toks = normalize(hyp).split()
    base = lambda lang: re.split(r"[-_]", lang.strip().lower())[0]  # noqa: E731
    m = base(matrix)
    c = counts(toks, [m if base(t) == m else "poi" for t in tags], hyp_toks, m)
    return {**c, "ref_tokens": toks, "ref_langs": tags, "hyp_tokens": hyp_toks}


def main() -> None:
    data = json.load(sys.stdin)
    out = [counts(c["ref"], c["langs"], c["hyp"], c["matrix"]) for c in data["cases"]]
    texts = []
    if data.get("texts"):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import wer_oracle as wo

        english = wo.EnglishTextNormalizer(json.loads(wo.SPELLING.read_text(encoding="utf-8")))
        basic = wo.BasicTextNormalizer()
        for t in data["texts"]:
            norm = english if wo.base_language(t.get("language", "en")) in wo.ENGLISH else basic
            texts.append(text_counts(t["ref"], t["word_langs"], t["hyp"], t["matrix"], norm))
    json.dump({"rapidfuzz": version("rapidfuzz"), "cases": out, "texts": texts}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference PIER counts for src/metrics/pier.ts (test/metrics/pier.test.ts).

There is no PIER package on PyPI; the authors' implementation is a jiwer fork on GitHub
(enesyugan/PIER-CodeSwitching-Evaluation, jiwer/process.py: process_pier, get_idsh). This script
re-implements its counting rule independently, on rapidfuzz's Levenshtein.editops as that fork does:
substitutions / deletions whose src_pos is a point-of-interest (POI) index, insertions whose src_pos
is a POI index, plus insertions after the last word when the last word is a POI.

Reads JSON on stdin: {"cases": [{"ref": [tok, ...], "langs": [tag, ...], "hyp": [tok, ...], "matrix": tag}, ...]}
(tokens already normalized) and prints {"rapidfuzz": version, "cases": [{"S", "D", "I", "H", "poi", "ops"}, ...]}
where ops counts every editop (the WER numerator).
"""
import json
import sys
from importlib.metadata import version

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


def main() -> None:
    data = json.load(sys.stdin)
    out = [counts(c["ref"], c["langs"], c["hyp"], c["matrix"]) for c in data["cases"]]
    json.dump({"rapidfuzz": version("rapidfuzz"), "cases": out}, sys.stdout)


if __name__ == "__main__":
    main()

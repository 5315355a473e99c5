"""Uncertainty scores and their evaluation — the Python twin of src/metrics/uncertainty.ts (definitions there;
test/metrics/uncertainty.test.ts checks both on the same cases). Used by tools/blora_train.py for
eval.posteriorSamples on the torch backend.
"""
from __future__ import annotations

import math
import re

from rapidfuzz.distance import Levenshtein

_WS = re.compile(r"\s+")


def _words(text: str) -> list[str]:
    """jiwer's wer_default word split (as wordTokens in src/metrics/wer.ts)."""
    return [w for w in _WS.sub(" ", text).strip().split(" ") if w]


def word_errors(ref: str, hyp: str) -> int:
    """Word edits between two normalized texts (substitutions + deletions + insertions)."""
    return Levenshtein.distance(_words(ref), _words(hyp))


def disagreement(mean: str, samples: list[str], norm) -> float:
    """Mean WER of each sample transcript against the mean transcript (normalized words); norm(text) -> text."""
    if not samples:
        raise ValueError("disagreement: no posterior samples")
    ref = _words(norm(mean))
    total = 0.0
    for s in samples:
        hyp = _words(norm(s))
        errors = Levenshtein.distance(ref, hyp)
        total += errors / len(ref) if ref else (1.0 if hyp else 0.0)
    return total / len(samples)


def mean_entropy(token_entropy: list[float]) -> float:
    return sum(token_entropy) / len(token_entropy) if token_entropy else 0.0


def auroc(scores: list[float], positives: list[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties ½ (average ranks); None when a class is empty."""
    n_pos = sum(1 for p in positives if p)
    n_neg = len(positives) - n_pos
    if not n_pos or not n_neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            rank[order[k]] = (i + j) / 2 + 1
        i = j + 1
    sum_pos = sum(r for r, p in zip(rank, positives) if p)
    return (sum_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def ece(confidence: list[float], correct: list[bool], bins: int = 10) -> float | None:
    """Σ_bins (n_b / N)·|accuracy_b − confidence_b| over equal-width bins (1.0 in the last)."""
    if not confidence:
        return None
    acc = [[0, 0.0, 0] for _ in range(bins)]
    for p, ok in zip(confidence, correct):
        b = acc[min(bins - 1, math.floor(p * bins))]
        b[0] += 1
        b[1] += p
        b[2] += 1 if ok else 0
    n = len(confidence)
    return sum((c / n) * abs(a / c - s / c) for c, s, a in acc if c)


def token_correctness(pieces: list[str], reference: str, norm) -> list[bool | None]:
    """Each generated text token takes the alignment of its hypothesis word (a piece starting with whitespace starts
    a word; words normalized one by one); None for a word the normalizer removes."""
    owner, raw = [], []
    for p in pieces:
        if not raw or p[:1].isspace():
            raw.append("")
        raw[-1] += p
        owner.append(len(raw) - 1)
    span, hyp = [], []
    for w in raw:
        ws = _words(norm(w))
        span.append((len(hyp), len(hyp) + len(ws)))
        hyp += ws
    ref = _words(norm(reference))
    wrong = [False] * len(hyp)
    for op in Levenshtein.editops(ref, hyp):
        if op.tag != "delete":
            wrong[op.dest_pos] = True
    out: list[bool | None] = []
    for o in owner:
        a, b = span[o]
        out.append(None if a == b else not any(wrong[a:b]))
    return out

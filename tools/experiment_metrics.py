"""The experiment's metric definitions — the Python twin of src/metrics/experiment.ts (same names, same edge
cases, same definition texts; test/metrics/experiment.test.ts checks both on the same hand-computed cases in
test/metrics/experiment-cases.json and that the definition texts are identical).

WERs are fractions (0.25 = 25 %). An undefined value is None together with a reason, never NaN.
"""
from __future__ import annotations

import math

SPARSITY_THRESHOLD = 1e-3

# Printed next to every table of results (identical to METRIC_DEFINITIONS in src/metrics/experiment.ts).
METRIC_DEFINITIONS = [
    {"key": "werNew", "name": "WER new",
     "text": "word error rate on the new-domain (code-switched) test set(s) after Whisper's normalizer; mean over the new-domain sets"},
    {"key": "werBase", "name": "WER base",
     "text": "word error rate on the base-domain (monolingual) test set(s); mean over the base-domain sets"},
    {"key": "forgetting", "name": "forgetting F",
     "text": "F = WER_base(adapted) − WER_base(original model), in WER points; > 0 means the adapter made the base domain worse"},
    {"key": "backwardGain", "name": "backward gain",
     "text": "(F_LoRA − F_BLoRA) / F_LoRA: the fraction of LoRA's forgetting that BLoRA avoids; undefined when F_LoRA ≤ 0 (LoRA forgot nothing, so there is nothing to gain back)"},
    {"key": "newDomainDrop", "name": "new-domain drop",
     "text": "(WER_new(BLoRA) − WER_new(LoRA)) / WER_new(LoRA): how much worse BLoRA is than LoRA on the new domain, relative (negative = better); undefined when WER_new(LoRA) = 0"},
    {"key": "sparsity", "name": "sparsity",
     "text": "fraction of elements with |μ| < 1e-3: over all elements of the A factors (μ_A, or LoRA's A), of the B factors, and of ΔW = s·μ_B·μ_A (s = α/r) of every adapted module"},
    {"key": "meanStd", "name": "mean ± std",
     "text": "mean and sample standard deviation (n − 1) over seeds; one seed: no std"},
]


def forgetting(wer_base_adapted: float, wer_base_original: float) -> float:
    return wer_base_adapted - wer_base_original


def backward_gain(f_lora: float, f_blora: float) -> dict:
    """{'value': float} or {'value': None, 'reason': str}."""
    if not f_lora > 0:
        return {"value": None, "reason": f"undefined: F_LoRA = {f_lora:.4g} ≤ 0 (LoRA did not forget)"}
    return {"value": (f_lora - f_blora) / f_lora}


def new_domain_drop(wer_new_blora: float, wer_new_lora: float) -> dict:
    if not wer_new_lora > 0:
        return {"value": None, "reason": f"undefined: WER_new(LoRA) = {wer_new_lora:.4g}"}
    return {"value": (wer_new_blora - wer_new_lora) / wer_new_lora}


def sparsity(values, threshold: float = SPARSITY_THRESHOLD) -> float:
    """Fraction of |v| < threshold (strictly below)."""
    n = len(values)
    if n == 0:
        raise ValueError("sparsity of an empty set of values")
    return sum(1 for v in values if abs(v) < threshold) / n


def delta_w(A, B, r: int, n_in: int, n_out: int, scale: float) -> list[float]:
    """ΔW = s·B·A, row-major [n_out, n_in]; A row-major [r, n_in], B row-major [n_out, r] (float64 sums)."""
    if len(A) != r * n_in or len(B) != n_out * r:
        raise ValueError(f"delta_w: A has {len(A)} values (r·in = {r * n_in}), B {len(B)} (out·r = {n_out * r})")
    out = [0.0] * (n_out * n_in)
    for o in range(n_out):
        for i in range(n_in):
            out[o * n_in + i] = scale * sum(B[o * r + k] * A[k * n_in + i] for k in range(r))
    return out


def adapter_sparsity(modules: list[dict], scale: float, threshold: float = SPARSITY_THRESHOLD) -> dict:
    """modules: [{A, B, r, nIn, nOut}] → fractions over all A elements, all B elements, A and B together, all ΔW."""
    za = na = zb = nb = zd = nd = 0
    for m in modules:
        za += sum(1 for v in m["A"] if abs(v) < threshold); na += len(m["A"])
        zb += sum(1 for v in m["B"] if abs(v) < threshold); nb += len(m["B"])
        dw = delta_w(m["A"], m["B"], m["r"], m["nIn"], m["nOut"], scale)
        zd += sum(1 for v in dw if abs(v) < threshold); nd += len(dw)
    if not na or not nb:
        raise ValueError("adapter_sparsity: no modules")
    return {"A": za / na, "B": zb / nb, "AB": (za + zb) / (na + nb), "deltaW": zd / nd}


def mean_std(xs) -> dict:
    """{'mean', 'std' (sample, n−1; None for n = 1), 'n'}; None values are left out (and counted in 'missing')."""
    vals = [x for x in xs if x is not None]
    missing = len(xs) - len(vals)
    if not vals:
        return {"mean": None, "std": None, "n": 0, "missing": missing}
    m = sum(vals) / len(vals)
    std = math.sqrt(sum((x - m) ** 2 for x in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return {"mean": m, "std": std, "n": len(vals), "missing": missing}


def domain_wer(evals: list[dict], role: str) -> float | None:
    """Mean WER over the eval sets of one role ('new' | 'base'); None when there is none."""
    ws = [e["wer"] for e in evals if e["role"] == role]
    return sum(ws) / len(ws) if ws else None


def evaluate_case(case: dict):
    """Dispatch one hand-computed case of test/metrics/experiment-cases.json."""
    fn, a = case["fn"], case["args"]
    if fn == "forgetting":
        return forgetting(*a)
    if fn == "backwardGain":
        return backward_gain(*a)
    if fn == "newDomainDrop":
        return new_domain_drop(*a)
    if fn == "sparsity":
        return sparsity(*a)
    if fn == "deltaW":
        return delta_w(*a)
    if fn == "adapterSparsity":
        return adapter_sparsity(*a)
    if fn == "meanStd":
        return mean_std(*a)
    if fn == "domainWer":
        return domain_wer(*a)
    raise ValueError(f"unknown fn {fn}")


if __name__ == "__main__":
    import json
    import sys

    req = json.load(sys.stdin)
    out = {"definitions": METRIC_DEFINITIONS, "results": []}
    for c in req["cases"]:
        try:
            out["results"].append({"ok": evaluate_case(c)})
        except ValueError as e:
            out["results"].append({"error": str(e)})
    json.dump(out, sys.stdout, ensure_ascii=False)

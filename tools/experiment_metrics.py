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


# ---------------------------------------------------------------------------------------------- report-side statistics
# (Python only: the report's intervals and its selection; not part of the TypeScript twin, so not in METRIC_DEFINITIONS)

DEV_SUFFIX = "-dev"

DEV_SPLIT_TEXT = ("an eval set (data.eval) whose name ends in \"-dev\" is a dev split, used only to select; every other "
                  "eval set is a test split, and every figure of the tables is computed on the test splits only")

DEV_SELECTION_TEXT = ("selected on dev: among the BLoRA configurations, the one with the lowest mean over seeds of "
                      "WER_new(dev) + F(dev), where WER_new(dev) is the mean WER over the new-role dev sets and "
                      "F(dev) = WER_base(dev, adapted) − WER_base(dev, frozen model) over the base-role dev sets "
                      "(ties: the smaller β); its figures are then reported on the test splits")

BOOTSTRAP_TEXT = ("95 % CI: paired percentile bootstrap over the test utterances — each resample draws the utterances of "
                  "every test set with replacement (seeded), the same draw for the frozen model, LoRA and BLoRA at every "
                  "seed; corpus-level WER (Σ errors / Σ reference words) per set and resample, the metric per seed "
                  "(BLoRA seed s against LoRA seed s), averaged over the seeds within the resample; the interval is the "
                  "2.5th and 97.5th percentiles over the resamples (the point value is the same statistic on the "
                  "original utterances: the per-seed mean)")


def is_dev_split(name: str | None) -> bool:
    """The name convention for dev splits of data.eval: the set's name ends in '-dev' (e.g. 'real-dev', 'cs-dev')."""
    return bool(name) and name.endswith(DEV_SUFFIX)


def paired_bootstrap(sets: list[dict], n_resamples: int = 2000, seed: int = 0, level: float = 0.95,
                     chunk: int = 250) -> dict:
    """Paired percentile bootstrap of the backward gain and the new-domain drop over test utterances.

    sets: one dict per test set, {"name", "role": "new" | "base", "refWords": [n_u], "frozen": [e_u] or None,
    "lora": {seed: [e_u]}, "blora": {seed: [e_u]}} — per utterance u (the same utterances in the same order for
    every model) its reference word count n_u and word errors e_u (S + D + I after the normalizer).

    Definition. Resample b draws, for every set independently (sets in name order), N indices with replacement out
    of the set's N utterances (numpy default_rng(seed)); the SAME indices apply to the frozen model, LoRA and
    BLoRA at every seed (paired). Per set and model: corpus-level WER_b = Σ_i e[idx_i] / Σ_i n[idx_i]; per role the
    mean over its sets (domain_wer). Per seed s (the seeds both LoRA and BLoRA have):
        F_LoRA,s = WER_base,b(LoRA s) − WER_base,b(frozen),  F_BLoRA,s likewise,
        gain_s = backward_gain(F_LoRA,s, F_BLoRA,s),  drop_s = new_domain_drop(WER_new,b(BLoRA s), WER_new,b(LoRA s)),
    and the resample's value is the mean over the seeds where it is defined (none defined: the resample is
    undefined and left out, counted in 'undefined'). The point value is the same statistic on the original
    utterances; the interval is the ((1 − level)/2, (1 + level)/2) percentiles (numpy linear interpolation) over
    the defined resamples.

    Returns {"backwardGain": m, "newDomainDrop": m, "seeds", "utterances": {set: N}, "resamples", "seed", "level"},
    m = {"value", "lo", "hi", "defined", "undefined"} or {"value": None, "reason"} when it cannot be computed.
    """
    import numpy as np

    sets = sorted(sets, key=lambda s: s["name"])
    seeds = sorted(set.intersection(*[set(s["lora"]) & set(s["blora"]) for s in sets])) if sets else []
    out = {"seeds": seeds, "utterances": {s["name"]: len(s["refWords"]) for s in sets}, "resamples": n_resamples,
           "seed": seed, "level": level}
    if not seeds:
        none = {"value": None, "reason": "undefined: no seed with per-utterance errors of both LoRA and BLoRA"}
        return {**out, "backwardGain": none, "newDomainDrop": dict(none)}
    # columns of every set's error matrix: LoRA per seed, BLoRA per seed, then the frozen model (or zeros)
    rng = np.random.default_rng(seed)
    wer = {}  # (role, model, seed) -> list over sets of arrays [1 + n_resamples] (row 0: the original utterances)
    for s in sets:
        n = np.asarray(s["refWords"], dtype=np.float64)
        cols = [s["lora"][k] for k in seeds] + [s["blora"][k] for k in seeds] + [s["frozen"] or [0] * len(n)]
        E = np.asarray(cols, dtype=np.float64).T  # [N, M]
        N = len(n)
        if N == 0 or E.shape[0] != N:
            raise ValueError(f"paired_bootstrap: set {s['name']}: {N} utterances, error columns of {E.shape[0]}")
        rows = [np.ones((1, N))]
        left = n_resamples
        while left > 0:
            c = min(chunk, left)
            idx = rng.integers(0, N, size=(c, N))
            flat = (np.arange(c)[:, None] * N + idx).ravel()
            rows.append(np.bincount(flat, minlength=c * N).reshape(c, N).astype(np.float64))
            left -= c
        C = np.concatenate(rows)  # [1 + B, N] multiplicities; integer-valued, so the sums below are exact
        W = (C @ E) / (C @ n)[:, None]
        for j, k in enumerate(seeds):
            wer.setdefault((s["role"], "lora", k), []).append(W[:, j])
            wer.setdefault((s["role"], "blora", k), []).append(W[:, len(seeds) + j])
        wer.setdefault((s["role"], "frozen", None), []).append(W[:, -1] if s["frozen"] is not None else None)

    def dom(role, model, k):
        ws = wer.get((role, model, k))
        if not ws or any(w is None for w in ws):
            return None
        return np.mean(ws, axis=0)

    def summarize(per_seed, reason):
        if per_seed is None:
            return {"value": None, "reason": reason}
        cnt = (~np.isnan(per_seed)).sum(axis=0)  # per resample: the seeds where the metric is defined
        v = np.where(cnt > 0, np.nansum(per_seed, axis=0) / np.maximum(cnt, 1), np.nan)
        point, res = v[0], v[1:]
        ok = res[~np.isnan(res)]
        if np.isnan(point) or not len(ok):
            return {"value": None, "reason": reason + " (on the original utterances)" if np.isnan(point) else
                    reason + " (in every resample)"}
        q = 100 * (1 - level) / 2
        lo, hi = np.percentile(ok, [q, 100 - q])
        return {"value": float(point), "lo": float(lo), "hi": float(hi), "defined": int(len(ok)),
                "undefined": int(len(res) - len(ok))}

    b0 = dom("base", "frozen", None)
    gains = None
    if b0 is not None and all(dom("base", m, k) is not None for m in ("lora", "blora") for k in seeds):
        fl = np.array([dom("base", "lora", k) - b0 for k in seeds])
        fb = np.array([dom("base", "blora", k) - b0 for k in seeds])
        with np.errstate(divide="ignore", invalid="ignore"):
            gains = np.where(fl > 0, (fl - fb) / fl, np.nan)
    out["backwardGain"] = summarize(gains, "undefined: F_LoRA ≤ 0 in every seed" if gains is not None else
                                    "undefined: no base-role test set with per-utterance errors of the frozen model, LoRA and BLoRA")
    drops = None
    if all(dom("new", m, k) is not None for m in ("lora", "blora") for k in seeds):
        wl = np.array([dom("new", "lora", k) for k in seeds])
        wb = np.array([dom("new", "blora", k) for k in seeds])
        with np.errstate(divide="ignore", invalid="ignore"):
            drops = np.where(wl > 0, (wb - wl) / wl, np.nan)
    out["newDomainDrop"] = summarize(drops, "undefined: WER_new(LoRA) = 0 in every seed" if drops is not None else
                                     "undefined: no new-role test set with per-utterance errors of LoRA and BLoRA")
    return out


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

"""Aggregation, plots and the markdown report of an experiment sweep (called by tools/run_experiment.py).

Backend-agnostic: every number is read from what both backends write — metrics.jsonl (TrainRecord / EvalRecord,
src/train/config.ts) and adapter/adapter_model.safetensors + adapter_config.json (PEFT; BLoRA: the posterior means)
— and every row says which backend produced it. Plots are plain SVG (no plotting package needed).

Selection on dev, figures on test (issue 14 item 3): an eval set of data.eval whose name ends in "-dev" is a dev
split (the name convention, experiment_metrics.is_dev_split; e.g. "real-dev" of tools/real_speech.py); every other
eval set is a test split. Every WER / F / gain / drop of the tables is computed on the test splits only. When the
sweep has dev splits of both roles (new and base), the BLoRA configuration with the lowest mean over seeds of
WER_new(dev) + F(dev) is reported as "selected on dev" (experiment_metrics.DEV_SELECTION_TEXT); without, the
"best" row is best-on-test and says so. The backward gain and the new-domain drop get 95 % intervals from a paired
bootstrap over the test utterances (experiment_metrics.paired_bootstrap) on the per-utterance transcripts
hyps-<set>-step<N>.jsonl the torch backend writes (word errors recomputed with blora_train.normalize_fn and jiwer,
as blora_train.evaluate computes the WER).
"""
from __future__ import annotations

import hashlib
import json
import re
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

import experiment_metrics as em

ROOT = Path(__file__).resolve().parent.parent
HIST_EDGES = [10.0 ** (e / 4) for e in range(-28, 1)]  # |μ| bins: 1e-7 … 1, 4 per decade


# ---------------------------------------------------------------------------------------------- reading runs


def read_jsonl(p: Path) -> list[dict]:
    if not p.exists():
        return []
    return [json.loads(l) for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]


def final_evals(records: list[dict]) -> list[dict]:
    ev = [r for r in records if r.get("kind") == "eval"]
    if not ev:
        return []
    last = max(r["step"] for r in ev)
    return [r for r in ev if r["step"] == last]


def adapter_stats(adapter_dir: Path) -> dict | None:
    """Sparsity of A, B, ΔW and the |μ| histogram from the PEFT export (BLoRA writes the means there)."""
    f = adapter_dir / "adapter_model.safetensors"
    if not f.exists():
        return None
    from safetensors.numpy import load_file

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = cfg["lora_alpha"] / cfg["r"]
    t = load_file(str(f))
    names = sorted({k.rsplit(".lora_", 1)[0] for k in t})
    thr = em.SPARSITY_THRESHOLD
    za = na = zb = nb = zd = nd = 0
    absvals = []
    for n in names:
        A = t[f"{n}.lora_A.weight"].astype(np.float64)
        B = t[f"{n}.lora_B.weight"].astype(np.float64)
        dw = scale * (B @ A)
        za += int((np.abs(A) < thr).sum()); na += A.size
        zb += int((np.abs(B) < thr).sum()); nb += B.size
        zd += int((np.abs(dw) < thr).sum()); nd += dw.size
        absvals += [np.abs(A).ravel(), np.abs(B).ravel()]
    allv = np.concatenate(absvals)
    idx = np.searchsorted(np.array(HIST_EDGES), allv, side="right")
    counts = np.bincount(idx, minlength=len(HIST_EDGES) + 1)
    return {"A": za / na, "B": zb / nb, "AB": (za + zb) / (na + nb), "deltaW": zd / nd, "modules": len(names),
            "hist": {"edges": HIST_EDGES, "counts": counts.tolist(), "total": int(allv.size)}}


ADAPTER_STATS = "adapter-stats.json"


def save_adapter_stats(d: Path) -> dict | None:
    """adapter_stats of run d written to d/adapter-stats.json: a sweep kept in git (its "out" in the repo, the
    adapter weights ignored) still reports sparsity and the |μ| histogram."""
    st = adapter_stats(d / "adapter")
    if st is not None:
        (d / ADAPTER_STATS).write_text(json.dumps(st) + "\n")
    return st


def stored_adapter_stats(d: Path) -> dict | None:
    f = d / ADAPTER_STATS
    return json.loads(f.read_text()) if f.exists() else None


def data_digest_lines(out: Path, summaries: list[dict]) -> list[str]:
    """The report's check that every run read the same data: result.json dataDigests (blora_train.data_digest: ids,
    texts and audio bytes per set) of the frozen-model evaluation and of every run. The neural-voice half of corpus v2
    is not byte-identical across CPUs, so a sweep resumed on another machine says here which sets differ."""
    seen: dict[str, dict[str, list[str]]] = {}
    missing = []
    for rid, d in [("base", out / "base")] + [(s["id"], out / "runs" / s["id"]) for s in summaries]:
        f = d / "result.json"
        dg = json.loads(f.read_text()).get("dataDigests") if f.exists() else None
        if not dg:
            missing.append(rid)
            continue
        for name, h in dg.items():
            seen.setdefault(name, {}).setdefault(h, []).append(rid)
    if not seen:
        return []
    differ = {n: v for n, v in seen.items() if len(v) > 1}
    text = ("Data: every run that recorded it read the same data (result.json dataDigests: ids, texts and audio bytes "
            "per set)" if not differ else "**Data differ between runs** (result.json dataDigests; e.g. the neural-voice "
            "clips regenerated on another CPU): " + "; ".join(f"{n}: " + " vs ".join(f"{h} ({', '.join(r)})" for h, r in v.items())
                                                          for n, v in sorted(differ.items())))
    if missing:
        text += f"; not recorded by {', '.join(missing)} (made before the digest existed)"
    return ["", text + "."]


def test_evals(evals: list[dict]) -> list[dict]:
    return [e for e in evals if not em.is_dev_split(e.get("set"))]


def dev_evals(evals: list[dict]) -> list[dict]:
    return [e for e in evals if em.is_dev_split(e.get("set"))]


_NORM = None
_UTT_CACHE: dict[tuple, dict] = {}


def utterance_errors(p: Path) -> dict | None:
    """Per utterance of one hyps-<set>-step<N>.jsonl: word errors (S + D + I) and reference words after the
    project's normalizer (blora_train.normalize_fn, jiwer), utterances whose normalized reference is empty left out
    — as blora_train.evaluate, so Σ errors / Σ words is the set's WER. None when the file does not exist."""
    global _NORM
    if not p.exists():
        return None
    st = p.stat()
    ck = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    if ck in _UTT_CACHE:  # LoRA's transcripts serve every BLoRA configuration
        return _UTT_CACHE[ck]
    import jiwer

    import blora_train

    if _NORM is None:
        _NORM = blora_train.normalize_fn()
    ids, errs, words, seen = [], [], [], {}
    for r in read_jsonl(p):
        ref = _NORM(r["reference"], r["language"])
        if not ref.strip():
            continue
        hyp = _NORM(r.get("hypothesis") or "", r["language"])
        k = seen.get(r["id"], 0)
        seen[r["id"]] = k + 1
        ids.append(r["id"] if k == 0 else f"{r['id']}#{k}")
        if hyp.strip():
            o = jiwer.process_words(ref, hyp)
            errs.append(o.substitutions + o.deletions + o.insertions)
            words.append(sum(len(x) for x in o.references))
        else:
            words.append(len(ref.split()))
            errs.append(words[-1])
    _UTT_CACHE[ck] = {"ids": ids, "errors": errs, "refWords": words}
    return _UTT_CACHE[ck]


def summarize_run(run: dict, d: Path, backend_default: str) -> dict | None:
    recs = read_jsonl(d / "metrics.jsonl")
    if not (d / "result.json").exists() or not recs:
        return None
    train = [r for r in recs if r.get("kind") == "train"]
    evals = final_evals(recs)
    backend = (evals or train or [{}])[0].get("backend", backend_default)
    cfg = json.loads((d / "experiment.json").read_text()) if (d / "experiment.json").exists() else run["config"]
    st = adapter_stats(d / "adapter") or stored_adapter_stats(d)
    unc = (json.loads((d / "result.json").read_text()).get("uncertainty") or {}).get("byRole") or {}
    return {
        "id": run["id"], "key": run["key"], "method": run["method"], "seed": run["seed"], "backend": backend,
        "beta": cfg.get("adapter", {}).get("beta"), "sigmaPrior": cfg.get("adapter", {}).get("sigmaPrior"),
        "bayesianAOnly": cfg.get("adapter", {}).get("bayesianAOnly"),
        "evals": [{k: e[k] for k in ("set", "role", "wer", "cer", "pier", "pierWords", "utterances", "step") if k in e} for e in evals],
        # figures on the test splits; the dev splits ("-dev" names) only for the selection
        "werNew": em.domain_wer(test_evals(evals), "new"), "werBase": em.domain_wer(test_evals(evals), "base"),
        "werNewDev": em.domain_wer(dev_evals(evals), "new"), "werBaseDev": em.domain_wer(dev_evals(evals), "base"),
        "pierNew": pooled_pier(test_evals(evals), "new"),
        # WER of each test set (e.g. real-test and base-test: real and synthetic base-domain speech apart)
        "werBySet": {e["set"]: e["wer"] for e in test_evals(evals)},
        # eval.posteriorSamples (result.json uncertainty.byRole, test splits only): AUROC of "has an error", token ECE
        "uncertainty": {role: {k: u.get(k) for k in ("aurocDisagreement", "aurocEntropy", "ece", "utterances")}
                        for role, u in unc.items()},
        "ceFinal": train[-1]["ce"] if train else None, "kl": train[-1]["kl"] if train else None,
        "trainSeconds": train[-1]["elapsedS"] if train else None, "steps": len(train),
        "curve": {"step": [r["step"] for r in train], "ce": [r["ce"] for r in train], "kl": [r["kl"] for r in train]},
        "sparsity": {k: st[k] for k in ("A", "B", "AB", "deltaW")} if st else None,
        "hist": st["hist"] if st else None,
    }


# ---------------------------------------------------------------------------------------------- SVG


COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Plot:
    def __init__(self, title: str, xlabel: str, ylabel: str, xlog=False, ylog=False, w=760, h=420):
        self.title, self.xlabel, self.ylabel, self.xlog, self.ylog, self.w, self.h = title, xlabel, ylabel, xlog, ylog, w, h
        self.items: list[tuple] = []
        self.vlines: list[tuple] = []
        self.ml, self.mr, self.mt, self.mb = 70, 220, 40, 50

    def line(self, xs, ys, label, color, dash=None, width=1.8):
        self.items.append(("line", list(xs), list(ys), label, color, dash, width))

    def points(self, xs, ys, label, color, xerr=None, yerr=None, marker="o", annotate=None):
        self.items.append(("pts", list(xs), list(ys), label, color, xerr, yerr, marker, annotate))

    def vline(self, x, label, color="#555"):
        self.vlines.append((x, label, color))

    def _tr(self, v, log):
        return math.log10(v) if log else v

    def render(self) -> str:
        xs, ys = [], []
        for it in self.items:
            if it[0] == "line":
                xs += it[1]; ys += it[2]
            else:
                xe = it[5] or [0] * len(it[1]); ye = it[6] or [0] * len(it[2])
                xs += [x - e for x, e in zip(it[1], xe)] + [x + e for x, e in zip(it[1], xe)]
                ys += [y - e for y, e in zip(it[2], ye)] + [y + e for y, e in zip(it[2], ye)]
        xs += [v[0] for v in self.vlines]
        pts = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
               and (not self.xlog or x > 0) and (not self.ylog or y > 0)]
        tx = [self._tr(x, self.xlog) for x, _ in pts] or [0, 1]
        ty = [self._tr(y, self.ylog) for _, y in pts] or [0, 1]
        x0, x1, y0, y1 = min(tx), max(tx), min(ty), max(ty)
        px, py = (x1 - x0) * 0.06 or 0.5, (y1 - y0) * 0.08 or 0.5
        x0, x1, y0, y1 = x0 - px, x1 + px, y0 - py, y1 + py
        W, H = self.w - self.ml - self.mr, self.h - self.mt - self.mb
        X = lambda v: self.ml + (self._tr(v, self.xlog) - x0) / (x1 - x0) * W  # noqa: E731
        Y = lambda v: self.mt + H - (self._tr(v, self.ylog) - y0) / (y1 - y0) * H  # noqa: E731
        o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{self.w}" height="{self.h}" fill="white"/>',
             f'<text x="{self.ml + W / 2}" y="22" text-anchor="middle" font-size="14">{esc(self.title)}</text>',
             f'<rect x="{self.ml}" y="{self.mt}" width="{W}" height="{H}" fill="none" stroke="#333"/>']
        for lo, hi, log, horiz in ((x0, x1, self.xlog, True), (y0, y1, self.ylog, False)):
            ticks = [t for t in range(math.ceil(lo), math.floor(hi) + 1)] if log else nice_ticks(lo, hi)
            for t in ticks:
                v = 10 ** t if log else t
                lab = (f"1e{t}" if log else f"{t:g}")
                if horiz:
                    xx = X(v)
                    o.append(f'<line x1="{xx:.1f}" y1="{self.mt}" x2="{xx:.1f}" y2="{self.mt + H}" stroke="#eee"/>')
                    o.append(f'<text x="{xx:.1f}" y="{self.mt + H + 16}" text-anchor="middle">{lab}</text>')
                else:
                    yy = Y(v)
                    o.append(f'<line x1="{self.ml}" y1="{yy:.1f}" x2="{self.ml + W}" y2="{yy:.1f}" stroke="#eee"/>')
                    o.append(f'<text x="{self.ml - 6}" y="{yy + 4:.1f}" text-anchor="end">{lab}</text>')
        o.append(f'<text x="{self.ml + W / 2}" y="{self.h - 10}" text-anchor="middle">{esc(self.xlabel)}</text>')
        o.append(f'<text transform="translate(16,{self.mt + H / 2}) rotate(-90)" text-anchor="middle">{esc(self.ylabel)}</text>')
        for x, label, color in self.vlines:
            o.append(f'<line x1="{X(x):.1f}" y1="{self.mt}" x2="{X(x):.1f}" y2="{self.mt + H}" stroke="{color}" stroke-dasharray="4 3"/>')
            o.append(f'<text x="{X(x) + 4:.1f}" y="{self.mt + 14}" fill="{color}">{esc(label)}</text>')
        legend = []
        for it in self.items:
            if it[0] == "line":
                _, lx, ly, label, color, dash, width = it
                seg = [(X(a), Y(b)) for a, b in zip(lx, ly) if a is not None and b is not None and (not self.ylog or b > 0)]
                if seg:
                    d = " ".join(f"{a:.1f},{b:.1f}" for a, b in seg)
                    da = f' stroke-dasharray="{dash}"' if dash else ""
                    o.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{width}"{da}/>')
                legend.append((label, color, "line", dash))
            else:
                _, lx, ly, label, color, xerr, yerr, marker, ann = it
                for j, (a, b) in enumerate(zip(lx, ly)):
                    if a is None or b is None:
                        continue
                    if xerr and xerr[j]:
                        o.append(f'<line x1="{X(a - xerr[j]):.1f}" y1="{Y(b):.1f}" x2="{X(a + xerr[j]):.1f}" y2="{Y(b):.1f}" stroke="{color}"/>')
                    if yerr and yerr[j]:
                        o.append(f'<line x1="{X(a):.1f}" y1="{Y(b - yerr[j]):.1f}" x2="{X(a):.1f}" y2="{Y(b + yerr[j]):.1f}" stroke="{color}"/>')
                    if marker == "s":
                        o.append(f'<rect x="{X(a) - 5:.1f}" y="{Y(b) - 5:.1f}" width="10" height="10" fill="{color}"/>')
                    else:
                        o.append(f'<circle cx="{X(a):.1f}" cy="{Y(b):.1f}" r="5" fill="{color}"/>')
                    if ann:
                        o.append(f'<text x="{X(a) + 7:.1f}" y="{Y(b) - 7:.1f}" fill="{color}" font-size="11">{esc(ann[j])}</text>')
                legend.append((label, color, marker, None))
        lx0, ly0 = self.ml + W + 12, self.mt + 8
        for i, (label, color, kind, dash) in enumerate(legend):
            yy = ly0 + i * 18
            if kind == "line":
                da = f' stroke-dasharray="{dash}"' if dash else ""
                o.append(f'<line x1="{lx0}" y1="{yy}" x2="{lx0 + 20}" y2="{yy}" stroke="{color}" stroke-width="2"{da}/>')
            elif kind == "s":
                o.append(f'<rect x="{lx0 + 5}" y="{yy - 5}" width="10" height="10" fill="{color}"/>')
            else:
                o.append(f'<circle cx="{lx0 + 10}" cy="{yy}" r="5" fill="{color}"/>')
            o.append(f'<text x="{lx0 + 26}" y="{yy + 4}">{esc(label)}</text>')
        o.append("</svg>")
        return "\n".join(o) + "\n"


# ---------------------------------------------------------------------------------------------- aggregation


def label_of(key: str) -> str:
    if key == "lora":
        return "LoRA"
    parts = re.split(r"-(?=[a-z])", key)[1:]  # not inside an exponent: blora-b1e-05-sp0.01
    lab = []
    for p in parts:
        if p == "aonly":
            lab.append("A only")
        elif p.startswith("b") and p[1:2].isdigit():
            lab.append(f"β {p[1:]}")
        elif p.startswith("sp"):
            lab.append(f"σp {p[2:]}")
        else:
            lab.append(p)
    return "BLoRA " + ", ".join(lab)


def aggregate(summaries: list[dict], base: dict) -> dict:
    """Per configuration: mean ± std over seeds of every metric; gain/drop against LoRA of the same seed."""
    by_key: dict[str, list[dict]] = {}
    for s in summaries:
        by_key.setdefault(s["key"], []).append(s)
    lora = {s["seed"]: s for s in by_key.get("lora", [])}
    wb0 = base.get("werBase")
    out = {}
    for key, runs in by_key.items():
        runs.sort(key=lambda s: s["seed"])
        F = [em.forgetting(s["werBase"], wb0) if s["werBase"] is not None and wb0 is not None else None for s in runs]
        wbd0 = base.get("werBaseDev")
        Fd = [em.forgetting(s["werBaseDev"], wbd0) if s.get("werBaseDev") is not None and wbd0 is not None else None
              for s in runs]
        dev_score = [s["werNewDev"] + f if f is not None and s.get("werNewDev") is not None else None
                     for s, f in zip(runs, Fd)]
        gains, drops, reasons = [], [], []
        for s, f in zip(runs, F):
            l = lora.get(s["seed"])
            if s["method"] == "lora" or l is None or f is None:
                continue
            g = em.backward_gain(em.forgetting(l["werBase"], wb0), f)
            d = em.new_domain_drop(s["werNew"], l["werNew"])
            gains.append(g["value"]); drops.append(d["value"])
            reasons += [x["reason"] for x in (g, d) if x["value"] is None]
        agg = {
            "key": key, "label": label_of(key), "method": runs[0]["method"], "seeds": [s["seed"] for s in runs],
            "backends": sorted({s["backend"] for s in runs}),
            "werNew": em.mean_std([s["werNew"] for s in runs]), "werBase": em.mean_std([s["werBase"] for s in runs]),
            "forgetting": em.mean_std(F),
            "werNewDev": em.mean_std([s.get("werNewDev") for s in runs]),
            "werBaseDev": em.mean_std([s.get("werBaseDev") for s in runs]),
            "forgettingDev": em.mean_std(Fd), "devScore": em.mean_std(dev_score),
            "pierNew": em.mean_std([s.get("pierNew") for s in runs]),
            "werBySet": {n: em.mean_std([s.get("werBySet", {}).get(n) for s in runs])
                         for n in dict.fromkeys(n for s in runs for n in s.get("werBySet", {}))},
            "uncertainty": {role: {k: em.mean_std([(s.get("uncertainty") or {}).get(role, {}).get(k) for s in runs])
                                   for k in ("aurocDisagreement", "aurocEntropy", "ece")}
                            for role in ("new", "base") if any(role in (s.get("uncertainty") or {}) for s in runs)},
            "gainPaired": em.mean_std(gains) if gains else None, "dropPaired": em.mean_std(drops) if drops else None,
            "undefinedReasons": reasons,
            "sparsityA": em.mean_std([s["sparsity"]["A"] if s["sparsity"] else None for s in runs]),
            "sparsityB": em.mean_std([s["sparsity"]["B"] if s["sparsity"] else None for s in runs]),
            "sparsityAB": em.mean_std([s["sparsity"]["AB"] if s["sparsity"] else None for s in runs]),
            "sparsityDW": em.mean_std([s["sparsity"]["deltaW"] if s["sparsity"] else None for s in runs]),
            "kl": em.mean_std([s["kl"] for s in runs]), "ce": em.mean_std([s["ceFinal"] for s in runs]),
            "trainSeconds": em.mean_std([s["trainSeconds"] for s in runs]),
            "beta": runs[0]["beta"], "sigmaPrior": runs[0]["sigmaPrior"],
        }
        out[key] = agg
    L = out.get("lora")
    for key, a in out.items():
        if a["method"] == "lora" or not L or L["forgetting"]["mean"] is None:
            a["gainOfMeans"] = None
            a["dropOfMeans"] = None
            continue
        a["gainOfMeans"] = em.backward_gain(L["forgetting"]["mean"], a["forgetting"]["mean"]) \
            if a["forgetting"]["mean"] is not None else None
        a["dropOfMeans"] = em.new_domain_drop(a["werNew"]["mean"], L["werNew"]["mean"]) \
            if a["werNew"]["mean"] is not None and L["werNew"]["mean"] is not None else None
    return out


def pct(ms, digits=1, signed=False) -> str:
    if ms is None or ms["mean"] is None:
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    s = f.format(100 * ms["mean"])
    if ms["std"] is not None:
        s += f" ± {100 * ms['std']:.{digits}f}"
    if ms.get("missing"):
        s += f" ({ms['missing']} undef.)"
    return s


def pct_u(ms) -> str:
    """Signed percent with its unit, or n/a."""
    v = pct(ms, signed=True)
    return v if v == "n/a" else v + " %"


def num(ms, fmtstr="{:.3g}") -> str:
    if ms is None or ms["mean"] is None:
        return "n/a"
    s = fmtstr.format(ms["mean"])
    if ms["std"] is not None:
        s += " ± " + fmtstr.format(ms["std"])
    return s


def unc_cell(a: dict, role: str) -> str:
    """AUROC of "has an error": BLoRA's posterior disagreement (its token entropy in parentheses); LoRA's entropy."""
    u = (a.get("uncertainty") or {}).get(role)
    if not u:
        return "n/a"
    ent = num(u["aurocEntropy"], "{:.2f}")
    if u["aurocDisagreement"]["mean"] is None:
        return f"{ent} (entropy)"
    return f"{num(u['aurocDisagreement'], '{:.2f}')} ({ent})"


def unc_cells(a: dict) -> str:
    """The AUROC and ECE cells of a table row, new domain then base (eval.posteriorSamples)."""
    return "".join(f" {unc_cell(a, role)} | {num(a.get('uncertainty', {}).get(role, {}).get('ece'), '{:.3f}')} |"
                   for role in ("new", "base"))


def maybe_pct(m) -> str:
    if m is None:
        return "—"
    if m["value"] is None:
        return "undefined"
    return f"{100 * m['value']:+.1f} %"


# ---------------------------------------------------------------------------------------------- report


def pooled_pier(evals: list[dict], role: str) -> float | None:
    """PIER (src/metrics/pier.ts) of the eval sets of one role, pooled over their embedded-language words;
    None when no record of that role carries it (eval sets without per-word language tags)."""
    rs = [e for e in evals if e["role"] == role and e.get("pierWords")]
    n = sum(e["pierWords"] for e in rs)
    return sum(e["pier"] * e["pierWords"] for e in rs) / n if n else None


def corpus_info(path: str) -> dict:
    p = Path(path)
    for c in (p, p.parent, p.parent.parent):
        if (c / "corpus.json").exists():
            j = json.loads((c / "corpus.json").read_text())
            return {"dir": str(c), "version": j.get("version"), "size": j.get("size"), "seed": j.get("seed"),
                    "fingerprint": j.get("fingerprint")}
    return {"dir": str(p)}


def model_info(model_dir: Path) -> dict:
    meta = model_dir / "blora-model.json"
    info = {"dir": str(model_dir)}
    if meta.exists():
        info["blora-model.json sha256"] = hashlib.sha256(meta.read_bytes()).hexdigest()[:16]
        try:
            j = json.loads(meta.read_text())
            for k in ("source", "name", "model", "package"):
                if k in j:
                    info[k] = j[k] if isinstance(j[k], str) else json.dumps(j[k])[:120]
        except json.JSONDecodeError:
            pass
    return info


def machine_info() -> str:
    from blora_train import cpu_model  # the CPU line each run's result.json records too

    cpu = cpu_model()
    mem = ""
    try:
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu}), {mem}"


def rel(p: Path, start: Path) -> str:
    return os.path.relpath(p, start)


BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def bootstrap_config(key: str, summaries: list[dict], out: Path, base_evals: list[dict],
                     n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """em.paired_bootstrap of configuration `key` against LoRA (seed s vs seed s) on the test splits, from the
    hyps-<set>-step<N>.jsonl of the runs (final eval step) and of the frozen model (out/base). Utterances are
    matched by id; a run without the file of a set is left out of that set (and so of the pairing)."""
    lora = {s["seed"]: s for s in summaries if s["key"] == "lora"}
    conf = {s["seed"]: s for s in summaries if s["key"] == key}
    seeds = sorted(set(lora) & set(conf))
    base_step = {e["set"]: e["step"] for e in base_evals}
    names = []
    for k in seeds:
        for e in test_evals(lora[k]["evals"]):
            if (e["set"], e["role"]) not in names:
                names.append((e["set"], e["role"]))
    sets, missing, mismatch = [], [], []

    def load(d: Path, name: str, step) -> dict | None:
        f = d / f"hyps-{name}-step{step}.jsonl"
        u = utterance_errors(f)
        if u is None:
            missing.append(rel(f, out))
        return u

    for name, role in names:
        ref = None
        per = {"lora": {}, "blora": {}}
        for k in seeds:
            for model, summ in (("lora", lora[k]), ("blora", conf[k])):
                ev = [e for e in summ["evals"] if e["set"] == name]
                u = load(out / "runs" / summ["id"], name, ev[0]["step"]) if ev else None
                if u is None:
                    continue
                if ref is None:
                    ref = u
                pos = {i: j for j, i in enumerate(u["ids"])}
                if set(pos) != set(ref["ids"]) or any(u["refWords"][pos[i]] != w for i, w in zip(ref["ids"], ref["refWords"])):
                    mismatch.append(f"{summ['id']}/{name}")
                    continue
                per[model][k] = [u["errors"][pos[i]] for i in ref["ids"]]
        if ref is None:
            continue
        frozen = None
        if name in base_step:
            u = load(out / "base", name, base_step[name])
            if u is not None:
                pos = {i: j for j, i in enumerate(u["ids"])}
                if set(pos) == set(ref["ids"]):
                    frozen = [u["errors"][pos[i]] for i in ref["ids"]]
                else:
                    mismatch.append(f"base/{name}")
        sets.append({"name": name, "role": role, "refWords": ref["refWords"], "frozen": frozen, **per})
    if not sets:
        none = {"value": None, "reason": "no per-utterance transcripts (hyps-<set>-step<N>.jsonl) of the test sets"}
        res = {"backwardGain": none, "newDomainDrop": dict(none), "seeds": [], "utterances": {},
               "resamples": n_resamples, "seed": seed}
    else:
        res = em.paired_bootstrap(sets, n_resamples=n_resamples, seed=seed)
    res["missing"] = missing
    res["mismatch"] = mismatch
    return res


def ci(m: dict | None, unit: str = "") -> str:
    """' [lo, hi]' of a bootstrap result in percent, '' without one."""
    if not m:
        return ""
    if m.get("value") is None:
        return " [CI n/a]"
    return f" [{100 * m['lo']:+.1f}, {100 * m['hi']:+.1f}]{unit}"


def report(sweep: dict, sweep_path: Path, out: Path, runs: list[dict], backend: str, md_path: Path | None,
           wall_seconds: float | None = None) -> dict:
    summ_dir = out / "summary"
    summ_dir.mkdir(parents=True, exist_ok=True)
    summaries = []
    for r in runs:
        s = summarize_run(r, out / "runs" / r["id"], backend)
        if s is None:
            continue
        (summ_dir / f"{r['id']}.json").write_text(json.dumps(s, indent=1) + "\n")
        summaries.append(s)
    base_recs = final_evals(read_jsonl(out / "base" / "metrics.jsonl"))
    base = {"evals": base_recs, "werNew": em.domain_wer(test_evals(base_recs), "new"),
            "werBase": em.domain_wer(test_evals(base_recs), "base"),
            "werNewDev": em.domain_wer(dev_evals(base_recs), "new"), "werBaseDev": em.domain_wer(dev_evals(base_recs), "base")}
    base_result = json.loads((out / "base" / "result.json").read_text()) if (out / "base" / "result.json").exists() else {}
    agg = aggregate(summaries, base)
    blora_keys = [k for k, a in agg.items() if a["method"] == "blora" and a["werNew"]["mean"] is not None
                  and a["werBase"]["mean"] is not None]
    best = min(blora_keys, key=lambda k: ((agg[k]["werNew"]["mean"] + agg[k]["werBase"]["mean"]) / 2, agg[k]["beta"] or 0)) \
        if blora_keys else None
    # intervals: paired bootstrap over the test utterances, every BLoRA configuration against LoRA
    for k, a in agg.items():
        a["bootstrap"] = bootstrap_config(k, summaries, out, base_recs) if a["method"] == "blora" and "lora" in agg else None
    # selection on dev: dev splits ("-dev" names) of both roles, the frozen model evaluated on the base-role ones
    run_evals = [e for s in summaries for e in s["evals"]]
    dev_sets = sorted({(e["set"], e["role"]) for e in dev_evals(run_evals + base_recs)})
    test_sets = sorted({(e["set"], e["role"]) for e in test_evals(run_evals + base_recs)})
    has_dev = {r for _, r in dev_sets} >= {"new", "base"} and base["werBaseDev"] is not None
    dev_keys = [k for k in blora_keys if agg[k]["devScore"]["mean"] is not None] if has_dev else []
    selected = min(dev_keys, key=lambda k: (agg[k]["devScore"]["mean"], agg[k]["beta"] or 0)) if dev_keys else None
    nodev = "no dev split" if not dev_sets else \
        f"no dev split of both roles with the frozen model on them (dev sets: {', '.join(n for n, _ in dev_sets)})"
    selection = {
        "split": "dev" if selected else None, "selected": selected, "bestOnTest": best,
        "criterion": em.DEV_SELECTION_TEXT if selected else
        f"{nodev}: best-on-test, not a fair selection (best = lowest mean of WER new and WER base on the test sets)",
        "devSets": [n for n, _ in dev_sets], "testSets": [n for n, _ in test_sets],
        "convention": em.DEV_SPLIT_TEXT,
    }
    result = {"sweep": sweep["name"], "base": base, "configs": agg, "best": best, "selection": selection,
              "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "level": 0.95,
                            "definition": em.BOOTSTRAP_TEXT},
              "runs": len(summaries), "expected": len(runs)}
    (out / "aggregate.json").write_text(json.dumps(result, indent=1) + "\n")

    # sanity of the benchmark: the frozen model must be clearly worse on the code-switched sets
    sanity = None
    if base["werNew"] is not None and base["werBase"] is not None:
        ok = base["werNew"] >= base["werBase"] + 0.10
        sanity = {"werNew": base["werNew"], "werBase": base["werBase"], "ok": ok}
        print(f"sanity: frozen model WER code-switched {100 * base['werNew']:.1f} % vs base {100 * base['werBase']:.1f} % → "
              f"{'clearly worse on code-switched (≥ 10 points): OK' if ok else 'NOT clearly worse: the benchmark has little to adapt'}",
              flush=True)
    if md_path is None:
        return result

    md_path = md_path if md_path.is_absolute() else ROOT / md_path
    img_dir = Path((sweep.get("report") or {}).get("img", "docs/img"))
    img_dir = img_dir if img_dir.is_absolute() else ROOT / img_dir
    img_dir.mkdir(parents=True, exist_ok=True)
    prefix = (sweep.get("report") or {}).get("prefix", sweep["name"])
    keys = sorted(agg, key=lambda k: (agg[k]["method"] != "lora", agg[k]["sigmaPrior"] or 0, agg[k]["beta"] or 0, k))
    color = {k: COLORS[i % len(COLORS)] for i, k in enumerate(keys)}
    backends = sorted({b for a in agg.values() for b in a["backends"]})

    # plot 1: trade-off
    p = Plot(f"New domain vs base domain ({', '.join(backends)} backend)", "WER base-domain test (%)",
             "WER code-switched test (%)")
    if base["werNew"] is not None:
        p.points([100 * base["werBase"]], [100 * base["werNew"]], "frozen Whisper base", "#000", marker="s", annotate=["frozen"])
    for k in keys:
        a = agg[k]
        if a["werNew"]["mean"] is None or a["werBase"]["mean"] is None:
            continue
        p.points([100 * a["werBase"]["mean"]], [100 * a["werNew"]["mean"]], a["label"], color[k],
                 xerr=[100 * (a["werBase"]["std"] or 0)], yerr=[100 * (a["werNew"]["std"] or 0)])
    (img_dir / f"{prefix}-tradeoff.svg").write_text(p.render())

    # plot 2: |μ| histogram, LoRA vs BLoRA (all seeds pooled)
    p = Plot("|μ| of all A and B elements (seeds pooled)", "|μ|", "fraction of elements per bin", xlog=True)
    for k in keys:
        hs = [s["hist"] for s in summaries if s["key"] == k and s["hist"]]
        if not hs:
            continue
        counts = np.sum([h["counts"] for h in hs], axis=0)
        tot = counts.sum()
        edges = hs[0]["edges"]
        centers = [math.sqrt(edges[i - 1] * edges[i]) for i in range(1, len(edges))]
        ys = [c / tot for c in counts[1:len(edges)]]
        p.line(centers, ys, agg[k]["label"], color[k], dash=None if k == "lora" or k == (selected or best) else "5 3",
               width=2.6 if k in ("lora", selected or best) else 1.4)
    p.vline(em.SPARSITY_THRESHOLD, "1e-3")
    (img_dir / f"{prefix}-mu-hist.svg").write_text(p.render())

    # plot 3: learning curves (mean over seeds)
    def mean_curve(k, field):
        cs = [s["curve"] for s in summaries if s["key"] == k and s["curve"]["step"]]
        if not cs:
            return [], []
        n = min(len(c["step"]) for c in cs)
        return cs[0]["step"][:n], [float(np.mean([c[field][i] for c in cs])) for i in range(n)]

    p = Plot("Training cross-entropy (mean over seeds)", "optimizer step", "CE (nats/token)")
    for k in keys:
        xs, ys = mean_curve(k, "ce")
        if xs:
            p.line(xs, ys, agg[k]["label"], color[k])
    (img_dir / f"{prefix}-ce.svg").write_text(p.render())
    p = Plot("KL(q ‖ prior), Σ of per-factor means (mean over seeds)", "optimizer step", "KL", ylog=True)
    for k in keys:
        if agg[k]["method"] != "blora":
            continue
        xs, ys = mean_curve(k, "kl")
        if xs:
            p.line(xs, ys, agg[k]["label"], color[k])
    (img_dir / f"{prefix}-kl.svg").write_text(p.render())

    # markdown
    cfg0 = sweep.get("base", {})
    train_path = cfg0.get("data", {}).get("train", "")
    corp = corpus_info(train_path)
    model_dir = Path(cfg0.get("model") or (Path(os.environ.get("BLORA_CACHE", Path.home() / ".cache" / "blora-studio")) / "models" / "whisper-base"))
    mi = model_info(model_dir)
    run_secs = [json.loads((out / "runs" / s["id"] / "result.json").read_text()).get("seconds") for s in summaries]
    run_secs = [x for x in run_secs if x]
    versions = base_result.get("versions", {})
    machine = base_result.get("machine", {})
    mdir = md_path.parent
    L = agg.get("lora")
    B = agg.get(best) if best else None
    S = agg.get(selected) if selected else None
    lines = [
        f"# Results: LoRA vs BLoRA on the code-switching benchmark (`{sweep['name']}`)",
        "",
        "<!-- generated by tools/run_experiment.py (tools/experiment_report.py); edit the reading in "
        f"{(sweep.get('report') or {}).get('reading', 'the sweep file’s report.reading')} -->",
        "",
        f"{sweep.get('description', '')}",
        "",
        "## How to reproduce",
        "",
        "```sh",
        f"npm run experiment -- --config {rel(sweep_path.resolve(), ROOT)}" + (f" --backend {backend}" if backend != sweep.get('backend', 'torch') else ""),
        "```",
        "",
        f"Runs are resumable (a run whose `result.json` exists is skipped) and go to `{out}`; each run folder holds "
        "`experiment.json`, `metrics.jsonl`, `result.json`, `adapter/` (PEFT) and the transcripts; `summary/<run>.json` is "
        "the per-run JSON this report is built from, `aggregate.json` the table's numbers.",
        "",
        f"- **Backend**: {', '.join(backends) or backend} (every row below names the backend that produced it; the frozen-model "
        f"evaluation is torch).",
        f"- **Model**: `{mi.get('dir')}`" + (f", blora-model.json sha256 `{mi['blora-model.json sha256']}`" if 'blora-model.json sha256' in mi else "")
        + " (multilingual Whisper base, docs/model-format.md).",
        f"- **Corpus**: `{corp.get('version')}-{corp.get('size')}`, seed {corp.get('seed')}, fingerprint `{corp.get('fingerprint')}` "
        "(docs/datasheet.md); " + "; ".join(
            f"{e.get('name') or Path(e['path']).name} ({e['role']}{', first ' + str(e['limit']) if e.get('limit') else ''})"
            for e in cfg0.get("data", {}).get("eval", []))
        + f"; training: `{Path(train_path).name}`" + (f", first {cfg0['data']['trainLimit']} clips" if cfg0.get('data', {}).get('trainLimit') else "") + ".",
        f"- **Training**: {json.dumps(cfg0.get('optim', {}))}; adapter {json.dumps(cfg0.get('adapter', {}))}; seeds {sweep.get('seeds')}.",
        f"- **Machine**: {machine_info()}; torch threads per run: {machine.get('threads', sweep.get('threads'))}; "
        f"versions {json.dumps(versions)}.",
        f"- **Runtime**: {len(summaries)} of {len(runs)} runs done; per run {min(run_secs):.0f}–{max(run_secs):.0f} s "
        f"(sum {sum(run_secs) / 60:.1f} min)" if run_secs else f"- **Runtime**: {len(summaries)} of {len(runs)} runs done",
    ]
    if wall_seconds:
        lines[-1] += f"; this invocation {wall_seconds / 60:.1f} min wall."
    else:
        lines[-1] += "."
    lines += ["", "## Sanity check of the benchmark", ""]
    if sanity:
        lines.append(f"Frozen Whisper base (torch, greedy, language forced): code-switched **{100 * sanity['werNew']:.1f} %** WER vs "
                     f"base domain **{100 * sanity['werBase']:.1f} %** — "
                     + ("clearly worse on code-switched speech (≥ 10 points), so there is something to adapt."
                        if sanity["ok"] else "NOT clearly worse: this benchmark gives the adapter little to learn."))
        lines.append("")
        lines.append("| set | role | WER | CER | utterances |")
        lines.append("|---|---|---|---|---|")
        for e in base_recs:
            lines.append(f"| {e['set']} | {e['role']} | {100 * e['wer']:.1f} % | {100 * e.get('cer', float('nan')):.1f} % | {e['utterances']} |")
    else:
        lines.append("(the frozen model has not been evaluated yet)")
    lines += ["", "## Results (mean ± sample std over seeds)", ""]
    names_of = lambda ss: ", ".join(f"{n} ({r})" for n, r in ss) or "none"  # noqa: E731

    base_sets = [n for n, r in test_sets if r == "base"]
    has_unc = any(a.get("uncertainty") for a in agg.values())

    def head_row(a, label):
        bs = a.get("bootstrap") or {}
        lora = a["method"] == "lora"
        per_set = "".join(f" {pct(a['werBySet'].get(n))} % |" for n in base_sets) if len(base_sets) > 1 else ""
        gain = "—" if lora else f"{maybe_pct(a['gainOfMeans'])} (per seed {pct_u(a['gainPaired'])}{ci(bs.get('backwardGain'), ' %')})"
        drop = "—" if lora else f"{maybe_pct(a['dropOfMeans'])} (per seed {pct_u(a['dropPaired'])}{ci(bs.get('newDomainDrop'), ' %')})"
        unc = unc_cells(a) if has_unc else ""
        return (f"| {label} | {pct(a['werNew'])} % | {pct(a['pierNew'])} % | {pct(a['werBase'])} % |{per_set} "
                f"{pct(a['forgetting'], signed=True)} pts | {gain} | {drop} | {pct(a['sparsityAB'])} % | {pct(a['sparsityDW'])} % |{unc}")

    set_cols = "".join(f" WER {n} |" for n in base_sets) if len(base_sets) > 1 else ""
    unc_cols = " AUROC new | ECE new | AUROC base | ECE base |" if has_unc else ""
    paper_row = ("| paper (BLoRA vs LoRA) | | | |" + " |" * (len(base_sets) if len(base_sets) > 1 else 0) + " | 54 % | 4 % | 99.7 % | |"
                 + " | | | |" * has_unc)
    head_table = [f"| | WER new | PIER new | WER base |{set_cols} forgetting F | backward gain [95 % CI] | new-domain drop [95 % CI] | sparsity A∪B | sparsity ΔW |{unc_cols}",
                  "|---" * (9 + (len(base_sets) if len(base_sets) > 1 else 0) + (4 if has_unc else 0)) + "|"]
    if L and S:
        lines += [
            f"**LoRA vs the BLoRA configuration selected on dev ({S['label']})** — {em.DEV_SELECTION_TEXT}. "
            f"Dev sets: {names_of(dev_sets)}; every figure below is on the test sets: {names_of(test_sets)}.",
            "",
            *head_table,
            head_row(L, "LoRA"),
            head_row(S, f"{S['label']} (selected on dev)"),
        ]
        if B and best != selected:
            lines.append(head_row(B, f"{B['label']} (best on test: for comparison, not a fair selection)"))
        lines += [paper_row, ""]
        lines += ["### Selection on dev", "", f"Criterion: {em.DEV_SELECTION_TEXT}.", "",
                  "| configuration | seeds | WER new (dev) | F (dev) | WER_new(dev) + F(dev) |", "|---|---|---|---|---|"]
        for k in sorted(dev_keys, key=lambda k: (agg[k]["devScore"]["mean"], agg[k]["beta"] or 0)):
            a = agg[k]
            lines.append(f"| {a['label']}{' **(selected on dev)**' if k == selected else ''} | {len(a['seeds'])} | "
                         f"{pct(a['werNewDev'])} | {pct(a['forgettingDev'], signed=True)} | {pct(a['devScore'])} |")
        lines.append("")
    elif L and B:
        lines += [
            f"**LoRA vs the best BLoRA ({B['label']})** — best = lowest mean of new-domain and base-domain WER among the "
            f"BLoRA configurations; {nodev}: best-on-test, not a fair selection (an eval set of each role named "
            "`<name>-dev` would be a dev split to select on):",
            "",
            *head_table,
            head_row(L, "LoRA"),
            head_row(B, f"{B['label']} (best; {nodev}: best-on-test, not a fair selection)"),
            paper_row,
            "",
        ]
    lines += [
        "All configurations (test sets; WER in %, F in WER points; backward gain and new-domain drop are computed from "
        "the seed means, the per-seed mean ± std against LoRA of the same seed follows in parentheses, then its 95 % "
        "bootstrap interval over the test utterances in square brackets):",
        "",
        "| configuration | backend | seeds | WER new | PIER new | WER base | F | backward gain [95 % CI] | new-domain drop [95 % CI] | sparsity A | sparsity B | sparsity ΔW | KL (final) | CE (final) | train time (s) |"
        + (unc_cols if has_unc else ""),
        "|---" * (15 + (4 if has_unc else 0)) + "|",
    ]
    if base["werNew"] is not None:
        pier0 = pooled_pier(test_evals(base_recs), "new")
        lines.append(f"| frozen Whisper base | torch | — | {100 * base['werNew']:.1f} | {'n/a' if pier0 is None else f'{100 * pier0:.1f}'} | "
                     f"{100 * base['werBase']:.1f} | 0 | — | — | — | — | — | — | — | — |" + " — | — | — | — |" * has_unc)
    for k in keys:
        a = agg[k]
        bs = a.get("bootstrap") or {}
        gain = "—" if a["method"] == "lora" else \
            f"{maybe_pct(a['gainOfMeans'])} ({pct(a['gainPaired'], signed=True)}){ci(bs.get('backwardGain'))}"
        drop = "—" if a["method"] == "lora" else \
            f"{maybe_pct(a['dropOfMeans'])} ({pct(a['dropPaired'], signed=True)}){ci(bs.get('newDomainDrop'))}"
        mark = (" **(selected on dev)**" if k == selected else "") + \
            ((" (best on test)" if selected else f" **(best)** ({nodev}: best-on-test, not a fair selection)")
             if k == best else "")
        lines.append(
            f"| {a['label']}{mark} | {', '.join(a['backends'])} | {len(a['seeds'])} | {pct(a['werNew'])} | {pct(a['pierNew'])} | "
            f"{pct(a['werBase'])} | {pct(a['forgetting'], signed=True)} | {gain} | {drop} | {pct(a['sparsityA'])} | "
            f"{pct(a['sparsityB'])} | {pct(a['sparsityDW'])} | {num(a['kl'])} | {num(a['ce'])} | {num(a['trainSeconds'], '{:.0f}')} |"
            + (unc_cells(a) if has_unc else ""))
    reasons = sorted({r for a in agg.values() for r in a["undefinedReasons"]})
    if reasons:
        lines += ["", "Undefined values: " + "; ".join(reasons) + "."]
    nci = sorted({f"{a['label']}: {m}: {bs[m]['reason']}" for a in agg.values() if (bs := a.get("bootstrap"))
                  for m in ("backwardGain", "newDomainDrop") if bs[m].get("value") is None})
    miss = sorted({f for a in agg.values() if a.get("bootstrap") for f in a["bootstrap"]["missing"] + a["bootstrap"]["mismatch"]})
    if nci:
        lines += ["", "Intervals not computed: " + "; ".join(nci) + "."]
    if miss:
        lines += ["", "Transcripts missing or not matching (left out of the bootstrap): " + ", ".join(f"`{m}`" for m in miss) + "."]
    lines += data_digest_lines(out, summaries)
    lines += ["", "### Metric definitions", ""]
    lines += [f"- **{d['name']}**: {d['text']}." for d in em.METRIC_DEFINITIONS]
    lines += ["- WER is corpus-level (errors pooled over the utterances of a set), after Whisper's English normalizer for "
              "English rows and the basic normalizer otherwise; greedy decoding with the language token forced to the row's "
              "(matrix) language; the merged posterior means (W + s·μ_B·μ_A) for BLoRA.",
              "- KL: Σ over all factor matrices of the per-factor mean KL(N(μ, σ²) ‖ N(0, σ_p²)), at the last step (0 for LoRA).",
              f"- **{em.BOOTSTRAP_TEXT.split(':', 1)[0]}**:{em.BOOTSTRAP_TEXT.split(':', 1)[1]}; {BOOTSTRAP_RESAMPLES} resamples, "
              f"seed {BOOTSTRAP_SEED}; word errors per utterance recomputed from the transcripts (hyps-<set>-step<N>.jsonl) "
              "with the same normalizer as the WER.",
              "- **PIER new**: point-of-interest error rate on the code-switched test sets — the reference and hypothesis words "
              "aligned (Levenshtein over normalized words), errors counted on the reference words tagged with the embedded "
              "(other) language (metadata word_langs) over their number, pooled over the sets (src/metrics/pier.ts).",
              *(["- **WER <set>**: the base-domain test sets one by one (" + ", ".join(base_sets) + "): WER base is their mean."]
                if len(base_sets) > 1 else []),
              *(["- **AUROC** (eval.posteriorSamples, test sets only): how well an utterance's uncertainty score ranks the "
                 "utterances with at least one word error above those without (1 = perfectly, 0.5 = chance); BLoRA: the "
                 "disagreement of K posterior-sample transcripts with the mean's (mean WER between them), then in parentheses "
                 "the mean token entropy of the mean adapter; LoRA has no posterior: token entropy only. **ECE**: expected "
                 "calibration error of the mean adapter's token probabilities against token correctness (10 equal-width bins; "
                 "src/metrics/uncertainty.ts, twin tools/uncertainty_metrics.py)."] if has_unc else []),
              f"- **dev split**: {em.DEV_SPLIT_TEXT}; "
              + (f"{em.DEV_SELECTION_TEXT}." if selected else f"this sweep: {nodev}, so the best row is best-on-test, not a fair selection.")]
    lines += ["", "## Plots", "",
              f"![trade-off]({rel(img_dir / f'{prefix}-tradeoff.svg', mdir)})", "",
              "New-domain WER against base-domain WER, one point per method/β (mean over seeds, bars = std); lower-left is better; "
              "the black square is the frozen model.", "",
              f"![|mu| histogram]({rel(img_dir / f'{prefix}-mu-hist.svg', mdir)})", "",
              "Distribution of |μ| over all elements of A and B (seeds pooled); left of the dashed line counts as sparse.", "",
              f"![CE]({rel(img_dir / f'{prefix}-ce.svg', mdir)})", "",
              f"![KL]({rel(img_dir / f'{prefix}-kl.svg', mdir)})", ""]
    reading = (sweep.get("report") or {}).get("reading")
    if reading and (ROOT / reading).exists():
        lines += [(ROOT / reading).read_text(encoding="utf-8").rstrip(), ""]
    lines += ["## Every run", "", "| run | backend | WER new | WER base | sparsity A / B / ΔW | KL | train s |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        sp = s["sparsity"]
        f1 = lambda x: "n/a" if x is None else f"{100 * x:.1f}"  # noqa: E731
        lines.append(f"| {s['id']} | {s['backend']} | {f1(s['werNew'])} | {f1(s['werBase'])} | "
                     + (f"{100 * sp['A']:.1f} / {100 * sp['B']:.1f} / {100 * sp['deltaW']:.1f} %" if sp else "n/a")
                     + f" | {s['kl']:.4g} | {s['trainSeconds']:.0f} |" if s['kl'] is not None else " | n/a | n/a |")
    lines.append("")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"report: {md_path} ({len(summaries)} runs), plots in {img_dir}", flush=True)
    return result

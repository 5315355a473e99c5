"""Compare one run on two backends (torch and engine) step by step: CE and gradient norm per step, the final
evaluations, and the transcripts utterance by utterance. Used on experiments/demo-dropout0.json, where no random
numbers are drawn, so the two backends must give the same adapter (docs/demo-backends.md).

  python tools/compare_backends.py RUN_DIR_A RUN_DIR_B

A run folder is what tools/run_experiment.py writes per run (metrics.jsonl; transcripts in transcripts.jsonl from
the engine, hyps-<set>-step<N>.jsonl from torch).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiment_report import final_evals, read_jsonl


def load_run(d: Path) -> dict:
    m = d / "metrics.jsonl"
    if not m.exists():
        sys.exit(f"{d}: no metrics.jsonl (not a run folder, or the run did not start)")
    recs = read_jsonl(m)
    train = {r["step"]: r for r in recs if r.get("kind", "train") == "train" and "ce" in r}
    evals = final_evals(recs)
    last = evals[0]["step"] if evals else None
    hyps: dict[tuple[str, str], str] = {}
    if (d / "transcripts.jsonl").exists():  # engine: every evaluation in one file
        for r in read_jsonl(d / "transcripts.jsonl"):
            if r["step"] == last:
                hyps[(r["set"], r["id"].removesuffix(".wav"))] = r["hypothesis"]
    for p in d.glob(f"hyps-*-step{last}.jsonl"):  # torch: one file per set and step
        s = p.name[len("hyps-"):-len(f"-step{last}.jsonl")]
        for r in read_jsonl(p):
            hyps[(s, r["id"].removesuffix(".wav"))] = r["hypothesis"]
    backend = next((r["backend"] for r in recs if r.get("backend")), d.name)
    return {"dir": d, "backend": backend, "train": train,
            "evals": {r["set"]: r for r in evals}, "last": last, "hyps": hyps}


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args()
    A, B = load_run(args.a), load_run(args.b)
    na, nb = A["backend"], B["backend"]
    out: list[str] = []
    steps = sorted(set(A["train"]) & set(B["train"]))
    out += [f"| step | CE {na} | CE {nb} | rel. diff | ‖g‖ {na} | ‖g‖ {nb} |", "|---:|---:|---:|---:|---:|---:|"]
    worst = 0.0
    for s in steps:
        a, b = A["train"][s], B["train"][s]
        d = rel(a["ce"], b["ce"])
        worst = max(worst, d)
        out.append(f"| {s} | {a['ce']:.4f} | {b['ce']:.4f} | {d:.1e} | {a['gradNorm']:.3f} | {b['gradNorm']:.3f} |")
    out += ["", f"Largest relative CE difference over {len(steps)} steps: {worst:.1e}.", ""]
    out += [f"| set (step {A['last']}) | WER {na} | WER {nb} | CER {na} | CER {nb} |", "|---|---:|---:|---:|---:|"]
    for s in sorted(set(A["evals"]) & set(B["evals"])):
        a, b = A["evals"][s], B["evals"][s]
        out.append(f"| {s} | {100 * a['wer']:.1f} % | {100 * b['wer']:.1f} % | {100 * a['cer']:.1f} % | {100 * b['cer']:.1f} % |")
    keys = sorted(set(A["hyps"]) & set(B["hyps"]))
    same = [k for k in keys if A["hyps"][k] == B["hyps"][k]]
    out += ["", f"Transcripts identical: {len(same)} of {len(keys)} utterances."]
    for k in keys:
        if A["hyps"][k] != B["hyps"][k]:
            out.append(f"- {k[0]}/{k[1]}: {na} “{A['hyps'][k]}” · {nb} “{B['hyps'][k]}”")
    print("\n".join(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The experiment runner: LoRA vs BLoRA on the code-switching benchmark, forgetting measured.

    npm run experiment -- --config experiments/paper.json            # = python tools/run_experiment.py ...
    python tools/run_experiment.py --config experiments/small.json [--backend torch|engine] [--report-only]

A sweep file (experiments/*.json) holds
  name, description      the sweep's name (runs go to out/, default $BLORA_CACHE/experiments/<name>)
  backend                "torch" (tools/blora_train.py) or "engine" (the WGSL engine: blora-studio train)
  base                   a partial experiment.json (src/train/config.ts) shared by every run
  seeds                  e.g. [0, 1, 2]
  grid                   a list of groups {"method": "lora" | "blora", <adapter key>: value or [values], ...};
                         list-valued keys (beta, sigmaPrior, bayesianAOnly, estimator) are expanded as a product
  report                 {"markdown": "docs/results.md", "img": "docs/img", "prefix": "results"} (optional)
  threads                torch CPU threads per run (optional)
  trainerArgs            extra flags for tools/blora_train.py (optional, e.g. ["--no-kv-disk"])
  evalBase               false: skip the frozen-model evaluation (a sweep without eval sets)
  launcher               how to start it (optional, e.g. ["accelerate", "launch", "--num_processes", "8"]; --launcher);
                         its program is looked up in this Python's venv first, then on PATH (docs/scale-out.md)
and expands into one run per (group point, seed). Runs are ordered seed by seed (every configuration at the first
seed, then the second, …) so an interrupted sweep still covers every configuration. A run whose result.json exists
is skipped (resumable); the frozen base model is evaluated once (out/base). Then it aggregates: one JSON per run
(out/summary/<run>.json), a markdown table (mean ± sample std over seeds), SVG plots, the metric definitions
(tools/experiment_metrics.py — the twin of src/metrics/experiment.ts) and the benchmark sanity check (frozen WER on
the code-switched sets vs the base sets).
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
CACHE = Path(os.environ.get("BLORA_CACHE", Path.home() / ".cache" / "blora-studio"))
PY = sys.executable

EXPANDABLE = ("beta", "sigmaPrior", "bayesianAOnly", "estimator")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def expand_vars(obj):
    """${BLORA_CACHE} and ~ in strings."""
    if isinstance(obj, dict):
        return {k: expand_vars(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [expand_vars(v) for v in obj]
    if isinstance(obj, str):
        return os.path.expanduser(obj.replace("${BLORA_CACHE}", str(CACHE)))
    return obj


def fmt_num(v) -> str:
    return f"{v:g}"


def run_id(method: str, point: dict, seed: int) -> str:
    if method == "lora":
        return f"lora-s{seed}"
    parts = ["blora"]
    if point.get("bayesianAOnly"):
        parts.append("aonly")
    if "estimator" in point:
        parts.append(point["estimator"])
    parts.append(f"b{fmt_num(point.get('beta', 1e-4))}")
    parts.append(f"sp{fmt_num(point.get('sigmaPrior', 0.01))}")
    return "-".join(parts) + f"-s{seed}"


def config_key(rid: str) -> str:
    return rid.rsplit("-s", 1)[0]


def expand(sweep: dict) -> list[dict]:
    """[{id, key, method, point, seed, config}] in seed-major order."""
    base = sweep.get("base", {})
    seeds = sweep.get("seeds", [0])
    points = []
    for g in sweep["grid"]:
        method = g["method"]
        keys = [k for k in EXPANDABLE if k in g]
        vals = [g[k] if isinstance(g[k], list) else [g[k]] for k in keys]
        for combo in itertools.product(*vals) if keys else [()]:
            point = dict(zip(keys, combo))
            if method == "lora":
                point = {}
            if (method, json.dumps(point, sort_keys=True)) not in [(m, json.dumps(p, sort_keys=True)) for m, p in points]:
                points.append((method, point))
    runs = []
    for seed in seeds:
        for method, point in points:
            cfg = copy.deepcopy(base)
            cfg["schema"] = 1
            cfg["method"] = method
            cfg.setdefault("adapter", {}).update(point)
            cfg["seed"] = seed
            rid = run_id(method, point, seed)
            cfg["name"] = f"{sweep['name']}/{rid}"
            runs.append({"id": rid, "key": config_key(rid), "method": method, "point": point, "seed": seed, "config": cfg})
    return runs


def claim(d: Path) -> bool:
    """Take run folder d for this process (a second runner on the same sweep works on other runs). A lock whose
    process is gone (an interrupted sweep) is taken over."""
    lock = d / "lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(lock.read_text().strip() or 0)
            os.kill(pid, 0)
            if pid != os.getpid():
                return False
        except (ValueError, ProcessLookupError, PermissionError, FileNotFoundError):
            pass
        lock.write_text(str(os.getpid()))
        return True
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


# The corpora a sweep may name, and the command that makes each (cached: a complete folder is left alone).
CORPUS_MAKERS = [
    (r"corpora/(v1|v2)-(ci|small|full|demo)(?=/|$)", lambda m: ["make_corpus.py", "--corpus", m.group(1), "--size", m.group(2)]),
    (r"corpora/real-v1(?:-limit(\d+))?(?=/|$)", lambda m: ["real_speech.py", *(["--limit", m.group(1)] if m.group(1) else [])]),
]


def ensure_corpora(sweep: dict) -> None:
    """Generate a missing benchmark corpus ($BLORA_CACHE/corpora/<name>/...: CORPUS_MAKERS; cached)."""
    import re

    data = sweep.get("base", {}).get("data", {})
    paths = [data.get("train", "")] + [e.get("path", "") for k in ("eval", "dev", "trainMix") for e in data.get(k) or []]
    todo: dict[str, list[str]] = {}
    for p in paths:
        for pattern, cmd in CORPUS_MAKERS:
            if (m := re.search(pattern, p)):
                todo[m.group(0).split("/", 1)[1]] = cmd(m)
    for name, cmd in sorted(todo.items()):
        if not (CACHE / "corpora" / name / "corpus.json").exists():
            log(f"corpus {name} missing: python tools/{' '.join(cmd)}")
            subprocess.check_call([PY, str(ROOT / "tools" / cmd[0]), *cmd[1:]], cwd=ROOT)


LAUNCHER: list[str] = []
LAUNCH_ENV: dict[str, str] = {}


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def accelerate_cpu_processes(words: list[str]) -> tuple[list[str], dict[str, str]]:
    """`accelerate launch --cpu --num_processes N` (N > 1) starts ONE process in accelerate 1.x unless an MPI hostfile
    is given (its multi-CPU path is mpirun), silently. Started the way it works here instead: torchrun through
    `--multi_gpu` with ACCELERATE_USE_CPU=true, so N CPU processes talk over gloo. The trainer is told how many
    processes were asked for (BLORA_EXPECT_PROCESSES) and refuses to run with another number."""
    env: dict[str, str] = {}
    if len(words) < 2 or Path(words[0]).name != "accelerate" or words[1] != "launch":
        return words, env
    n = None
    for i, w in enumerate(words):
        if w == "--num_processes" and i + 1 < len(words):
            n = words[i + 1]
        elif w.startswith("--num_processes="):
            n = w.split("=", 1)[1]
    if n is not None:
        if not n.isdigit() or int(n) < 1:
            raise SystemExit(f"run_experiment: --launcher {' '.join(words)!r}: --num_processes {n!r} is not a positive integer")
        env["BLORA_EXPECT_PROCESSES"] = n
        plain = int(n) > 1 and not any(w.startswith(("--mpirun_hostfile", "--multi_gpu", "--use_deepspeed", "--use_fsdp",
                                                          "--tpu", "--config_file")) for w in words)
        if plain and ("--cpu" in words or not cuda_available()):
            # (without --cpu on a machine without CUDA, accelerate also falls back to one process)
            words = ["--multi_gpu" if w == "--cpu" else w for w in words]
            if "--multi_gpu" not in words:
                words = words[:2] + ["--multi_gpu"] + words[2:]
            env["ACCELERATE_USE_CPU"] = "true"
            log(f"launcher: {n} CPU processes → --multi_gpu + ACCELERATE_USE_CPU=true (torchrun, gloo): "
                "accelerate's own CPU path would start one process")
    return words, env


def resolve_launcher(words: list[str]) -> list[str]:
    """The launcher's program looked up in the project's venv first (the bin folder of this Python: `accelerate` is
    installed there, and `npm run experiment` does not put that folder on PATH), then on PATH. A program found
    nowhere is an error naming both places, before any run starts."""
    import shutil

    if not words:
        return []
    prog = words[0]
    if "/" not in prog:
        venv_bin = Path(PY).parent
        # sys.executable may be a symlink into a system Python; the venv's scripts sit next to the link.
        if (venv_bin / prog).is_file() and os.access(venv_bin / prog, os.X_OK):
            return [str(venv_bin / prog)] + words[1:]
        found = shutil.which(prog)
        if not found:
            raise SystemExit(f"run_experiment: --launcher {' '.join(words)!r}: {prog!r} is neither in the project's venv "
                             f"({venv_bin}) nor on PATH (install it into the venv: {PY} -m pip install {prog})")
        return [found] + words[1:]
    if not (os.path.isfile(prog) and os.access(prog, os.X_OK)):
        raise SystemExit(f"run_experiment: --launcher {' '.join(words)!r}: {prog} is not an executable file")
    return words


def run_torch(cfg_path: Path, out: Path, threads: int | None, extra: list[str]) -> int:
    cmd = (LAUNCHER or [PY]) + [str(ROOT / "tools" / "blora_train.py"), "--config", str(cfg_path), "--out", str(out)] + extra
    if threads:
        cmd += ["--threads", str(threads)]
    log("$ " + " ".join(cmd))
    with open(out / "train.log", "w") as f:
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **LAUNCH_ENV})


def run_engine(cfg_path: Path, out: Path) -> int:
    cmd = ["node", str(ROOT / "bin" / "blora-studio.mjs"), "train", "--config", str(cfg_path), "--out", str(out)]
    log("$ " + " ".join(cmd))
    with open(out / "train.log", "w") as f:
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="sweep file (experiments/*.json)")
    ap.add_argument("--backend", choices=["torch", "engine"], help="override the sweep's backend")
    ap.add_argument("--out", help="run folder (default: the sweep's out, or $BLORA_CACHE/experiments/<name>)")
    ap.add_argument("--report-only", action="store_true", help="aggregate what exists, run nothing")
    ap.add_argument("--no-report", action="store_true", help="run, do not write the markdown report")
    ap.add_argument("--markdown", help="report path (default: the sweep's report.markdown)")
    ap.add_argument("--limit-runs", type=int, help="only the first N runs of the expansion")
    ap.add_argument("--seeds", help="override the sweep's seeds, e.g. 0,1,2")
    ap.add_argument("--launcher", help='how to start the torch trainer, e.g. "accelerate launch --num_processes 8" '
                    "(default: this Python)")
    args = ap.parse_args(argv)

    sweep_path = Path(args.config)
    sweep = expand_vars(json.loads(sweep_path.read_text(encoding="utf-8")))
    backend = args.backend or sweep.get("backend", "torch")
    if args.seeds:
        try:
            sweep["seeds"] = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            raise SystemExit(f"--seeds {args.seeds!r}: expected whole numbers separated by commas, e.g. 0,1,2")
    import shlex

    # The launcher first: a wrong one is reported before anything is created or run.
    launcher, env = accelerate_cpu_processes(resolve_launcher(shlex.split(args.launcher) if args.launcher else sweep.get("launcher", [])))
    LAUNCHER[:] = launcher
    LAUNCH_ENV.update(env)
    out = Path(args.out or sweep.get("out") or CACHE / "experiments" / sweep["name"]).expanduser()
    if not out.is_absolute():
        out = ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    runs = expand(sweep)
    if args.limit_runs:
        runs = runs[:args.limit_runs]
    threads = sweep.get("threads")
    t0 = time.time()
    if not args.report_only:
        ensure_corpora(sweep)
    log(f"sweep {sweep['name']}: {len(runs)} runs, backend {backend} → {out}")
    (out / "sweep.json").write_text(json.dumps({**sweep, "backend": backend, "runs": [r["id"] for r in runs]}, indent=2) + "\n")

    import experiment_report

    failed = []
    if not args.report_only:
        # the frozen model, once (torch: generate on every eval set; the engine backend's runs also evaluate step 0)
        base_dir = out / "base"
        base_dir.mkdir(parents=True, exist_ok=True)
        if sweep.get("evalBase", True) and not (base_dir / "result.json").exists() and claim(base_dir):
            cfg = copy.deepcopy(sweep.get("base", {}))
            cfg.update({"schema": 1, "name": f"{sweep['name']}/base", "method": "lora"})
            (base_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
            log("base model evaluation (torch)")
            rc = run_torch(base_dir / "config.json", base_dir, threads, ["--eval-base"] + sweep.get("trainerArgs", []))
            if rc != 0:
                log(f"base evaluation failed (exit {rc}); see {base_dir / 'train.log'}")
                return 1
        for i, r in enumerate(runs):
            d = out / "runs" / r["id"]
            if (d / "result.json").exists():
                log(f"[{i + 1}/{len(runs)}] {r['id']}: done before, skipped")
                continue
            d.mkdir(parents=True, exist_ok=True)
            if not claim(d):
                log(f"[{i + 1}/{len(runs)}] {r['id']}: running in another process, skipped")
                continue
            cfg_path = d / "config.json"
            cfg_path.write_text(json.dumps(r["config"], indent=2) + "\n")
            ts = time.time()
            log(f"[{i + 1}/{len(runs)}] {r['id']} ({backend})")
            rc = run_engine(cfg_path, d) if backend == "engine" else \
                run_torch(cfg_path, d, threads, ["--no-eval-before"] + sweep.get("trainerArgs", []))
            if rc != 0 or not (d / "result.json").exists():
                log(f"[{i + 1}/{len(runs)}] {r['id']} FAILED (exit {rc}); see {d / 'train.log'}")
                failed.append(r["id"])
                continue
            if backend == "engine":
                (d / "backend").write_text("engine\n")
            experiment_report.save_adapter_stats(d)
            log(f"[{i + 1}/{len(runs)}] {r['id']} done in {time.time() - ts:.0f} s (sweep {time.time() - t0:.0f} s)")

    if not args.no_report:
        md = args.markdown or (sweep.get("report") or {}).get("markdown")
        experiment_report.report(sweep, sweep_path, out, runs, backend, Path(md) if md else None,
                                 wall_seconds=time.time() - t0 if not args.report_only else None)
    if failed:
        log(f"{len(failed)} run(s) failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

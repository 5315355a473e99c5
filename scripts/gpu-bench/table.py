"""One table from the engine's and PyTorch's JSON lines (scripts/gpu-bench.sh).

    python3 scripts/gpu-bench/table.py ENGINE.jsonl TORCH.jsonl [--peak-tflops X] [--peak-note TEXT]

Matmul FLOPs of one training step, counted from the shapes (T = B·S tokens, N = 1500 frames,
n = L · targets adapted modules, each C → C):
  forward  per layer: 2T(4C² self q,k,v,o + 2C² cross q,o + 2CF fc1,fc2) linears
                      + 4TSC self-attention (QKᵀ, PV over all S keys; the causal half is not subtracted)
                      + 4TNC cross-attention (QKᵀ, PV over the cached K/V)
           logits:    2TCV
  backward (frozen weights: input gradients only): the linears and logits again (1×), self-attention 2×
           (dQ, dK, dV, dP), cross-attention 1× (dQ, dP; the cached K/V get no gradient)
  adapters: forward 2T·r·2C per module (A then B), backward 2× that; flipout doubles both (mean + noise)
The cross-attention K/V projections of the frames are not counted (the engine caches them; HF recomputes
them each step), nor AdamW, layer norms, GELU, softmax.
"""
from __future__ import annotations

import json
import sys

FRAMES = 1500


def step_flops(d: dict) -> float:
    C, F, L, V, B, S, r = (d[k] for k in ("C", "F", "L", "V", "B", "S", "r"))
    T, N = B * S, FRAMES
    lin = 2 * T * (6 * C * C + 2 * C * F)
    self_att = 4 * T * S * C
    cross_att = 4 * T * N * C
    per_layer = 2 * lin + 3 * self_att + 2 * cross_att
    logits = 2 * (2 * T * C * V)
    n_ad = L * len(d.get("targets", [1, 1]))
    ad_fwd = 2 * T * r * 2 * C
    ad = n_ad * 3 * ad_fwd * (2 if d["method"].startswith("blora") else 1)
    return L * per_layer + logits + ad


def load(path: str) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def main() -> None:
    args = sys.argv[1:]
    peak, note = None, ""
    if "--peak-tflops" in args:
        i = args.index("--peak-tflops")
        peak = float(args[i + 1])
        del args[i:i + 2]
    if "--peak-note" in args:
        i = args.index("--peak-note")
        note = args[i + 1]
        del args[i:i + 2]
    eng = load(args[0])
    tor = load(args[1])
    # an engine row per (shape, method, storage); the torch side is f32 only, so each engine storage is set against
    # the same torch step
    key = lambda d: (d["shape"], d["method"], d.get("storage", "f32"))  # noqa: E731
    t_by = {(d["shape"], d["method"]): d for d in tor}
    e_by = {key(d): d for d in eng}
    keys = list(dict.fromkeys([key(d) for d in eng] + [(d["shape"], d["method"], "f32") for d in tor]))
    peak_s = f"{peak:g}" if peak else "n/a"
    print()
    print("| shape (L × C, B × S) | method | storage | engine ms/step | torch ms/step | engine / torch | engine tokens/s | torch tokens/s | engine matmul TFLOP/s | peak TFLOP/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        e, t = e_by.get(k), t_by.get(k[:2])
        d = e or t
        shape = f"{d['shape']} ({d['L']} × {d['C']}, {d['B']} × {d['S']})"
        meth = "LoRA" if d["method"] == "lora" else "BLoRA flipout"
        if t:
            meth += f" (torch: {t['impl']})"
        ems = f"{e['ms']:.1f}" if e else "—"
        tms = f"{t['ms']:.1f}" if t else "—"
        ratio = f"{e['ms'] / t['ms']:.2f}" if e and t else "—"
        etok = f"{e['tokens'] / (e['ms'] / 1000):,.0f}" if e else "—"
        ttok = f"{t['tokens'] / (t['ms'] / 1000):,.0f}" if t else "—"
        if e:
            tf = step_flops(e) / (e["ms"] / 1000) / 1e12
            eflop = f"{tf:.3g}" + (f" ({100 * tf / peak:.1f} %)" if peak else "")
        else:
            eflop = "—"
        print(f"| {shape} | {meth} | {k[2]} | {ems} | {tms} | {ratio} | {etok} | {ttok} | {eflop} | {peak_s} |")
    print()
    adapters = sorted({d.get("adapter", "") for d in eng} - {""})
    devices = sorted({d.get("device", "") for d in tor} - {""})
    print(f"engine: WGSL on Dawn/Vulkan, adapter {', '.join(adapters) or '—'}; torch: eager f32 (TF32 off), device {', '.join(devices) or '—'}")
    if any(d.get("storage") == "f16" for d in eng):
        print("storage: the engine's frozen weights and K/V cache (f16: stored f16, math and accumulation f32; adapters, "
              "gradients and AdamW state f32); torch is f32 on every row, so an f16 row's ratio is against the same f32 step.")
    else:
        print("storage: f32 rows only — the engine adapter has no 'shader-f16' (engine-bench logs it), so no f16 rows.")
    print("ms/step: median wall ms of forward + backward + grad-norm clip + AdamW, awaited on the device; tokens/s = B·S / step "
          "(every position real and scored).")
    print("matmul TFLOP/s: FLOPs counted from the shapes (scripts/gpu-bench/table.py) / engine step time; the same count for "
          "both sides (HF also recomputes the frames' cross K/V each step, the engine caches them — not counted).")
    if peak:
        print(f"peak: {peak:g} TFLOP/s — {note or 'given with --peak-tflops'}")
    else:
        print("peak: n/a (no GPU: pass --peak-tflops)")


if __name__ == "__main__":
    main()

"""PyTorch oracle for the WGSL training engine (src/engine/decoder.ts): the same decoder step(s) in
Hugging Face transformers, fp32, on the same inputs, adapter values and noise.

Usage: engine_oracle.py [--f64 | --both] CASE_DIR [CASE_DIR ...]   (folders written by test/engine/decoder-parity.test.ts)
  --f64: the same computation in float64 (how far each fp32 side is from exact);
         writes oracle64.json, oracle64_grads1.f64, oracle64_theta.f64.
  --both: fp32, then float64, in one process (one torch/transformers import instead of two).
Or engine_oracle.py --serve: requests '[flags] CASE_DIR' on stdin, one per line (see serve()).
  --ce-fp32: also the cross-entropy in fp32 (default: the model in fp32, the CE's log-softmax over the
         51,865 logits in float64 — torch's fp32 CPU reduction loses ~1e-4 relative of a small CE:
         0.1783485 vs 0.1783723 on the same fp32 logits of the test batch, and ~1e-3 in the gradients
         through p − onehot of confidently predicted tokens; that is the oracle's rounding, not the
         engine's, and it would swamp the comparison).

A case folder holds case.json and raw little-endian arrays:
  input_ids.i32 (B, S)   decoder input ids, right-padded
  labels.i32    (B, S)   targets, −100 = not scored
  encoder.f32   (B, E, C) encoder hidden states (the same states the engine's cross-attention uses)
  theta0.f32    (P,)     initial adapter values in the engine's flat layout (src/engine/adapters.ts)
  noise.f32              the engine's noise of every step and module (materializeAdapterNoise), indexed
                         by case.json "noise": [ {module: {key: {offset, shape}}} ] per step
case.json: model_dir, B, S, kind ('lora' | 'blora'), estimator, r, alpha, dropout, bayesian_a_only,
sigma_prior, beta, modules [{name, n_in, n_out, off {muA, rhoA, muB, rhoB}}], theta_size, steps,
adamw {lr, betas, eps, weight_decay}, max_grad_norm, eval_before (bool).

Model: WhisperForConditionalGeneration (fp32, eager attention), all base weights frozen, decoder run
with `encoder_outputs`. LoRA = PEFT get_peft_model (LoraConfig on the listed module names), initial
lora_A / lora_B copied from theta0, PEFT's dropout module replaced by the engine's keep-mask (÷(1−p)).
BLoRA = tools/blora_torch.attach_blora with μ / ρ copied from theta0 and AdapterNoise replayed.
Per step t = 1..steps: loss = mean CE over labels ≠ −100 (log-softmax in f64, see --ce-fp32)
(+ β·KL for BLoRA), backward,
clip_grad_norm_ (if max_grad_norm > 0), torch.optim.AdamW step, zero_grad.

Writes into the case folder: oracle.json (losses per step, eval CE, versions, timing),
oracle_grads1.f32 (the gradients of step 1 in the engine layout), oracle_theta.f32 (after `steps`).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blora_torch import AdapterNoise, FactorNoise, attach_blora, total_kl  # noqa: E402


class MaskDropout(nn.Module):
    """Replaces PEFT's lora_dropout: multiplies by the engine's keep-mask (already ÷(1−p))."""

    def __init__(self):
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, x):
        if not self.training or self.mask is None:
            return x
        return x * self.mask


def load_array(path: Path, dtype) -> np.ndarray:
    return np.frombuffer(path.read_bytes(), dtype=dtype)


def run_case(case_dir: Path, f64: bool = False, ce_fp32: bool = False) -> None:
    t0 = time.time()
    tag = "64" if f64 else ""
    c = json.loads((case_dir / "case.json").read_text())
    import peft
    import transformers
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    B, S = c["B"], c["S"]
    ids = torch.from_numpy(load_array(case_dir / "input_ids.i32", "<i4").astype(np.int64)).view(B, S)
    labels = torch.from_numpy(load_array(case_dir / "labels.i32", "<i4").astype(np.int64)).view(B, S)
    enc = torch.from_numpy(load_array(case_dir / "encoder.f32", "<f4").copy()).view(B, -1, c["C"])
    theta0 = torch.from_numpy(load_array(case_dir / "theta0.f32", "<f4").copy())
    noise_all = torch.from_numpy(load_array(case_dir / "noise.f32", "<f4").copy())
    assert theta0.numel() == c["theta_size"], (theta0.numel(), c["theta_size"])

    model = WhisperForConditionalGeneration.from_pretrained(
        c["model_dir"], dtype=torch.float32, attn_implementation="eager"
    )
    if f64:
        model = model.double()
        enc, theta0, noise_all = enc.double(), theta0.double(), noise_all.double()
    for p in model.parameters():
        p.requires_grad_(False)
    r, alpha, dropout = c["r"], c["alpha"], c["dropout"]
    names = [m["name"] for m in c["modules"]]
    blora = c["kind"] == "blora"

    def seg(m, key, rows, cols):
        off = m["off"][key]
        return theta0[off : off + rows * cols].view(rows, cols).clone()

    # params[i] = list of (tensor, offset, numel) in the engine layout of module i
    layout: list[tuple[nn.Parameter, int]] = []
    if not blora:
        from peft import LoraConfig, get_peft_model

        cfg = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none")
        model = get_peft_model(model, cfg)
        base = model.base_model.model
        layers = {}
        for m in c["modules"]:
            lin = base.get_submodule(m["name"])
            with torch.no_grad():
                lin.lora_A["default"].weight.copy_(seg(m, "muA", r, m["n_in"]))
                lin.lora_B["default"].weight.copy_(seg(m, "muB", m["n_out"], r))
            lin.lora_dropout["default"] = MaskDropout()
            layers[m["name"]] = lin
            layout.append((lin.lora_A["default"].weight, m["off"]["muA"]))
            layout.append((lin.lora_B["default"].weight, m["off"]["muB"]))
        forward_model = model
        adapters = None
    else:
        adapters = attach_blora(
            model, targets=names, layer_filter="model.decoder.layers.", r=r, alpha=alpha, dropout=dropout,
            bayesian=True, bayesian_a_only=c["bayesian_a_only"], estimator=c["estimator"],
        )
        assert sorted(adapters) == sorted(names), (sorted(adapters), names)
        for m in c["modules"]:
            ad = adapters[m["name"]]
            with torch.no_grad():
                ad.A.mu.copy_(seg(m, "muA", r, m["n_in"]))
                ad.A.rho.copy_(seg(m, "rhoA", r, m["n_in"]))
                layout.append((ad.A.mu, m["off"]["muA"]))
                layout.append((ad.A.rho, m["off"]["rhoA"]))
                if ad.B is not None:
                    ad.B.mu.copy_(seg(m, "muB", m["n_out"], r))
                    ad.B.rho.copy_(seg(m, "rhoB", m["n_out"], r))
                    layout.append((ad.B.mu, m["off"]["muB"]))
                    layout.append((ad.B.rho, m["off"]["rhoB"]))
                else:
                    ad.B_det.copy_(seg(m, "muB", m["n_out"], r))
                    layout.append((ad.B_det, m["off"]["muB"]))
        forward_model = model
    if f64:
        forward_model.double()  # adapters too (created in fp32); Parameter objects are kept, layout stays valid
    params = [p for p, _ in layout]
    assert all(p.dtype == (torch.float64 if f64 else torch.float32) for p in params)
    n_trainable = sum(p.numel() for p in forward_model.parameters() if p.requires_grad)
    assert n_trainable == c["theta_size"], (n_trainable, c["theta_size"])

    def flat(get) -> np.ndarray:
        out = np.zeros(c["theta_size"], dtype=np.float64 if f64 else np.float32)
        for p, off in layout:
            v = get(p).detach().reshape(-1).numpy()
            out[off : off + v.size] = v
        return out

    def tensor(entry, lead):
        if entry is None:
            return None
        off, shape = entry["offset"], entry["shape"]
        n = int(np.prod(shape))
        t = noise_all[off : off + n].view(*shape)
        # per-token arrays are (T, n) with T = B·rows: back to (B, rows, n) as the activations
        return t.view(B, -1, shape[1]) if lead else t

    def set_noise(step_noise: dict) -> None:
        for m in c["modules"]:
            nz = step_noise[m["name"]]
            g = lambda k, lead: tensor(nz.get(k), lead)  # noqa: E731
            mask = g("dropout_mask", True)
            if blora:
                adapters[m["name"]].noise = AdapterNoise(
                    a=FactorNoise(eps=g("a.eps", False), sign_in=g("a.sign_in", True), sign_out=g("a.sign_out", True), xi=g("a.xi", True)),
                    b=FactorNoise(eps=g("b.eps", False), sign_in=g("b.sign_in", True), sign_out=g("b.sign_out", True), xi=g("b.xi", True)),
                    dropout_mask=mask,
                )
            else:
                d = layers[m["name"]].lora_dropout["default"]
                d.mask = mask

    def loss_fn(train: bool):
        forward_model.train(train)
        out = forward_model(decoder_input_ids=ids, encoder_outputs=(enc,), use_cache=False)
        logits = out.logits
        if not ce_fp32:
            logits = logits.double()  # the loss head's reduction in f64; its gradient flows back as fp32
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        kl = total_kl(adapters, c["sigma_prior"]) if (blora and train) else torch.zeros(())
        return ce, kl, ce + c["beta"] * kl

    result: dict = {
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "threads": torch.get_num_threads(), "losses": [],
    }
    if c.get("eval_before"):
        with torch.no_grad():
            ce, _, _ = loss_fn(False)
        result["eval_ce"] = float(ce)

    ad = c["adamw"]
    opt = torch.optim.AdamW(params, lr=ad["lr"], betas=tuple(ad["betas"]), eps=ad["eps"], weight_decay=ad["weight_decay"])
    for step in range(1, c["steps"] + 1):
        set_noise(c["noise"][step - 1])
        ce, kl, loss = loss_fn(True)
        loss.backward()
        if step == 1:
            flat(lambda p: p.grad).tofile(case_dir / f"oracle{tag}_grads1.f{tag or 32}")
        norm = None
        if c["max_grad_norm"] > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, c["max_grad_norm"]))
        opt.step()
        opt.zero_grad(set_to_none=False)
        result["losses"].append({"ce": float(ce), "kl": float(kl), "loss": float(loss), "grad_norm": norm})
    flat(lambda p: p).tofile(case_dir / f"oracle{tag}_theta.f{tag or 32}")
    result["seconds"] = time.time() - t0
    result["dtype"] = "float64" if f64 else "float32"
    result["ce_dtype"] = "float64" if (f64 or not ce_fp32) else "float32"
    (case_dir / f"oracle{tag}.json").write_text(json.dumps(result, indent=1))
    print(f"# oracle{tag} {case_dir.name}: {c['steps']} steps, loss[1] = {result['losses'][0]['loss']:.7f}, {result['seconds']:.1f} s", flush=True)


def serve() -> None:
    """--serve: one request per stdin line, '[--f64|--both] [--ce-fp32] CASE_DIR'; answers '@@done CASE_DIR' or
    '@@error CASE_DIR: message' on stdout, so a test suite pays the torch/transformers import once."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        flags = [w for w in words if w.startswith("--")]
        case = [w for w in words if not w.startswith("--")]
        precisions = [False, True] if "--both" in flags else ["--f64" in flags]
        try:
            for f64 in precisions:
                run_case(Path(case[0]), f64=f64, ce_fp32="--ce-fp32" in flags)
            print(f"@@done {case[0]}", flush=True)
        except Exception as e:  # report and keep serving: the test fails on this case only
            print(f"@@error {case[0] if case else '?'}: {type(e).__name__}: {e}", flush=True)


def main() -> None:
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if "--serve" in sys.argv[1:]:
        return serve()
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    precisions = [False, True] if "--both" in sys.argv[1:] else ["--f64" in sys.argv[1:]]
    ce_fp32 = "--ce-fp32" in sys.argv[1:]
    for d in args:
        for f64 in precisions:
            run_case(Path(d), f64=f64, ce_fp32=ce_fp32)


if __name__ == "__main__":
    main()

"""The PyTorch half of scripts/gpu-bench.sh (issue 13 item 4): the same training step as the WGSL engine
(scripts/gpu-bench/engine-bench.ts) in PyTorch eager — PEFT LoRA, and the project's BLoRA flipout
(tools/blora_torch.py) — on a random-weight Whisper decoder with the real shapes of the model table.

    python3 tools/gpu_bench_torch.py --shapes base,small,large-v3-turbo [--layers N] [--B 8] [--S 64]
        [--r 32] [--steps 5] [--warmup 2] [--device cuda|cpu] [--json out.jsonl]

Same step as the engine: decoder forward on B rows of S random tokens (all scored) against B random
"encoder outputs" (1500 × C), CE (+ β·KL for BLoRA), backward, global grad-norm clip 1, AdamW; adapters on
self_attn q,v of every decoder layer, r, α = 2r, dropout 0.05. f32 weights and math (TF32 off). No
torch.compile. One difference, stated in the table's notes: HF recomputes the cross-attention K/V
projections of the 1500 frames every step (forward only: they are frozen), the engine caches them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# decoder shapes of src/model/hub.ts's model table (name: d_model, decoder layers, heads, vocab)
SHAPES = {
    "whisper-tiny": (384, 4, 6, 51865),
    "whisper-base": (512, 6, 8, 51865),
    "whisper-small": (768, 12, 12, 51865),
    "whisper-medium": (1024, 24, 16, 51865),
    "whisper-large-v3": (1280, 32, 20, 51866),
    "whisper-large-v3-turbo": (1280, 4, 20, 51866),
}
FRAMES = 1500


def build_model(shape: str, layers: int | None, device: str):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    C, L, H, V = SHAPES[shape]
    if layers:
        L = layers
    cfg = WhisperConfig(
        vocab_size=V, d_model=C, decoder_layers=L, decoder_attention_heads=H, decoder_ffn_dim=4 * C,
        encoder_layers=1, encoder_attention_heads=H, encoder_ffn_dim=4 * C, num_mel_bins=80,
        max_source_positions=FRAMES, max_target_positions=448, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, decoder_layerdrop=0.0, encoder_layerdrop=0.0, scale_embedding=False,
        tie_word_embeddings=True, use_cache=False, pad_token_id=50257, bos_token_id=50257,
        eos_token_id=50257, decoder_start_token_id=50258,
    )
    model = WhisperForConditionalGeneration(cfg).to(device=device, dtype=torch.float32)
    with torch.no_grad():
        model.model.decoder.embed_tokens.weight.uniform_(-0.05, 0.05)  # as the engine bench
    for p in model.parameters():
        p.requires_grad_(False)
    return model, (C, L, H, V)


def run(shape: str, method: str, a) -> dict:
    torch.manual_seed(0)
    model, (C, L, H, V) = build_model(shape, a.layers, a.device)
    targets = ["self_attn.q_proj", "self_attn.v_proj"]
    kl_fn = None
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        lc = LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.05,
                        target_modules=r"model\.decoder\.layers\.\d+\.self_attn\.(q_proj|v_proj)")
        model = get_peft_model(model, lc)
    else:
        from blora_torch import attach_blora, total_kl

        ads = attach_blora(model, targets, r=a.r, alpha=2 * a.r, dropout=0.05, bayesian=True, estimator="flipout")
        for ad in ads.values():
            ad.reset_parameters()
            ad.to(a.device)
        kl_fn = lambda: total_kl(ads, 0.01)  # noqa: E731
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(0, 50000, (a.B, a.S + 1), generator=g, device="cpu").to(a.device)
    enc = torch.empty(a.B, FRAMES, C, device="cpu").uniform_(-1, 1, generator=g).to(a.device)
    dec_in, labels = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    beta = 1e-3

    def sync():
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    times, loss = [], float("nan")
    for s in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        out = model(encoder_outputs=(enc,), decoder_input_ids=dec_in, labels=labels)
        lo = out.loss if kl_fn is None else out.loss + beta * kl_fn()
        opt.zero_grad(set_to_none=True)
        lo.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        ms = (time.perf_counter() - t0) * 1000
        if s >= a.warmup:
            times.append(ms)
        loss = float(lo.detach())
    times_sorted = sorted(times)
    ms = times_sorted[(len(times_sorted) - 1) // 2]
    dev_name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    rec = dict(side="torch", shape=shape, method="lora" if method == "lora" else "blora-flipout", storage="f32",
               C=C, F=4 * C, L=L, V=V, H=H, B=a.B, S=a.S, r=a.r, targets=targets, tokens=a.B * a.S,
               ms=ms, times=times, loss=loss, device=dev_name,
               impl="PEFT LoRA" if method == "lora" else "tools/blora_torch.py", torch=torch.__version__)
    print(f"    torch {rec['method']} ({rec['impl']}, {dev_name}): {ms:.1f} ms/step (median of {a.steps}), "
          f"{rec['tokens'] / (ms / 1000):.0f} tokens/s, loss {loss:.3f}", flush=True)
    del model, opt
    if a.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="base,small,large-v3-turbo")
    ap.add_argument("--layers", type=int, default=0, help="override the decoder layer count (0: the table's)")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--S", type=int, default=64)
    ap.add_argument("--r", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--methods", default="lora,blora")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # f32 math, as the engine
    torch.backends.cudnn.allow_tf32 = False
    # blora_torch's flipout draws its ±1 signs with torch.randint(...) without a device: make the
    # default device the bench's so they land on the GPU.
    torch.set_default_device(a.device)
    print(f"torch {torch.__version__} on {a.device}"
          + (f" ({torch.cuda.get_device_name()})" if a.device.startswith('cuda') else ""), flush=True)
    for sh in a.shapes.split(","):
        shape = sh if sh.startswith("whisper-") else f"whisper-{sh}"
        if shape not in SHAPES:
            sys.exit(f"gpu_bench_torch: unknown shape {sh} (one of {', '.join(SHAPES)})")
        for m in a.methods.split(","):
            rec = run(shape, m, a)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()

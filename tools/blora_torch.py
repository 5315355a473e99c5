"""BLoRA in PyTorch, line by line from ../shared/blora-spec.md — the oracle the WGSL engine is proven
against, and the core of the trainer for users who outgrow the browser.

Shapes (PEFT convention): a frozen Linear computes y = x·Wᵀ + b with W [out, in]; the adapter adds
Δy = s·f_B(f_A(x)) with A [r, in], B [out, r], s = α/r.

Noise is injectable: every draw (ε for each factor, the Flipout signs, the LRT ξ) can be passed in, so
the oracle replays exactly the noise the engine drew. Without injected noise it draws from torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

ESTIMATORS = ("flipout", "bbb", "lrt")


def softplus_stable(rho: torch.Tensor) -> torch.Tensor:
    """σ = softplus(ρ); for ρ < −20, σ = exp(ρ) (softplus underflows to 0 there in fp32)."""
    return torch.where(rho < -20, torch.exp(rho), F.softplus(rho))


def log_sigma_stable(rho: torch.Tensor) -> torch.Tensor:
    """log σ; for ρ < −20, log σ = ρ."""
    return torch.where(rho < -20, rho, torch.log(F.softplus(rho)))


def kl_factor(mu: torch.Tensor, rho: torch.Tensor, sigma_p: float, log_eps: float = 0.0) -> torch.Tensor:
    """Mean over elements of KL(N(μ,σ²) ‖ N(0,σ_p²)) = log(σ_p/σ) + (σ²+μ²)/(2σ_p²) − 1/2; log_eps > 0: log(σ + ε)
    for log σ, as the authors' kl_loss (continual-asr loras/bnn_lora.py, eps = 1e-6)."""
    sigma = softplus_stable(rho)
    log_sigma = torch.log(sigma + log_eps) if log_eps > 0 else log_sigma_stable(rho)
    kl = math.log(sigma_p) - log_sigma + (sigma * sigma + mu * mu) / (2 * sigma_p * sigma_p) - 0.5
    return kl.mean()


@dataclass
class FactorNoise:
    """Noise for one factor M ∈ {A, B} for one forward pass."""
    eps: torch.Tensor | None = None        # [rows, cols] of M (flipout, bbb)
    sign_in: torch.Tensor | None = None    # ±1, same shape as the factor's input activations (flipout)
    sign_out: torch.Tensor | None = None   # ±1, same shape as the factor's output activations (flipout)
    xi: torch.Tensor | None = None         # N(0,1), same shape as the output activations (lrt)


@dataclass
class AdapterNoise:
    a: FactorNoise = field(default_factory=FactorNoise)
    b: FactorNoise = field(default_factory=FactorNoise)
    dropout_mask: torch.Tensor | None = None  # keep-mask (0/1) on the adapter input, already /(1−p)-scaled


class BayesianFactor(nn.Module):
    """One Gaussian factor matrix: μ and ρ trainable, σ = softplus(ρ)."""

    def __init__(self, rows: int, cols: int):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(rows, cols))
        self.rho = nn.Parameter(torch.zeros(rows, cols))

    def sigma(self) -> torch.Tensor:
        return softplus_stable(self.rho)

    def forward(self, x: torch.Tensor, estimator: str, noise: FactorNoise) -> torch.Tensor:
        """f_M(x) for x [..., cols] → [..., rows]."""
        sigma = self.sigma()
        if estimator == "bbb":
            eps = noise.eps if noise.eps is not None else torch.randn_like(self.mu)
            return x @ (self.mu + sigma * eps).T
        if estimator == "flipout":
            eps = noise.eps if noise.eps is not None else torch.randn_like(self.mu)
            out_shape = (*x.shape[:-1], self.mu.shape[0])
            r_in = noise.sign_in if noise.sign_in is not None else torch.randint(0, 2, x.shape, dtype=x.dtype) * 2 - 1
            s_out = noise.sign_out if noise.sign_out is not None else torch.randint(0, 2, out_shape, dtype=x.dtype) * 2 - 1
            return x @ self.mu.T + ((x * r_in) @ (sigma * eps).T) * s_out
        if estimator == "lrt":
            mean = x @ self.mu.T
            var = (x * x) @ (sigma * sigma).T
            xi = noise.xi if noise.xi is not None else torch.randn_like(mean)
            return mean + torch.sqrt(var + 1e-8) * xi
        raise ValueError(f"unknown estimator {estimator!r}; one of {ESTIMATORS}")

    def mean_forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.mu.T


class BLoRALinear(nn.Module):
    """A frozen nn.Linear plus a BLoRA adapter (or a plain LoRA one with `bayesian=False`)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0, bayesian: bool = True,
                 bayesian_a_only: bool = False, estimator: str = "flipout"):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.scale, self.dropout = r, alpha / r, dropout
        self.bayesian, self.a_only, self.estimator = bayesian, bayesian_a_only, estimator
        fan_in, fan_out = base.in_features, base.out_features
        if bayesian:
            self.A = BayesianFactor(r, fan_in)
            self.B = BayesianFactor(fan_out, r) if not bayesian_a_only else None
            self.B_det = nn.Parameter(torch.zeros(fan_out, r)) if bayesian_a_only else None
        else:
            self.lora_A = nn.Parameter(torch.zeros(r, fan_in))
            self.lora_B = nn.Parameter(torch.zeros(fan_out, r))
        self.noise: AdapterNoise | None = None  # set before a forward to replay the engine's draws
        self.use_means = False                   # evaluation: posterior means

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The spec's init: μ_A / lora_A kaiming-uniform(a=√5) = U(−1/√in, 1/√in); μ_B = B = 0;
        ρ_A ~ U(−5.5, −4.5); ρ_B = −50."""
        bound = 1 / math.sqrt(self.base.in_features)
        with torch.no_grad():
            if self.bayesian:
                self.A.mu.uniform_(-bound, bound, generator=generator)
                self.A.rho.uniform_(-5.5, -4.5, generator=generator)
                if self.B is not None:
                    self.B.mu.zero_()
                    self.B.rho.fill_(-50.0)
                else:
                    self.B_det.zero_()
            else:
                self.lora_A.uniform_(-bound, bound, generator=generator)
                self.lora_B.zero_()

    def kl(self, sigma_p: float, log_eps: float = 0.0) -> torch.Tensor:
        if not self.bayesian:
            return torch.zeros(())
        total = kl_factor(self.A.mu, self.A.rho, sigma_p, log_eps)
        if self.B is not None:
            total = total + kl_factor(self.B.mu, self.B.rho, sigma_p, log_eps)
        return total

    def delta_weight_mean(self) -> torch.Tensor:
        """ΔW = s·μ_B·μ_A (what evaluation and export use)."""
        if not self.bayesian:
            return self.scale * self.lora_B @ self.lora_A
        b = self.B.mu if self.B is not None else self.B_det
        return self.scale * b @ self.A.mu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        noise = self.noise or AdapterNoise()
        h_in = x
        if self.training and self.dropout > 0:
            mask = noise.dropout_mask if noise.dropout_mask is not None else \
                (torch.rand_like(x) >= self.dropout).to(x.dtype) / (1 - self.dropout)
            h_in = x * mask
        if not self.bayesian:
            return y + self.scale * (h_in @ self.lora_A.T) @ self.lora_B.T
        if self.use_means or not self.training:
            h = self.A.mean_forward(h_in)
            d = self.B.mean_forward(h) if self.B is not None else h @ self.B_det.T
            return y + self.scale * d
        h = self.A(h_in, self.estimator, noise.a)
        d = self.B(h, self.estimator, noise.b) if self.B is not None else h @ self.B_det.T
        return y + self.scale * d


def attach_blora(model: nn.Module, targets: list[str], layer_filter: str = "model.decoder.layers.", **kw) -> dict[str, BLoRALinear]:
    """Replace the targeted nn.Linear modules (names ending in one of `targets`, under `layer_filter`)."""
    wrapped: dict[str, BLoRALinear] = {}
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full.startswith(layer_filter) and any(full.endswith(t) for t in targets):
                ad = BLoRALinear(child, **kw)
                setattr(module, child_name, ad)
                wrapped[full] = ad
    return wrapped


def total_kl(adapters: dict[str, BLoRALinear], sigma_p: float, log_eps: float = 0.0) -> torch.Tensor:
    """KL = sum over all factor matrices of all adapted modules of the per-factor mean."""
    return sum((a.kl(sigma_p, log_eps) for a in adapters.values()), torch.zeros(()))

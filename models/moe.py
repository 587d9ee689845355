"""Feed-forward layers: the dense SwiGLU and a sparse Mixture-of-Experts of SwiGLU experts.

The MoE follows the OneRec Technical Report's decoder ("Decoder": MoE feed-forward, top-k
routing, load balancing without an auxiliary loss) with the balancing method of Wang et al.,
"Auxiliary-Loss-Free Load Balancing Strategy for Mixture-of-Experts" (arXiv 2408.15664), the
one DeepSeek-V3 uses (arXiv 2412.19437, §2.1.2): each expert ``e`` has a bias ``b_e`` added to
its routing score for *selection only*; the gate weights use the unbiased scores. After each
optimizer step ``b_e += rate * sign(mean_load - load_e)``, so overloaded experts get picked less.
The bias is a buffer, never a parameter: no gradient flows through it and there is no extra loss.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


class SwiGLU(nn.Module):
    """``W2 (silu(W1 x) * W3 x)`` (Shazeer 2020), the FFN of every block here."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.w_gate = nn.Linear(d_model, d_ff, bias=False)
        self.w_up = nn.Linear(d_model, d_ff, bias=False)
        self.w_down = nn.Linear(d_ff, d_model, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.w_down(F.silu(self.w_gate(x)) * self.w_up(x)))


class MoE(nn.Module):
    """Top-k routed SwiGLU experts with bias-based (auxiliary-loss-free) load balancing.

    Routing scores are sigmoid affinities (DeepSeek-V3); the ``top_k`` experts by ``score + bias``
    are chosen and their unbiased scores, normalised to sum to 1, weight the outputs. While
    training, the forward pass counts tokens per expert in ``load_count``; ``update_bias()``
    (called by the trainer after ``optimizer.step()``) turns the counts into a bias step and resets
    them. Under DDP the counts are all-reduced first, so every rank applies the same bias.
    """

    def __init__(self, d_model: int, d_ff: int, n_experts: int, top_k: int, bias_rate: float, dropout: float = 0.0):
        super().__init__()
        self.top_k, self.bias_rate = top_k, bias_rate
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(d_model, d_ff, dropout) for _ in range(n_experts))
        # Persistent: the bias is part of the model (it decides routing at inference too).
        self.register_buffer("expert_bias", torch.zeros(n_experts))
        self.register_buffer("load_count", torch.zeros(n_experts), persistent=False)
        self.last_load: Tensor | None = None  # share of routed tokens per expert at the last update

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    def route(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(expert index, gate weight)`` per token and slot, both ``(N, top_k)``."""
        scores = torch.sigmoid(self.router(x).float())
        # The bias only decides *which* experts; it never scales an output (so it needs no gradient).
        chosen = (scores + self.expert_bias).topk(self.top_k, dim=-1).indices
        gates = scores.gather(-1, chosen)
        return chosen, gates / gates.sum(-1, keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        chosen, gates = self.route(x)
        if self.training:
            self.load_count += torch.bincount(chosen.flatten(), minlength=self.n_experts).to(self.load_count)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = torch.nonzero(chosen == e, as_tuple=True)
            if token.numel():
                y = expert(x[token]) * gates[token, slot, None]
                out.index_add_(0, token, y.to(out.dtype))
        return out.reshape(shape)

    @torch.no_grad()
    def update_bias(self) -> None:
        """One bias step from the loads counted since the last call: ``b += rate * sign(mean - load)``."""
        load = self.load_count.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(load)
        self.load_count.zero_()
        if load.sum() == 0:
            return
        self.expert_bias += self.bias_rate * torch.sign(load.mean() - load)
        self.last_load = load / load.sum()


def moe_layers(model: nn.Module) -> list[MoE]:
    return [m for m in model.modules() if isinstance(m, MoE)]


def update_moe_biases(model: nn.Module) -> dict[str, float]:
    """Step every MoE layer's bias; returns load stats for logging (empty for a dense model).

    ``moe_max_load`` is the largest ``load_e / mean load`` over all layers (1.0 = perfectly
    balanced, ``n_experts / top_k`` = one expert gets every token it can).
    """
    layers = moe_layers(model)
    for layer in layers:
        layer.update_bias()
    loads = [layer.last_load for layer in layers if layer.last_load is not None]
    if not loads:
        return {}
    ratio = max(float(load.max() * len(load)) for load in loads)
    return {"moe_max_load": ratio, "moe_bias_abs_max": max(float(m.expert_bias.abs().max()) for m in layers)}

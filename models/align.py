"""Preference alignment of a generator with a reward: ECPO (default) or DPO.

ECPO, "Early Clipped GRPO" (OneRec Technical Report, arXiv 2506.13695, "Reinforcement Learning"):
for each user, sample a group of ``G`` items from the old policy (beam search, as the report does,
or ancestral sampling), score them, and normalise the rewards inside the group,
``A_i = (r_i - mean(r)) / std(r)``. The objective is PPO's clipped surrogate on the sequence
probability ratio, without a KL term; for a negative advantage the old probability is first
floored, ``pi_old' = max(pi_old, sg(pi_theta) / (1 + eps + delta))``, so the ratio -- and the
gradient pushing an item down -- can never exceed ``1 + eps + delta`` (the report uses
``delta = 0.1``). As in the report, an SFT loss on ordinary training samples is optimised jointly
(``sft_weight``) instead of a KL penalty. Rollouts are on-policy: the old policy is the model at
the start of each step, and ``ppo_epochs`` updates reuse one batch of rollouts.

DPO, the Iterative Preference Alignment of OneRec (arXiv 2502.18965, "Iterative Preference
Alignment with RM"): from the ``G`` generations per user take the best and the worst by reward as
chosen / rejected, and minimise ``-log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log
ref(r))))`` against the frozen pre-alignment model.

The reward (models/policy_eval.PolicyReward) is P-Score + format reward (illegal tuples get a
penalty, so unconstrained rollouts teach legality) + an optional business term. OneRec-V2 (arXiv
2508.20900) replaces ratio clipping by GBPO and the reward model by real feedback; not done here.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.beam import SemanticIdTrie, beam_search
from models.data import Examples, onerec_batch
from models.moe import update_moe_biases
from models.onerec import SemanticIdGenerator
from models.policy_eval import PolicyReward


@dataclass(kw_only=True)
class AlignConfig:
    method: str = "ecpo"  # ecpo | dpo
    steps: int = 20
    users_per_step: int = 32
    group_size: int = 8
    rollout: str = "beam"  # beam | sample
    constrained: bool = False
    lr: float = 1e-4
    clip_eps: float = 0.2
    early_clip_delta: float = 0.1
    ppo_epochs: int = 2
    sft_weight: float = 1.0
    dpo_beta: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("ecpo", "dpo") or self.rollout not in ("beam", "sample"):
            raise ValueError(f"unknown method/rollout {self.method!r}/{self.rollout!r}")
        if self.group_size < 2:
            raise ValueError("a group needs at least 2 generations")


def group_advantages(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """``(r - mean) / std`` within each user's group (rows of ``(B, G)``); 0 where all rewards tie."""
    mean, std = rewards.mean(1, keepdim=True), rewards.std(1, keepdim=True, unbiased=False)
    return torch.where(std > eps, (rewards - mean) / (std + eps), torch.zeros_like(rewards))


def ecpo_loss(logp: Tensor, logp_old: Tensor, adv: Tensor, eps: float = 0.2, delta: float = 0.1) -> Tensor:
    """Early-clipped PPO surrogate (to minimise). All arguments are per-sequence ``(N,)``."""
    # Negative advantages: floor pi_old at sg(pi_theta) / (1 + eps + delta), in log space.
    floor = logp.detach() - math.log1p(eps + delta)
    old = torch.where(adv < 0, torch.maximum(logp_old, floor), logp_old)
    ratio = torch.exp(logp - old)
    return -torch.minimum(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv).mean()


def dpo_loss(logp_c: Tensor, logp_r: Tensor, ref_c: Tensor, ref_r: Tensor, beta: float = 0.1) -> Tensor:
    """DPO (Rafailov et al. 2023) on sequence log-probabilities of chosen / rejected generations."""
    return -F.logsigmoid(beta * ((logp_c - ref_c) - (logp_r - ref_r))).mean()


def sequence_logprob(model: SemanticIdGenerator, batch: dict[str, Tensor], codes: Tensor) -> Tensor:
    """``log pi(codes | context)`` ``(N,)``: the sum over the tuple's tokens (teacher forcing)."""
    _, logits = model({**batch, "target_codes": codes})
    return torch.log_softmax(logits, -1).gather(-1, codes.unsqueeze(-1)).squeeze(-1).sum(-1)


@torch.no_grad()
def rollout(policy: SemanticIdGenerator, batch: dict[str, Tensor], trie: SemanticIdTrie, group: int, mode: str,
            constrained: bool, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``group`` generations per user: ``(codes (B, G, L), items (B, G))``, item -1 = illegal tuple."""
    if mode == "beam":
        result = beam_search(policy, batch, trie, group, constrained=constrained)
        return result.codes, result.items
    was_training = policy.training
    policy.eval()
    state = policy.encode_context(batch)
    b = state["mask"].shape[0]
    state = {k: v.repeat_interleave(group, 0) for k, v in state.items()}
    prefix = torch.zeros(b * group, 0, dtype=torch.long, device=state["mask"].device)
    for _ in range(trie.levels):
        logits = policy.decode_step(state, prefix)
        if constrained:
            logits = logits.masked_fill(~trie.allowed(prefix), float("-inf"))
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        prefix = torch.cat([prefix, nxt], 1)
    policy.train(was_training)
    return prefix.view(b, group, -1), trie.lookup(prefix).view(b, group)


def align(model: SemanticIdGenerator, contexts: Examples, item_codes: np.ndarray, trie: SemanticIdTrie,
          reward: PolicyReward, cfg: AlignConfig, sft_batch: Callable[[np.random.Generator], dict] | None = None,
          device: str = "cpu") -> list[dict[str, Any]]:  # fmt: skip
    """Align ``model`` in place for ``cfg.steps`` steps; returns one log row per step."""
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    ref = copy.deepcopy(model).eval() if cfg.method == "dpo" else None
    model.eval()  # no dropout: old and new log-probabilities must come from the same function
    log, g = [], cfg.group_size
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        idx = rng.choice(len(contexts), size=min(cfg.users_per_step, len(contexts)), replace=False)
        ctx = {k: v.to(device) for k, v in onerec_batch(contexts, idx, model.cfg, item_codes).items()}
        codes, items = rollout(model, ctx, trie, g, cfg.rollout, cfg.constrained, gen)
        r = reward(reward.history(contexts, idx), items.cpu()).to(device)
        t1 = time.perf_counter()
        if cfg.method == "ecpo":
            rep = {k: v.repeat_interleave(g, 0) for k, v in ctx.items()}
            flat, adv = codes.reshape(-1, codes.shape[-1]), group_advantages(r).reshape(-1)
            with torch.no_grad():
                logp_old = sequence_logprob(model, rep, flat)
            for _ in range(cfg.ppo_epochs):
                rl = ecpo_loss(sequence_logprob(model, rep, flat), logp_old, adv, cfg.clip_eps, cfg.early_clip_delta)
                loss = _update(model, opt, rl, sft_batch, rng, cfg, device)
        else:
            best, worst = r.argmax(1), r.argmin(1)
            keep = r.gather(1, best[:, None])[:, 0] > r.gather(1, worst[:, None])[:, 0]
            if not keep.any():
                log.append({"step": step + 1, "skipped": "no preference pairs"})
                continue
            sub = {k: v[keep] for k, v in ctx.items()}
            rows = torch.arange(len(idx), device=device)[keep]
            chosen, rejected = codes[rows, best[keep]], codes[rows, worst[keep]]
            with torch.no_grad():
                ref_c, ref_r = sequence_logprob(ref, sub, chosen), sequence_logprob(ref, sub, rejected)
            rl = dpo_loss(sequence_logprob(model, sub, chosen), sequence_logprob(model, sub, rejected), ref_c, ref_r,
                          cfg.dpo_beta)  # fmt: skip
            loss = _update(model, opt, rl, sft_batch, rng, cfg, device)
        legal = items >= 0
        log.append({"step": step + 1, "loss": loss, "rl_loss": float(rl.detach()),
                    "rollout_reward": float(r.mean()), "rollout_legal": float(legal.float().mean()),
                    "rollout_s": t1 - t0, "update_s": time.perf_counter() - t1})  # fmt: skip
    return log


def _update(model, opt, rl: Tensor, sft_batch, rng, cfg: AlignConfig, device: str) -> float:
    """One optimizer step on RL loss + ``sft_weight`` x next-token CE of a supervised batch."""
    loss = rl
    if sft_batch is not None and cfg.sft_weight:
        sft, _ = model({k: v.to(device) for k, v in sft_batch(rng).items()})
        loss = loss + cfg.sft_weight * sft
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    update_moe_biases(model)
    return float(loss.detach())

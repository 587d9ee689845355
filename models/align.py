"""Preference alignment of a generator: GBPO, ECPO or DPO, on reward-model rollouts and on real feedback.

GBPO, Gradient-Bounded Policy Optimization (OneRec-V2 Technical Report, arXiv 2508.20900,
§3.1.2 "Preference Alignment with Real-World User Interactions"; the v1 of the report calls it
"Adaptive Ratio Clipping"): ``J = -E[(1/G) sum_i pi_theta / pi'_old * A_i]`` with
``pi'_old = max(pi_old, sg(pi_theta))`` for ``A >= 0`` and ``max(pi_old, 1 - sg(pi_theta))`` for
``A < 0``, and no ratio clipping. The gradient with respect to ``pi_theta`` is then
``A / pi'_old``: at most ``|A| / pi_theta`` for positives and ``|A| / (1 - pi_theta)`` for
negatives -- the gradient of binary cross-entropy -- so a sample whose old probability was tiny can
no longer blow the update up, and no sample's gradient is zeroed by a clip. Where an exposure has
no logged generation probability (served by another system), ``pi_old := sg(pi_theta)``.

ECPO, "Early Clipped GRPO" (OneRec Technical Report, arXiv 2506.13695, §"Reinforcement
Learning" / "Preference Alignment"): PPO's clipped surrogate on the sequence probability ratio,
without KL; for a negative advantage ``pi_old' = max(pi_old, sg(pi_theta) / (1 + eps + delta))``
so the ratio can never exceed ``1 + eps + delta`` (``delta = 0.1``).

For both, each user gets a group of ``G`` rollouts of the old policy (beam search as the reports
do, or ancestral sampling), scored by the reward model; ``A_i = (r_i - mean(r)) / std(r)`` over
the *legal* generations of the group. The format reward is the technical report's (§"Format
Reward"): ``K`` of the ``G`` generations are drawn at random, the legal ones get ``A = 1``, the
illegal ones are dropped -- not given a negative advantage inside the group normalisation, which
the report warns squeezes the probability of legal items too. An SFT loss on ordinary training
samples is optimised jointly (``sft_weight``) instead of a KL penalty.

Real feedback (OneRec-V2 §3.1.1 "Duration-Aware Reward Shaping"): ``feedback`` -- the day's logged
exposures with V2's +1 / -1 advantages (``models/reward_shaping.v2_advantages``) -- adds a batch of
logged (context, item, A) samples to every GBPO / ECPO step, with ``pi_old`` the logged generation
probability where there is one (NaN otherwise, i.e. ``sg(pi_theta)``).

DPO, the Iterative Preference Alignment of OneRec (arXiv 2502.18965, §"Iterative Preference
Alignment with RM"): beam-search ``G`` generations for a small share of users (``users_per_step``),
take the best and the worst by reward as chosen / rejected (self-hard negatives from the beam),
and minimise ``-log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))`` beside
the next-token loss; with ``dpo_rounds`` > 1 the reference is replaced by the current model at the
start of each round, as the paper iterates.
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
    method: str = "gbpo"  # gbpo | ecpo | dpo
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
    # Iterative DPO (OneRec, arXiv 2502.18965): the steps are split into this many rounds and the
    # reference is replaced by the current model at the start of each.
    dpo_rounds: int = 1
    grad_clip: float = 1.0
    # Format reward: K of the G generations drawn at random, A = 1 for the legal ones (0: off).
    format_samples: int = 4
    format_weight: float = 1.0
    # Logged exposures with V2 advantages mixed into each step (0: none).
    feedback_per_step: int = 32
    # Weight of the reward model's group advantages (0: rollouts teach only the format reward).
    reward_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("gbpo", "ecpo", "dpo") or self.rollout not in ("beam", "sample"):
            raise ValueError(f"unknown method/rollout {self.method!r}/{self.rollout!r}")
        if self.group_size < 2:
            raise ValueError("a group needs at least 2 generations")
        if self.dpo_rounds < 1:
            raise ValueError("dpo_rounds must be >= 1")


def group_advantages(rewards: Tensor, mask: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """``(r - mean) / std`` within each user's group (rows of ``(B, G)``) over the ``mask``-ed entries
    (default: all); 0 outside the mask and where the group's rewards tie."""
    mask = torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask
    m = mask.float()
    n = m.sum(1, keepdim=True).clamp(min=1.0)
    r = torch.where(mask, rewards, torch.zeros_like(rewards))
    mean = (r * m).sum(1, keepdim=True) / n
    std = ((((r - mean) * m) ** 2).sum(1, keepdim=True) / n).sqrt()
    return torch.where(mask & (std > eps), (r - mean) / (std + eps), torch.zeros_like(rewards))


def gbpo_loss(logp: Tensor, logp_old: Tensor, adv: Tensor) -> Tensor:
    """GBPO surrogate (to minimise), per-sequence ``(N,)`` log-probabilities; ``logp_old`` NaN = not logged.

    ``pi'_old = max(pi_old, sg(pi))`` for ``A >= 0``, ``max(pi_old, 1 - sg(pi))`` for ``A < 0``
    (OneRec-V2 §3.1.2), in log space; no clipping, so every sample keeps a (bounded) gradient.
    """
    cur = logp.detach()
    old = torch.where(torch.isnan(logp_old), cur, logp_old)  # not generated by this model: pi_old := sg(pi)
    # log(1 - pi), kept finite when pi rounds to 1.
    log_not = torch.log1p(-torch.exp(cur).clamp(max=1.0 - 1e-7))
    floor = torch.where(adv >= 0, cur, log_not)
    ratio = torch.exp(logp - torch.maximum(old, floor))
    return -(ratio * adv).mean()


def ecpo_loss(logp: Tensor, logp_old: Tensor, adv: Tensor, eps: float = 0.2, delta: float = 0.1) -> Tensor:
    """Early-clipped PPO surrogate (to minimise). All arguments are per-sequence ``(N,)``."""
    # Negative advantages: floor pi_old at sg(pi_theta) / (1 + eps + delta), in log space.
    floor = logp.detach() - math.log1p(eps + delta)
    logp_old = torch.where(torch.isnan(logp_old), logp.detach(), logp_old)  # not logged: pi_old := sg(pi)
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


@dataclass
class Feedback:
    """Logged exposures to learn from: context + item (``examples``, one target each), V2 advantage
    ``adv (N,)`` and the logged generation log-probability ``logp_old (N,)`` (NaN: not logged)."""

    examples: Examples
    adv: np.ndarray
    logp_old: np.ndarray

    def __len__(self) -> int:
        return len(self.adv)


def rollout_advantages(rewards: Tensor, items: Tensor, cfg: AlignConfig, generator: torch.Generator | None = None
                       ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``(flat sample index, advantage)`` of one step's rollouts ``(B, G)``.

    Preference: group-normalised reward over the legal generations (ties and illegal ones carry
    nothing). Format (technical report): ``K`` of ``G`` drawn at random, ``A = format_weight`` for
    the legal ones, illegal ones dropped.
    """
    legal = items >= 0
    pref = cfg.reward_weight * group_advantages(torch.nan_to_num(rewards), legal).reshape(-1)
    idx, adv = [torch.nonzero(pref).squeeze(1)], []
    adv.append(pref[idx[0]])
    if cfg.format_samples and cfg.format_weight:
        b, g = items.shape
        order = torch.rand(b, g, generator=generator).argsort(1)[:, : min(cfg.format_samples, g)]
        picked = torch.zeros(b, g, dtype=torch.bool).scatter_(1, order, True) & legal.cpu()
        fidx = torch.nonzero(picked.reshape(-1)).squeeze(1).to(rewards.device)
        idx.append(fidx)
        adv.append(torch.full((len(fidx),), cfg.format_weight, device=rewards.device))
    return torch.cat(idx), torch.cat(adv)


def align(model: SemanticIdGenerator, contexts: Examples, item_codes: np.ndarray, trie: SemanticIdTrie,
          reward: PolicyReward, cfg: AlignConfig, sft_batch: Callable[[np.random.Generator], dict] | None = None,
          device: str = "cpu", feedback: Feedback | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Align ``model`` in place for ``cfg.steps`` steps; returns one log row per step."""
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    ref = copy.deepcopy(model).eval() if cfg.method == "dpo" else None
    model.eval()  # no dropout: old and new log-probabilities must come from the same function
    log, g = [], cfg.group_size
    per_round = max(1, math.ceil(cfg.steps / cfg.dpo_rounds))
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        if ref is not None and step and step % per_round == 0:  # iterative DPO: a new reference each round
            ref = copy.deepcopy(model).eval()
        idx = rng.choice(len(contexts), size=min(cfg.users_per_step, len(contexts)), replace=False)
        ctx = {k: v.to(device) for k, v in onerec_batch(contexts, idx, model.cfg, item_codes).items()}
        codes, items = rollout(model, ctx, trie, g, cfg.rollout, cfg.constrained, gen)
        r = reward(reward.history(contexts, idx), items.cpu()).to(device)
        legal = items >= 0
        t1 = time.perf_counter()
        if cfg.method in ("gbpo", "ecpo"):
            surrogate = gbpo_loss if cfg.method == "gbpo" else (
                lambda lp, old, a: ecpo_loss(lp, old, a, cfg.clip_eps, cfg.early_clip_delta))  # fmt: skip
            rep = {k: v.repeat_interleave(g, 0) for k, v in ctx.items()}
            flat = codes.reshape(-1, codes.shape[-1])
            pick, adv = rollout_advantages(torch.where(legal, r, torch.nan), items, cfg, gen)
            fb = _feedback_batch(feedback, cfg, rng, model, item_codes, device)
            if len(pick) == 0 and fb is None:
                log.append({"step": step + 1, "skipped": "no advantage: all ties, nothing legal, no feedback"})
                continue
            with torch.no_grad():
                logp_old = sequence_logprob(model, rep, flat)
            for _ in range(cfg.ppo_epochs):
                rl = surrogate(sequence_logprob(model, rep, flat)[pick], logp_old[pick], adv) if len(pick) else 0.0
                if fb is not None:
                    batch, fcodes, fold, fadv = fb
                    rl = rl + surrogate(sequence_logprob(model, batch, fcodes), fold, fadv)
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
        log.append({"step": step + 1, "round": step // per_round + 1, "loss": loss, "rl_loss": float(rl.detach()),
                    "rollout_reward": float(r[legal].mean()) if legal.any() else float("nan"),
                    "rollout_legal": float(legal.float().mean()),
                    "rollout_s": t1 - t0, "update_s": time.perf_counter() - t1})  # fmt: skip
    return log


def _feedback_batch(feedback: Feedback | None, cfg: AlignConfig, rng: np.random.Generator, model, item_codes,
                    device: str):  # fmt: skip
    """A random batch of logged exposures: ``(context batch, item codes, logp_old, advantage)``, or None."""
    if feedback is None or not len(feedback) or not cfg.feedback_per_step:
        return None
    idx = rng.choice(len(feedback), size=min(cfg.feedback_per_step, len(feedback)), replace=False)
    batch = {k: v.to(device) for k, v in onerec_batch(feedback.examples, idx, model.cfg, item_codes).items()}
    codes = torch.from_numpy(item_codes[feedback.examples.targets[idx, 0]]).to(device)
    old = torch.as_tensor(feedback.logp_old[idx], dtype=torch.float32, device=device)
    return batch, codes, old, torch.as_tensor(feedback.adv[idx], dtype=torch.float32, device=device)


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

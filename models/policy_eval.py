"""What a generator's recommendations are worth: reward of generated items and the promotion metrics.

``PolicyReward`` is the alignment reward of the OneRec Technical Report (arXiv 2506.13695,
"Reward System"): the P-Score of the generated item for this user (models/reward.py), a format
reward (an ID tuple that is not in the catalogue gets ``illegal_reward`` instead), and an optional
business term (``business_weight`` x a per-item value, e.g. down-weighting low-quality content).

``generation_metrics`` scores a generator on held-out users the way promotion compares models:
leave-one-out Recall/NDCG@10 of the constrained beam (models/evaluate.py's helpers), the mean
P-Score of the top-10 items, the legal rate of *unconstrained* greedy decoding (the constrained
beam is legal by construction), catalogue coverage and intra-list diversity (distinct first-level
codes among a user's top 10, over 10).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.beam import SemanticIdTrie, beam_search
from models.data import Examples, onerec_batch
from models.evaluate import coverage, ranking_metrics, ranks_from_topk
from models.onerec import SemanticIdGenerator
from models.reward import PScore

K = 10


class PolicyReward:
    """Reward of generated items, in the generator's item index space."""

    def __init__(self, pscore: PScore, reward_item_ids: list[str], policy_item_ids: list[str],
                 illegal_reward: float = -1.0, business: np.ndarray | None = None,
                 business_weight: float = 0.0) -> None:  # fmt: skip
        vocab = {item: i + 1 for i, item in enumerate(reward_item_ids)}
        # policy index -> reward-model index (0: unknown to the reward model, scored as "no item")
        self.to_reward = torch.tensor([vocab.get(item, 0) if item else 0 for item in policy_item_ids])
        self.pscore, self.history_len = pscore.eval(), pscore.cfg.history_len
        self.illegal_reward, self.business_weight = illegal_reward, business_weight
        self.business = None if business is None else torch.as_tensor(business, dtype=torch.float32)

    def history(self, examples: Examples, idx: np.ndarray) -> Tensor:
        """``(B, H)`` reward-vocabulary history of examples ``idx`` (their context, most recent last)."""
        items = examples.seqs.tail(examples.rows[idx], examples.ends[idx], self.history_len)
        return self.to_reward[torch.from_numpy(items)]

    @torch.no_grad()
    def pscore_of(self, history: Tensor, items: Tensor) -> Tensor:
        """P-Score ``(B, G)`` of policy items ``(B, G)`` (-1 = illegal: NaN)."""
        legal = items >= 0
        scores = self.pscore.score(history, self.to_reward[items.clamp(min=0)])
        return scores.masked_fill(~legal, float("nan"))

    @torch.no_grad()
    def __call__(self, history: Tensor, items: Tensor) -> Tensor:
        """Total reward ``(B, G)``: P-Score (+ business term) for legal items, ``illegal_reward`` otherwise."""
        r = self.pscore_of(history, items)
        if self.business is not None and self.business_weight:
            r = r + self.business_weight * self.business[items.clamp(min=0)]
        return torch.where(items >= 0, r, torch.full_like(r, self.illegal_reward))


@torch.no_grad()
def generation_metrics(model: SemanticIdGenerator, examples: Examples, item_codes: np.ndarray, trie: SemanticIdTrie,
                       reward: PolicyReward | None = None, beam_size: int = 10, batch_size: int = 128,
                       device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Promotion metrics of ``model`` on ``examples`` (one held-out target per user)."""
    if beam_size < K:
        raise ValueError(f"beam size {beam_size} < {K}")
    ranks, tops, firsts, greedy_legal, rewards = [], [], [], [], []
    for s in range(0, len(examples), batch_size):
        idx = np.arange(s, min(s + batch_size, len(examples)))
        batch = {k: v.to(device) for k, v in onerec_batch(examples, idx, model.cfg, item_codes).items()}
        top = beam_search(model, batch, trie, beam_size, top_k=K)
        ranks.append(ranks_from_topk(top.items, batch["target_items"][:, 0]).cpu())
        tops.append(top.items.cpu())
        firsts.append(top.codes[:, :, 0].cpu())
        greedy = beam_search(model, batch, trie, beam_size=1, constrained=False)
        greedy_legal.append((greedy.items >= 0).float().cpu())
        if reward is not None:
            rewards.append(reward.pscore_of(reward.history(examples, idx), top.items.cpu()))
    items, first = torch.cat(tops), torch.cat(firsts)
    distinct = torch.tensor([len(torch.unique(row[it >= 0])) for row, it in zip(first, items, strict=True)])
    out = {
        **ranking_metrics(torch.cat(ranks), (5, K)),
        f"coverage@{K}": coverage(items, model.cfg.n_items),
        f"diversity@{K}": float(distinct.float().mean() / K),
        "legal_rate": float(torch.cat(greedy_legal).mean()),
        "n_users": len(examples),
    }
    if rewards:
        r = torch.cat(rewards)
        out["mean_reward"] = float(torch.nanmean(r)) if torch.isfinite(r).any() else 0.0
    return out

"""What a generator's recommendations are worth: reward of generated items and the promotion metrics.

``PolicyReward`` is the alignment reward of the OneRec Technical Report (arXiv 2506.13695,
"Reward System"): the P-Score of the generated item for this user (models/reward.py), a format
reward (an ID tuple that is not in the catalogue gets ``illegal_reward`` instead), and an optional
business term (``business_weight`` x a per-item value, e.g. down-weighting low-quality content).

``generation_metrics`` scores a generator on held-out users the way promotion compares models:
leave-one-out Recall/NDCG@10 of the constrained beam (models/evaluate.py's helpers), the mean
P-Score of the top-10 items, the legal rate of *unconstrained* greedy decoding (the constrained
beam is legal by construction), catalogue coverage and intra-list diversity (distinct first-level
codes among a user's top 10, over 10). Recall/NDCG@10 come with their standard errors over users.
Given an ``oracle`` (anything with ``of_lists(user_ids, item_id_lists) -> {signal: per-user array}``,
e.g. the sample simulator's ``jobs.sample_oracle.SampleOracle``), the top-10's expected engagement
under the ground truth is added as ``oracle_<signal>`` and ``oracle_<signal>_se``.

``mean_reward`` is the learned reward of the top 10: a diagnostic of what alignment optimised,
never a promotion gate (a policy cannot be judged by the reward it was optimised on).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from models.beam import SemanticIdTrie, beam_search
from models.data import Examples, onerec_batch
from models.evaluate import coverage, ranking_metrics, ranks_from_topk
from models.onerec import SemanticIdGenerator
from models.reward import PScore

K = 10


class Oracle(Protocol):
    def of_lists(self, user_ids: list[str], lists: list[list[str | None]]) -> dict[str, np.ndarray]: ...


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean over the finite values and its standard error (NaN where there are too few)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    mean = float(v.mean()) if len(v) else float("nan")
    return mean, float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def oracle_metrics(oracle: Oracle, user_ids: list[str], lists: list[list[str | None]]) -> dict[str, float]:
    """``oracle_<signal>`` (mean over users of the list's mean expected signal) and ``oracle_<signal>_se``."""
    out: dict[str, float] = {}
    for name, per_user in oracle.of_lists(user_ids, lists).items():
        out[f"oracle_{name}"], out[f"oracle_{name}_se"] = mean_se(per_user)
    return out


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
                       device: str = "cpu", oracle: Oracle | None = None, user_ids: list[str] | None = None,
                       item_ids: list[str] | None = None, per_user: bool = False) -> dict[str, Any]:  # fmt: skip
    """Promotion metrics of ``model`` on ``examples`` (one held-out target per user).

    ``oracle`` needs ``user_ids`` (indexed by ``examples.rows``) and ``item_ids`` (the generator's index).
    ``per_user``: also ``"per_user": {metric: list}`` (hit@10, ndcg@10, oracle signals), for paired comparisons.
    """
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
    rank = torch.cat(ranks).double()
    hit = rank <= K
    out = {
        **ranking_metrics(rank, (5, K)),
        f"recall@{K}_se": mean_se(hit.double().numpy())[1],
        f"ndcg@{K}_se": mean_se(torch.where(hit, 1.0 / torch.log2(rank.clamp(max=1e9) + 1.0), 0.0).numpy())[1],
        f"coverage@{K}": coverage(items, model.cfg.n_items),
        f"diversity@{K}": float(distinct.float().mean() / K),
        "legal_rate": float(torch.cat(greedy_legal).mean()),
        "n_users": len(examples),
    }
    if rewards:
        r = torch.cat(rewards)
        out["mean_reward"] = float(torch.nanmean(r)) if torch.isfinite(r).any() else 0.0
    if oracle is not None and user_ids is not None and item_ids is not None:
        users = [user_ids[r] for r in examples.rows]
        lists = [[item_ids[i] if i > 0 else None for i in row] for row in items.tolist()]
        truth = oracle.of_lists(users, lists)
        for name, values in truth.items():
            out[f"oracle_{name}"], out[f"oracle_{name}_se"] = mean_se(values)
        if per_user:
            out["per_user"] = {f"oracle_{k}": v.tolist() for k, v in truth.items()}
    if per_user:
        ndcg = torch.where(hit, 1.0 / torch.log2(rank.clamp(max=1e9) + 1.0), 0.0)
        out.setdefault("per_user", {}).update({f"recall@{K}": hit.double().tolist(), f"ndcg@{K}": ndcg.tolist()})
    return out

"""Leave-one-out evaluation: Recall@k and NDCG@k over all items, legal-generation rate, coverage.

The protocol of SASRec and TIGER (Rajput et al., NeurIPS 2023, §4): one held-out item per user,
ranked against the whole catalogue (no sampled candidates, history items not filtered). With a
single relevant item, Recall@k is the hit rate and NDCG@k = ``1 / log2(rank + 1)`` if rank <= k.
SASRec ranks every item by score; a generator's ranking is its beam-search top-k (beam size
>= k) and a target not returned counts as a miss. The OneRec papers' "legal generation" share is
reported for the constrained beam (1.0 by construction) and for unconstrained greedy decoding.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.beam import SemanticIdTrie, beam_search, rerank
from models.data import Examples, Ragged, onerec_batch, sasrec_inputs
from models.onerec import SemanticIdGenerator
from models.sasrec import SASRec

KS = (5, 10)


def ranks_from_scores(scores: Tensor, targets: Tensor) -> Tensor:
    """1-based rank of each target among all columns. Ties count against the target
    (rank = number of items scoring >= it), so a constant scorer cannot look good."""
    return (scores >= scores.gather(1, targets[:, None])).sum(1).float()


def ranks_from_topk(items: Tensor, targets: Tensor) -> Tensor:
    """Position (1-based) of the target in each top-k list, ``inf`` where it is absent."""
    hit = items == targets[:, None]
    first = hit.float().argmax(1) + 1.0
    return torch.where(hit.any(1), first, torch.full_like(first, math.inf))


def ranking_metrics(ranks: Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """``recall@k`` and ``ndcg@k`` for one relevant item per user, from 1-based ranks."""
    ranks = ranks.double().cpu()
    out = {}
    for k in ks:
        hit = ranks <= k
        out[f"recall@{k}"] = float(hit.double().mean())
        out[f"ndcg@{k}"] = float(torch.where(hit, 1.0 / torch.log2(ranks.clamp(max=1e9) + 1.0), 0.0).mean())
    return out


def coverage(items: Tensor, n_items: int) -> float:
    """Share of items 1..n recommended to at least one user (``items``: ``(N, k)``, -1 ignored)."""
    seen = torch.unique(items[(items >= 1) & (items <= n_items)])
    return len(seen) / n_items


@torch.no_grad()
def evaluate_sasrec(model: SASRec, contexts: Ragged, targets: np.ndarray, batch_size: int = 512,
                    device: str | torch.device = "cpu", ks: tuple[int, ...] = KS) -> dict[str, Any]:  # fmt: skip
    """Full-ranking metrics of SASRec for each context row and its target item."""
    was_training = model.training
    model.eval()
    inputs = sasrec_inputs(contexts, model.cfg.max_len)
    ranks, tops = [], []
    for s in range(0, len(inputs), batch_size):
        scores = model.score(torch.from_numpy(inputs[s : s + batch_size]).to(device))
        target = torch.from_numpy(targets[s : s + batch_size]).to(device)
        ranks.append(ranks_from_scores(scores, target).cpu())
        tops.append(scores.topk(max(ks), dim=1).indices.cpu())
    model.train(was_training)
    top = torch.cat(tops)
    return {**ranking_metrics(torch.cat(ranks), ks), f"coverage@{max(ks)}": coverage(top, model.cfg.n_items),
            "n_users": len(inputs)}  # fmt: skip


@torch.no_grad()
def evaluate_onerec(model: SemanticIdGenerator, examples: Examples, item_codes: np.ndarray, trie: SemanticIdTrie,
                    beam_size: int = 20, batch_size: int = 256, device: str | torch.device = "cpu",
                    ks: tuple[int, ...] = KS, greedy: bool = True, item_weight: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Beam-search metrics of a generator: ranking, legal rates (constrained, greedy), coverage.

    ``greedy=False`` skips the unconstrained greedy pass (a diagnostic; validation runs often).
    ``item_weight`` > 0 ranks the beam's items by ``beam.rerank`` when the model has an item head;
    the metrics of the plain beam order, from the same search, are then under ``"generative"``.
    """
    if beam_size < max(ks):
        raise ValueError(f"beam size {beam_size} < k = {max(ks)}: items below the beam would be misses")
    k = max(ks)
    ranks, tops, legal, greedy_legal, plain_ranks, plain_tops = [], [], [], [], [], []
    reranked = False
    for s in range(0, len(examples), batch_size):
        idx = np.arange(s, min(s + batch_size, len(examples)))
        batch = {name: t.to(device) for name, t in onerec_batch(examples, idx, model.cfg, item_codes).items()}
        beams = beam_search(model, batch, trie, beam_size)  # every beam: reranking may promote any
        target = batch["target_items"][:, 0]
        result = rerank(beams, item_weight)
        reranked = reranked or result is not beams
        ranks.append(ranks_from_topk(result.items[:, :k], target).cpu())
        tops.append(result.items[:, :k].cpu())
        plain_ranks.append(ranks_from_topk(beams.items[:, :k], target).cpu())
        plain_tops.append(beams.items[:, :k].cpu())
        legal.append((result.items[:, :k] >= 0).float().cpu())
        if greedy:
            free = beam_search(model, batch, trie, beam_size=1, constrained=False)
            greedy_legal.append((free.items >= 0).float().cpu())
    top = torch.cat(tops)
    out = {
        **ranking_metrics(torch.cat(ranks), ks),
        f"coverage@{k}": coverage(top, model.cfg.n_items),
        "legal_rate": float(torch.cat(legal).mean()),
        **({"legal_rate_greedy": float(torch.cat(greedy_legal).mean())} if greedy else {}),
        "n_users": len(examples),
    }
    if reranked:
        out["item_weight"] = item_weight
        out["generative"] = {**ranking_metrics(torch.cat(plain_ranks), ks),
                             f"coverage@{k}": coverage(torch.cat(plain_tops), model.cfg.n_items)}  # fmt: skip
    return out


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> Path:
    """``metrics.json``: sorted keys, one file per run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path

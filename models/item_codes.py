"""Semantic IDs from item vectors with torch and numpy only (runs where faiss is absent).

The benchmark's item side, in one module: item vectors learned on the *training* split only ->
balanced residual k-means (OneRec Technical Report, arXiv 2506.13695, "Balanced K-means" under
the tokenizer) -> a dedup level that makes every tuple unique (TIGER, Rajput et al. 2023, §3.1).

Two sources of behaviour vectors, both fit on training sequences only, so the valid/test
targets never shape the IDs:

* ``sasrec_item_vectors`` -- the item table of a SASRec trained on the training split (its
  next-item objective puts items that follow the same histories close together: the IDs then
  share prefixes exactly where the generator must choose between similar next items);
* ``ppmi_item_vectors`` -- PPMI of windowed co-occurrence -> truncated SVD (no model needed).

``models.rq_kmeans`` (faiss) is the production tokenizer of the Spark job; this one is for the
benchmark and the GPU box, which has torch but not faiss.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from models.data import Ragged


def unit_rows(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """L2-normalised float32 rows; all-zero rows get a seeded random direction (no shared code)."""
    x = np.asarray(x, dtype=np.float32).copy()
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    empty = norm[:, 0] < 1e-8
    x[empty] = np.random.default_rng(seed).normal(size=(int(empty.sum()), x.shape[1])).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ppmi_item_vectors(train: Ragged, n_items: int, dim: int = 64, window: int = 3, seed: int = 0) -> np.ndarray:
    """``(n_items, dim)``: PPMI of co-occurrence within ``window`` positions -> rank-``dim`` SVD."""
    n, v = n_items + 1, train.values
    heads, tails = [], []
    for off in range(1, window + 1):
        i = np.arange(max(len(v) - off, 0))
        same = np.searchsorted(train.offsets, i, "right") == np.searchsorted(train.offsets, i + off, "right")
        heads.append(v[i[same]])
        tails.append(v[i[same] + off])
    a, b = np.concatenate(heads + tails), np.concatenate(tails + heads)  # symmetric counts
    key, counts = np.unique(a * n + b, return_counts=True)
    r, c = np.divmod(key, n)
    marginal = np.bincount(r, weights=counts, minlength=n)
    pmi = np.log(counts * counts.sum() / (marginal[r] * marginal[c]))
    keep = pmi > 0
    matrix = torch.sparse_coo_tensor(
        np.stack([r[keep], c[keep]]), pmi[keep].astype(np.float32), (n, n), check_invariants=True
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(matrix.coalesce(), q=min(dim, n - 1), niter=4)
    return (u * s.sqrt()).numpy()[1:].astype(np.float32)


def sasrec_item_vectors(model: torch.nn.Module) -> np.ndarray:
    """``(n_items, d)``: a trained SASRec's item table (row 0, padding, dropped)."""
    return model.item.weight.detach()[1:].float().cpu().numpy()


def balanced_assign(dist: Tensor) -> Tensor:
    """Each cluster takes its ``ceil(n / k)`` nearest still-free points, cluster by cluster.

    The tech report's balanced assignment: every code then holds about ``n / k`` items, so no
    code is a catch-all and the decoder's per-level softmax is not skewed by cluster size.
    Clusters go in order of how tight their nearest ``n / k`` points are (tightest first keeps
    the dense regions intact).
    """
    n, k = dist.shape
    cap = -(-n // k)
    assign = torch.full((n,), -1, dtype=torch.long, device=dist.device)
    free = torch.ones(n, dtype=torch.bool, device=dist.device)
    order = dist.topk(min(cap, n), dim=0, largest=False).values.mean(0).argsort()
    for c in order.tolist():
        d = dist[:, c].masked_fill(~free, float("inf"))
        take = d.topk(min(cap, int(free.sum())), largest=False).indices
        assign[take] = c
        free[take] = False
        if not free.any():
            break
    return assign


def kmeans(x: Tensor, k: int, iters: int = 20, seed: int = 0, balanced: bool = True) -> tuple[Tensor, Tensor]:
    """``(centroids (k, d), assignment (n,))``; k-means++-free: seeded random init, Lloyd steps.

    Plain Lloyd steps first (cheap), then balanced assignments for the last few iterations so
    the centroids settle under the capacity constraint.
    """
    n = len(x)
    k = min(k, n)
    g = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(n, generator=g)[:k].to(x.device)].clone()
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    for it in range(iters):
        dist = torch.cdist(x, centroids).square()
        assign = balanced_assign(dist) if balanced and it >= iters // 2 else dist.argmin(1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = counts == 0  # reseed empty clusters to random points rather than lose them
        centroids = torch.where(empty[:, None], x[torch.randint(0, n, (k,), generator=g).to(x.device)],
                                sums / counts.clamp(min=1)[:, None])  # fmt: skip
    if balanced:
        assign = balanced_assign(torch.cdist(x, centroids).square())
    return centroids, assign


def residual_codes(x: np.ndarray, levels: int, k: int, iters: int = 20, seed: int = 0, balanced: bool = True,
                   device: str | torch.device = "cpu") -> np.ndarray:  # fmt: skip
    """``(n, levels)`` int64 codes of residual k-means (level ``l`` clusters the residual of ``l - 1``)."""
    r = torch.as_tensor(x, dtype=torch.float32, device=device)
    codes = []
    for level in range(levels):
        centroids, assign = kmeans(r, k, iters, seed + level, balanced)
        codes.append(assign.cpu())
        r = r - centroids[assign]
    return torch.stack(codes, 1).numpy().astype(np.int64)


def with_dedup_level(codes: np.ndarray) -> np.ndarray:
    """Append a level numbering the items that share a tuple (0, 1, ...), in item order: unique rows."""
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    first = np.searchsorted(inverse[order], inverse[order], "left")
    dedup = np.empty(len(codes), dtype=np.int64)
    dedup[order] = np.arange(len(codes)) - first
    return np.concatenate([codes, dedup[:, None]], 1)


def semantic_ids(vectors: np.ndarray, levels: int = 3, k: int = 256, iters: int = 20, seed: int = 0,
                 balanced: bool = True, device: str | torch.device = "cpu") -> tuple[np.ndarray, int, int]:  # fmt: skip
    """Item vectors ``(n_items, d)`` -> ``(codes (n_items + 1, levels + 1), K, dedup size)``, row 0 = 0.

    The layout ``models.train.item_codes`` reads (last column = dedup level).
    """
    codes = with_dedup_level(residual_codes(unit_rows(vectors, seed), levels, k, iters, seed, balanced, device))
    out = np.zeros((len(codes) + 1, codes.shape[1]), dtype=np.int64)
    out[1:] = codes
    return out, int(codes[:, :-1].max()) + 1, int(codes[:, -1].max()) + 1


def code_stats(codes: np.ndarray) -> dict[str, float]:
    """Collision and balance figures of a ``(n_items + 1, L + 1)`` table (row 0 ignored)."""
    c = codes[1:, :-1]
    _, counts = np.unique(c, axis=0, return_counts=True)
    first = np.bincount(c[:, 0])
    return {
        "items": int(len(c)),
        "distinct_prefix_tuples": int(len(counts)),
        "max_items_per_tuple": int(counts.max()),
        "dedup_size": int(codes[1:, -1].max()) + 1,
        "level0_max_over_mean": float(first.max() / first[first > 0].mean()),
    }

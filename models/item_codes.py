"""Item vectors from behaviour, and the generator's semantic-ID table from them.

The tokenizer itself is ``models.rq_kmeans`` (balanced residual k-means, OneRec Technical
Report, arXiv 2506.13695, + the collision level of ``resolve_collisions``), the same code the
daily ``semantic_ids`` stage runs. This module adds what the benchmark and one-off training need
on top of it:

* item vectors fit on the *training* split only, so valid/test targets never shape the IDs:
  ``sasrec_item_vectors`` (the item table of a SASRec trained on the training split: its
  next-item objective puts items that follow the same histories close together) and
  ``ppmi_item_vectors`` (PPMI of windowed co-occurrence -> truncated SVD, no model needed);
* ``semantic_ids``: vectors -> unit rows -> ``rq_kmeans.fit`` -> collision level, laid out as
  the generator reads it (``(n_items + 1, L + 1)``, row 0 = padding, last column = dedup);
* ``collaborative_codes`` (PPMI -> ``semantic_ids``) for data without item text, and
  ``code_stats`` for the report.

Runs with torch and numpy only where faiss is absent (``rq_kmeans`` then initialises k-means
with numpy Lloyd steps).
"""

from __future__ import annotations

import numpy as np
import torch

from models import rq_kmeans
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


def item_keys(n: int) -> list[str]:
    """Zero-padded index strings: ``resolve_collisions`` ranks by these, i.e. in item order."""
    return [f"{i:012d}" for i in range(1, n + 1)]


def with_dedup_level(codes: np.ndarray) -> np.ndarray:
    """Append a level numbering the items that share a tuple (0, 1, ...), in item order: unique rows."""
    return rq_kmeans.resolve_collisions(np.asarray(codes), item_keys(len(codes))).astype(np.int64)


def semantic_ids(vectors: np.ndarray, levels: int = 3, k: int = 256, iters: int = 20, seed: int = 0,
                 balanced: bool = True, backend: str | None = None) -> tuple[np.ndarray, int, int]:  # fmt: skip
    """Item vectors ``(n_items, d)`` -> ``(codes (n_items + 1, levels + 1), K, dedup size)``, row 0 = 0.

    Unit rows -> ``rq_kmeans.fit`` (``backend`` as there: faiss if importable, else numpy) ->
    ``resolve_collisions`` in item order. The layout ``models.train.item_codes`` reads.
    """
    cfg = rq_kmeans.RQKMeansConfig(levels=levels, codes_per_level=k, iterations=iters, balanced=balanced, seed=seed)
    book = rq_kmeans.fit(unit_rows(vectors, seed), cfg, backend=backend)
    codes = with_dedup_level(book.train_codes)
    out = np.zeros((len(codes) + 1, codes.shape[1]), dtype=np.int64)
    out[1:] = codes
    return out, int(book.k_per_level[0]), int(codes[:, -1].max()) + 1


def collaborative_codes(train: Ragged, n_items: int, levels: int = 3, codes_per_level: int = 256, dim: int = 64,
                        window: int = 3, seed: int = 0) -> tuple[np.ndarray, int, int]:  # fmt: skip
    """Semantic IDs from behaviour alone, for data without item text (Beauty.txt has none).

    PPMI of item co-occurrence within ``window`` positions of the *training* sequences (so valid
    and test targets do not leak into the IDs) -> rank-``dim`` truncated SVD -> ``semantic_ids``.
    Items never co-occurring get a small seeded random vector rather than all sharing the zero
    vector's codes. Returns ``(codes, K, dedup)`` as ``semantic_ids``.
    """
    return semantic_ids(ppmi_item_vectors(train, n_items, dim, window, seed), levels, codes_per_level, seed=seed)


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

"""models.item_codes: semantic IDs through rq_kmeans (either k-means backend), dedup level, a
table the trie accepts, PPMI/SASRec item vectors from the training split only (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import item_codes, rq_kmeans
from models.beam import SemanticIdTrie
from models.config import SASRecConfig
from models.data import Ragged, leave_one_out
from models.sasrec import SASRec

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n: int = 240, d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, d)) * 3
    return (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("backend", ["faiss", "numpy"])
def test_semantic_ids_are_the_rq_kmeans_codebook(backend):
    """One tokenizer: the table is ``rq_kmeans.fit``'s balanced codes + ``resolve_collisions``."""
    x = blobs()
    codes, k, _ = item_codes.semantic_ids(x, levels=2, k=8, iters=6, backend=backend)
    book = rq_kmeans.fit(item_codes.unit_rows(x), rq_kmeans.RQKMeansConfig(levels=2, codes_per_level=8,
                                                                           iterations=6), backend=backend)  # fmt: skip
    assert k == 8 and book.info["kmeans_backend"] == backend
    np.testing.assert_array_equal(codes[1:, :-1], book.train_codes)
    counts = np.bincount(codes[1:, 0], minlength=8)
    assert counts.sum() == len(x) and counts.max() == -(-len(x) // 8) and counts.min() == len(x) // 8


def test_dedup_level_makes_rows_unique():
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [2, 3]])
    out = item_codes.with_dedup_level(codes)
    assert out[:, -1].tolist() == [0, 1, 0, 2, 1]
    assert len(np.unique(out, axis=0)) == len(out)


def test_semantic_ids_layout_and_trie():
    codes, k, dedup = item_codes.semantic_ids(blobs(), levels=2, k=8, iters=6)
    assert codes.shape == (241, 3) and (codes[0] == 0).all() and k == 8
    assert dedup == codes[1:, -1].max() + 1
    trie = SemanticIdTrie.from_item_codes(codes, (k, k, dedup))  # raises if two items collide
    assert trie.lookup(torch.from_numpy(codes[1:])).tolist() == list(range(1, 241))
    stats = item_codes.code_stats(codes)
    assert stats["items"] == 240 and stats["level0_max_over_mean"] < 1.1  # balanced first level


def test_unit_rows_gives_empty_rows_a_direction():
    x = item_codes.unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0) and np.allclose(x[0], [0.6, 0.8])


def test_item_vectors_come_from_the_training_split_only():
    seqs = {str(u): [(u + i) % 30 + 1 for i in range(6)] for u in range(40)}
    loo = leave_one_out(seqs, n_items=30)
    ppmi = item_codes.ppmi_item_vectors(loo.train, 30, dim=8)
    assert ppmi.shape == (30, 8) and np.isfinite(ppmi).all()
    # An item seen only as a valid/test target has no co-occurrence in train: zero vector.
    train = Ragged.from_lists([[1, 2, 3], [2, 3, 1]])
    assert np.allclose(item_codes.ppmi_item_vectors(train, 5, dim=3)[3:], 0.0)
    model = SASRec(SASRecConfig(n_items=30, max_len=5, d_model=16, n_heads=2, n_layers=1, d_ff=16))
    assert item_codes.sasrec_item_vectors(model).shape == (30, 16)

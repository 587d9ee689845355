"""models.rq_kmeans: shapes, determinism, balance, collisions, stable encoding, metrics (small data, < 10 s)."""

from __future__ import annotations

import math

import faiss
import numpy as np
import pytest

from models.rq_kmeans import (
    Codebook,
    RQKMeansConfig,
    assign_new,
    balanced_kmeans,
    encode,
    fit,
    metrics,
    resolve_collisions,
)

N, DIM, K = 2_000, 16, 16
CEIL = math.ceil(N / K)


def skewed_vectors(n: int = N, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Unit vectors from 20 Gaussian blobs with power-law weights (blob 1 holds ~40%)."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, 21, dtype=float) ** -1.5
    blob = rng.choice(20, size=n, p=weights / weights.sum())
    x = (rng.normal(size=(20, dim)) * 3)[blob] + rng.normal(size=(n, dim)) * 0.3
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # OpenMP workers spinning on a shared 2-core box make tiny k-means 10-50x slower; results
    # do not depend on the thread count.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return skewed_vectors()


@pytest.fixture(scope="module")
def balanced(x) -> Codebook:
    return fit(x, RQKMeansConfig(codes_per_level=K))


@pytest.fixture(scope="module")
def plain(x) -> Codebook:
    return fit(x, RQKMeansConfig(codes_per_level=K, balanced=False))


def test_shapes_dtypes_and_ranges(x, balanced, plain):
    for cb in (balanced, plain):
        assert cb.levels == 3 and cb.dim == DIM and cb.k_per_level == [K, K, K]
        for c in cb.centroids:
            assert c.dtype == np.float32 and c.shape == (K, DIM)
        for codes in (cb.train_codes, encode(x, cb)):
            assert codes.dtype == np.int32 and codes.shape == (N, 3)
            assert codes.min() >= 0 and codes.max() < K
    assert encode(x[:0], balanced).shape == (0, 3)


def test_same_seed_same_codes(x, balanced):
    again = fit(x, RQKMeansConfig(codes_per_level=K))
    np.testing.assert_array_equal(again.train_codes, balanced.train_codes)
    for a, b in zip(again.centroids, balanced.centroids, strict=True):
        np.testing.assert_array_equal(a, b)
    other = fit(x, RQKMeansConfig(codes_per_level=K, seed=1))
    assert not np.array_equal(other.centroids[0], balanced.centroids[0])


def test_balanced_caps_cluster_size_plain_does_not(x, balanced, plain):
    for level in range(3):
        sizes = np.bincount(balanced.train_codes[:, level], minlength=K)
        assert sizes.max() == CEIL and sizes.min() == N // K  # 125 each: n/K exactly
    m_bal, m_plain = metrics(x, balanced.train_codes, balanced), metrics(x, plain.train_codes, plain)
    assert m_bal["cluster_size_cv"] == pytest.approx([0.0, 0.0, 0.0])
    # The skewed blobs overfill plain k-means clusters: well above n/K on every level.
    assert min(m_plain["cluster_size_max"]) > 1.5 * CEIL
    assert min(m_plain["cluster_size_cv"]) > 0.3


def test_encode_reproduces_plain_fit(x, plain):
    codes = encode(x, plain)
    np.testing.assert_array_equal(codes[:, 0], plain.train_codes[:, 0])
    np.testing.assert_array_equal(codes, plain.train_codes)  # same chunks, same arithmetic


def test_encode_is_stable_for_old_items_when_new_ones_arrive(x, balanced):
    old = encode(x[:500], balanced)
    mixed = encode(np.concatenate([skewed_vectors(300, seed=5), x[:500]]), balanced)
    np.testing.assert_array_equal(mixed[300:], old)


def test_reconstruction_error_decreases_with_levels(x, balanced, plain):
    for cb in (balanced, plain):
        err = metrics(x, cb.train_codes, cb)["reconstruction_error_per_level"]
        assert err[0] < 1.0 and err[0] > err[1] > err[2] > 0.0


def test_fewer_items_than_codes_clips_k():
    x = skewed_vectors(10, seed=2)
    cb = fit(x, RQKMeansConfig(codes_per_level=K, levels=2))
    assert cb.k_per_level == [10, 10] and cb.info["k_clipped"] is True
    assert sorted(cb.train_codes[:, 0]) == list(range(10))  # w = 1: one item per code
    assert encode(x, cb).shape == (10, 2)


def test_duplicates_and_zero_vectors():
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [np.repeat(rng.normal(size=(1, DIM)), 300, axis=0), np.zeros((100, DIM)), rng.normal(size=(200, DIM))]
    ).astype(np.float32)
    for balanced_ in (True, False):
        cb = fit(x, RQKMeansConfig(codes_per_level=8, balanced=balanced_))
        m = metrics(x, cb.train_codes, cb)
        assert np.isfinite(m["reconstruction_error"]) and m["collision_rate_after"] == 0.0
        if balanced_:
            assert m["cluster_size_max"] == [75, 75, 75]  # 600 / 8, duplicates spread over codes
    np.testing.assert_array_equal(encode(x, cb), encode(x, cb))


def test_balanced_ties_go_to_lower_rows_in_centroid_order():
    x = np.ones((8, 2), dtype=np.float32)  # all identical: every distance ties
    init = np.ones((4, 2), dtype=np.float32)
    _, labels, _, _ = balanced_kmeans(x, init, max_passes=3)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_resolve_collisions_small_example():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2]])
    out = resolve_collisions(codes, ["b", "a", "c", "B"])
    # Group (1, 2) ordered by id as Python strings: "B" < "a" < "b".
    assert out.tolist() == [[1, 2, 2], [1, 2, 1], [0, 0, 0], [1, 2, 0]]
    assert out.dtype == np.int32


def test_resolve_collisions_unique_and_independent_of_row_order():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 3, size=(500, 2))  # 9 tuples for 500 items: heavy collisions
    ids = [f"v{rng.integers(1e9)}-{i}" for i in range(500)]
    out = resolve_collisions(codes, ids)
    assert len({tuple(r) for r in out.tolist()}) == 500
    perm = rng.permutation(500)
    out_perm = resolve_collisions(codes[perm], [ids[i] for i in perm])
    assert dict(zip(ids, map(tuple, out.tolist()), strict=True)) == dict(
        zip([ids[i] for i in perm], map(tuple, out_perm.tolist()), strict=True)
    )


def test_resolve_collisions_rejects_duplicate_ids():
    with pytest.raises(ValueError, match="unique"):
        resolve_collisions(np.zeros((2, 3), dtype=np.int32), ["a", "a"])


def test_assign_new_keeps_old_ids_and_appends_after_max():
    old = resolve_collisions(np.array([[1, 2], [1, 2], [5, 5]]), ["a", "b", "c"])
    existing = {tuple(r): i for r, i in zip(old.tolist(), ["a", "b", "c"], strict=True)}
    del existing[(1, 2, 0)]  # "a" retired: its dedup 0 must not be reused
    snapshot = dict(existing)
    new = assign_new(existing, np.array([[1, 2], [7, 7], [1, 2], [5, 5]]), ["z", "n", "y", "b"])
    assert existing == snapshot
    # (1,2): max used 1 -> y gets 2, z gets 3 (id order); (7,7) free -> 0; "b" keeps its tuple.
    assert new.tolist() == [[1, 2, 3], [7, 7, 0], [1, 2, 2], [1, 2, 1]]
    again = assign_new(existing, np.array([[1, 2], [1, 2]]), ["y", "z"])
    assert again.tolist() == [[1, 2, 2], [1, 2, 3]]  # same answer whatever the input order


def test_metrics_on_a_hand_made_assignment():
    centroids = (np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32) * 0.5)
    cb = Codebook(centroids, RQKMeansConfig(levels=2, codes_per_level=2))
    codes = np.array([[0, 0], [0, 0], [1, 1], [0, 1]])
    x = np.array([[1.5, 0], [1.5, 0], [0, 1.5], [1, 0.5]], dtype=np.float32)
    m = metrics(x, codes, cb)
    assert m["utilisation"] == [1.0, 1.0]
    assert m["per_parent_utilisation_mean"] == [None, 0.75]  # 3 (parent, child) pairs / (2 parents x 2)
    assert m["collision_rate_before"] == 0.5 and m["collision_rate_after"] == 0.0 and m["max_collision_group"] == 2
    assert m["cluster_size_max"] == [3, 2] and m["cluster_size_mean"] == [2.0, 2.0]
    assert m["cluster_size_cv"] == [0.5, 0.0]
    assert m["reconstruction_error"] == 0.0 and m["reconstruction_error_per_level"][0] > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="levels"):
        RQKMeansConfig(levels=0)
    with pytest.raises(ValueError, match="NaN"):
        fit(np.full((10, 2), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="dim"):
        encode(np.zeros((3, 5), dtype=np.float32), fit(skewed_vectors(50), RQKMeansConfig(codes_per_level=4)))


# --- without faiss: the numpy k-means initialisation ---------------------------------------------


@pytest.mark.parametrize("balanced_", [True, False])
def test_numpy_backend_matches_faiss_in_quality(x, balanced_):
    """The GPU box has no faiss: its codebooks must be as good, not identical (other init)."""
    cfg = RQKMeansConfig(codes_per_level=K, balanced=balanced_)
    by = {b: fit(x, cfg, backend=b) for b in ("faiss", "numpy")}
    m = {b: metrics(x, cb.train_codes, cb) for b, cb in by.items()}
    assert [cb.info["kmeans_backend"] for cb in by.values()] == ["faiss", "numpy"]
    # Measured: balanced 0.108 (numpy) vs 0.093 (faiss), plain 0.0062 vs 0.0064.
    assert m["numpy"]["reconstruction_error"] < 1.25 * m["faiss"]["reconstruction_error"]
    assert m["numpy"]["collision_rate_before"] < m["faiss"]["collision_rate_before"] + 0.05
    assert m["numpy"]["utilisation"] == [1.0, 1.0, 1.0]
    if balanced_:
        assert m["numpy"]["cluster_size_cv"] == pytest.approx([0.0, 0.0, 0.0])
    np.testing.assert_array_equal(fit(x, cfg, backend="numpy").train_codes, by["numpy"].train_codes)  # seeded
    if not balanced_:  # encoding the training rows of a plain codebook reproduces its fit
        np.testing.assert_array_equal(encode(x, by["numpy"]), by["numpy"].train_codes)


def test_module_imports_and_fits_where_faiss_is_missing():
    """``import faiss`` failing (the GPU box) leaves the numpy path as the default."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['faiss'] = None\n"  # makes `import faiss` raise ImportError
        "import numpy as np\n"
        "from models import rq_kmeans as rq\n"
        "x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)\n"
        "cb = rq.fit(x, rq.RQKMeansConfig(levels=2, codes_per_level=8))\n"
        "assert rq.faiss is None and cb.info['kmeans_backend'] == 'numpy'\n"
        "assert np.bincount(cb.train_codes[:, 0]).tolist() == [38] * 4 + [37] * 4\n"
        "try:\n    rq.fit(x, backend='faiss')\nexcept ValueError as e:\n    print(e)\n"
    )
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env)
    assert "faiss is not installed" in out.stdout

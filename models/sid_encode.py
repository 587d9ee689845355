"""Nearest-centroid residual encoding with numpy alone: what Spark executors run for semantic IDs.

``models.rq_kmeans`` fits codebooks (faiss k-means, balanced assignment) on the driver; encoding
an item with a fitted codebook needs only the centroids, so executors get them as plain float32
arrays (a broadcast of ``levels x K x dim`` floats, e.g. 3 x 8192 x 64 x 4 B = 6 MiB) and run
:func:`encode_codes`, which needs neither faiss nor torch. It is the same rule as
``rq_kmeans.encode``: per level, the nearest centroid (L2) to the running residual, ties to the
lower index, then subtract it. Each row's codes depend on that row alone, so how Spark batches
the rows cannot change an item's codes (beyond the last bits of BLAS sums on a boundary tie).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

# Rows per matmul: (rows x K) float32 scores stay at 32k x 8192 x 4 B = 1 GiB worst case at the
# paper's K; 8192 rows keep it at 256 MiB per Python worker.
_ROW_CHUNK = 8192


def encode_codes(x: np.ndarray, centroids: Sequence[np.ndarray]) -> np.ndarray:
    """int32 ``(n, L)``: per level the nearest centroid to the residual (ties: lower index)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected an (n, d) matrix, got shape {x.shape}")
    if len(x) and x.shape[1] != centroids[0].shape[1]:
        raise ValueError(f"vectors have dim {x.shape[1]}, codebook has {centroids[0].shape[1]}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or inf")
    norms = [np.einsum("ij,ij->i", c, c) for c in centroids]
    codes = np.empty((len(x), len(centroids)), dtype=np.int32)
    for start in range(0, len(x), _ROW_CHUNK):
        r = x[start : start + _ROW_CHUNK].copy()
        for level, (cents, csq) in enumerate(zip(centroids, norms, strict=True)):
            scores = r @ cents.T
            scores *= -2.0
            scores += csq
            labels = scores.argmin(axis=1).astype(np.int32)
            r -= cents[labels]
            codes[start : start + _ROW_CHUNK, level] = labels
    return codes


def encode_partitions(get_centroids: Callable[[], Sequence[np.ndarray]]) -> Callable:
    """The ``mapInPandas`` function: ``(item_id, embedding)`` batches -> ``(item_id, codes)``.

    ``get_centroids`` is called once per partition on the executor (e.g. ``lambda: bc.value``
    for a Spark broadcast), so the closure shipped with each task stays a few bytes.
    """

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        centroids = [np.asarray(c, dtype=np.float32) for c in get_centroids()]
        for frame in batches:
            if len(frame) == 0:
                continue
            x = np.stack(frame["embedding"].to_numpy())
            codes = encode_codes(x, centroids)
            yield pd.DataFrame({"item_id": frame["item_id"].to_numpy(), "codes": list(codes)})

    return fn

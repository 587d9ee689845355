"""models.sid_encode: the executors' numpy encoder gives rq_kmeans.encode's codes, in any batching."""

import numpy as np
import pandas as pd
import pytest

from models import rq_kmeans, sid_encode


def test_encode_codes_matches_rq_kmeans_encode_and_ignores_batching():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    codebook = rq_kmeans.fit(x, rq_kmeans.RQKMeansConfig(levels=3, codes_per_level=8, iterations=5, balanced=False))
    want = rq_kmeans.encode(x, codebook)
    got = sid_encode.encode_codes(x, codebook.centroids)
    assert got.dtype == np.int32 and got.shape == (500, 3)
    np.testing.assert_array_equal(got, want)
    fn = sid_encode.encode_partitions(lambda: codebook.centroids)
    frames = [pd.DataFrame({"item_id": [f"i{k}" for k in range(a, b)], "embedding": list(x[a:b])})
              for a, b in ((0, 7), (7, 7), (7, 300), (300, 500))]  # fmt: skip
    out = pd.concat(list(fn(iter(frames))), ignore_index=True)
    assert list(out["item_id"]) == [f"i{k}" for k in range(500)]
    np.testing.assert_array_equal(np.stack(out["codes"].to_numpy()), want)


def test_encode_codes_rejects_wrong_width_and_nan():
    cents = [np.eye(4, dtype=np.float32)]
    with pytest.raises(ValueError, match="dim 3"):
        sid_encode.encode_codes(np.zeros((2, 3), np.float32), cents)
    with pytest.raises(ValueError, match="NaN"):
        sid_encode.encode_codes(np.full((1, 4), np.nan, np.float32), cents)
    assert sid_encode.encode_codes(np.zeros((0, 4), np.float32), cents).shape == (0, 1)

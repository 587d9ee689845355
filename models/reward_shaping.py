"""Duration-aware reward shaping (OneRec-V2 Technical Report, arXiv 2508.20900, "Duration-Aware
Reward Shaping").

Raw play time rewards long videos for being long. V2 instead buckets items by duration and scores
an interaction by the *percentile* of its play time among plays of items in the same bucket, so the
reward measures engagement relative to length. The paper buckets by ``floor(log_beta(duration))``
and takes the percentile among the same user's plays; here the buckets are quantiles of the data's
durations (equal-sized buckets whatever the catalogue's length distribution) and the comparison
group is everyone's plays in the bucket by default, or any grouping key (e.g. the user) passed as
``groups``. Percentiles are mid-ranks, ``(n_less + n_equal / 2) / n``, so ties share a value and a
bucket of one play scores 0.5.

``v2_advantages`` is the paper's own form, used to align the generator on logged exposures:
buckets ``floor(log_beta(duration))``, the percentile among the same user's plays in the bucket,
+1 for the top quartile without a dislike, -1 for a dislike, every other play dropped.
"""

from __future__ import annotations

import numpy as np


def duration_edges(durations: np.ndarray, n_buckets: int) -> np.ndarray:
    """Inner bucket edges: the ``1/n .. (n-1)/n`` quantiles of the known (finite, > 0) durations."""
    d = np.asarray(durations, dtype=np.float64)
    d = d[np.isfinite(d) & (d > 0)]
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    if len(d) == 0 or n_buckets == 1:
        return np.zeros(0)
    # Repeated quantiles (many equal durations) would make empty buckets: keep distinct edges only.
    return np.unique(np.quantile(d, np.arange(1, n_buckets) / n_buckets))


def duration_bucket(durations: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket index per duration (``searchsorted`` right: a value equal to an edge goes up); -1 if unknown."""
    d = np.asarray(durations, dtype=np.float64)
    out = np.searchsorted(edges, d, side="right").astype(np.int64)
    return np.where(np.isfinite(d) & (d > 0), out, -1)


def play_percentile(play_seconds: np.ndarray, durations: np.ndarray, edges: np.ndarray,
                    groups: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Mid-rank percentile in ``[0, 1]`` of each play time within its (group, duration bucket).

    NaN where play time or duration is unknown: such rows carry no duration-aware reward.
    """
    play = np.asarray(play_seconds, dtype=np.float64)
    bucket = duration_bucket(durations, edges)
    key = bucket if groups is None else _group_key(np.asarray(groups), bucket)
    return percentile_within(play, key, np.isfinite(play) & (bucket >= 0))


def percentile_within(values: np.ndarray, key: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mid-rank percentile of each valid value among the valid values with the same ``key``; NaN elsewhere."""
    out = np.full(len(values), np.nan)
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return out
    # Sort by (cell, value) once; each cell is then a contiguous run and ranks come from searchsorted.
    order = idx[np.lexsort((values[idx], key[idx]))]
    _, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
    for start, count in zip(starts, counts, strict=True):
        rows = order[start : start + count]
        v = values[rows]  # sorted ascending
        less = np.searchsorted(v, v, side="left")
        equal = np.searchsorted(v, v, side="right") - less
        out[rows] = (less + 0.5 * equal) / count
    return out


def _group_key(groups: np.ndarray, bucket: np.ndarray) -> np.ndarray:
    """One int per (group, bucket) cell."""
    _, g = np.unique(groups, return_inverse=True)
    return g.astype(np.int64) * (int(bucket.max()) + 2) + bucket


def duration_aware_reward(play_seconds: np.ndarray, durations: np.ndarray, n_buckets: int = 10,
                          groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(percentile per interaction, edges)`` with edges from these durations' quantiles."""
    edges = duration_edges(durations, n_buckets)
    return play_percentile(play_seconds, durations, edges, groups), edges


def log_duration_bucket(durations: np.ndarray, base: float = 2.0) -> np.ndarray:
    """OneRec-V2's duration bucket ``floor(log_base(duration))``; -1 where the duration is unknown."""
    d = np.asarray(durations, dtype=np.float64)
    if base <= 1.0:
        raise ValueError(f"the bucket base must be > 1, got {base}")
    ok = np.isfinite(d) & (d > 0)
    return np.where(ok, np.floor(np.log(np.where(ok, d, 1.0)) / np.log(base)), -1).astype(np.int64)


def v2_advantages(users: np.ndarray, play_seconds: np.ndarray, durations: np.ndarray, dislike: np.ndarray,
                  base: float = 2.0, top: float = 0.75) -> np.ndarray:  # fmt: skip
    """OneRec-V2 §3.1.1 (arXiv 2508.20900, "Duration-Aware Reward Shaping"): +1 / -1 / NaN per play.

    Plays are bucketed by ``floor(log_base(duration))``; ``q`` is the play time's mid-rank
    percentile among *the same user's* plays in that bucket. A play with ``q >= top`` (top quartile)
    and no explicit negative gets +1; an explicit negative (dislike) gets -1; every other play is
    dropped (NaN): no advantage, no gradient.
    """
    play = np.asarray(play_seconds, dtype=np.float64)
    bucket = log_duration_bucket(durations, base)
    valid = np.isfinite(play) & (bucket >= 0)
    q = percentile_within(play, _group_key(np.asarray(users), np.maximum(bucket, 0)), valid)
    neg = np.nan_to_num(np.asarray(dislike, dtype=np.float64)) > 0
    return np.where(neg, -1.0, np.where(q >= top, 1.0, np.nan))

"""OneRec's four user pathways from feature rows: the one function training and serving both call.

A *feature row* is what the feature store returns for a user at a time -- the ``onerec_{train,serve}_v3``
features (``features/services.py``): offline, one row of ``gold.training_features`` (point-in-time
retrieval at the training target's time); online, ``get_online_features`` at request time. Both go
through :func:`pathway_arrays`, so the model sees the same arrays for the same features (the parity
test checks the features, this module the arrays). Pathways (OneRec Technical Report, arXiv 2506.13695,
"Encoder: Multi-Scale Feature Engineering"):

* static: the user-id bucket, categorical attributes (``cfg.user_attr_names``, each hashed into
  ``cfg.attr_buckets``) and counts (``cfg.user_count_features``, log2 buckets) -> ``user``, ``user_attrs``;
* short-term: the last ``short_len`` interactions with their signals -> ``short_items``, ``short_gap``
  (log2 minutes before the request) and ``short_signals`` (:data:`SIGNAL_NAMES` values, then one
  presence bit per value);
* positive feedback: the last ``pos_len`` items that passed the configured positive rule -> ``pos_items``;
* lifelong: the compressed representatives (``gold.user_lifelong_compressed``) -> ``life_items``, QFormer.

A signal a dataset lacks is masked, never invented: a missing rating / play time (NaN) or attribute
gets presence 0 (index 0 for categories); an engagement flag the training data never set
(``cfg.signals`` lists the observed ones, :func:`observed_signals`) is absent everywhere. Items the
model does not know are dropped with their signals (alignment is kept). A pathway named in
``cfg.masked_pathways`` is all padding: the ablation switch.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.config import PATHWAYS, SIGNAL_NAMES, OneRecConfig

FLAG_BITS = {"like": 1, "follow": 2, "comment": 4, "share": 8, "dislike": 16}  # gold short_flags bitmask
COUNT_FEATURES = ("n_events", "n_positive", "active_days", "tenure_days")
# The features a row must carry (onerec_serve_v3 / onerec_train_v3; ``item_ids`` = the lifelong representatives).
FEATURES = (
    "n_events", "n_positive", "active_days", "tenure_days", "attributes", "short_item_ids", "short_ts",
    "short_flags", "positive_item_ids", "short_rating", "short_play_seconds", "short_duration_seconds", "item_ids",
)  # fmt: skip


def as_list(value: Any) -> list:
    """A feature value as a list (None, NaN scalars and missing -> []; numpy arrays from a Delta read)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return list(value)


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def tail(values: Sequence, length: int, fill: Any = 0, dtype: Any = np.int64) -> np.ndarray:
    """The last ``length`` values, left-padded with ``fill`` (most recent last, as the model is trained)."""
    out = np.full(length, fill, dtype=dtype)
    if length and len(values):
        kept = np.asarray(values[-length:], dtype=dtype)
        out[length - len(kept) :] = kept
    return out


def gap_bucket(seconds: np.ndarray, n_buckets: int) -> np.ndarray:
    """``floor(log2(1 + minutes))`` clipped to the last bucket: fine for recent, coarse for old."""
    return np.minimum(np.floor(np.log2(1.0 + np.maximum(seconds, 0) / 60.0)), n_buckets - 1).astype(np.int64)


def count_bucket(value: Any, n_buckets: int) -> int:
    """1 + floor(log2(1 + count)) clipped to ``n_buckets``; 0 = missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    return int(min(1 + math.floor(math.log2(1 + max(float(value), 0.0))), n_buckets))


def attribute_bucket(name: str, value: Any, n_buckets: int) -> int:
    """crc32 of ``name=value`` into 1..n_buckets (stable across runs and processes); 0 = missing."""
    if value is None or value == "":
        return 0
    return 1 + zlib.crc32(f"{name}={value}".encode()) % n_buckets


def user_bucket(user_id: str, n_buckets: int) -> int:
    """crc32 of the user id mod ``n_buckets`` (0 without buckets), as ``models.data.user_buckets``."""
    return zlib.crc32(str(user_id).encode()) % n_buckets if n_buckets >= 1 else 0


def attributes_of(value: Any) -> dict[str, str]:
    """The static attributes: the online store and retrieval hand them over as a JSON object string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {}
    return dict(json.loads(value)) if isinstance(value, str) else dict(value)


def signal_values(flags: Sequence, rating: Sequence, play: Sequence, duration: Sequence,
                  observed: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(values, present)``, each ``(n, len(SIGNAL_NAMES))``: flag bits, play ratio (clipped to 2, /2),
    rating / 5; present = the dataset has the signal and this event carries it."""
    n, k = len(flags), len(SIGNAL_NAMES)
    values, present = np.zeros((n, k), dtype=np.float32), np.zeros((n, k), dtype=np.float32)
    for j, name in enumerate(SIGNAL_NAMES):
        if name not in observed:
            continue
        for i in range(n):
            if name in FLAG_BITS:
                f = flags[i]
                if f is not None:
                    values[i, j], present[i, j] = float(int(f) & FLAG_BITS[name] > 0), 1.0
            elif name == "play_ratio":
                p, d = _float(play[i] if i < len(play) else None), _float(duration[i] if i < len(duration) else None)
                if not (math.isnan(p) or math.isnan(d)) and d > 0:
                    values[i, j], present[i, j] = min(p / d, 2.0) / 2.0, 1.0
            else:  # rating
                r = _float(rating[i] if i < len(rating) else None)
                if not math.isnan(r):
                    values[i, j], present[i, j] = r / 5.0, 1.0
    return values, present


def observed_signals(rows: Mapping[str, Sequence]) -> tuple[str, ...]:
    """The signals these feature rows ever carry: a flag set at least once, a rating or a play ratio
    present at least once. A model trained on them masks the others (a dataset without likes never
    says "not liked")."""
    seen: set[str] = set()
    for flags, rating, play, duration in zip(rows["short_flags"], rows["short_rating"], rows["short_play_seconds"],
                                             rows["short_duration_seconds"], strict=True):  # fmt: skip
        v, p = signal_values(as_list(flags), as_list(rating), as_list(play), as_list(duration), SIGNAL_NAMES)
        seen.update(name for j, name in enumerate(SIGNAL_NAMES) if (p[:, j] * (v[:, j] > 0 if j < 5 else 1)).any())
    return tuple(n for n in SIGNAL_NAMES if n in seen)


def pathway_arrays(rows: Mapping[str, Sequence], user_ids: Sequence[str], request_ts: Sequence[float],
                   cfg: OneRecConfig, index: Mapping[str, int]) -> dict[str, np.ndarray]:  # fmt: skip
    """The model's context arrays for ``B`` feature rows (``rows``: feature name -> B values, a
    Feast ``to_dict()`` or a DataFrame's columns) of ``user_ids`` at ``request_ts`` (epoch seconds).

    Returns int64 ``user (B,)``, ``user_attrs (B, n_static)``, ``short_items``, ``short_gap``,
    ``pos_items``, ``life_items`` and float32 ``short_signals (B, L_s, 2 * n_signals)``.
    """
    b, masked = len(user_ids), set(cfg.masked_pathways)
    n_static = len(cfg.user_attr_names) + len(cfg.user_count_features)
    out = {
        "user": np.zeros(b, dtype=np.int64),
        "user_attrs": np.zeros((b, n_static), dtype=np.int64),
        "short_items": np.zeros((b, cfg.short_len), dtype=np.int64),
        "short_gap": np.zeros((b, cfg.short_len), dtype=np.int64),
        "short_signals": np.zeros((b, cfg.short_len, 2 * len(SIGNAL_NAMES)), dtype=np.float32),
        "pos_items": np.zeros((b, cfg.pos_len), dtype=np.int64),
        "life_items": np.zeros((b, cfg.lifelong_len), dtype=np.int64),
    }

    def col(name: str, r: int) -> Any:
        values = rows.get(name)
        return None if values is None else values[r]

    for r in range(b):
        if "static" not in masked:
            out["user"][r] = user_bucket(user_ids[r], cfg.n_user_buckets)
            attrs = attributes_of(col("attributes", r))
            static = [attribute_bucket(a, attrs.get(a), cfg.attr_buckets) for a in cfg.user_attr_names]
            static += [count_bucket(col(c, r), cfg.count_buckets) for c in cfg.user_count_features]
            out["user_attrs"][r] = static
        if "short" not in masked:
            ids, ts = as_list(col("short_item_ids", r)), as_list(col("short_ts", r))
            keep = [i for i, item in enumerate(ids) if item in index]
            items = [index[ids[i]] for i in keep]
            out["short_items"][r] = tail(items, cfg.short_len)
            ages = [float(request_ts[r]) - float(ts[i]) for i in keep] if len(ts) == len(ids) else []
            gaps = gap_bucket(np.asarray(ages, dtype=np.float64), cfg.n_gap_buckets) if ages else []
            out["short_gap"][r] = tail(list(gaps), cfg.short_len)
            per_event = [as_list(col(n, r)) for n in ("short_flags", "short_rating", "short_play_seconds",
                                                      "short_duration_seconds")]  # fmt: skip
            pick = [[v[i] if i < len(v) else None for i in keep] for v in per_event]
            values, present = signal_values(*pick, cfg.signals)
            sig = np.concatenate([values, present], 1) if keep else np.zeros((0, 2 * len(SIGNAL_NAMES)))
            if cfg.short_len and len(sig):
                sig = sig[-cfg.short_len :]
                out["short_signals"][r, cfg.short_len - len(sig) :] = sig
        if "positive" not in masked:
            out["pos_items"][r] = tail([index[i] for i in as_list(col("positive_item_ids", r)) if i in index],
                                       cfg.pos_len)  # fmt: skip
        if "lifelong" not in masked:
            out["life_items"][r] = tail([index[i] for i in as_list(col("item_ids", r)) if i in index],
                                        cfg.lifelong_len)  # fmt: skip
    return out


def known_counts(arrays: Mapping[str, np.ndarray], row: int = 0) -> dict[str, int]:
    """Known items per item pathway of one row (what an answer reports as its context)."""
    names = {"short": "short_items", "positive": "pos_items", "lifelong": "life_items"}
    return {k: int((arrays[v][row] > 0).sum()) for k, v in names.items()}


__all__ = ["COUNT_FEATURES", "FEATURES", "PATHWAYS", "SIGNAL_NAMES", "observed_signals", "pathway_arrays"]

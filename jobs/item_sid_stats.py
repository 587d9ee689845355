"""Figures of the current semantic-ID codebook as the table holds it today (for the run report).

The fit writes its own metrics (``codebook.json``); daily encoding then adds items with
the existing codebook, so utilisation, collisions and cluster sizes drift between full
refreshes. :func:`sid_figures` recomputes them over ``gold.item_sids`` for one version.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def sid_figures(sids: DataFrame, k_per_level: list[int]) -> dict[str, Any]:
    """Utilisation and cluster sizes per level, collision rates before/after the dedup code.

    ``sids``: one version's ``gold.item_sids`` rows. ``cluster_size_mean`` is over all ``K``
    codes of a level (unused ones count as 0), as in ``models.rq_kmeans.metrics``.
    """
    levels = len(k_per_level)
    n = sids.count()
    out: dict[str, Any] = {"n_items": n, "k_per_level": list(k_per_level), "utilisation": [], "cluster_size_max": []}
    out["cluster_size_mean"] = [n / k for k in k_per_level]
    for level, k in enumerate(k_per_level):
        sizes = sids.groupBy(F.col("codes")[level].alias("c")).count()
        row = sizes.agg(F.count("*").alias("used"), F.max("count").alias("biggest")).collect()[0]
        out["utilisation"].append((row["used"] or 0) / k)
        out["cluster_size_max"].append(int(row["biggest"] or 0))
    out["collision_rate_before"] = _shared_share(sids, F.slice("codes", 1, levels), n)
    out["collision_rate_after"] = _shared_share(sids, F.col("codes"), n)
    return out


def _shared_share(sids: DataFrame, key, n: int) -> float:
    """Share of items whose ``key`` another item also has."""
    if n == 0:
        return 0.0
    groups = sids.groupBy(key.alias("k")).count().where(F.col("count") > 1)
    shared = groups.agg(F.sum("count")).collect()[0][0] or 0
    return shared / n


def new_items_on(sids: DataFrame, ds: date) -> int:
    """Items whose codes were assigned on ``ds`` (a full fit assigns every item on its day)."""
    return sids.where(F.col("ds") == F.lit(ds).cast("date")).count()

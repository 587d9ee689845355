"""Lifelong-sequence compression: at most N representative items per user, by hierarchical k-means.

    python -m jobs.lifelong --ds 2026-10-03

For every user active on ``ds`` (the users of ``silver.user_events[ds]``), the distinct items of
their lifelong sequence as of the end of ``ds`` -- their last ``sequences.lifelong_cap`` events,
assembled here from their day chunks up to ``ds`` (the one daily reader of whole histories: the
feature snapshot does not carry them) -- are reduced to at most ``max_representatives``
(default 2000) items, following the OneRec technical report (arXiv 2506.13695, lifelong
pathway; see ../shared/docs/onerec-notes.md): items are clustered by their embeddings
(``gold.item_embeddings.embedding``) with k-means, ``ceil(m^(1/3))`` clusters for a set of
``m`` items, recursively, until a set fits its share of the budget; each final cluster is
represented by the member nearest its centroid. The report's rule leaves the stopping size
open; here each cluster inherits a share of the budget proportional to its size (at least 1),
a set that fits its budget keeps all its items and a budget of 1 yields one representative,
so the output never exceeds the cap and dense regions of a user's history get more
representatives than rare ones.

Users whose distinct items already fit are passed through without clustering; the others are
compressed per user inside Spark with ``groupBy(user_id).applyInPandas`` (a user's items are
one pandas frame: 100k x 64 floats is 25 MB). Items without an embedding cannot be placed and
are left out of the clustering (``n_source`` counts the distinct items that took part).
Representatives come out in the order of their last occurrence in the sequence. Everything is
seeded and sorted by ``item_id`` first, so the output is deterministic; partition ``ds`` of
``gold.user_lifelong_compressed`` is replaced, so a re-run leaves the table as it was.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import date

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import ITEM_EMBEDDINGS, USER_EVENTS, USER_LIFELONG_COMPRESSED
from jobs.stage_report import write_stage_json
from jobs.user_history import cap_tail, user_sequences

log = logging.getLogger(__name__)
_OUT = "user_id string, ds date, item_ids array<string>, n_source long"


def kmeans(x: np.ndarray, k: int, iterations: int, seed: int) -> np.ndarray:
    """Lloyd's k-means from ``k`` seeded distinct starting rows; returns labels (ties: lower index)."""
    rng = np.random.default_rng(seed)
    cents = x[np.sort(rng.choice(len(x), size=k, replace=False))].astype(np.float64)
    labels = np.zeros(len(x), dtype=np.int64)
    for it in range(max(1, iterations)):
        d = (x * x).sum(1)[:, None] - 2.0 * x @ cents.T + (cents * cents).sum(1)[None, :]
        new = d.argmin(axis=1)
        if it > 0 and np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            members = labels == c
            if members.any():
                cents[c] = x[members].mean(axis=0)
    return labels


def _nearest_to_mean(x: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` members of ``idx`` nearest their mean (ties: lower index)."""
    d = ((x[idx] - x[idx].mean(axis=0)) ** 2).sum(axis=1)
    return idx[np.lexsort((idx, d))[:n]]


def _split_budget(budget: int, sizes: np.ndarray) -> np.ndarray:
    """Budget per cluster proportional to size, each >= 1, summing to ``budget`` (needs len <= budget)."""
    exact = budget * sizes / sizes.sum()
    alloc = np.maximum(1, np.floor(exact)).astype(np.int64)
    order = np.lexsort((np.arange(len(sizes)), -(exact - np.floor(exact))))  # largest remainders first
    i = 0
    while alloc.sum() < budget:
        alloc[order[i % len(order)]] += 1
        i += 1
    while alloc.sum() > budget:  # the max(1, .) floors can overshoot: take from the largest shares
        alloc[np.lexsort((np.arange(len(alloc)), -alloc))[0]] -= 1
    return alloc


def hierarchical_representatives(x: np.ndarray, budget: int, iterations: int = 10, seed: int = 0) -> np.ndarray:
    """Sorted row indices of at most ``budget`` representatives of ``x`` (see the module docstring)."""

    def rec(idx: np.ndarray, b: int, depth: int) -> list[np.ndarray]:
        if len(idx) <= b:
            return [idx]
        if b <= 1:
            return [_nearest_to_mean(x, idx, 1)]
        k = min(b, max(2, math.ceil(len(idx) ** (1.0 / 3.0))))
        labels = kmeans(x[idx], k, iterations, seed + depth)
        groups = [idx[labels == c] for c in range(k) if (labels == c).any()]
        if len(groups) == 1:  # identical vectors: nothing to split, any b of them will do
            return [_nearest_to_mean(x, idx, b)]
        alloc = _split_budget(b, np.array([len(g) for g in groups]))
        return [r for g, a in zip(groups, alloc, strict=True) for r in rec(g, int(a), depth + 1)]

    if budget < 1 or len(x) == 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(rec(np.arange(len(x)), budget, 0)))


def compress_user(frame: pd.DataFrame, budget: int, iterations: int, seed: int) -> pd.DataFrame:
    """One user's ``(user_id, ds, item_id, pos, embedding)`` rows of one day -> one ``_OUT`` row."""
    frame = frame.sort_values("item_id", kind="stable")
    x = np.stack(frame["embedding"].to_numpy()).astype(np.float64)
    reps = frame.iloc[hierarchical_representatives(x, budget, iterations, seed)].sort_values("pos")
    return pd.DataFrame({
        "user_id": [frame["user_id"].iloc[0]], "ds": [frame["ds"].iloc[0]], "item_ids": [list(reps["item_id"])],
        "n_source": [len(frame)],
    })  # fmt: skip


def lifelong_items(chunks: DataFrame, users: DataFrame, cap: int) -> DataFrame:
    """``(user_id, lifelong_item_ids)``: the last ``cap`` items of each of ``users``' sequences.

    ``chunks``: ``user_events`` rows up to the day (their ``event_date`` filter prunes later
    partitions). Chunks are already sorted, so only item ids travel to the per-user grouping.
    """
    ids = chunks.join(users, "user_id", "left_semi").select(
        "user_id", "event_date", F.transform("events", lambda e: e["item_id"]).alias("events")
    )
    return user_sequences(ids).select("user_id", cap_tail(F.col("events"), cap).alias("lifelong_item_ids"))


def day_lifelong_items(spark: SparkSession, cfg: Settings, ds: date) -> DataFrame:
    """:func:`lifelong_items` of the users active on ``ds``, from the chunks up to ``ds``."""
    day = F.lit(ds).cast("date")
    chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS).where(F.col("event_date") <= day)
    users = chunks.where(F.col("event_date") == day).select("user_id")
    return lifelong_items(chunks, users, cfg.sequences.lifelong_cap)


def last_active_days(chunks: DataFrame, n: int) -> DataFrame:
    """``(user_id, ds)``: each user's last ``n`` days among ``chunks`` (``user_events`` rows)."""
    latest_first = Window.partitionBy("user_id").orderBy(F.col("event_date").desc())
    ranked = chunks.select("user_id", "event_date").withColumn("_rank", F.row_number().over(latest_first))
    return ranked.where(F.col("_rank") <= n).select("user_id", F.col("event_date").alias("ds"))


def lifelong_items_as_of(chunks: DataFrame, user_days: DataFrame, cap: int) -> DataFrame:
    """``(ds, user_id, lifelong_item_ids)``: each ``(user_id, ds)`` of ``user_days``' last ``cap`` items up to ``ds``.

    :func:`lifelong_items` for many days in one job: a user's chunks join each of their days and
    only the chunks up to that day enter its sequence.
    """
    ids = chunks.select("user_id", "event_date", F.transform("events", lambda e: e["item_id"]).alias("events"))
    upto = ids.join(user_days, "user_id").where(F.col("event_date") <= F.col("ds"))
    seqs = user_sequences(upto, keys=("ds", "user_id"))
    return seqs.select("ds", "user_id", cap_tail(F.col("events"), cap).alias("lifelong_item_ids"))


def build_compressed(
    sequences: DataFrame, embeddings: DataFrame, ds: date | None, budget: int, iterations: int, seed: int
) -> DataFrame:
    """``gold.user_lifelong_compressed`` rows for the ``(user_id, lifelong_item_ids)`` of ``sequences``.

    One day ``ds`` for every row, or ``ds=None`` when ``sequences`` carries each row's ``ds``
    (:func:`lifelong_items_as_of`).
    """
    if ds is not None:
        sequences = sequences.withColumn("ds", F.lit(ds).cast("date"))
    # Distinct items in order of last occurrence: reverse, keep first occurrences, reverse back.
    distinct = F.reverse(F.array_distinct(F.reverse("lifelong_item_ids")))
    users = sequences.select("user_id", "ds", distinct.alias("items"))
    short = users.where(F.size("items") <= budget).select(
        "user_id", "ds", F.col("items").alias("item_ids"), F.size("items").cast("long").alias("n_source")
    )
    long_items = users.where(F.size("items") > budget).select(
        "user_id", "ds", F.posexplode("items").alias("pos", "item_id")
    )
    placed = long_items.join(embeddings.select("item_id", "embedding"), "item_id")
    compressed = placed.groupBy("user_id", "ds").applyInPandas(
        lambda pdf: compress_user(pdf, budget, iterations, seed), schema=_OUT
    )
    out = short.unionByName(compressed)
    return out.select(*[F.col(f.name).cast(f.dataType) for f in USER_LIFELONG_COMPRESSED.fields])


def _write(cfg: Settings, rows: DataFrame, where: str) -> tuple[str, dict]:
    """Replace the partitions ``where`` names with ``rows``; the table path and the rows' figures."""
    life = cfg.item.lifelong
    rows = rows.cache()
    stats = rows.agg(
        F.count("*").alias("users"),
        F.sum(F.when(F.col("n_source") > life.max_representatives, 1).otherwise(0)).alias("compressed"),
        F.max(F.size("item_ids")).alias("max_len"),
    ).collect()[0]
    out_path, spec = cfg.table_path("user_lifelong_compressed"), cfg.table("user_lifelong_compressed")
    delta.overwrite_partition(rows, out_path, spec.partition_by, where)
    rows.unpersist()
    return out_path, {
        "users": int(stats["users"]),
        "users_compressed": int(stats["compressed"] or 0),
        "max_items": int(stats["max_len"] or 0),
        "max_representatives": life.max_representatives,
    }


def run(cfg: Settings, ds: date, spark: SparkSession | None = None) -> dict:
    """Compress the lifelong sequences of users active on ``ds``; replace the table's partition ``ds``."""
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    life = cfg.item.lifelong
    sequences = day_lifelong_items(spark, cfg, ds)
    embeddings = delta.read(spark, cfg.table_path("item_embeddings"), ITEM_EMBEDDINGS)
    rows = build_compressed(sequences, embeddings, ds, life.max_representatives, life.kmeans_iterations, life.seed)
    out_path, figures = _write(cfg, rows, f"ds = {delta.date_literal(ds)}")
    report = {"ds": ds.isoformat(), "table": out_path, **figures}
    log.info(
        "lifelong ds=%s: %d active users, %d compressed to <= %d items, into %s[ds=%s]",
        ds, report["users"], report["users_compressed"], life.max_representatives, out_path, ds,
    )  # fmt: skip
    write_stage_json(cfg, ds, "lifelong", report)
    return report


def run_bulk(cfg: Settings, start: date, end: date, spark: SparkSession | None = None) -> dict:
    """After a bulk backfill of ``start..end``: each user's last ``item.lifelong.backfill_last_days`` active days.

    A day-by-day replay writes partition ``d`` for the users active on ``d``; the point-in-time
    features of a training target read the row of the user's last active day before it
    (``event_timestamp`` = midnight after ``ds``). Compressing only ``end`` (what the daily run
    after a bulk pass did before) left every leave-one-out target of ``end``'s training rows
    without a lifelong row -- their targets lie on or before the user's last day -- while serving
    read one: the first model after a backfill learned the pathway from padding. Each user's
    last three days are what ``end``'s training (the valid and test targets' days and the one
    before) and serving read, with the rows day-by-day would write for those days; older days
    only matter for training rows of earlier days, which a bulk pass does not build. Cost: up
    to three passes over each user's history, in one job. Partitions ``start..end`` are replaced.
    """
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    life = cfg.item.lifelong
    first, last = F.lit(start).cast("date"), F.lit(end).cast("date")
    chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS).where(F.col("event_date") <= last)
    user_days = last_active_days(chunks.where(F.col("event_date") >= first), life.backfill_last_days)
    sequences = lifelong_items_as_of(chunks, user_days, cfg.sequences.lifelong_cap)
    embeddings = delta.read(spark, cfg.table_path("item_embeddings"), ITEM_EMBEDDINGS)
    rows = build_compressed(sequences, embeddings, None, life.max_representatives, life.kmeans_iterations, life.seed)
    where = f"ds >= {delta.date_literal(start)} AND ds <= {delta.date_literal(end)}"
    out_path, figures = _write(cfg, rows, where)
    report = {"ds": end.isoformat(), "start": start.isoformat(), "table": out_path,
              "last_days_per_user": life.backfill_last_days, **figures}  # fmt: skip
    log.info(
        "lifelong bulk %s..%s: %d (user, day) rows (each user's last %d active days), %d compressed, into %s",
        start, end, report["users"], life.backfill_last_days, report["users_compressed"], out_path,
    )  # fmt: skip
    write_stage_json(cfg, end, "lifelong", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.ds), indent=2))


if __name__ == "__main__":
    main()

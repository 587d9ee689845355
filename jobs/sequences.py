"""Lifelong user sequences, updated incrementally, and the daily gold feature snapshot.

    python -m jobs.sequences --ds 2026-10-03 [--full-rebuild]

History is kept in day chunks (jobs/user_history.py explains the layout):
``silver.user_events[ds]`` holds one sorted chunk per user active on ``ds`` and is
replaced whole, and ``silver.user_state`` holds one bounded row per user (recent
events, last positives, counts, first/last day), MERGEd from the old row and the
day's chunk only. A day therefore costs its own events plus the bounded state rows of
its users, never their whole histories; the exception is a re-run or a day applied
after later days, whose users' states are rebuilt from their chunks (correct in any
order; tests/jobs/test_sequences.py checks that any order with re-runs ends with the
tables of a full rebuild). The lifelong column of the gold snapshot is the one place
that reads a user's whole history: it is assembled from the chunks up to ``ds``
(partitions after ``ds`` pruned) for the day's users only, capped at ``lifelong_cap``.

Changes from the one-array-per-user layout, where a user has more than
``lifelong_cap`` events: ``n_positive`` and the positive sequence now count every
event, not only the last ``lifelong_cap`` (the other columns are unchanged).

``gold.user_features`` partition ``ds`` holds, for each user active on ``ds``, the
features as of the end of ``ds`` (events after ``ds`` are ignored, so an
out-of-order backfill never leaks the future): static counts and attributes, the
short-term sequence with its signals, the positive-feedback sequence and the
lifelong sequence. A user's latest row at or before a time is their state then
(the point-in-time join Feast does). When a day is applied after later days (a
backfill out of order), the later snapshots are rewritten from the chunks, so any
replay order ends with the same tables.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import EVENTS, USER_EVENTS, USER_FEATURES, USER_STATE, USERS
from jobs.stage_report import write_stage_json
from jobs.user_history import (  # noqa: F401 - positive_expr, with_history_event: re-exported
    append_day,
    build_chunks,
    build_state,
    cap_tail,
    positive_expr,
    recent_as_of_last,
    recent_len,
    user_sequences,
    with_history_event,
)

log = logging.getLogger(__name__)


def build_user_features(
    state: DataFrame, lifelong: DataFrame, users: DataFrame, ds: date | None, short_len: int
) -> DataFrame:
    """Feature snapshots, each as of the end of its state row's ``last_date`` (the snapshot's ``ds``).

    ``state``: ``user_state`` rows as of their snapshot day: for one day ``ds``, the rows with
    ``last_date`` = ``ds`` of the day's users (:func:`state_as_of`); for a range, one row per user
    and active day (``jobs.user_history.states_by_day``). ``lifelong``: ``(user_id, events)``, the
    capped lifelong sequences as of ``ds`` (:func:`lifelong_of`), or ``(user_id, last_date, events)``
    for a range (``ds`` None).
    """
    if "last_date" not in lifelong.columns:
        lifelong = lifelong.withColumn("last_date", F.lit(ds).cast("date"))
    day = F.col("last_date")

    def epoch(arr: Column) -> Column:
        return F.transform(arr, lambda e: F.unix_seconds(e["ts"]))

    df = state.join(lifelong.withColumnRenamed("events", "_life"), ["user_id", "last_date"]).select(
        "*", recent_as_of_last(short_len).alias("_short")
    )
    out = df.join(users.select("user_id", "attributes"), "user_id", "left").select(
        "user_id",
        F.date_add(day, 1).cast("timestamp").alias("event_timestamp"),
        "n_events",
        "n_positive",
        F.col("active_days").alias("active_days"),
        F.datediff(day, F.col("first_date")).alias("tenure_days"),
        "attributes",
        F.transform("_short", lambda e: e["item_id"]).alias("short_item_ids"),
        epoch(F.col("_short")).alias("short_ts"),
        F.transform("_short", lambda e: e["rating"]).alias("short_rating"),
        F.transform("_short", lambda e: e["play_seconds"]).alias("short_play_seconds"),
        F.transform("_short", lambda e: e["item_duration_seconds"]).alias("short_duration_seconds"),
        F.transform("_short", lambda e: e["flags"]).alias("short_flags"),
        F.transform("positives", lambda e: e["item_id"]).alias("positive_item_ids"),
        epoch(F.col("positives")).alias("positive_ts"),
        F.transform("_life", lambda e: e["item_id"]).alias("lifelong_item_ids"),
        epoch(F.col("_life")).alias("lifelong_ts"),
        day.alias("ds"),
    )
    return out.select(*[F.col(f.name).cast(f.dataType) for f in USER_FEATURES.fields])


def state_as_of(spark: SparkSession, cfg: Settings, ds: date, users: DataFrame | None = None) -> DataFrame:
    """``user_state`` rows as of the end of ``ds`` (of ``users``, a ``user_id`` frame, or everyone).

    A state row is as of its ``last_date``: rows up to ``ds`` are read as they are. Users whose
    state is already past ``ds`` (a day replayed after later ones) are rebuilt from their chunks
    up to ``ds``; in an in-order run there are none and no chunk is read.
    """
    day = F.lit(ds).cast("date")
    state = delta.read(spark, cfg.table_path("user_state"), USER_STATE)
    if users is not None:
        state = state.join(users, "user_id", "left_semi")
    current = state.where(F.col("last_date") <= day)
    ahead = state.where(F.col("last_date") > day).select("user_id")
    if ahead.limit(1).count() == 0:
        return current
    chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS).where(F.col("event_date") <= day)
    rebuilt = build_state(chunks.join(ahead, "user_id", "left_semi"), recent_len(cfg), cfg.sequences.positive_len)
    return current.unionByName(rebuilt)


def lifelong_of(spark: SparkSession, cfg: Settings, ds: date, users: DataFrame) -> DataFrame:
    """``(user_id, events)``: the last ``lifelong_cap`` events up to ``ds`` of ``users``, from their chunks.

    Partitions after ``ds`` are pruned; the others are read for these users only (data
    skipping on ``user_id`` once jobs/maintenance.py has Z-ordered the table).
    """
    chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS)
    chunks = chunks.where(F.col("event_date") <= F.lit(ds).cast("date")).join(users, "user_id", "left_semi")
    seqs = user_sequences(chunks)
    return seqs.select("user_id", cap_tail(F.col("events"), cfg.sequences.lifelong_cap).alias("events"))


def features_for(spark: SparkSession, cfg: Settings, ds: date, users: DataFrame) -> DataFrame:
    """``gold.user_features[ds]`` rows for ``users`` (the users active on ``ds``)."""
    people = delta.read(spark, cfg.table_path("users"), USERS)
    state = state_as_of(spark, cfg, ds, users)
    return build_user_features(state, lifelong_of(spark, cfg, ds, users), people, ds, cfg.sequences.short_term_len)


def update_state(spark: SparkSession, cfg: Settings, ds: date, day_chunks: DataFrame) -> dict[str, int]:
    """MERGE day ``ds`` (its ``user_events`` rows, not yet written) into ``silver.user_state``.

    Users whose state is older than ``ds`` (every active user of an in-order run) get
    :func:`append_day` of their old row and the day: the day's cost. The others (a re-run, a
    day older than the state, a user whose events on ``ds`` are gone) are rebuilt from their
    chunks with the new day in place of the stored one; one left with no events is deleted.
    Run before the day's partition is replaced, so a crash in between is repaired by a re-run
    (the stored partition still names the users it held).
    """
    from delta.tables import DeltaTable

    n_recent, pos_len = recent_len(cfg), cfg.sequences.positive_len
    day = F.lit(ds).cast("date")
    st_path = cfg.table_path("user_state")
    chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS)
    state = delta.read(spark, st_path, USER_STATE)
    touched = day_chunks.select("user_id").unionByName(chunks.where(F.col("event_date") == day).select("user_id"))
    in_day = day_chunks.select("user_id", F.lit(True).alias("_in_day"))
    kind = (
        touched.distinct()
        .join(state.select("user_id", "last_date"), "user_id", "left")
        .join(in_day, "user_id", "left")
        .select(
            "user_id", (F.col("_in_day").isNotNull() & F.coalesce(F.col("last_date") < day, F.lit(True))).alias("_fast")
        )
        .localCheckpoint()
    )
    fast, slow = kind.where("_fast").select("user_id"), kind.where("NOT _fast").select("user_id")
    counts = {r["_fast"]: r["count"] for r in kind.groupBy("_fast").count().collect()}
    n_fast, n_slow = counts.get(True, 0), counts.get(False, 0)
    parts = []
    if n_fast:
        parts.append(
            append_day(
                state.join(fast, "user_id", "left_semi"),
                day_chunks.join(fast, "user_id", "left_semi"),
                n_recent,
                pos_len,
            )
        )
    if n_slow:
        source = chunks.where(F.col("event_date") != day).unionByName(day_chunks).join(slow, "user_id", "left_semi")
        parts.append(slow.join(build_state(source, n_recent, pos_len), "user_id", "left"))
    if parts:
        updates = reduce(DataFrame.unionByName, parts).localCheckpoint()
        if not delta.exists(spark, st_path):
            delta.overwrite(updates.where(F.col("last_date").isNotNull()), st_path)
        else:
            (
                DeltaTable.forPath(spark, st_path)
                .alias("t")
                .merge(updates.alias("s"), "t.user_id = s.user_id")
                .whenMatchedDelete(condition="s.last_date IS NULL")
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll(condition="s.last_date IS NOT NULL")
                .execute()
            )
    return {"appended": n_fast, "rebuilt": n_slow}


def later_snapshot_days(spark: SparkSession, path: str, ds: date) -> list[date]:
    """Partitions of gold.user_features dated after ``ds`` (empty in a normal, in-order daily run)."""
    if not delta.exists(spark, path):
        return []
    later = delta.read(spark, path).where(F.col("ds") > F.lit(ds).cast("date")).select("ds").distinct()
    return sorted(row["ds"] for row in later.collect())


def refresh_later_snapshots(spark: SparkSession, cfg: Settings, ds: date) -> list[date]:
    """Rewrite user_features[d] for every existing d > ``ds`` from the history as it is now.

    A backfill that applies an earlier day after later ones changes what those later
    snapshots should have seen; rewriting them makes any replay order end with the
    tables an in-order run writes (tests/ops/test_faults.py). Each snapshot is rebuilt
    for the users of ``user_events[d]``, so the cost is one feature pass per later day,
    and nothing when days arrive in order.
    """
    path = cfg.table_path("user_features")
    days = later_snapshot_days(spark, path, ds)
    spec = cfg.table("user_features")
    chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS)
    for d in days:
        users = chunks.where(F.col("event_date") == F.lit(d).cast("date")).select("user_id")
        features = features_for(spark, cfg, d, users)
        delta.overwrite_partition(features, path, spec.partition_by, f"ds = {delta.date_literal(d)}")
        log.info("sequences ds=%s: rewrote %s[ds=%s] (applied out of order)", ds, path, d)
    return days


def run(cfg: Settings, ds: date, spark: SparkSession | None = None, full_rebuild: bool = False) -> dict:
    """Apply day ``ds`` to user_events/user_state (or rebuild both), then write gold.user_features[ds]."""
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    seq = cfg.sequences
    ev_path, st_path = cfg.table_path("user_events"), cfg.table_path("user_state")
    seconds: dict[str, float] = {}  # per step, in the stage JSON: where a day's time goes
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step], clock = round(now - clock, 2), now

    events = delta.read(spark, cfg.table_path("events"), EVENTS)
    day_events = events.where(F.col("event_date") == F.lit(ds).cast("date"))
    day_chunks = build_chunks(day_events, seq.positive).cache()
    n_users = day_chunks.count()
    lap("day_chunks")
    spec = cfg.table("user_events")
    if full_rebuild:
        log.info("sequences ds=%s: full rebuild of %s and %s from every event", ds, ev_path, st_path)
        delta.overwrite(build_chunks(events, seq.positive), ev_path, spec.partition_by)
        lap("user_events")
        chunks = delta.read(spark, ev_path, USER_EVENTS)
        delta.overwrite(build_state(chunks, recent_len(cfg), seq.positive_len), st_path)
        lap("user_state")
        merged = {"appended": 0, "rebuilt": n_users}
    else:
        merged = update_state(spark, cfg, ds, day_chunks)
        lap("user_state")
        delta.overwrite_partition(day_chunks, ev_path, spec.partition_by, f"event_date = {delta.date_literal(ds)}")
        lap("user_events")
    features = features_for(spark, cfg, ds, day_chunks.select("user_id"))
    fspec = cfg.table("user_features")
    delta.overwrite_partition(
        features, cfg.table_path("user_features"), fspec.partition_by, f"ds = {delta.date_literal(ds)}"
    )
    lap("user_features")
    refreshed = refresh_later_snapshots(spark, cfg, ds)
    lap("later_snapshots")
    day_chunks.unpersist()
    report = {
        "ds": ds.isoformat(),
        "active_users": n_users,
        "full_rebuild": full_rebuild,
        "state_appended": merged["appended"],
        "state_rebuilt": merged["rebuilt"],
        "later_snapshots_refreshed": [d.isoformat() for d in refreshed],
        "seconds": seconds,
    }
    log.info(
        "sequences ds=%s: %d active users (%d appended, %d rebuilt) into %s; wrote user_features[%s]",
        ds, n_users, merged["appended"], merged["rebuilt"], st_path, ds,
    )  # fmt: skip
    write_stage_json(cfg, ds, "sequences", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day to apply, YYYY-MM-DD")
    parser.add_argument(
        "--full-rebuild", action="store_true", help="rebuild user_events and user_state from all events first"
    )
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.ds, full_rebuild=args.full_rebuild), indent=2))


if __name__ == "__main__":
    main()

"""Lifelong user sequences, updated incrementally, and the daily gold feature snapshot.

    python -m jobs.sequences --ds 2026-10-03 [--full-rebuild]

History is kept in day chunks (jobs/user_history.py explains the layout):
``silver.user_events[ds]`` holds one sorted chunk per user active on ``ds`` and is
replaced whole, and ``silver.user_state`` holds bounded state rows (recent events, last
positives, counts, first/last day), partition ``last_date = ds`` holding the states of the
day's users, each built from their latest earlier row and the day's chunk only. A day
therefore costs its own events plus one bounded row per active user, never their whole
histories, and writes one partition instead of MERGEing into rows spread over every file;
the exception is a re-run or a day applied after later days, whose users' rows from that
day on are rebuilt from their chunks (correct in any order; tests/jobs/test_sequences.py
checks that any order with re-runs ends with the tables of an in-order run, and their
current states with a full rebuild). The lifelong sequence is not part of the snapshot:
the lifelong compression (jobs/lifelong.py) is the one daily reader of a user's whole
history, and the model reads its representatives.

``gold.user_features`` partition ``ds`` holds, for each user active on ``ds``, the
features as of the end of ``ds`` (events after ``ds`` are ignored, so an
out-of-order backfill never leaks the future): static counts and attributes, the
short-term sequence with its signals and the positive-feedback sequence. A user's
latest row at or before a time is their state then (the point-in-time join Feast does).
When a day is applied after later days (a backfill out of order), the later snapshots
are rewritten from the chunks, so any replay order ends with the same tables.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
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
    current_state,
    positive_expr,
    recent_as_of_last,
    recent_len,
    states_by_day,
    with_history_event,
)

log = logging.getLogger(__name__)


def build_user_features(state: DataFrame, users: DataFrame, ds: date | None, short_len: int) -> DataFrame:
    """Feature snapshots, each as of the end of its state row's ``last_date`` (the snapshot's ``ds``).

    ``state``: ``user_state`` rows as of their snapshot day: for one day ``ds``, the rows with
    ``last_date`` = ``ds`` of the day's users (:func:`state_on`); for a range, one row per user
    and active day (``jobs.user_history.states_by_day``; ``ds`` None).
    """
    day = F.col("last_date")

    def epoch(arr: Column) -> Column:
        return F.transform(arr, lambda e: F.unix_seconds(e["ts"]))

    df = state.select("*", recent_as_of_last(short_len).alias("_short"))
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
        day.alias("ds"),
    )
    return out.select(*[F.col(f.name).cast(f.dataType) for f in USER_FEATURES.fields])


def state_as_of(spark: SparkSession, cfg: Settings, ds: date, users: DataFrame | None = None) -> DataFrame:
    """``user_state`` rows as of the end of ``ds`` (of ``users``, a ``user_id`` frame, or everyone).

    A user with no row after ``ds`` has their latest row as their state then. Users with rows
    after ``ds`` (a day replayed after later ones, or compacted history) are rebuilt from their
    chunks up to ``ds``; in an in-order run there are none (only partitions after ``ds`` are
    looked at) and no chunk is read.
    """
    day = F.lit(ds).cast("date")
    state = delta.read(spark, cfg.table_path("user_state"), USER_STATE)
    if users is not None:
        state = state.join(users, "user_id", "left_semi")
    ahead = state.where(F.col("last_date") > day).select("user_id").distinct()
    if ahead.isEmpty():
        return current_state(state)
    current = current_state(state.where(F.col("last_date") <= day).join(ahead, "user_id", "left_anti"))
    return current.unionByName(_rebuilt_as_of(spark, cfg, ds, ahead))


def _rebuilt_as_of(spark: SparkSession, cfg: Settings, ds: date, users: DataFrame) -> DataFrame:
    """``build_state`` of ``users``' chunks up to ``ds``: their state as of ``ds``, from history."""
    chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS).where(
        F.col("event_date") <= F.lit(ds).cast("date")
    )
    return build_state(chunks.join(users, "user_id", "left_semi"), recent_len(cfg), cfg.sequences.positive_len)


def state_on(spark: SparkSession, cfg: Settings, ds: date, users: DataFrame, complete: bool = False) -> DataFrame:
    """``user_state`` rows as of ``ds`` of ``users``, all active on ``ds``: partition ``ds`` only.

    Every row the table keeps is a true state as of its ``last_date``, so an active user's row
    dated ``ds`` is their state then; one without it (a later day's rebuild dropped it) is rebuilt
    from the chunks. The cost is the day's partition, whatever the history. ``complete``: the
    caller has just written partition ``ds`` for exactly ``users`` (``update_state``), so the
    partition is the answer and the check for missing users (a join and a job) is skipped.
    """
    state = delta.read(spark, cfg.table_path("user_state"), USER_STATE)
    on_day = state.where(F.col("last_date") == F.lit(ds).cast("date"))
    if complete:
        return on_day
    on_day = on_day.join(users, "user_id", "left_semi")
    missing = users.join(on_day.select("user_id"), "user_id", "left_anti")
    if missing.isEmpty():
        return on_day
    return on_day.unionByName(_rebuilt_as_of(spark, cfg, ds, missing))


def features_for(spark: SparkSession, cfg: Settings, ds: date, users: DataFrame, complete: bool = False) -> DataFrame:
    """``gold.user_features[ds]`` rows for ``users`` (the users active on ``ds``; ``complete``: see
    :func:`state_on`)."""
    people = delta.read(spark, cfg.table_path("users"), USERS)
    state = state_on(spark, cfg, ds, users, complete)
    return build_user_features(state, people, ds, cfg.sequences.short_term_len)


def update_state(spark: SparkSession, cfg: Settings, ds: date, day_chunks: DataFrame) -> dict[str, int]:
    """Apply day ``ds`` (its ``user_events`` rows, not yet written) to ``silver.user_state``.

    Users with no row dated ``ds`` or later (every active user of an in-order run) get
    :func:`append_day` of their latest row and the day, written as partition ``ds``: the day's
    cost. The others (a re-run, a day older than their state, a user whose events on ``ds`` are
    gone) are rebuilt from their chunks with the new day in place of the stored one: their rows
    dated ``ds`` or later become their states as of each of those days again, and a row left
    without its day is deleted, in one MERGE on ``(user_id, last_date)``. The table then holds what
    an in-order run would (tests/jobs/test_sequences.py).
    Run before the day's partition is replaced, so a crash in between is repaired by a re-run
    (the stored partition still names the users it held).
    """
    from delta.tables import DeltaTable

    n_recent, pos_len = recent_len(cfg), cfg.sequences.positive_len
    day = F.lit(ds).cast("date")
    st_path, spec = cfg.table_path("user_state"), cfg.table("user_state")
    chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS)
    state = delta.read(spark, st_path, USER_STATE)
    ahead = state.where(F.col("last_date") >= day).select("user_id").distinct()  # partitions >= ds only
    stored = chunks.where(F.col("event_date") == day).select("user_id")
    if ahead.isEmpty() and stored.isEmpty():
        # An in-order day applied once (the daily run): no state is dated ds or later and no chunk of
        # ds is stored, so every active user appends. Two partition-pruned probes of no files instead
        # of classifying every user (a shuffle and a checkpoint: 4 s of a 36 s day at 10M events).
        before = state.where(F.col("last_date") < day).join(day_chunks.select("user_id"), "user_id", "left_semi")
        appended = append_day(current_state(before), day_chunks, n_recent, pos_len)
        delta.overwrite_partition(appended, st_path, spec.partition_by, f"last_date = {delta.date_literal(ds)}")
        return {"appended": day_chunks.count(), "rebuilt": 0}
    touched = day_chunks.select("user_id").unionByName(stored).unionByName(ahead).distinct()
    kind = (
        touched.join(ahead.select("user_id", F.lit(True).alias("_ahead")), "user_id", "left")
        .join(day_chunks.select("user_id", F.lit(True).alias("_in_day")), "user_id", "left")
        .select("user_id", (F.col("_in_day").isNotNull() & F.col("_ahead").isNull()).alias("_fast"))
        .localCheckpoint()
    )
    fast, slow = kind.where("_fast").select("user_id"), kind.where("NOT _fast").select("user_id")
    counts = {r["_fast"]: r["count"] for r in kind.groupBy("_fast").count().collect()}
    n_fast, n_slow = counts.get(True, 0), counts.get(False, 0)
    appended = append_day(
        current_state(state.where(F.col("last_date") < day).join(fast, "user_id", "left_semi")),
        day_chunks.join(fast, "user_id", "left_semi"),
        n_recent,
        pos_len,
    )
    if n_slow == 0:
        delta.overwrite_partition(appended, st_path, spec.partition_by, f"last_date = {delta.date_literal(ds)}")
        return {"appended": n_fast, "rebuilt": 0}
    # The slow users' states as of each of their days from ds on (and as of their last day, which
    # may be before ds when their events of ds are gone), rebuilt from their chunks with the new day.
    source = chunks.where(F.col("event_date") != day).unionByName(day_chunks).join(slow, "user_id", "left_semi")
    by_day = states_by_day(source, n_recent, pos_len)
    last = F.max("last_date").over(Window.partitionBy("user_id"))
    rebuilt = (
        by_day.select("*", last.alias("_last"))
        .where((F.col("last_date") >= day) | (F.col("last_date") == F.col("_last")))
        .drop("_last")
        .localCheckpoint()
    )
    keys = ["user_id", "last_date"]
    stale = (
        state.where(F.col("last_date") >= day)
        .join(slow, "user_id", "left_semi")
        .select(*keys)
        .join(rebuilt.select(*keys), keys, "left_anti")
    )
    nulls = [F.lit(None).cast(f.dataType).alias(f.name) for f in USER_STATE.fields if f.name not in keys]
    source = appended.unionByName(rebuilt).withColumn("_op", F.lit("put"))
    source = source.unionByName(stale.select(*keys, *nulls, F.lit("del").alias("_op")))
    lowest = min([ds, *(r[0] for r in rebuilt.agg(F.min("last_date")).collect() if r[0] is not None)])
    on = f"t.last_date >= {delta.date_literal(lowest)} AND t.user_id = s.user_id AND t.last_date = s.last_date"
    values = {f.name: f"s.{f.name}" for f in USER_STATE.fields}
    if not delta.exists(spark, st_path):
        delta.overwrite(source.where("_op = 'put'").drop("_op"), st_path, spec.partition_by)
    else:
        (
            DeltaTable.forPath(spark, st_path)
            .alias("t")
            .merge(source.alias("s"), on)
            .whenMatchedUpdate(condition="s._op = 'put'", set=values)
            .whenMatchedDelete(condition="s._op = 'del'")
            .whenNotMatchedInsert(condition="s._op = 'put'", values=values)
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
        delta.overwrite(
            build_state(chunks, recent_len(cfg), seq.positive_len), st_path, cfg.table("user_state").partition_by
        )
        lap("user_state")
        merged = {"appended": 0, "rebuilt": n_users}
    else:
        merged = update_state(spark, cfg, ds, day_chunks)
        lap("user_state")
        delta.overwrite_partition(day_chunks, ev_path, spec.partition_by, f"event_date = {delta.date_literal(ds)}")
        lap("user_events")
    # update_state leaves partition ds holding exactly the day's users; a full rebuild dates each
    # user's one row by their last day, which may be after ds, so its users are checked.
    features = features_for(spark, cfg, ds, day_chunks.select("user_id"), complete=not full_rebuild)
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

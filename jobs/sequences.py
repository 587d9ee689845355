"""Lifelong user sequences, updated incrementally, and the daily gold feature snapshot.

    python -m jobs.sequences --ds 2026-10-03 [--full-rebuild]

``silver.user_history`` holds one row per user: all events (sorted by (ts, item_id),
the last ``lifelong_cap`` kept) and a per-day event count. Day ``ds`` is applied with
one Delta MERGE of that day's events: a user's events dated ``ds`` are replaced by
the day's events, so a re-run changes nothing and days may be applied in any order
(the final table equals a full rebuild; tests/jobs/test_sequences.py checks it).
Only users active on ``ds`` are touched, and with deletion vectors MERGE writes
only their rows; but each active user's whole array is rewritten, so a day costs
about (share of users active) x (history), not the day's events alone: see
bench/sequences.py (1M events, 35 % of users active: incremental 84-114 % of a
full rebuild). Day-chunked history is the planned fix.

``gold.user_features`` partition ``ds`` holds, for each user active on ``ds``, the
features as of the end of ``ds`` (events after ``ds`` are ignored, so an
out-of-order backfill never leaks the future): static counts and attributes, the
short-term sequence with its signals, the positive-feedback sequence and the
lifelong sequence. A user's latest row at or before a time is their state then
(the point-in-time join Feast does). When a day is applied after later days (a
backfill out of order), the later snapshots are rewritten from the updated
history, so any replay order ends with the same tables.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import PositiveRule, Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import FLAG_BITS, HISTORY_EVENT, USER_FEATURES, USER_HISTORY, USERS
from jobs.stage_report import write_stage_json

log = logging.getLogger(__name__)


def positive_expr(rule: PositiveRule) -> Column:
    """Column expression: is this event positive feedback under ``rule``?"""
    clauses = []
    if rule.min_rating is not None:
        clauses.append(F.col("rating") >= rule.min_rating)
    if rule.min_play_ratio is not None:
        clauses.append(
            (F.col("item_duration_seconds") > 0)
            & (F.col("play_seconds") >= F.lit(rule.min_play_ratio) * F.col("item_duration_seconds"))
        )
    clauses += [F.col(signal) == 1 for signal in rule.signals]
    any_clause = F.lit(False)
    for clause in clauses:
        any_clause = any_clause | F.coalesce(clause, F.lit(False))
    if rule.dislike_vetoes:
        any_clause = any_clause & ~F.coalesce(F.col("dislike") == 1, F.lit(False))
    return any_clause


def with_history_event(events: DataFrame, rule: PositiveRule) -> DataFrame:
    """bronze.events rows -> (user_id, event_date, ev: HISTORY_EVENT struct)."""
    flags = F.lit(0)
    for name, bit in FLAG_BITS.items():
        flags = flags + F.when(F.col(name) == 1, F.lit(bit)).otherwise(F.lit(0))
    fields = {
        "ts": F.col("ts"),
        "item_id": F.col("item_id"),
        "event_date": F.col("event_date"),
        "rating": F.col("rating"),
        "play_seconds": F.col("play_seconds"),
        "item_duration_seconds": F.col("item_duration_seconds"),
        "flags": flags,
        "positive": positive_expr(rule),
    }
    ev = F.struct(*[fields[f.name].cast(f.dataType).alias(f.name) for f in HISTORY_EVENT.fields])
    return events.select("user_id", "event_date", ev.alias("ev"))


def cap_tail(arr: Column, cap: int) -> Column:
    """The last ``cap`` elements of an array (all of it when shorter)."""
    return F.when(F.size(arr) > cap, F.slice(arr, F.size(arr) - cap + 1, cap)).otherwise(arr)


def build_day_batch(events: DataFrame, rule: PositiveRule, cap: int) -> DataFrame:
    """One day's events grouped per user, in the user_history schema (events sorted, capped)."""
    hist = with_history_event(events, rule)
    grouped = hist.groupBy("user_id").agg(
        F.sort_array(F.collect_list("ev")).alias("events"),
        F.first("event_date").alias("_ds"),
        F.count("*").alias("_n"),
    )
    return grouped.select(
        "user_id",
        cap_tail(F.col("events"), cap).alias("events"),
        F.create_map(F.col("_ds"), F.col("_n")).alias("events_by_day"),
        F.col("events")[0]["ts"].alias("first_ts"),
        F.element_at("events", -1)["ts"].alias("last_ts"),
    ).select(*[F.col(f.name).cast(f.dataType) for f in USER_HISTORY.fields])


def build_history_full(events: DataFrame, rule: PositiveRule, cap: int) -> DataFrame:
    """Full rebuild of user_history from all events (the reference the MERGE must equal)."""
    hist = with_history_event(events, rule)
    per_day = hist.groupBy("user_id", "event_date").agg(F.count("*").alias("n"))
    by_day = per_day.groupBy("user_id").agg(
        F.map_from_entries(F.array_sort(F.collect_list(F.struct("event_date", "n")))).alias("events_by_day")
    )
    seqs = hist.groupBy("user_id").agg(F.sort_array(F.collect_list("ev")).alias("events"))
    out = seqs.join(by_day, "user_id").select(
        "user_id",
        cap_tail(F.col("events"), cap).alias("events"),
        "events_by_day",
        F.col("events")[0]["ts"].alias("first_ts"),
        F.element_at("events", -1)["ts"].alias("last_ts"),
    )
    return out.select(*[F.col(f.name).cast(f.dataType) for f in USER_HISTORY.fields])


def merge_history_sql(ds: date, cap: int) -> dict[str, str]:
    """SET clauses applying day batch ``s`` to history row ``t`` (idempotent for ``ds``).

    Events already dated ``ds`` are dropped first, so a re-run replaces, never appends.
    first/last_ts use min/max, which are order-free.
    """
    day = delta.date_literal(ds)
    merged = f"sort_array(concat(filter(t.events, e -> e.event_date != {day}), s.events))"
    capped = (
        f"CASE WHEN size({merged}) > {cap} THEN slice({merged}, size({merged}) - {cap} + 1, {cap}) ELSE {merged} END"
    )
    return {
        "events": capped,
        # Entries sorted by day so the same content is always the same map.
        "events_by_day": (
            f"map_from_entries(array_sort(map_entries(map_concat("
            f"map_filter(t.events_by_day, (k, v) -> k != {day}), s.events_by_day))))"
        ),
        "first_ts": "least(t.first_ts, s.first_ts)",
        "last_ts": "greatest(t.last_ts, s.last_ts)",
    }


def merge_day(spark: SparkSession, path: str, batch: DataFrame, ds: date, cap: int) -> None:
    """MERGE one day's batch into user_history (creating the table on first use)."""
    from delta.tables import DeltaTable

    if not delta.exists(spark, path):
        delta.overwrite(batch, path)
        return
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(batch.alias("s"), "t.user_id = s.user_id")
        .whenMatchedUpdate(set=merge_history_sql(ds, cap))
        .whenNotMatchedInsertAll()
        .execute()
    )


def _flag(name: str) -> Column:
    return F.lit(FLAG_BITS[name])


def build_user_features(
    history: DataFrame, users: DataFrame, ds: date, short_len: int, positive_len: int, cap: int
) -> DataFrame:
    """Feature snapshot as of the end of ``ds`` for the given history rows."""
    day = F.lit(ds).cast("date")

    def epoch(arr: Column) -> Column:
        return F.transform(arr, lambda e: F.unix_seconds(e["ts"]))

    # Filter the history once and materialise it as a column: Spark does not reuse
    # array-lambda results, and cap_tail repeats its argument.
    df = history.select(
        "user_id",
        F.filter("events", lambda e: e["event_date"] <= day).alias("_past"),
        F.map_filter("events_by_day", lambda k, v: k <= day).alias("_days"),
    ).where(F.size("_days") > 0)
    df = df.select("*", F.filter("_past", lambda e: e["positive"]).alias("_positives")).select(
        "user_id",
        "_past",
        "_days",
        cap_tail(F.col("_past"), short_len).alias("_short"),
        cap_tail(F.col("_positives"), positive_len).alias("_pos"),
        cap_tail(F.col("_past"), cap).alias("_life"),
    )
    out = df.join(users.select("user_id", "attributes"), "user_id", "left").select(
        "user_id",
        F.to_timestamp(F.lit(ds + timedelta(days=1))).alias("event_timestamp"),
        F.aggregate(F.map_values("_days"), F.lit(0).cast("long"), lambda acc, v: acc + v).alias("n_events"),
        F.size(F.filter("_past", lambda e: e["positive"])).cast("long").alias("n_positive"),
        F.size("_days").alias("active_days"),
        F.datediff(day, F.array_min(F.map_keys("_days"))).alias("tenure_days"),
        "attributes",
        F.transform("_short", lambda e: e["item_id"]).alias("short_item_ids"),
        epoch(F.col("_short")).alias("short_ts"),
        F.transform("_short", lambda e: e["rating"]).alias("short_rating"),
        F.transform("_short", lambda e: e["play_seconds"]).alias("short_play_seconds"),
        F.transform("_short", lambda e: e["item_duration_seconds"]).alias("short_duration_seconds"),
        F.transform("_short", lambda e: e["flags"]).alias("short_flags"),
        F.transform("_pos", lambda e: e["item_id"]).alias("positive_item_ids"),
        epoch(F.col("_pos")).alias("positive_ts"),
        F.transform("_life", lambda e: e["item_id"]).alias("lifelong_item_ids"),
        epoch(F.col("_life")).alias("lifelong_ts"),
        day.alias("ds"),
    )
    return out.select(*[F.col(f.name).cast(f.dataType) for f in USER_FEATURES.fields])


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
    whole from silver.user_history (its users are those with events on d), so the cost
    is one feature pass per later day, and nothing when days arrive in order.
    """
    seq = cfg.sequences
    path = cfg.table_path("user_features")
    days = later_snapshot_days(spark, path, ds)
    if not days:
        return []
    history = delta.read(spark, cfg.table_path("user_history"))
    users = delta.read(spark, cfg.table_path("users"), USERS)
    spec = cfg.table("user_features")
    for day in days:
        active = history.where(F.map_contains_key("events_by_day", F.lit(day).cast("date")))
        features = build_user_features(active, users, day, seq.short_term_len, seq.positive_len, seq.lifelong_cap)
        delta.overwrite_partition(features, path, spec.partition_by, f"ds = {delta.date_literal(day)}")
        log.info("sequences ds=%s: rewrote %s[ds=%s] (applied out of order)", ds, path, day)
    return days


def run(cfg: Settings, ds: date, spark: SparkSession | None = None, full_rebuild: bool = False) -> dict:
    """Apply day ``ds`` to user_history (or rebuild it), then write gold.user_features[ds]."""
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    seq = cfg.sequences
    events_path, hist_path = cfg.table_path("events"), cfg.table_path("user_history")
    events = delta.read(spark, events_path)
    if full_rebuild:
        log.info("sequences ds=%s: full rebuild of %s from all of %s", ds, hist_path, events_path)
        delta.overwrite(build_history_full(events, seq.positive, seq.lifelong_cap), hist_path)
    day_events = events.where(F.col("event_date") == F.lit(ds).cast("date"))
    batch = build_day_batch(day_events, seq.positive, seq.lifelong_cap).cache()
    n_users = batch.count()
    if not full_rebuild:
        merge_day(spark, hist_path, batch, ds, seq.lifelong_cap)
    active = batch.select("user_id")
    history = delta.read(spark, hist_path).join(active, "user_id", "left_semi")
    users = delta.read(spark, cfg.table_path("users"), USERS)
    features = build_user_features(history, users, ds, seq.short_term_len, seq.positive_len, seq.lifelong_cap)
    spec = cfg.table("user_features")
    delta.overwrite_partition(
        features, cfg.table_path("user_features"), spec.partition_by, f"ds = {delta.date_literal(ds)}"
    )
    refreshed = refresh_later_snapshots(spark, cfg, ds)
    batch.unpersist()
    report = {
        "ds": ds.isoformat(),
        "active_users": n_users,
        "full_rebuild": full_rebuild,
        "later_snapshots_refreshed": [d.isoformat() for d in refreshed],
    }
    log.info("sequences ds=%s: %d active users merged into %s; wrote user_features[%s]", ds, n_users, hist_path, ds)
    write_stage_json(cfg, ds, "sequences", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day to apply, YYYY-MM-DD")
    parser.add_argument("--full-rebuild", action="store_true", help="rebuild user_history from all events first")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.ds, full_rebuild=args.full_rebuild), indent=2))


if __name__ == "__main__":
    main()

"""Item statistics: ``gold.item_stats[ds]``, one row per item with events on ``ds``.

    python -m jobs.item_stats --ds 2026-10-03

For each item that had interactions on ``ds``: its interactions, distinct users and positive
interactions up to the end of ``ds``, the positive rate, and when it was first and last seen.
"Positive" is the sequences' rule (``sequences.positive``) or, as in jobs/item_pairs.py, an
interaction with no feedback signal at all (ID-only logs such as Amazon reviews are implicit
positives). Feast serves the latest row per item (features/views.py ``item_stats``), so an item
idle today keeps yesterday's numbers online.

Cost: yesterday's totals + today's events. ``silver.item_state`` keeps one row per item, its
totals as of its last active day; ``silver.user_items`` the distinct (item, user) pairs with the
day each was first seen, because distinct users cannot be summed day by day. For an item whose
totals are older than ``ds`` (every item of an in-order run), the day's row is its state plus the
day's events, and its new users are the day's pairs not seen before ``ds`` (an anti-join of the
day's pairs with that narrow table: the one read that is not the day's). An item whose state is
already at or past ``ds`` (a re-run, or a day replayed after later ones) is recomputed from its
events (:func:`build_item_stats`, the definition both paths must equal: tests/jobs/test_item_stats.py).
Partition ``ds`` is replaced, so a re-run leaves the table as it was and a backfill never sees
the future. Written in the order stats, totals, pairs: a crash in between is repaired by a re-run.
The first run on a lake builds both from every event (:func:`bootstrap`). Days are applied in
order (as the DAG does, a backfill in any order included: a day older than the totals takes the
recompute path); if a day is skipped, its events are missing from the next day's row until the
skipped day and then the next are re-run. A pair first seen on a day whose events are later
removed stays in ``user_items``.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from functools import reduce

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from conf.settings import PositiveRule, Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import EVENTS, ITEM_STATE, ITEM_STATS, USER_ITEMS
from jobs.stage_report import write_stage_json

log = logging.getLogger(__name__)


def is_positive(rule: PositiveRule):
    """Positive under ``rule``, or signal-free (no rating, play time or flag): an implicit positive."""
    from jobs.schemas import FLAG_NAMES
    from jobs.user_history import positive_expr

    no_signal = F.col("rating").isNull() & F.col("play_seconds").isNull()
    for flag in FLAG_NAMES:
        no_signal = no_signal & F.coalesce(F.col(flag), F.lit(0)).eqNullSafe(0)
    return positive_expr(rule) | no_signal


def cumulative(events: DataFrame, rule: PositiveRule) -> DataFrame:
    """``ITEM_STATE`` rows: per item, totals over ``events`` (as of their last day)."""
    rows = events.groupBy("item_id").agg(
        F.count("*").alias("n_events"),
        F.countDistinct("user_id").alias("n_users"),
        F.sum(F.when(is_positive(rule), 1).otherwise(0)).alias("n_positive"),
        F.min("ts").alias("first_seen"),
        F.max("ts").alias("last_seen"),
        F.max("event_date").alias("last_date"),
    )
    return rows.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_STATE.fields])


def _stats_row(state: DataFrame, n_ds: DataFrame) -> DataFrame:
    """``ITEM_STATS`` rows from totals as of a day (``last_date``) and ``(item_id, ds, n_events_ds)``."""
    n_ds = n_ds.withColumnRenamed("item_id", "_i")
    on = (state["item_id"] == n_ds["_i"]) & (state["last_date"] == n_ds["ds"])
    rows = state.join(n_ds, on).select("*", (F.col("n_positive") / F.col("n_events")).alias("positive_rate"))
    return rows.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_STATS.fields])


def _day_counts(events: DataFrame) -> DataFrame:
    """``(item_id, ds, n_events_ds)`` of every (item, day) with events."""
    return events.groupBy("item_id", F.col("event_date").alias("ds")).agg(F.count("*").alias("n_events_ds"))


def build_item_stats(events: DataFrame, ds: date, rule: PositiveRule) -> DataFrame:
    """``ITEM_STATS`` rows as of the end of ``ds`` for items with events on ``ds`` (``events``: any days)."""
    day = F.lit(ds).cast("date")
    upto = events.where(F.col("event_date") <= day)
    n_ds = _day_counts(upto.where(F.col("event_date") == day))
    return _stats_row(cumulative(upto.join(n_ds, "item_id", "left_semi"), rule), n_ds)


def stats_by_day(events: DataFrame, rule: PositiveRule) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Every day of ``events`` (a range, on a lake without totals) in one pass, keyed by day.

    Returns ``(stats, totals, pairs)``: ``ITEM_STATS`` rows of every (item, day with events) --
    each equal to :func:`build_item_stats` of that day -- the ``ITEM_STATE`` totals as of each
    item's last day, and the ``USER_ITEMS`` first-seen pairs: what a day-by-day run from an empty
    lake ends with (the bulk backfill, jobs/backfill.py). Running sums over the item's days
    replace the day loop; distinct users are summed from each pair's first day.
    """
    positive = F.when(is_positive(rule), 1).otherwise(0)
    days = events.groupBy("item_id", "event_date").agg(
        F.count("*").alias("n_events_ds"),
        F.sum(positive).alias("_pos"),
        F.min("ts").alias("_first"),
        F.max("ts").alias("last_seen"),
    )
    pairs = events.groupBy("item_id", "user_id").agg(F.min("event_date").alias("first_date"))
    new = pairs.groupBy("item_id", F.col("first_date").alias("event_date")).agg(F.count("*").alias("_new"))
    upto = Window.partitionBy("item_id").orderBy("event_date").rowsBetween(Window.unboundedPreceding, 0)
    rows = days.join(new, ["item_id", "event_date"], "left").select(
        "item_id",
        "n_events_ds",
        "last_seen",
        F.sum("n_events_ds").over(upto).alias("n_events"),
        F.sum(F.coalesce("_new", F.lit(0))).over(upto).alias("n_users"),
        F.sum("_pos").over(upto).alias("n_positive"),
        F.min("_first").over(upto).alias("first_seen"),
        F.col("event_date").alias("last_date"),
        F.col("event_date").alias("ds"),
        F.row_number().over(Window.partitionBy("item_id").orderBy(F.col("event_date").desc())).alias("_latest"),
    )
    stats = rows.select("*", (F.col("n_positive") / F.col("n_events")).alias("positive_rate"))
    totals = rows.where(F.col("_latest") == 1)
    return (
        stats.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_STATS.fields]),
        totals.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_STATE.fields]),
        pairs.select(*[F.col(f.name).cast(f.dataType) for f in USER_ITEMS.fields]),
    )


def append_day(
    state: DataFrame, day_events: DataFrame, new_users: DataFrame, ds: date, rule: PositiveRule
) -> DataFrame:
    """``ITEM_STATE`` rows as of ``ds``: totals older than ``ds`` plus the day's events.

    ``state``: the items' rows with ``last_date`` < ``ds`` (or none, for new items);
    ``new_users``: ``(item_id, n_new)``, the day's users not seen with the item before ``ds``.
    """
    day = cumulative(day_events, rule).alias("d")
    s, n = state.alias("s"), new_users.alias("n")
    joined = day.join(s, F.col("d.item_id") == F.col("s.item_id"), "left").join(
        n, F.col("d.item_id") == F.col("n.item_id"), "left"
    )

    def plus(c: str, other: str) -> F.Column:
        return F.coalesce(F.col(f"s.{c}"), F.lit(0)) + F.coalesce(F.col(other), F.lit(0))

    rows = joined.select(
        F.col("d.item_id").alias("item_id"),
        plus("n_events", "d.n_events").alias("n_events"),
        plus("n_users", "n.n_new").alias("n_users"),
        plus("n_positive", "d.n_positive").alias("n_positive"),
        F.coalesce(F.col("s.first_seen"), F.col("d.first_seen")).alias("first_seen"),
        F.col("d.last_seen").alias("last_seen"),
        F.lit(ds).cast("date").alias("last_date"),
    )
    return rows.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_STATE.fields])


def bootstrap(spark: SparkSession, cfg: Settings, events: DataFrame) -> None:
    """First run on a lake (or after the totals were dropped): totals and pairs from every event.

    Later runs add days to them; without this, the first incremental day would miss the
    history already in bronze.
    """
    log.info("item_stats: no %s yet, building it from every event", cfg.table_path("item_state"))
    pairs = events.groupBy("item_id", "user_id").agg(F.min("event_date").alias("first_date"))
    delta.overwrite(pairs.select(*[F.col(f.name).cast(f.dataType) for f in USER_ITEMS.fields]),
                    cfg.table_path("user_items"))  # fmt: skip
    delta.overwrite(cumulative(events, cfg.sequences.positive), cfg.table_path("item_state"))


def run(cfg: Settings, ds: date, spark: SparkSession | None = None) -> dict:
    """Replace partition ``ds`` of ``gold.item_stats`` and update the running totals; returns counts."""
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    rule, day = cfg.sequences.positive, F.lit(ds).cast("date")
    st_path, ui_path = cfg.table_path("item_state"), cfg.table_path("user_items")
    events = delta.read(spark, cfg.table_path("events"), EVENTS)
    today = events.where(F.col("event_date") == day)
    n_ds = _day_counts(today).localCheckpoint()
    if not delta.exists(spark, st_path):
        bootstrap(spark, cfg, events)
    state = delta.read(spark, st_path, ITEM_STATE)
    kind = n_ds.join(state.select("item_id", "last_date"), "item_id", "left").select(
        "item_id", F.coalesce(F.col("last_date") < day, F.lit(True)).alias("_fast")
    )
    fast, slow = kind.where("_fast").select("item_id"), kind.where("NOT _fast").select("item_id")
    fast, slow = fast.localCheckpoint(), slow.localCheckpoint()
    n_fast, n_slow = fast.count(), slow.count()
    pairs = today.select("item_id", "user_id").distinct()
    parts_state, parts_stats = [], []
    if n_fast:
        seen = delta.read(spark, ui_path, USER_ITEMS).where(F.col("first_date") < day)
        new = pairs.join(fast, "item_id", "left_semi").join(seen, ["item_id", "user_id"], "left_anti")
        new_users = new.groupBy("item_id").agg(F.count("*").alias("n_new"))
        rows = append_day(state.join(fast, "item_id", "left_semi"), today.join(fast, "item_id", "left_semi"),
                          new_users, ds, rule)  # fmt: skip
        parts_state.append(rows)
        parts_stats.append(_stats_row(rows, n_ds))
    if n_slow:
        theirs = events.join(slow, "item_id", "left_semi")
        parts_state.append(cumulative(theirs, rule))
        parts_stats.append(build_item_stats(theirs, ds, rule))
    out_path, spec = cfg.table_path("item_stats"), cfg.table("item_stats")
    if parts_stats:
        # Materialised: both are computed from the tables they are written to.
        rows = reduce(DataFrame.unionByName, parts_stats).localCheckpoint()
        totals = reduce(DataFrame.unionByName, parts_state).localCheckpoint()
        delta.overwrite_partition(rows, out_path, spec.partition_by, f"ds = {delta.date_literal(ds)}")
        delta.merge_upsert(spark, totals, st_path, ["item_id"])
        first = pairs.select("item_id", "user_id", day.alias("first_date"))
        delta.merge_upsert(
            spark, first, ui_path, ["item_id", "user_id"], update_condition="s.first_date < t.first_date"
        )
    n = n_fast + n_slow
    report = {"ds": ds.isoformat(), "table": out_path, "items": int(n), "items_appended": n_fast,
              "items_recomputed": n_slow}  # fmt: skip
    log.info("item_stats ds=%s: %d items (%d appended, %d recomputed) into %s[ds=%s]", ds, n, n_fast, n_slow,
             out_path, ds)  # fmt: skip
    write_stage_json(cfg, ds, "item_stats", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.ds), indent=2))


if __name__ == "__main__":
    main()

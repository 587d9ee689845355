"""Item statistics: ``gold.item_stats[ds]``, one row per item with events on ``ds``.

    python -m jobs.item_stats --ds 2026-10-03

For each item that had interactions on ``ds``: its interactions, distinct users and positive
interactions up to the end of ``ds``, the positive rate, and when it was first and last seen.
"Positive" is the sequences' rule (``sequences.positive``) or, as in jobs/item_pairs.py, an
interaction with no feedback signal at all (ID-only logs such as Amazon reviews are implicit
positives). Feast serves the latest row per item (features/views.py ``item_stats``), so an item
idle today keeps yesterday's numbers online.

Cost: the day's items are semi-joined to ``bronze.events`` up to ``ds``; Delta prunes later
partitions, and only those items' events are aggregated (a full-history scan of a narrow table;
distinct users cannot be summed day by day without keeping per-item user sets). Partition ``ds``
is replaced, so a re-run leaves the table as it was and a backfill never sees the future.
"""

from __future__ import annotations

import json
import logging
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import PositiveRule, Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import EVENTS, ITEM_STATS
from jobs.stage_report import write_stage_json

log = logging.getLogger(__name__)


def is_positive(rule: PositiveRule):
    """Positive under ``rule``, or signal-free (no rating, play time or flag): an implicit positive."""
    from jobs.schemas import FLAG_NAMES
    from jobs.sequences import positive_expr

    no_signal = F.col("rating").isNull() & F.col("play_seconds").isNull()
    for flag in FLAG_NAMES:
        no_signal = no_signal & F.coalesce(F.col(flag), F.lit(0)).eqNullSafe(0)
    return positive_expr(rule) | no_signal


def build_item_stats(events: DataFrame, ds: date, rule: PositiveRule) -> DataFrame:
    """``ITEM_STATS`` rows as of the end of ``ds`` for items with events on ``ds`` (``events``: any days)."""
    day = F.lit(ds).cast("date")
    upto = events.where(F.col("event_date") <= day)
    today = upto.where(F.col("event_date") == day).select("item_id").distinct()
    rows = (
        upto.join(today, "item_id", "left_semi")
        .groupBy("item_id")
        .agg(
            F.count("*").alias("n_events"),
            F.sum(F.when(F.col("event_date") == day, 1).otherwise(0)).alias("n_events_ds"),
            F.countDistinct("user_id").alias("n_users"),
            F.sum(F.when(is_positive(rule), 1).otherwise(0)).alias("n_positive"),
            F.min("ts").alias("first_seen"),
            F.max("ts").alias("last_seen"),
        )
        .withColumn("positive_rate", F.col("n_positive") / F.col("n_events"))
        .withColumn("ds", day)
    )
    return rows.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_STATS.fields])


def run(cfg: Settings, ds: date, spark: SparkSession | None = None) -> dict:
    """Replace partition ``ds`` of ``gold.item_stats``; returns counts."""
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    events = delta.read(spark, cfg.table_path("events"), EVENTS)
    rows = build_item_stats(events, ds, cfg.sequences.positive).cache()
    n = rows.count()
    out_path, spec = cfg.table_path("item_stats"), cfg.table("item_stats")
    delta.overwrite_partition(rows, out_path, spec.partition_by, f"ds = {delta.date_literal(ds)}")
    rows.unpersist()
    report = {"ds": ds.isoformat(), "table": out_path, "items": int(n)}
    log.info("item_stats ds=%s: %d items into %s[ds=%s]", ds, n, out_path, ds)
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

"""Bulk backfill: a whole range of days through the data stages, one Spark pass per stage.

    python -m jobs.backfill --start 2026-10-01 --end 2026-10-30   # the data tables only
    python -m dags.runner backfill --bulk --start ... --end ...    # + onerec_daily once on the last day

Replaying a range day by day costs one DAG run per day (a minute or two of fixed cost each
on a laptop). On an empty lake the same tables come from one pass per stage, each keyed by
day instead of looping over days:

* ingest: every raw event file read once; each row checked against its own day
  (``jobs.ingest.run`` with ``end``: what the days would accept and quarantine one by one);
* sequences: ``silver.user_events`` = every chunk of the range; the state and the feature
  snapshot of each (user, active day) from date-keyed window frames over the chunks
  (``jobs.user_history.states_by_day``, tested equal to the per-day definition);
  ``silver.user_state`` = each user's last row; ``gold.user_features[d]`` for every day;
* item_pairs: each chunk enters the trailing window of every day it belongs to, so
  every day's Swing runs in one job keyed by ``ds`` (``jobs.item_pairs.run`` with ``end``);
* item_stats: running sums over each item's days (``jobs.item_stats.stats_by_day``);
* training_examples: ``next_day`` from each day's chunk and the state as of it,
  ``leave_one_out`` from each user's state carried over every day until their next one.

The transforms are the daily path's own (the daily path is the one-day range where a stage
has one: ingest, item_pairs, the features and examples builders); the sequences' state is the
exception, MERGEd day by day in the daily path and derived by windows here -- both equal
``build_state`` of the chunks. tests/jobs/test_backfill.py checks every table this writes
against a day-by-day run of the same days (order-free checksums).

What it does not do: the item side and the models depend on the day's model versions, not
only on the data. ``dags.runner backfill --bulk`` therefore runs ``onerec_daily`` once on the
last day after this pass: its data tasks skip that day, which this pass wrote (run conf ``bulk``,
``jobs.stages._written_by_bulk``; running them would rewrite the same rows), and item
alignment/embeddings, semantic IDs, lifelong compression, Feast, the validations, training, alignment, promotion and the report run once, as of the last day
(lifelong compression writes each user's last ``item.lifelong.backfill_last_days`` active days
of the range, what the last day's training rows and serving read: ``jobs.lifelong.run_bulk``);
its ``feast_materialize`` puts every
entity's latest row online, not only that day's (a replay leaves them there). It refuses a lake that holds any of
the tables it writes: on a lake with history, replay day by day (``make backfill``).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import EVENTS, USER_EVENTS, USERS
from jobs.stage_report import write_stage_json

log = logging.getLogger(__name__)

# Every table the bulk pass writes (the ones a day-by-day run of the same days writes identically).
TABLES = (
    "events",
    "items",
    "users",
    "quarantine",
    "user_events",
    "user_state",
    "user_features",
    "item_pairs",
    "item_stats",
    "item_state",
    "user_items",
    "training_examples",
)


class LakeNotEmptyError(RuntimeError):
    """The bulk path only builds a lake from nothing."""


def existing_tables(spark: SparkSession, cfg: Settings) -> list[str]:
    """The tables of :data:`TABLES` that already exist in the config's lake."""
    return [name for name in TABLES if delta.exists(spark, cfg.table_path(name))]


def check_empty(spark: SparkSession, cfg: Settings) -> None:
    """Raise :class:`LakeNotEmptyError` naming the tables found, and what to do instead."""
    found = existing_tables(spark, cfg)
    if found:
        raise LakeNotEmptyError(
            f"bulk backfill needs an empty lake, but {cfg.resolve(cfg.lake_root)} already holds "
            f"{', '.join(found)}: replay the range day by day instead (make backfill START= END=, "
            "without BULK), or point ONEREC_HOME (or --set home=...) at a fresh folder"
        )


def loo_days(states: DataFrame, end: date) -> DataFrame:
    """``states`` (one row per user and active day) carried over every day until the user's next
    active day (or ``end``), with that day as ``ds``: each user's state as of every day."""
    nxt = F.lead("last_date").over(Window.partitionBy("user_id").orderBy("last_date"))
    until = states.select("*", F.coalesce(F.date_sub(nxt, 1), F.lit(end).cast("date")).alias("_until"))
    return until.select("*", F.explode(F.sequence(F.col("last_date"), F.col("_until"))).alias("ds")).drop("_until")


def _sequences(spark: SparkSession, cfg: Settings, start: date, end: date) -> tuple[DataFrame, dict]:
    from jobs.sequences import build_user_features
    from jobs.user_history import build_chunks, recent_len, states_by_day

    seq = cfg.sequences
    events = delta.read(spark, cfg.table_path("events"), EVENTS)
    events = events.where(F.col("event_date").between(F.lit(start).cast("date"), F.lit(end).cast("date")))
    ev_path = cfg.table_path("user_events")
    delta.overwrite(build_chunks(events, seq.positive), ev_path, cfg.table("user_events").partition_by)
    chunks = delta.read(spark, ev_path, USER_EVENTS)
    n_recent = recent_len(cfg)
    # Each user's state as of each of their days: the snapshots, the examples and the state table.
    states = states_by_day(chunks, n_recent, seq.positive_len).localCheckpoint()
    people = delta.read(spark, cfg.table_path("users"), USERS)
    features = build_user_features(states, people, None, seq.short_term_len)
    delta.overwrite(features, cfg.table_path("user_features"), cfg.table("user_features").partition_by)
    latest = states.select("*", F.max("last_date").over(Window.partitionBy("user_id")).alias("_latest"))
    # Each user's latest row only: the table as the weekly maintenance leaves it (day by day also
    # keeps the superseded rows until then; their current state is the same).
    delta.overwrite(
        latest.where(F.col("last_date") == F.col("_latest")).drop("_latest"),
        cfg.table_path("user_state"),
        cfg.table("user_state").partition_by,
    )
    return states, {"user_days": states.count()}


def _training_examples(spark: SparkSession, cfg: Settings, states: DataFrame, end: date) -> dict:
    from jobs.training_examples import build_leave_one_out, build_next_day

    ctx, frames = cfg.training_examples.context_len, []
    for protocol in cfg.training_examples.protocols:
        if protocol == "next_day":
            chunks = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS).where(F.col("n_positive") > 0)
            frames.append(build_next_day(states, chunks, ctx))
        else:
            frames.append(build_leave_one_out(loo_days(states.where(F.size("recent") >= 3), end), None, ctx))
    spec = cfg.table("training_examples")
    if frames:
        rows = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
        delta.overwrite(rows, cfg.table_path("training_examples"), spec.partition_by)
    # One row per protocol (next_day, leave_one_out).
    counts = delta.read(spark, cfg.table_path("training_examples")).groupBy("protocol").count().collect()
    return {r["protocol"]: int(r["count"]) for r in counts}


def _item_stats(spark: SparkSession, cfg: Settings, start: date, end: date) -> dict:
    from jobs.item_stats import stats_by_day

    events = delta.read(spark, cfg.table_path("events"), EVENTS)
    events = events.where(F.col("event_date").between(F.lit(start).cast("date"), F.lit(end).cast("date")))
    stats, totals, pairs = stats_by_day(events, cfg.sequences.positive)
    delta.overwrite(stats, cfg.table_path("item_stats"), cfg.table("item_stats").partition_by)
    delta.overwrite(totals, cfg.table_path("item_state"))
    delta.overwrite(pairs, cfg.table_path("user_items"))
    return {"item_days": delta.read(spark, cfg.table_path("item_stats")).count()}


def run(cfg: Settings, start: date, end: date, spark: SparkSession | None = None) -> dict:
    """Build every table of :data:`TABLES` for ``start``..``end`` on an empty lake; returns the books.

    Raises :class:`LakeNotEmptyError` (before writing anything) when one of them exists.
    """
    from jobs import ingest, item_pairs
    from jobs.spark import get_spark

    if end < start:
        raise ValueError(f"bulk backfill needs start <= end, got {start} .. {end}")
    spark = spark or get_spark(cfg)
    check_empty(spark, cfg)
    seconds: dict[str, float] = {}
    report: dict = {"start": start.isoformat(), "end": end.isoformat(), "days": (end - start).days + 1}

    def timed(name: str, fn):
        t0 = time.time()
        out = fn()
        seconds[name] = round(time.time() - t0, 2)
        books = out[-1] if isinstance(out, tuple) else out  # (frame, books) from the sequences
        log.info("bulk backfill %s..%s: %s in %.1fs: %s", start, end, name, seconds[name], books)
        return out

    # Tagged as the last day's commits: validating END checks every row the bulk pass wrote to the
    # unpartitioned tables (user_state, items, users; expectations.validate reads them by tag).
    with delta.commit_tag(spark, delta.day_tag(end)):
        report["ingest"] = timed("ingest", lambda: ingest.run(cfg, start, spark, end=end))
        states, report["sequences"] = timed("sequences", lambda: _sequences(spark, cfg, start, end))
        report["item_pairs"] = timed("item_pairs", lambda: item_pairs.run(cfg, start, spark, end=end))
        report["item_stats"] = timed("item_stats", lambda: _item_stats(spark, cfg, start, end))
        report["training_examples"] = timed("training_examples", lambda: _training_examples(spark, cfg, states, end))
        states.unpersist()
    report["seconds"] = seconds
    report["events"] = report["ingest"]["events"]["accepted"]
    write_stage_json(cfg, end, "backfill", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=date.fromisoformat, required=True, help="last day (inclusive)")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.start, args.end), indent=2, default=str))


if __name__ == "__main__":
    main()

"""Ingest one day of raw files into bronze Delta tables; bad rows go to quarantine.

    python -m jobs.ingest --ds 2026-10-03 [--config local] [--data DIR --format LOADER]

* ``bronze.events``: the day's accepted events, partition ``event_date = ds``
  rewritten with ``replaceWhere`` (a re-run replaces exactly that day).
* ``bronze.items`` / ``bronze.users``: MERGE on the id; a row changes only when its
  content hash changes, so a re-run changes nothing.
* ``quarantine.quarantine``: every rejected raw row with its reason and source
  file/line, inserted once (MERGE on table, file, line).

The job checks its own books: raw rows in scope = accepted + quarantined, or it fails.
"""

from __future__ import annotations

import json
import logging
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.ingest_rules import (
    accepted_events,
    accepted_items,
    accepted_users,
    mark_unknown_items,
    quarantined,
    validate_events,
    validate_items,
    validate_users,
)
from jobs.loaders import get_loader
from jobs.schemas import ITEMS
from jobs.stage_report import write_stage_json

log = logging.getLogger(__name__)


class IngestAccountingError(RuntimeError):
    """Raw rows did not add up to accepted + quarantined: something was lost."""


def _reason_counts(bad: DataFrame) -> dict[str, int]:
    # Group by the first reason's kind (text before ':') so the report stays short.
    kind = F.regexp_extract("reason", r"^([^:;']+)", 1)
    return {
        r["kind"].strip(): int(r["n"]) for r in bad.groupBy(kind.alias("kind")).agg(F.count("*").alias("n")).collect()
    }


def _split_counts(checked: DataFrame) -> tuple[int, int]:
    """(accepted, quarantined) in one Spark job."""
    counts = {
        r["bad"]: int(r["n"])
        for r in checked.groupBy((F.size("reasons") > 0).alias("bad")).agg(F.count("*").alias("n")).collect()
    }
    return counts.get(False, 0), counts.get(True, 0)


def _merge_entities(spark: SparkSession, cfg: Settings, df: DataFrame, table: str, key: str) -> int:
    """Upsert entity rows; keep ``updated_ds`` = first day the current content was seen.

    Only rows that are new, changed, or seen earlier than recorded go into the MERGE
    (most days the catalogue is unchanged and no MERGE runs at all). The update
    condition makes replays in any order converge: newer content wins, and the same
    content seen on an earlier day moves ``updated_ds`` back to that day.
    """
    path = cfg.table_path(table)
    if delta.exists(spark, path):
        current = delta.read(spark, path).select(key, "content_hash", F.col("updated_ds").alias("_seen"))
        same = (
            (df[key] == current[key])
            & (df["content_hash"] == current["content_hash"])
            & (current["_seen"] <= df["updated_ds"])
        )
        df = df.join(current, same, "left_anti")
    df = df.cache()
    n = df.count()
    if n:
        changed = (
            "(t.content_hash <> s.content_hash AND s.updated_ds >= t.updated_ds)"
            " OR (t.content_hash = s.content_hash AND s.updated_ds < t.updated_ds)"
        )
        delta.merge_upsert(spark, df, path, keys=(key,), update_condition=changed)
    df.unpersist()
    return n


def _quarantine(spark: SparkSession, cfg: Settings, bad: DataFrame, n_bad: int) -> None:
    if n_bad == 0:
        return
    spec = cfg.table("quarantine")
    delta.merge_upsert(spark, bad, cfg.table_path("quarantine"), keys=spec.keys, insert_only=True)


def _ingest_entities(spark: SparkSession, cfg: Settings, ds: date, raw: DataFrame | None, table: str) -> dict:
    if raw is None:
        return {"raw": 0, "accepted": 0, "quarantined": 0, "merged": 0}
    validate, accept, key = (
        (validate_items, accepted_items, "item_id") if table == "items" else (validate_users, accepted_users, "user_id")
    )
    checked = validate(raw).cache()
    n_good, n_bad = _split_counts(checked)
    merged = _merge_entities(spark, cfg, accept(checked, ds), table, key)
    _quarantine(spark, cfg, quarantined(checked, table), n_bad)
    checked.unpersist()
    return {"raw": n_good + n_bad, "accepted": n_good, "quarantined": n_bad, "merged": merged}


def run(cfg: Settings, ds: date, spark: SparkSession | None = None, end: date | None = None) -> dict:
    """Ingest day ``ds`` (or every day ``ds``..``end`` in one pass); returns the run's accounting.

    A range reads the loader's every event file once (``read_events`` with no day) and keeps the
    rows in the range's scope (``validate_events``); items and users are merged once, as of
    ``ds`` (the first day a day-by-day run would see them). Written as JSON under reports for a
    single day; the bulk backfill reports a range itself.
    """
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    loader = get_loader(cfg.source.format)
    root = cfg.resolve(cfg.source.path)
    span = f"{ds}..{end}" if end and end != ds else f"{ds}"
    log.info("ingest ds=%s format=%s root=%s", span, loader.name, root)

    report: dict = {"ds": ds.isoformat(), "format": loader.name, "source": root}
    if end and end != ds:
        report["end"] = end.isoformat()
    report["items"] = _ingest_entities(spark, cfg, ds, loader.read_items(spark, root), "items")
    report["users"] = _ingest_entities(spark, cfg, ds, loader.read_users(spark, root), "users")

    raw = loader.read_events(spark, root, None if end and end != ds else ds, cfg.source.base_date)
    ing = cfg.ingest
    checked = validate_events(
        raw, ds, ing.rating_min, ing.rating_max, ing.max_play_ratio, ing.min_event_date, ing.max_event_date, end
    )
    if ing.reject_unknown_items:
        checked = mark_unknown_items(checked, delta.read(spark, cfg.table_path("items"), ITEMS))
    checked = checked.cache()
    good, bad = accepted_events(checked), quarantined(checked, "events")
    n_raw = checked.count()
    n_good, n_bad = _split_counts(checked)
    if n_raw != n_good + n_bad:
        raise IngestAccountingError(f"ingest ds={span}: {n_raw} raw rows != {n_good} accepted + {n_bad} quarantined")
    spec = cfg.table("events")
    delta.overwrite_partition(
        good, cfg.table_path("events"), spec.partition_by, delta.date_range("event_date", ds, end or ds)
    )
    _quarantine(spark, cfg, bad, n_bad)
    report["events"] = {"raw": n_raw, "accepted": n_good, "quarantined": n_bad, "by_reason": _reason_counts(bad)}
    checked.unpersist()
    log.info(
        "ingest ds=%s events: %d raw = %d accepted + %d quarantined %s; items %s; users %s",
        span, n_raw, n_good, n_bad, report["events"]["by_reason"], report["items"], report["users"],
    )  # fmt: skip
    if span == f"{ds}":
        _write_report(cfg, ds, report)
    return report


def replay_days(cfg: Settings, spark: SparkSession | None = None) -> list[date]:
    """The days a replay or backfill walks: the loader's event days that ingest accepts as dates.

    A day outside ``ingest.min_event_date`` .. ``max_event_date`` comes only from rows ingest
    quarantines ("implausible timestamp", on whichever day is walked), so it is dropped
    here instead of stopping the replay on a day the DAGs cannot run.
    """
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    loader = get_loader(cfg.source.format)
    days = loader.event_dates(spark, cfg.resolve(cfg.source.path), cfg.source.base_date)
    lo, hi = cfg.ingest.min_event_date, cfg.ingest.max_event_date
    kept = [d for d in days if (lo is None or d >= lo) and (hi is None or d <= hi)]
    if len(kept) < len(days):
        dropped = sorted(set(days) - set(kept))
        log.warning(
            "%d day(s) outside [%s, %s] not replayed (%s..%s): their rows are quarantined as implausible",
            len(dropped), lo, hi, dropped[0], dropped[-1],
        )  # fmt: skip
    return kept


def _write_report(cfg: Settings, ds: date, report: dict) -> None:
    write_stage_json(cfg, ds, "ingest", report, sort_keys=True)


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day to ingest, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = settings_from_args(args)
    print(json.dumps(run(cfg, args.ds), indent=2))


if __name__ == "__main__":
    main()

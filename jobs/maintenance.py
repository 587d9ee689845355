"""Weekly table maintenance: compaction with Z-order, deletion-vector purge, VACUUM.

    python -m jobs.maintenance --ds 2026-10-07 [--tables user_events,user_state]

Daily jobs leave many small files (one replaceWhere per partition and day, MERGE rewrites) and
deletion vectors (MERGE with deletion vectors on marks rows instead of rewriting files). For
each table of ``maintenance.tables`` that exists:

* Tables in ``maintenance.superseded`` (``user_state``: one row per user and active day) first
  lose every row older than its key's latest, in one MERGE; their current content (the latest
  row per key) is unchanged, and they are optimized whole, since the deletes touch every day.
* ``OPTIMIZE`` compacts small files; where ``maintenance.zorder`` names columns (the join key:
  ``user_id`` for the user tables, ``item_id`` for the item ones) it Z-orders by them, so the
  reads that select some users or items (lifelong assembly, the state MERGE, item_stats'
  anti-join) skip the files of the others. Date-partitioned tables are optimized over their
  last ``partition_days`` days only: older partitions no longer change.
* ``REORG TABLE ... APPLY (PURGE)`` rewrites the files that still carry deletion vectors
  (OPTIMIZE leaves large files alone), so readers stop merging them.
* ``VACUUM`` deletes files no version younger than ``vacuum_retention_hours`` needs (default
  168 h: a week of time travel; Delta refuses less unless its check is turned off, which this
  job does only when the config asks for less, and says so in the log). Delta 4 ignores
  ``VACUUM ... RETAIN n HOURS`` for any n but 0 ("set delta.deletedFileRetentionDuration") and
  keeps the table's ``delta.deletedFileRetentionDuration`` (default 7 days) instead, so the job
  first sets that property to the config's retention (only when it differs: no commit on a
  re-run), and ``delta.logRetentionDuration`` to the same when it is longer than Delta's 30-day
  default (time travel needs the log as long as the files).

Figures per table (files and bytes before and after, files added/removed, deleted from storage,
seconds) go to the day's stage JSON ``maintenance.json`` for the run report. Table content never
changes, except the superseded rows (tests/jobs/test_maintenance.py); a re-run finds less to do.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import SparkSession

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import BY_TABLE
from jobs.stage_report import write_stage_json

log = logging.getLogger(__name__)
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
DELTA_DEFAULT_RETENTION_HOURS = 168.0
DELTA_DEFAULT_LOG_RETENTION_HOURS = 720.0  # delta.logRetentionDuration: 30 days
FILE_RETENTION = "delta.deletedFileRetentionDuration"
LOG_RETENTION = "delta.logRetentionDuration"


def detail(spark: SparkSession, path: str) -> dict[str, int]:
    """Files and bytes of the table's current version (DESCRIBE DETAIL: the Delta log, no listing)."""
    row = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").collect()[0]  # one row per table
    return {"files": int(row["numFiles"]), "bytes": int(row["sizeInBytes"])}


def stored_files(path: str) -> int | None:
    """Data files in the table's folder (live or not: what VACUUM may delete); None off local disk."""
    if "://" in path and not path.startswith("file:"):
        return None
    root = Path(path.removeprefix("file:"))
    return sum(1 for p in root.rglob("*.parquet") if "_delta_log" not in p.parts)


def interval(hours: float) -> str:
    """A Delta interval property value for ``hours`` (whole hours, else seconds)."""
    if hours < 0:
        raise ValueError(f"retention must be >= 0 hours, got {hours}")
    if float(hours).is_integer():
        return f"interval {int(hours)} hours"
    return f"interval {round(hours * 3600)} seconds"


def retention_properties(hours: float) -> dict[str, str]:
    """The table properties that make VACUUM keep ``hours`` of history (see the module doc)."""
    props = {FILE_RETENTION: interval(hours)}
    if hours > DELTA_DEFAULT_LOG_RETENTION_HOURS:
        props[LOG_RETENTION] = interval(hours)
    return props


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The table's properties (DESCRIBE DETAIL: the Delta log, one row)."""
    row = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").collect()[0]  # one row per table
    return dict(row["properties"] or {})


def set_retention(spark: SparkSession, path: str, hours: float) -> dict[str, str]:
    """Set the retention properties where they differ (idempotent: no commit when they match);
    returns the properties changed."""
    current = table_properties(spark, path)
    changed = {k: v for k, v in retention_properties(hours).items() if current.get(k) != v}
    if changed:
        pairs = ", ".join(f"'{k}'='{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({pairs})")
    return changed


def _partition_filter(cfg: Settings, name: str, ds: date) -> str | None:
    """``<date partition> >= first day`` for date-partitioned tables, when only recent days are optimized."""
    days = cfg.maintenance.partition_days
    if days is None:
        return None
    types = {f.name: f.dataType.typeName() for f in BY_TABLE[name].fields}
    column = next((c for c in cfg.table(name).partition_by if types.get(c) == "date"), None)
    if column is None:
        return None
    return f"{column} >= {delta.date_literal(ds - timedelta(days=days - 1))}"


def drop_superseded(spark: SparkSession, path: str, key: str, day: str) -> int:
    """Delete every row whose ``day`` is older than the latest of its ``key``; the rows deleted."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    latest = delta.read(spark, path).groupBy(key).agg(F.max(day).alias("_latest"))
    table = DeltaTable.forPath(spark, path)
    on = f"t.`{key}` = s.`{key}` AND t.`{day}` < s._latest"
    table.alias("t").merge(latest.alias("s"), on).whenMatchedDelete().execute()
    metrics = table.history(1).collect()[0]["operationMetrics"] or {}
    return int(metrics.get("numTargetRowsDeleted", 0))


def maintain(spark: SparkSession, cfg: Settings, name: str, ds: date) -> dict:
    """OPTIMIZE (+ Z-order), purge deletion vectors and VACUUM one table; its figures."""
    from delta.tables import DeltaTable

    path, m = cfg.table_path(name), cfg.maintenance
    if not delta.exists(spark, path):
        return {"table": name, "skipped": "does not exist"}
    t0 = time.perf_counter()
    before, on_disk = detail(spark, path), stored_files(path)
    table = DeltaTable.forPath(spark, path)
    superseded = m.superseded.get(name)
    dropped = drop_superseded(spark, path, *superseded) if superseded else 0
    where = None if superseded else _partition_filter(cfg, name, ds)
    builder = table.optimize().where(where) if where else table.optimize()
    zorder = tuple(m.zorder.get(name, ()))
    result = builder.executeZOrderBy(*zorder) if zorder else builder.executeCompaction()
    metrics = result.collect()[0]["metrics"]  # OPTIMIZE answers one summary row
    purged = 0
    if m.purge_deletion_vectors:
        reorg = f"REORG TABLE delta.`{path}`" + (f" WHERE {where}" if where else "") + " APPLY (PURGE)"
        rows = spark.sql(reorg).collect()  # one summary row, like OPTIMIZE
        purged = int(rows[0]["metrics"]["numFilesRemoved"]) if rows and "metrics" in rows[0].__fields__ else 0
    retention_set = set_retention(spark, path, m.vacuum_retention_hours)
    _vacuum(spark, table, m.vacuum_retention_hours)
    after = detail(spark, path)
    return {
        "table": name,
        "zorder_by": list(zorder),
        "partitions": where or "all",
        "files_before": before["files"],
        "files_after": after["files"],
        "bytes_before": before["bytes"],
        "bytes_after": after["bytes"],
        "optimize_files_removed": int(metrics["numFilesRemoved"]),
        "optimize_files_added": int(metrics["numFilesAdded"]),
        "dv_files_purged": purged,
        "superseded_rows_deleted": dropped,
        "retention_set": retention_set,
        "stored_files_before": on_disk,
        "stored_files_after": stored_files(path),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _vacuum(spark: SparkSession, table, hours: float) -> None:
    """VACUUM with ``hours`` of retention (Delta's safety check lifted only for less than its default).

    The table's ``delta.deletedFileRetentionDuration`` already says ``hours`` (:func:`set_retention`):
    VACUUM without a retention uses it (Delta 4 ignores a RETAIN other than 0, with a warning).
    """
    # Below Delta's default the caller (run) has lifted the safety check for the whole run: a
    # per-table toggle of the session setting would race between the tables maintained at once.
    if hours == 0:
        table.vacuum(0.0)  # the one RETAIN Delta 4 honours
    else:
        table.vacuum()


@contextmanager
def _retention_check(spark: SparkSession, hours: float) -> Iterator[None]:
    """Lift Delta's VACUUM safety check for the block when ``hours`` is below its default (logged)."""
    if hours >= DELTA_DEFAULT_RETENTION_HOURS:
        yield
        return
    log.warning("VACUUM with %.1f h retention (< %.0f h): readers of older versions may fail", hours,
                DELTA_DEFAULT_RETENTION_HOURS)  # fmt: skip
    previous = spark.conf.get(RETENTION_CHECK, "true")
    spark.conf.set(RETENTION_CHECK, "false")
    try:
        yield
    finally:
        spark.conf.set(RETENTION_CHECK, previous)


def run(cfg: Settings, ds: date, spark: SparkSession | None = None, tables: list[str] | None = None) -> dict:
    """Maintain every configured table (or ``tables``); write and return the figures."""
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    names = tables or list(cfg.maintenance.tables)

    def one(name: str) -> dict:
        fig = maintain(spark, cfg, name, ds)
        log.info("maintenance ds=%s %s: %s", ds, name, fig)
        return fig

    # Tables are independent, and each one's OPTIMIZE/REORG/VACUUM is a chain of small Spark jobs:
    # several tables at once fill the executors that one table's small jobs leave idle.
    t0 = time.perf_counter()
    with _retention_check(spark, cfg.maintenance.vacuum_retention_hours):
        with ThreadPoolExecutor(max_workers=max(1, cfg.maintenance.parallel_tables)) as pool:
            figures = list(pool.map(one, names))  # in the configured order
    done = [f for f in figures if "skipped" not in f]
    report = {
        "ds": ds.isoformat(),
        "vacuum_retention_hours": cfg.maintenance.vacuum_retention_hours,
        "tables": figures,
        "files_before": sum(f["files_before"] for f in done),
        "files_after": sum(f["files_after"] for f in done),
        "seconds": round(sum(f["seconds"] for f in done), 2),  # table by table, as if run one at a time
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "parallel_tables": cfg.maintenance.parallel_tables,
    }
    write_stage_json(cfg, ds, "maintenance", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day of the run, YYYY-MM-DD")
    parser.add_argument("--tables", default=None, help="comma-separated table names (default: the config's)")
    args = parser.parse_args(argv)
    setup_logging()
    tables = args.tables.split(",") if args.tables else None
    print(json.dumps(run(settings_from_args(args), args.ds, tables=tables), indent=2))


if __name__ == "__main__":
    main()

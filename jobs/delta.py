"""All Delta table I/O goes through here; reads always honour the Delta log.

Reading a Delta folder's parquet files directly returns rows that an overwrite
deleted, so nothing else in the project opens table folders.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import date

from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


# Test hook for the kill-mid-write fault test (tests/ops/test_faults.py). With
# ONEREC_FAULT_STALL_WRITE=<table folder name>, a write to that table stalls in its
# second task, after the first task has written its files and before Delta commits;
# it touches ONEREC_FAULT_MARKER so the test knows when to kill the process. Unset
# (always, outside that test) it does nothing.
FAULT_STALL = "ONEREC_FAULT_STALL_WRITE"
FAULT_MARKER = "ONEREC_FAULT_MARKER"


def _fault_hook(df: DataFrame, path: str) -> DataFrame:
    table = os.environ.get(FAULT_STALL)
    if not table or os.path.basename(path.rstrip("/")) != table:
        return df
    marker = os.environ.get(FAULT_MARKER, "")

    def stall_after_first_task(batches):
        from pyspark import TaskContext

        if TaskContext.get().partitionId() > 0:
            if marker:
                open(marker, "w").close()
            time.sleep(3600)
        yield from batches

    log.warning("%s set: the write to %s will stall before its commit", FAULT_STALL, path)
    return df.repartition(2).mapInArrow(stall_after_first_task, df.schema)


def exists(spark: SparkSession, path: str) -> bool:
    """True when ``path`` holds a Delta table."""
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def read(spark: SparkSession, path: str, schema=None) -> DataFrame:
    """Read the current version of a Delta table (an empty frame if absent and schema given)."""
    if not exists(spark, path):
        if schema is None:
            raise FileNotFoundError(f"Delta table {path} does not exist yet")
        return spark.createDataFrame([], schema)
    return spark.read.format("delta").load(path)


def overwrite_partition(df: DataFrame, path: str, partition_by: Sequence[str], where: str) -> None:
    """Replace exactly the rows matching ``where`` (idempotent per partition)."""
    df = _fault_hook(df, path)
    (df.write.format("delta").mode("overwrite").partitionBy(*partition_by).option("replaceWhere", where).save(path))
    log.info("wrote %s where %s", path, where)


def overwrite(df: DataFrame, path: str, partition_by: Sequence[str] = ()) -> None:
    """Replace the whole table (used by full rebuilds)."""
    df = _fault_hook(df, path)
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)
    log.info("overwrote %s", path)


def merge_upsert(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    keys: Sequence[str],
    update_condition: str | None = None,
    insert_only: bool = False,
    partition_by: Sequence[str] = (),
) -> None:
    """MERGE ``df`` into the table on ``keys``; create the table on first write.

    ``update_condition`` (SQL over ``t.`` target and ``s.`` source) limits updates to
    rows that really changed, so a re-run leaves every row as it was.
    ``insert_only`` never touches existing rows (append-once semantics, e.g. quarantine).
    """
    from delta.tables import DeltaTable

    df = _fault_hook(df, path)
    if not exists(spark, path):
        writer = df.write.format("delta").mode("overwrite")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(path)
        log.info("created %s", path)
        return
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    merge = DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), on)
    if not insert_only:
        merge = merge.whenMatchedUpdateAll(condition=update_condition)
    merge.whenNotMatchedInsertAll().execute()
    log.info("merged into %s on %s", path, ",".join(keys))


def version(spark: SparkSession, path: str) -> int:
    """Current Delta version of a table (-1 when it does not exist)."""
    from delta.tables import DeltaTable

    if not exists(spark, path):
        return -1
    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


def date_literal(ds: date) -> str:
    """SQL literal for a date, used in replaceWhere predicates."""
    return f"DATE'{ds.isoformat()}'"


def date_range(column: str, start: date, end: date) -> str:
    """replaceWhere predicate for the days ``start``..``end`` of ``column`` (``column = day`` for one day)."""
    if start == end:
        return f"{column} = {date_literal(start)}"
    return f"{column} >= {date_literal(start)} AND {column} <= {date_literal(end)}"

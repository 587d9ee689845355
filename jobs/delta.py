"""All Delta table I/O goes through here; reads always honour the Delta log.

Reading a Delta folder's parquet files directly returns rows that an overwrite
deleted, so nothing else in the project opens table folders.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


# Every commit a daily stage makes carries ``onerec ds=<day>`` as its Delta userMetadata
# (jobs/stages.py), so a reader can find what the run of one day wrote without a column for it.
COMMIT_TAG_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def day_tag(ds: date) -> str:
    """The userMetadata of the commits made for day ``ds``."""
    return f"onerec ds={ds.isoformat()}"


@contextmanager
def commit_tag(spark: SparkSession, tag: str) -> Iterator[None]:
    """Tag every Delta commit of this session with ``tag`` for the duration of the block."""
    previous = spark.conf.get(COMMIT_TAG_CONF, None)
    spark.conf.set(COMMIT_TAG_CONF, tag)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(COMMIT_TAG_CONF)
        else:
            spark.conf.set(COMMIT_TAG_CONF, previous)


def rows_written(spark: SparkSession, path: str, tag: str, keys: Sequence[str]) -> DataFrame | None:
    """The rows the commits tagged ``tag`` inserted or updated, from the change data feed.

    Each key's newest post-image among those commits (rows of one commit that share a key are
    all kept, so a duplicate written by one MERGE still shows). Cost: the tagged commits'
    change files and added files, not the table. ``None`` when the answer cannot come from the
    log: no commit of the table carries an onerec tag (written before tagging, or by hand), or
    the change data feed is off for it (tables created before it was enabled). An empty frame
    when tags exist but none is ``tag``: that day wrote nothing here.
    """
    from delta.tables import DeltaTable
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    table = DeltaTable.forPath(spark, path)
    props = table.detail().select("properties").first()["properties"] or {}
    if props.get("delta.enableChangeDataFeed", "false").lower() != "true":
        return None
    history = table.history().select("version", "userMetadata").where(F.col("userMetadata").startswith("onerec ds="))
    # One row per commit of this day (a few per stage), read from the log the retention keeps.
    versions = sorted(int(r["version"]) for r in history.where(F.col("userMetadata") == tag).collect())
    if not versions and history.limit(1).count() == 0:
        return None
    current = spark.read.format("delta").load(path)
    if not versions:
        return current.limit(0)
    changes = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", versions[0])
        .option("endingVersion", versions[-1])
        .load(path)
        .where(F.col("_commit_version").isin(versions) & F.col("_change_type").isin("insert", "update_postimage"))
    )
    newest = F.max("_commit_version").over(Window.partitionBy(*keys))
    latest = changes.withColumn("_newest", newest).where(F.col("_commit_version") == F.col("_newest"))
    return latest.select(*current.columns)


def date_range(column: str, start: date, end: date) -> str:
    """replaceWhere predicate for the days ``start``..``end`` of ``column`` (``column = day`` for one day)."""
    if start == end:
        return f"{column} = {date_literal(start)}"
    return f"{column} >= {date_literal(start)} AND {column} <= {date_literal(end)}"

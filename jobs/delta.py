"""All Delta table I/O goes through here; reads always honour the Delta log.

Reading a Delta folder's parquet files directly returns rows that an overwrite
deleted, so nothing else in the project opens table folders.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


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
    (df.write.format("delta").mode("overwrite").partitionBy(*partition_by).option("replaceWhere", where).save(path))
    log.info("wrote %s where %s", path, where)


def overwrite(df: DataFrame, path: str, partition_by: Sequence[str] = ()) -> None:
    """Replace the whole table (used by full rebuilds)."""
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

"""Text lines with exact line numbers, read by Spark (no driver-side reading of data).

``spark.read.text`` splits a file into byte blocks, one task each, and forgets line
numbers. We recover them without a shuffle: ``monotonically_increasing_id`` counts
rows inside each task in scan order, one small aggregate job gives each block's
first id and row count, and the number of a row is then

    rows in the file's earlier blocks + (its id - first id of its block) + 1.

That is exact because each block's rows are contiguous and in file order within
its task, and every step between the scan and the numbering is a narrow,
order-preserving projection/filter/explode (``rdd.zipWithIndex`` relies on the same
property, but would push every line through Python).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from urllib.parse import unquote, urlparse

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

# Internal columns carried from the scan to the numbering; callers drop them with ``drop_internal``.
FILE_URI = "_lf_uri"
BLOCK = "_lf_block"
_ROW_ID = "_lf_id"
INTERNAL = (FILE_URI, BLOCK)


def scan_text(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """One row per line of ``paths`` (UTF-8): ``raw`` plus the scan's file URI and block start."""
    return spark.read.text([str(p) for p in paths]).select(
        F.col("value").alias("raw"),
        F.col("_metadata.file_path").alias(FILE_URI),
        F.col("_metadata.file_block_start").alias(BLOCK),
    )


def number_rows(df: DataFrame, column: str) -> tuple[DataFrame, list[str]]:
    """Add ``column``: the 1-based position of each row within its file, in scan order.

    ``df`` must come from :func:`scan_text` through narrow, order-preserving steps only
    (select, filter, explode). Returns the frame and the file URIs that had rows.
    Runs one small aggregate job (one row per file block).
    """
    with_id = df.withColumn(_ROW_ID, F.monotonically_increasing_id())
    blocks = with_id.groupBy(FILE_URI, BLOCK).agg(F.min(_ROW_ID).alias("first"), F.count(F.lit(1)).alias("n")).collect()
    by_file: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for row in blocks:
        by_file[row[FILE_URI]].append((row[BLOCK], row["first"], row["n"]))
    shift: dict[str, int] = {}
    for uri, parts in by_file.items():
        before = 0
        for block, first, n in sorted(parts):
            shift[_block_key(uri, block)] = before - first + 1
            before += n
    if not shift:
        return with_id.withColumn(column, F.lit(None).cast("long")).drop(_ROW_ID), []
    lookup = F.create_map(*[F.lit(x) for kv in shift.items() for x in kv])
    key = F.concat_ws("#", F.col(FILE_URI), F.col(BLOCK).cast("string"))
    numbered = with_id.withColumn(column, F.col(_ROW_ID) + F.try_element_at(lookup, key)).drop(_ROW_ID)
    return numbered, sorted(by_file)


def given_path_column(uris: Sequence[str], paths: Sequence[str]) -> Column:
    """``source_file`` as the caller named the file, mapped from the scan's URI."""
    wanted = {os.path.abspath(str(p)): str(p) for p in paths}
    pairs: list[Column] = []
    for uri in uris:
        local = unquote(urlparse(uri).path)
        pairs += [F.lit(uri), F.lit(wanted.get(os.path.abspath(local), local))]
    if not pairs:
        return F.col(FILE_URI)
    return F.coalesce(F.try_element_at(F.create_map(*pairs), F.col(FILE_URI)), F.col(FILE_URI))


def numbered_lines(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """Every line of ``paths`` as ``raw``, ``source_file``, ``source_line`` (1-based, blank lines counted).

    Blank lines are kept here (callers drop them: they are not records) so numbering
    stays exact; the internal scan columns stay on the frame for a second numbering.
    """
    numbered, uris = number_rows(scan_text(spark, paths), "source_line")
    return numbered.withColumn("source_file", given_path_column(uris, paths))


def decoded_lines(spark: SparkSession, path: str, encoding: str) -> DataFrame:
    """Lines of one small file in any Java charset (e.g. ``ISO-8859-1``), numbered from 1.

    The text source only reads UTF-8, so the whole file is read as one binary value,
    decoded and split: fine for catalogue-sized files, not for event logs.
    """
    content = spark.read.format("binaryFile").load(str(path)).select("content")
    lines = content.select(F.posexplode(F.split(F.decode("content", encoding), "\r?\n", -1)).alias("pos", "raw"))
    return lines.select(
        "raw",
        F.lit(str(path)).alias("source_file"),
        (F.col("pos") + 1).cast("long").alias("source_line"),
    )


def not_blank() -> Column:
    """True for lines that hold a record (whitespace-only lines are layout, not rows)."""
    return ~F.col("raw").rlike(r"^\s*$")


def drop_internal(df: DataFrame) -> DataFrame:
    """Drop the scan bookkeeping columns."""
    return df.drop(*INTERNAL)


def _block_key(uri: str, block: int) -> str:
    return f"{uri}#{block}"

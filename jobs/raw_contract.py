"""The raw input contract every loader produces.

A loader turns a dataset's own files into Spark DataFrames whose columns are the
canonical fields below, *all as strings* (parsing and validation happen once, in
``jobs.ingest``), plus lineage columns so every raw row can be accounted for:

* ``source_file``  -- path of the file the row came from (as the loader saw it)
* ``source_line``  -- 1-based line (or row) number in that file; with ``source_file`` it is the row's identity
* ``raw``          -- the row as it was read (the text line, or JSON of a parquet row)
* ``schema_error`` -- null, or why the file's layout breaks the contract (missing column, unparseable line)

Loaders never drop a row: a line that cannot be split still becomes a row with
``schema_error`` set, so ``raw rows = accepted + quarantined`` holds downstream.
"""

from __future__ import annotations

LINEAGE_COLUMNS: tuple[str, ...] = ("source_file", "source_line", "raw", "schema_error")

INTERACTION_REQUIRED: tuple[str, ...] = ("user_id", "item_id", "timestamp")
INTERACTION_OPTIONAL: tuple[str, ...] = (
    "rating",
    "play_seconds",
    "item_duration_seconds",
    "like",
    "follow",
    "comment",
    "share",
    "dislike",
)
INTERACTION_FIELDS: tuple[str, ...] = INTERACTION_REQUIRED + INTERACTION_OPTIONAL
# Engagement flags: 0/1 (also true/false, yes/no) in the raw files.
FLAG_FIELDS: tuple[str, ...] = ("like", "follow", "comment", "share", "dislike")
NUMERIC_FIELDS: tuple[str, ...] = ("rating", "play_seconds", "item_duration_seconds")

ITEM_REQUIRED: tuple[str, ...] = ("item_id",)
# categories: '|' or ',' separated path, or a JSON array; attributes: JSON object of strings;
# image_vector: JSON array of floats. All strings in the raw contract.
ITEM_OPTIONAL: tuple[str, ...] = ("title", "description", "categories", "attributes", "image_path", "image_vector")
ITEM_FIELDS: tuple[str, ...] = ITEM_REQUIRED + ITEM_OPTIONAL

USER_REQUIRED: tuple[str, ...] = ("user_id",)
# Every other column of a users file is a static attribute (age, gender, ...), kept
# as a JSON object of strings in ``attributes``.
USER_FIELDS: tuple[str, ...] = ("user_id", "attributes")


def raw_schema(fields: tuple[str, ...]):
    """All-string Spark schema of ``fields`` + lineage columns (source_line is long)."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    cols = [StructField(f, StringType(), True) for f in fields]
    cols += [
        StructField("source_file", StringType(), False),
        StructField("source_line", LongType(), False),
        StructField("raw", StringType(), True),
        StructField("schema_error", StringType(), True),
    ]
    return StructType(cols)

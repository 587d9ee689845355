"""Building frames in the raw contract (jobs/raw_contract.py) and reading dates back out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, DateType, MapType, StructType, TimestampNTZType, TimestampType

from jobs.ingest_rules import parse_timestamp
from jobs.raw_contract import raw_schema


def _nullable(col: Column) -> Column:
    # nullif(x, NULL) is x, but analysed as If(x = NULL, NULL, x): nullable even for a
    # literal or a non-null input, so frames equal raw_schema(...) nullability included.
    return F.nullif(col, F.lit(None))


def contract(df: DataFrame, fields: tuple[str, ...], values: Mapping[str, Column], error: Column | None) -> DataFrame:
    """Select ``df`` into ``raw_schema(fields)``.

    ``values`` gives the column for each canonical field (absent: null); ``df`` must
    hold ``source_file``, ``source_line`` and ``raw``; ``error`` is the schema_error.
    """
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"not contract fields: {sorted(unknown)}")
    cols = [_nullable(values.get(f, F.lit(None)).cast("string")).alias(f) for f in fields]
    cols += [
        F.coalesce(F.col("source_file").cast("string"), F.lit("")).alias("source_file"),
        F.coalesce(F.col("source_line").cast("long"), F.lit(0)).alias("source_line"),
        _nullable(F.col("raw").cast("string")).alias("raw"),
        _nullable(error if error is not None else F.lit(None)).cast("string").alias("schema_error"),
    ]
    return df.select(*cols)


def empty(spark: SparkSession, fields: tuple[str, ...]) -> DataFrame:
    """A frame with no rows in ``raw_schema(fields)``."""
    return spark.createDataFrame([], raw_schema(fields))


def union(spark: SparkSession, frames: Iterable[DataFrame], fields: tuple[str, ...]) -> DataFrame:
    """Union of contract frames (same columns), or an empty one."""
    frames = list(frames)
    if not frames:
        return empty(spark, fields)
    return reduce(DataFrame.unionByName, frames)


def attributes_json(columns: Mapping[str, Column]) -> Column:
    """A JSON object of strings from named columns (null values omitted); null if no columns."""
    if not columns:
        return F.lit(None).cast("string")
    return F.to_json(F.struct(*[c.cast("string").alias(name) for name, c in columns.items()]))


def as_text(df: DataFrame, name: str) -> Column:
    """A typed column (e.g. from parquet) as the string the raw contract wants.

    Timestamps become ISO-8601 with offset, nested values JSON, the rest a plain cast.
    """
    dtype = df.schema[name].dataType
    col = F.col(f"`{name}`")
    if isinstance(dtype, TimestampType | TimestampNTZType):
        return F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
    if isinstance(dtype, DateType):
        return F.date_format(col, "yyyy-MM-dd")
    if isinstance(dtype, ArrayType | MapType | StructType):
        return F.to_json(col)
    if isinstance(dtype, BinaryType):
        return F.base64(col)
    return col.cast("string")


def day_timestamp(base: date, offset: Column) -> Column:
    """ISO-8601 midnight UTC of ``base + offset`` days ('YYYY-MM-DDT00:00:00Z')."""
    day = F.date_add(F.lit(base), offset.cast("int"))
    return F.concat(F.date_format(day, "yyyy-MM-dd"), F.lit("T00:00:00Z"))


def iso_day(day: date) -> str:
    """Python twin of :func:`day_timestamp` for driver-built rows."""
    return f"{day.isoformat()}T00:00:00Z"


def seconds_from_ms(col: Column) -> Column:
    """Milliseconds as a seconds string ('1500' -> '1.5'); non-numeric text passes through unchanged."""
    ms = col.try_cast("double")
    return F.when(ms.isNull(), col).otherwise((ms / 1000).cast("string"))


def utc_days(events: DataFrame) -> list[date]:
    """Sorted distinct UTC days of ``events.timestamp``; unparseable timestamps are skipped.

    Parsed exactly as ingest parses them (``jobs.ingest_rules.parse_timestamp``: unix
    seconds, milliseconds from 1e11, ISO-8601), so a replay walks no day ingest would not
    date a row on.
    """
    day = F.to_date(parse_timestamp(F.col("timestamp")))
    # Python dates hold years 1..9999; anything beyond is no day to replay (ingest quarantines it).
    # One row per distinct day: bounded by the dataset's span in days, never by users or items.
    days = events.select(day.alias("d")).where("d BETWEEN DATE'0001-01-01' AND DATE'9999-12-31'").distinct().collect()
    return sorted(r["d"] for r in days)

"""Pure transforms of ingest: raw-contract rows in, typed rows + quarantined rows out.

Every check appends a human-readable reason; a row with no reason is accepted.
Nothing here touches storage, so tests feed tiny DataFrames straight in.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, MapType, StringType

from jobs.raw_contract import FLAG_FIELDS, NUMERIC_FIELDS
from jobs.schemas import EVENTS, ITEMS, QUARANTINE, USERS

_TRUE = ("1", "true", "yes", "y", "t")
_FALSE = ("0", "false", "no", "n", "f")


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


# Unix seconds beyond this (the year ~33658) are not a clock: read as unreadable, never cast
# (under ANSI SQL an overflowing cast fails the whole day's job instead of one row).
_MAX_ABS_SECONDS = 1e12


def parse_timestamp(raw: Column) -> Column:
    """Unix seconds, unix milliseconds (>= 1e11) or ISO-8601 text -> timestamp (null if unreadable)."""
    text = F.trim(raw)
    number = text.try_cast("double")
    from_number = F.when(number >= 1e11, number / 1000.0).otherwise(number)
    # NaN and +-Infinity fail the bound too (NaN sorts above every number in Spark).
    from_number = F.when(F.abs(from_number) < _MAX_ABS_SECONDS, from_number)
    iso = F.coalesce(
        F.try_to_timestamp(text),
        F.try_to_timestamp(text, F.lit("yyyy-MM-dd'T'HH:mm:ssX")),
        F.try_to_timestamp(text, F.lit("yyyy-MM-dd HH:mm:ss")),
    )
    return F.when(number.isNotNull(), F.timestamp_micros((from_number * 1_000_000).try_cast("long"))).otherwise(iso)


def implausible(event_date: Column, min_date: date | None, max_date: date | None) -> Column:
    """True where a readable date lies outside ``[min_date, max_date]`` (a bound of None: open)."""
    out = F.lit(False)
    if min_date is not None:
        out = out | (event_date < F.lit(min_date).cast("date"))
    if max_date is not None:
        out = out | (event_date > F.lit(max_date).cast("date"))
    return event_date.isNotNull() & out


def parse_flag(raw: Column) -> Column:
    """0/1, true/false, yes/no -> int; blank -> null; anything else -> -1 (flagged as bad)."""
    text = F.lower(F.trim(raw))
    return (
        F.when(_blank(raw), F.lit(None).cast("int"))
        .when(text.isin(*_TRUE), F.lit(1))
        .when(text.isin(*_FALSE), F.lit(0))
        .when(text.try_cast("double") == 1.0, F.lit(1))
        .when(text.try_cast("double") == 0.0, F.lit(0))
        .otherwise(F.lit(-1))
    )


def _reason_list(df: DataFrame, checks: list[tuple[Column, Column]]) -> Column:
    """array of reasons for the checks that fire (condition, message)."""
    return F.array_compact(F.array(*[F.when(cond, msg) for cond, msg in checks]))


def validate_events(
    raw: DataFrame,
    ds: date,
    rating_min: float,
    rating_max: float,
    max_play_ratio: float,
    min_date: date | None = None,
    max_date: date | None = None,
    end: date | None = None,
) -> DataFrame:
    """Type the raw rows in scope for ``ds`` (every day ``ds``..``end``) and attach ``reasons`` (empty = accepted).

    In scope: rows dated ``ds``, rows whose date cannot be read, and every row of a
    ``ds=<ds>`` landing folder (a row there dated another day is a mismatch, not lost;
    a row of another day's folder is that day's). A range is the union of its days'
    scopes, each row checked against its own day, so one pass over a range (the bulk
    backfill) accepts and quarantines what the days would one by one.
    A date outside ``[min_date, max_date]`` (e.g. 1900 or 2200: a logging bug, not a day
    to replay) counts as unreadable: in scope every day, quarantined once (the quarantine
    MERGE is keyed on file and line), and never a day of its own.
    Duplicates of an accepted (user, item, ts) are rejected, keeping the first by file/line.
    """
    lo, hi = F.lit(ds).cast("date"), F.lit(end or ds).cast("date")
    df = raw.withColumn("ts", parse_timestamp(F.col("timestamp")))
    df = df.withColumn("_date", F.to_date("ts"))
    df = df.withColumn("_implausible", implausible(F.col("_date"), min_date, max_date))
    df = df.withColumn("event_date", F.when(~F.col("_implausible"), F.col("_date")))
    folder = F.regexp_extract("source_file", r"/ds=(\d{4}-\d{2}-\d{2})/", 1)
    df = df.withColumn("_landing", F.to_date(F.try_to_timestamp(folder, F.lit("yyyy-MM-dd"))))
    in_range = F.col("_landing").between(lo, hi) | (
        F.col("_landing").isNull() & (F.col("event_date").between(lo, hi) | F.col("event_date").isNull())
    )
    df = df.where(in_range)
    for name in NUMERIC_FIELDS:
        df = df.withColumn(f"_{name}", F.trim(F.col(name)).try_cast("double"))
    for name in FLAG_FIELDS:
        df = df.withColumn(f"_{name}", parse_flag(F.col(name)))

    def shown(name: str) -> Column:
        return F.concat(F.lit(f"{name}='"), F.coalesce(F.col(name), F.lit("")), F.lit("'"))

    checks: list[tuple[Column, Column]] = [
        (F.col("schema_error").isNotNull(), F.concat(F.lit("schema: "), F.col("schema_error"))),
        (_blank(F.col("user_id")), F.lit("missing user_id")),
        (_blank(F.col("item_id")), F.lit("missing item_id")),
        (_blank(F.col("timestamp")), F.lit("missing timestamp")),
        (~_blank(F.col("timestamp")) & F.col("ts").isNull(), F.concat(F.lit("bad timestamp: "), shown("timestamp"))),
        (
            F.col("_implausible"),
            F.concat(
                F.lit("implausible timestamp: "),
                shown("timestamp"),
                F.lit(" is "),
                F.col("_date").cast("string"),
                F.lit(f", outside [{min_date or '-'}, {max_date or '-'}] (ingest.min/max_event_date)"),
            ),
        ),
        (
            F.col("event_date").isNotNull()
            & F.col("_landing").isNotNull()
            & (F.col("event_date") != F.col("_landing")),
            F.concat(
                F.lit("outside landing day: event date "),
                F.col("event_date").cast("string"),
                F.lit(" in folder ds="),
                F.col("_landing").cast("string"),
            ),
        ),
    ]
    for name in NUMERIC_FIELDS:
        checks.append((~_blank(F.col(name)) & F.col(f"_{name}").isNull(), F.concat(F.lit("bad number: "), shown(name))))
        checks.append((F.col(f"_{name}") < 0, F.concat(F.lit("negative value: "), shown(name))))
    checks.append(
        (
            (F.col("_rating") < rating_min) | (F.col("_rating") > rating_max),
            F.concat(F.lit(f"rating outside [{rating_min:g}, {rating_max:g}]: "), shown("rating")),
        )
    )
    checks.append(
        (
            F.col("_play_seconds") > F.lit(max_play_ratio) * F.col("_item_duration_seconds"),
            F.concat(F.lit(f"play_seconds above {max_play_ratio:g}x item_duration_seconds: "), shown("play_seconds")),
        )
    )
    for name in FLAG_FIELDS:
        checks.append((F.col(f"_{name}") == -1, F.concat(F.lit("bad flag: "), shown(name))))
    df = df.withColumn("reasons", _reason_list(df, checks))

    # Duplicates: only among otherwise-valid rows, so a broken row never hides a good one.
    clean = F.size("reasons") == 0
    key = [F.trim("user_id"), F.trim("item_id"), F.col("ts")]
    first = Window.partitionBy(clean, *key).orderBy("source_file", "source_line")
    df = (
        df.withColumn("_rank", F.row_number().over(first))
        .withColumn("_first_file", F.first("source_file").over(first))
        .withColumn("_first_line", F.first("source_line").over(first))
    )
    duplicate = F.concat(
        F.lit("duplicate event: first seen at "), F.col("_first_file"), F.lit(":"), F.col("_first_line").cast("string")
    )
    return df.withColumn(
        "reasons", F.when(clean & (F.col("_rank") > 1), F.array(duplicate)).otherwise(F.col("reasons"))
    )


def accepted_events(validated: DataFrame) -> DataFrame:
    """Rows with no reason, in the bronze.events schema."""
    ok = validated.where(F.size("reasons") == 0)
    user, item = F.trim("user_id"), F.trim("item_id")
    event_id = F.substring(F.sha2(F.concat_ws("\u001f", user, item, F.col("ts").cast("string")), 256), 1, 32)
    cols = {
        "event_id": event_id,
        "user_id": user,
        "item_id": item,
        "ts": F.col("ts"),
        **{name: F.col(f"_{name}") for name in NUMERIC_FIELDS},
        **{name: F.col(f"_{name}") for name in FLAG_FIELDS},
        "source_file": F.col("source_file"),
        "source_line": F.col("source_line"),
        "event_date": F.col("event_date"),
    }
    return ok.select(*[cols[f.name].cast(f.dataType).alias(f.name) for f in EVENTS.fields])


def quarantined(validated: DataFrame, source_table: str) -> DataFrame:
    """Rows with at least one reason, in the quarantine schema."""
    bad = validated.where(F.size("reasons") > 0)
    date_col = F.col("event_date") if "event_date" in validated.columns else F.lit(None)
    return bad.select(
        F.lit(source_table).alias("source_table"),
        F.col("source_file"),
        F.col("source_line").cast("long"),
        F.col("raw"),
        F.concat_ws("; ", "reasons").alias("reason"),
        date_col.cast("date").alias("event_date"),
    ).select(*[F.col(f.name) for f in QUARANTINE.fields])


def _split_categories(raw: Column) -> Column:
    """JSON array, or a '|'-separated list, or a ','-separated path."""
    text = F.trim(raw)
    as_json = F.from_json(text, ArrayType(StringType()))
    by_pipe = F.split(text, r"\s*\|\s*")
    by_comma = F.split(text, r"\s*,\s*")
    parsed = (
        F.when(_blank(raw), F.lit(None))
        .when(text.startswith("["), as_json)
        .when(text.contains("|"), by_pipe)
        .otherwise(by_comma)
    )
    return F.filter(parsed, lambda x: x != "")


def _latest_per_key(df: DataFrame, key: str) -> DataFrame:
    """Keep the last line per key among valid rows; earlier ones are superseded (quarantined)."""
    clean = F.size("reasons") == 0
    last = Window.partitionBy(clean, F.col(key)).orderBy(F.col("source_file").desc(), F.col("source_line").desc())
    df = df.withColumn("_rank", F.row_number().over(last)).withColumn("_kept", F.first("source_line").over(last))
    superseded = F.concat(F.lit(f"duplicate {key}: superseded by line "), F.col("_kept").cast("string"))
    return df.withColumn(
        "reasons", F.when(clean & (F.col("_rank") > 1), F.array(superseded)).otherwise(F.col("reasons"))
    )


def validate_items(raw: DataFrame) -> DataFrame:
    """Parse item rows (categories, attributes, image vector) and attach ``reasons``."""
    df = (
        raw.withColumn("item_id", F.trim("item_id"))
        .withColumn("_categories", _split_categories(F.col("categories")))
        .withColumn("_attributes", F.from_json(F.trim("attributes"), MapType(StringType(), StringType())))
        .withColumn("_image_vector", F.from_json(F.trim("image_vector"), ArrayType(FloatType())))
    )
    checks = [
        (F.col("schema_error").isNotNull(), F.concat(F.lit("schema: "), F.col("schema_error"))),
        (_blank(F.col("item_id")), F.lit("missing item_id")),
        (~_blank(F.col("attributes")) & F.col("_attributes").isNull(), F.lit("attributes is not a JSON object")),
        (
            ~_blank(F.col("image_vector")) & F.col("_image_vector").isNull(),
            F.lit("image_vector is not a JSON array of numbers"),
        ),
    ]
    return _latest_per_key(df.withColumn("reasons", _reason_list(df, checks)), "item_id")


def accepted_items(validated: DataFrame, ds: date) -> DataFrame:
    """Valid item rows in the bronze.items schema, with a content hash for change detection."""
    ok = validated.where(F.size("reasons") == 0)
    content = F.to_json(
        F.struct(
            F.col("title"),
            F.col("description"),
            F.col("_categories").alias("categories"),
            F.map_entries(F.col("_attributes")).alias("attributes"),
            F.col("image_path"),
            F.col("_image_vector").alias("image_vector"),
        )
    )
    cols = {
        "item_id": F.col("item_id"),
        "title": F.col("title"),
        "description": F.col("description"),
        "categories": F.col("_categories"),
        "attributes": F.col("_attributes"),
        "image_path": F.col("image_path"),
        "image_vector": F.col("_image_vector"),
        "content_hash": F.sha2(content, 256),
        "source_file": F.col("source_file"),
        "updated_ds": F.lit(ds).cast("date"),
    }
    return ok.select(*[cols[f.name].cast(f.dataType).alias(f.name) for f in ITEMS.fields])


def validate_users(raw: DataFrame) -> DataFrame:
    """Parse user rows (static attributes as a string map) and attach ``reasons``."""
    df = raw.withColumn("user_id", F.trim("user_id")).withColumn(
        "_attributes", F.from_json(F.trim("attributes"), MapType(StringType(), StringType()))
    )
    checks = [
        (F.col("schema_error").isNotNull(), F.concat(F.lit("schema: "), F.col("schema_error"))),
        (_blank(F.col("user_id")), F.lit("missing user_id")),
        (~_blank(F.col("attributes")) & F.col("_attributes").isNull(), F.lit("attributes is not a JSON object")),
    ]
    return _latest_per_key(df.withColumn("reasons", _reason_list(df, checks)), "user_id")


def accepted_users(validated: DataFrame, ds: date) -> DataFrame:
    """Valid user rows in the bronze.users schema."""
    ok = validated.where(F.size("reasons") == 0)
    cols = {
        "user_id": F.col("user_id"),
        "attributes": F.col("_attributes"),
        "content_hash": F.sha2(F.to_json(F.map_entries(F.coalesce(F.col("_attributes"), F.create_map()))), 256),
        "source_file": F.col("source_file"),
        "updated_ds": F.lit(ds).cast("date"),
    }
    return ok.select(*[cols[f.name].cast(f.dataType).alias(f.name) for f in USERS.fields])


def mark_unknown_items(validated_events: DataFrame, known_items: DataFrame) -> DataFrame:
    """Add an 'unknown item_id' reason to events whose item is not in ``known_items``."""
    known = known_items.select(F.col("item_id").alias("_known_item")).distinct()
    joined = validated_events.join(known, F.trim(validated_events["item_id"]) == known["_known_item"], "left")
    unknown = (F.size("reasons") == 0) & F.col("_known_item").isNull()
    reason = F.concat(F.lit("unknown item_id '"), F.trim("item_id"), F.lit("'"))
    return joined.withColumn("reasons", F.when(unknown, F.array(reason)).otherwise(F.col("reasons"))).drop(
        "_known_item"
    )

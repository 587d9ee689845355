"""Amazon review benchmarks as generative-recommendation papers ship them: order, no clock.

Both formats list each user's items in chronological order without timestamps, so
order becomes time: the k-th item (k = 0, 1, ...) of a user is placed at midnight UTC
of ``base_date + k days``. One raw row per interaction; ``source_line`` numbers the
interactions of a file in file order (1-based) and ``raw`` says where each came from.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.loaders._base import BaseLoader
from jobs.loaders._frames import contract, day_timestamp, iso_day, union
from jobs.loaders._lines import drop_internal, not_blank, number_rows, numbered_lines
from jobs.raw_contract import INTERACTION_FIELDS, ITEM_FIELDS, raw_schema

# item.json keys that are contract fields; every other key goes into attributes.
_COMPACT = {"ensure_ascii": False, "separators": (",", ":")}  # same spelling as Spark's to_json
_ITEM_KEYS = ("title", "description", "categories", "image_path", "image_vector")


def _files(root: str, pattern: str) -> list[Path]:
    path = Path(root)
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob(pattern) if p.is_file())


class AmazonSeqLoader(BaseLoader):
    """amazon_seq: ROOT/*.txt (or ROOT itself, a file), one line per user:

    'user_id item_id item_id ...' (whitespace-separated, chronological, no timestamps).
    The k-th item (k = 0, 1, ...) of a line gets timestamp base_date + k days
    ('YYYY-MM-DDT00:00:00Z'); raw = 'line N pos P: user item' (P 1-based); a user with
    no items is one row with schema_error 'line N has no items'. No item/user files.
    """

    name = "amazon_seq"
    order_is_clock = True

    def read_events(self, spark: SparkSession, root: str, ds: date | None, base_date: date) -> DataFrame:
        """Every interaction (order is the only clock, so nothing is split by day)."""
        files = [str(p) for p in _files(root, "*.txt")]
        if not files:
            raise FileNotFoundError(f"no sequence file (*.txt) at {root}")
        lines = numbered_lines(spark, files).where(not_blank()).withColumnRenamed("source_line", "_line")
        tokens = F.split(F.trim(F.regexp_replace("raw", r"\s+", " ")), " ")
        items = F.slice(tokens, 2, F.greatest(F.size(tokens) - 1, F.lit(1)))
        # posexplode_outer keeps a user without items as one row (pos and item null).
        exploded = lines.select("*", tokens.getItem(0).alias("_user"), F.posexplode_outer(items).alias("_pos", "_item"))
        numbered, _ = number_rows(exploded, "source_line")
        has_item = F.col("_pos").isNotNull()
        values = {
            "user_id": F.col("_user"),
            "item_id": F.col("_item"),
            "timestamp": F.when(has_item, day_timestamp(base_date, F.col("_pos"))),
        }
        raw = F.when(
            has_item, F.format_string("line %d pos %d: %s %s", "_line", F.col("_pos") + 1, "_user", "_item")
        ).otherwise(F.format_string("line %d: %s", "_line", "raw"))
        error = F.when(~has_item, F.format_string("line %d has no items", "_line"))
        return contract(drop_internal(numbered).withColumn("raw", raw), INTERACTION_FIELDS, values, error)


def _text(value: Any) -> str | None:
    """A JSON value as the contract's string: strings as-is, null as null, the rest as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, **_COMPACT)


def load_document(path: Path) -> dict:
    """A whole JSON object file; ValueError naming the file if it is not one."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid JSON document: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level, got {type(doc).__name__}")
    return doc


def interaction_rows(path: Path, doc: dict, base_date: date) -> list[tuple]:
    """Contract tuples of ``{"user": [item, ...]}``, numbered in file order."""
    rows: list[tuple] = []
    pad = (None,) * (len(INTERACTION_FIELDS) - 3)  # rating, play_seconds, ... are unknown

    def add(user: str, item: str | None, ts: str | None, raw: str, error: str | None) -> None:
        rows.append((user, item, ts, *pad, str(path), len(rows) + 1, raw, error))

    for user, items in doc.items():
        if not isinstance(items, list):
            add(user, None, None, f"user {user}: {_text(items)}", f"user {user}: expected a list of items")
        elif not items:
            add(user, None, None, f"user {user}: []", f"user {user} has no items")
        for k, item in enumerate(items if isinstance(items, list) else []):
            text = _text(item)
            add(user, text, iso_day(base_date + timedelta(days=k)), f"user {user} pos {k + 1}: {user} {text}", None)
    return rows


def item_rows(path: Path, doc: dict) -> list[tuple]:
    """Contract tuples of ``{"item": {"title", "description", "brand", "categories"}}``."""
    rows = []
    for n, (item, entry) in enumerate(doc.items(), start=1):
        raw = json.dumps({item: entry}, **_COMPACT)
        if not isinstance(entry, dict):
            rows.append(
                (item, None, None, None, None, None, None, str(path), n, raw, "item entry is not a JSON object")
            )
            continue
        extras = {k: _text(v) for k, v in entry.items() if k not in _ITEM_KEYS}
        attributes = json.dumps(extras, **_COMPACT) if extras else None
        fields = {**{k: _text(entry.get(k)) for k in _ITEM_KEYS}, "item_id": item, "attributes": attributes}
        rows.append((*[fields[f] for f in ITEM_FIELDS], str(path), n, raw, None))
    return rows


class AmazonJsonLoader(BaseLoader):
    """amazon_json: the LC-Rec/LETTER JSON pair under ROOT.

    <name>.inter.json  {"<user>": [item, item, ...]} chronological; the k-th item gets
                       base_date + k days; raw = 'user U pos P: U item'
    <name>.item.json   {"<item>": {"title", "description", "brand", "categories"}};
                       categories kept as the comma-joined path string, brand (and any other
                       key) -> attributes
    Both are read whole on the driver (they are single JSON documents). No user file.
    """

    name = "amazon_json"
    order_is_clock = True

    def read_events(self, spark: SparkSession, root: str, ds: date | None, base_date: date) -> DataFrame:
        """Every interaction of every ``*.inter.json`` (not split by day)."""
        files = _files(root, "*.inter.json")
        if not files:
            raise FileNotFoundError(f"no *.inter.json file at {root}")
        schema = raw_schema(INTERACTION_FIELDS)
        frames = [spark.createDataFrame(interaction_rows(p, load_document(p), base_date), schema) for p in files]
        return union(spark, frames, INTERACTION_FIELDS)

    def read_items(self, spark: SparkSession, root: str) -> DataFrame | None:
        """Items of every ``*.item.json``, or None if there is none."""
        files = _files(root, "*.item.json") if Path(root).is_dir() else []
        if not files:
            return None
        schema = raw_schema(ITEM_FIELDS)
        return union(spark, [spark.createDataFrame(item_rows(p, load_document(p)), schema) for p in files], ITEM_FIELDS)

    def event_dates(self, spark: SparkSession, root: str, base_date: date) -> list[date]:
        """base_date .. base_date + (longest list - 1) days: every day some user's k-th item falls on."""
        longest = 0
        for path in _files(root, "*.inter.json"):
            lengths = [len(v) for v in load_document(path).values() if isinstance(v, list)]
            longest = max([longest, *lengths])
        return [base_date + timedelta(days=k) for k in range(longest)]

"""RecBole atomic files (``<name>.inter`` / ``.item`` / ``.user``), as RecBole ships MovieLens."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.loaders._base import BaseLoader
from jobs.loaders._delimited import TSV, delimited_rows, field, header_groups, header_or_count_error
from jobs.loaders._frames import attributes_json, contract, union
from jobs.raw_contract import INTERACTION_FIELDS, INTERACTION_REQUIRED, ITEM_FIELDS, USER_FIELDS

log = logging.getLogger(__name__)

# Item header names (after the ':type' suffix is stripped) that are contract fields.
ITEM_ALIASES = {
    "item_id": "item_id",
    "movie_title": "title",
    "title": "title",
    "description": "description",
    "class": "categories",
    "genre": "categories",
    "categories": "categories",
}
_TOKEN_SEQ_FIELDS = ("categories",)  # token_seq genres: 'Animation Comedy' -> 'Animation|Comedy'


def strip_type(name: str) -> str:
    """'user_id:token' -> 'user_id' (RecBole's header carries the type after a colon)."""
    return name.rsplit(":", 1)[0] if ":" in name else name


def atomic_files(root: str, suffix: str) -> list[Path]:
    """``ROOT/*.<suffix>`` sorted (e.g. ml-100k.inter, or train/valid/test .inter splits)."""
    return sorted(p for p in Path(root).glob(f"*.{suffix}") if p.is_file())


def _groups(spark: SparkSession, files: Sequence[Path]) -> Iterator[tuple[list[str], list[str], list[str], DataFrame]]:
    """(names without ':type', header names, paths, split rows) per group of files sharing a header."""
    for names, paths in header_groups(files, TSV):
        rows = delimited_rows(spark, paths, names, TSV, header=True)
        yield [strip_type(n) for n in names], names, paths, rows


class MovieLensAtomicLoader(BaseLoader):
    """movielens_atomic: RecBole atomic files under ROOT (tab-separated, header 'name:type').

    <name>.inter  user_id, item_id, rating, timestamp (unix seconds); other columns ignored
    <name>.item   item_id, movie_title -> title, class -> categories (space-separated genres,
                  written 'A|B'), every other column (release_year, ...) -> attributes
    <name>.user   user_id + others (age, gender, occupation, zip_code) -> attributes
    """

    name = "movielens_atomic"

    def read_events(self, spark: SparkSession, root: str, ds: date | None, base_date: date) -> DataFrame:
        """Every ``*.inter`` row (not split by day; ingest filters to ``ds``)."""
        files = atomic_files(root, "inter")
        if not files:
            raise FileNotFoundError(f"no *.inter file under {root}")
        frames = []
        for clean, raw_names, paths, rows in _groups(spark, files):
            unknown = [c for c in clean if c not in INTERACTION_FIELDS]
            if unknown:
                log.warning("%s: ignoring column(s) %s", ", ".join(paths), ", ".join(unknown))
            values = {c: field(r) for c, r in zip(clean, raw_names, strict=True) if c in INTERACTION_FIELDS}
            frames.append(
                contract(rows, INTERACTION_FIELDS, values, header_or_count_error(INTERACTION_REQUIRED, clean))
            )
        return union(spark, frames, INTERACTION_FIELDS)

    def read_items(self, spark: SparkSession, root: str) -> DataFrame | None:
        """``*.item`` rows, or None if absent."""
        files = atomic_files(root, "item")
        if not files:
            return None
        frames = []
        for clean, raw_names, _, rows in _groups(spark, files):
            values: dict[str, Column] = {}
            extras: dict[str, Column] = {}
            for c, r in zip(clean, raw_names, strict=True):
                target = ITEM_ALIASES.get(c)
                if target in _TOKEN_SEQ_FIELDS:
                    values[target] = F.regexp_replace(F.trim(field(r)), r"\s+", "|")
                elif target and target not in values:
                    values[target] = field(r)
                else:
                    extras[c] = field(r)
            values["attributes"] = attributes_json(extras)
            frames.append(contract(rows, ITEM_FIELDS, values, header_or_count_error(("item_id",), clean)))
        return union(spark, frames, ITEM_FIELDS)

    def read_users(self, spark: SparkSession, root: str) -> DataFrame | None:
        """``*.user`` rows, or None if absent."""
        files = atomic_files(root, "user")
        if not files:
            return None
        frames = []
        for clean, raw_names, _, rows in _groups(spark, files):
            extras = {c: field(r) for c, r in zip(clean, raw_names, strict=True) if c != "user_id"}
            values = {"attributes": attributes_json(extras)}
            if "user_id" in clean:
                values["user_id"] = field(raw_names[clean.index("user_id")])
            frames.append(contract(rows, USER_FIELDS, values, header_or_count_error(("user_id",), clean)))
        return union(spark, frames, USER_FIELDS)

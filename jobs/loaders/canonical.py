"""The project's own format: CSV / JSON lines / parquet files with canonical column names."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.loaders._base import BaseLoader
from jobs.loaders._delimited import CSV, count_error, delimited_rows, field, header_groups, missing_message
from jobs.loaders._frames import as_text, attributes_json, contract, union, utc_days
from jobs.loaders._lines import not_blank, numbered_lines
from jobs.loaders._screen import rejected_rows, screen
from jobs.raw_contract import (
    INTERACTION_FIELDS,
    INTERACTION_REQUIRED,
    ITEM_FIELDS,
    ITEM_REQUIRED,
    USER_FIELDS,
    USER_REQUIRED,
)

log = logging.getLogger(__name__)

DAY_FOLDER = re.compile(r"ds=(\d{4}-\d{2}-\d{2})")
_KINDS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_CORRUPT = "_corrupt_record"


@dataclass(frozen=True)
class Table:
    """What one kind of canonical file holds.

    ``fields``: output columns; ``required``: columns a file must have; ``extras_as_attributes``:
    every column besides ``required`` is folded into ``attributes`` (users), else unknown
    columns are ignored with a warning.
    """

    fields: tuple[str, ...]
    required: tuple[str, ...]
    extras_as_attributes: bool = False

    def known(self, columns: Sequence[str]) -> list[str]:
        """The ``columns`` that are output fields, in file order."""
        return [c for c in columns if c in self.fields]


EVENTS = Table(INTERACTION_FIELDS, INTERACTION_REQUIRED)
ITEMS = Table(ITEM_FIELDS, ITEM_REQUIRED)
USERS = Table(USER_FIELDS, USER_REQUIRED, extras_as_attributes=True)


def file_kind(path: Path) -> str | None:
    """'csv' | 'json' | 'parquet' from the name (``.gz``/``.bz2`` allowed for text), else None."""
    name = path.name.lower()
    for packed in (".gz", ".bz2"):
        if name.endswith(packed):
            name = name[: -len(packed)]
            kind = _KINDS.get(Path(name).suffix)
            return kind if kind in ("csv", "json") else None
    return _KINDS.get(Path(name).suffix)


def data_files(folder: Path) -> list[Path]:
    """Data files under ``folder`` (recursively), skipping hidden/``_``-prefixed names (_SUCCESS, .crc)."""
    if folder.is_file():
        return [folder] if file_kind(folder) else []
    out = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if path.is_file() and file_kind(path) and not any(p.startswith((".", "_")) for p in parts):
            out.append(path)
    return out


def day_folders(folder: Path) -> dict[date, Path]:
    """``ds=YYYY-MM-DD`` sub-folders of ``folder`` by day."""
    if not folder.is_dir():
        return {}
    out = {}
    for sub in folder.iterdir():
        match = DAY_FOLDER.fullmatch(sub.name)
        if sub.is_dir() and match:
            out[date.fromisoformat(match.group(1))] = sub
    return dict(sorted(out.items()))


def entity_files(root: Path, name: str) -> list[Path]:
    """Files of ``root/<name>/`` or ``root/<name>.{csv,jsonl,json,parquet}``."""
    candidates = [root / name] + sorted(p for p in root.glob(f"{name}.*") if file_kind(p) or p.is_dir())
    files: list[Path] = []
    for candidate in candidates:
        if candidate.exists():
            files += data_files(candidate)
    return files


# ---------------------------------------------------------------------------------------------
# One reader per file kind; each returns contract frames for ``table``.
# ---------------------------------------------------------------------------------------------


def _drift_message(missing: Sequence[str], source_file: Column) -> Column:
    return F.concat(F.lit(f"schema drift: missing {missing_message(missing)} in "), source_file)


def _values(table: Table, columns: Sequence[str], get: Callable[[str], Column], where: str) -> dict[str, Column]:
    """Contract values from a file's ``columns``; warns about the ones that are dropped."""
    if table.extras_as_attributes:
        values = {c: get(c) for c in table.required if c in columns}
        values["attributes"] = attributes_json({c: get(c) for c in columns if c not in table.required})
        return values
    _warn_unknown(table, columns, where)
    return {c: get(c) for c in table.known(columns)}


def _warn_unknown(table: Table, columns: Sequence[str], where: str) -> None:
    unknown = [c for c in columns if c not in table.fields]
    if unknown and not table.extras_as_attributes:
        log.warning("%s: ignoring unknown column(s) %s", where, ", ".join(unknown))


def read_csv(spark: SparkSession, files: Sequence[Path], table: Table) -> list[DataFrame]:
    """CSV files with a header row (files with the same header share one scan)."""
    frames = []
    for names, paths in header_groups(files, CSV):
        rows = delimited_rows(spark, paths, names, CSV, header=True)
        missing = [c for c in table.required if c not in names]
        values = _values(table, names, field, ", ".join(paths))
        error = _drift_message(missing, F.col("source_file")) if missing else count_error(len(names))
        frames.append(contract(rows, table.fields, values, error))
    return frames


def read_json_lines(spark: SparkSession, files: Sequence[Path], table: Table) -> DataFrame:
    """One JSON object per line; any other line is kept with a schema_error.

    A file's columns are the union of its objects' keys (one small job); a required
    key that no object of a file has is schema drift for that file.
    """
    paths = [str(p) for p in files]
    lines = numbered_lines(spark, paths).where(not_blank())
    wanted = [c for c in table.fields if c != "attributes"] if table.extras_as_attributes else list(table.fields)
    ddl = ", ".join(f"`{c}` STRING" for c in [*wanted, _CORRUPT])
    parsed = F.from_json("raw", ddl, {"columnNameOfCorruptRecord": _CORRUPT, "mode": "PERMISSIVE"})
    lines = lines.withColumn("_json", parsed)
    is_object = F.col(f"_json.{_CORRUPT}").isNull() & F.ltrim(F.col("raw")).startswith("{")

    seen = lines.where(is_object).select("source_file", F.explode(F.json_object_keys("raw")).alias("k"))
    keys: dict[str, set[str]] = {}
    for row in seen.distinct().collect():
        keys.setdefault(row["source_file"], set()).add(row["k"])
    drift: list[Column] = []
    for path, found in sorted(keys.items()):
        missing = [c for c in table.required if c not in found]
        if missing:
            drift += [F.lit(path), _drift_message(missing, F.lit(path))]
        _warn_unknown(table, sorted(found), path)
    drift_error = F.try_element_at(F.create_map(*drift), F.col("source_file")) if drift else F.lit(None)

    values = {c: F.col("_json").getField(c) for c in wanted}
    if table.extras_as_attributes:
        # Users: every other key of the object, whatever it is called, is an attribute.
        pairs = F.from_json("raw", "map<string,string>")
        extras = F.map_filter(pairs, lambda k, v: ~k.isin(*table.required) & v.isNotNull())
        values["attributes"] = F.when(is_object, F.to_json(extras))
    error = F.coalesce(drift_error, F.when(~is_object, F.lit("line is not a JSON object")))
    return contract(lines, table.fields, values, error)


def read_parquet(spark: SparkSession, path: Path, table: Table) -> DataFrame:
    """One parquet file: ``raw`` is the row as JSON, ``source_line`` its 1-based row index."""
    try:
        df = spark.read.parquet(str(path))
    except Exception as exc:  # Spark raises several exception types for a corrupt footer
        raise ValueError(f"cannot read parquet file {path}: {exc}") from exc
    columns = [f.name for f in df.schema.fields]
    text = {c: as_text(df, c) for c in columns}
    rows = df.select(
        *[text[c].alias(f"_v{i}") for i, c in enumerate(columns)],
        F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns]), {"ignoreNullFields": "false"}).alias("raw"),
        F.lit(str(path)).alias("source_file"),
        (F.col("_metadata.row_index") + 1).alias("source_line"),
    )
    index = {c: i for i, c in enumerate(columns)}
    missing = [c for c in table.required if c not in columns]
    values = _values(table, columns, lambda c: F.col(f"_v{index[c]}"), str(path))
    error = _drift_message(missing, F.lit(str(path))) if missing else None
    return contract(rows, table.fields, values, error)


def read_files(spark: SparkSession, files: Sequence[Path], table: Table) -> DataFrame:
    """All ``files`` (any mix of kinds) as one contract frame."""
    by_kind: dict[str, list[Path]] = {"csv": [], "json": [], "parquet": []}
    for path in files:
        kind = file_kind(path)
        if kind:
            by_kind[kind].append(path)
    frames = read_csv(spark, by_kind["csv"], table) if by_kind["csv"] else []
    if by_kind["json"]:
        frames.append(read_json_lines(spark, by_kind["json"], table))
    frames += [read_parquet(spark, p, table) for p in by_kind["parquet"]]
    return union(spark, frames, table.fields)


def read_screened(spark: SparkSession, root: Path, files: Sequence[Path], table: Table) -> DataFrame:
    """:func:`read_files` of the files that pass the screening; one quarantine row per other file."""
    ok, rejected = screen(files, root, file_kind)
    frame = read_files(spark, ok, table)
    if rejected:
        for path, reason in rejected.items():
            log.warning("%s: %s", path, reason)
        frame = frame.unionByName(rejected_rows(spark, rejected, table.fields))
    return frame


class CanonicalLoader(BaseLoader):
    """canonical: the project's own layout under ROOT.

    interactions/            *.csv (header row, comma, "quoted" fields), *.jsonl|*.json (one object
                             per line) or *.parquet, directly or in ds=YYYY-MM-DD/ day folders;
                             columns user_id, item_id, timestamp (+ rating, play_seconds,
                             item_duration_seconds, like, follow, comment, share, dislike)
    items/ or items.{csv,jsonl,parquet}   item_id, title, description, categories, attributes,
                             image_path, image_vector
    users/ or users.{csv,jsonl,parquet}   user_id + any columns (folded into attributes)
    With ds=... folders and a day asked for, only that day's folder is read. Every file is
    screened first (jobs/loaders/_screen.py): one that is corrupt, not UTF-8 text, too large
    or outside ROOT is quarantined whole, with the reason, and the rest still loads.
    """

    name = "canonical"

    def read_events(self, spark: SparkSession, root: str, ds: date | None, base_date: date) -> DataFrame:
        """Interaction rows; only ``interactions/ds=<ds>/`` when the layout is daily and ``ds`` is given."""
        return read_screened(spark, Path(root), self.event_files(Path(root), ds), EVENTS)

    def read_items(self, spark: SparkSession, root: str) -> DataFrame | None:
        """Item rows, or None without an items file."""
        files = entity_files(Path(root), "items")
        return read_screened(spark, Path(root), files, ITEMS) if files else None

    def read_users(self, spark: SparkSession, root: str) -> DataFrame | None:
        """User rows (every non-``user_id`` column in ``attributes``), or None without a users file."""
        files = entity_files(Path(root), "users")
        return read_screened(spark, Path(root), files, USERS) if files else None

    def event_dates(self, spark: SparkSession, root: str, base_date: date) -> list[date]:
        """The ``ds=`` folder days that hold data; without day folders, the days of the timestamps."""
        days = day_folders(Path(root) / "interactions")
        if days:
            return [day for day, folder in days.items() if data_files(folder)]
        return utc_days(self.read_events(spark, root, None, base_date))

    @staticmethod
    def event_files(root: Path, ds: date | None) -> list[Path]:
        """The interaction files to read for ``ds`` (None: all of them)."""
        folder = root / "interactions"
        if not folder.is_dir():
            files = entity_files(root, "interactions")
            if not files:
                raise FileNotFoundError(f"no interactions/ folder or interactions.* file under {root}")
            return files
        days = day_folders(folder)
        if ds is not None and days:
            if ds not in days:
                log.warning("no interactions/ds=%s/ under %s: no events for that day", ds.isoformat(), root)
                return []
            return data_files(days[ds])
        return data_files(folder)

"""Delimited text files (CSV, TSV, pipe): header, per-line fields and field counts.

Lines are split by Spark (``from_csv`` for quoted CSV, ``split`` otherwise), one line
per record: a quoted field may hold the separator but not a newline. Every non-blank
line becomes a row; ``_nfields`` says how many fields it really had, so a loader can
flag a line with the wrong count instead of dropping it.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.loaders._lines import not_blank, numbered_lines

FIELDS = "_fields"  # struct column: one string per header name
NFIELDS = "_nfields"  # int column: fields found on the line


@dataclass(frozen=True)
class Dialect:
    """How a file splits into fields: ``sep``; ``quoted`` = RFC 4180 double quotes (CSV)."""

    sep: str
    quoted: bool = False


CSV = Dialect(",", quoted=True)
TSV = Dialect("\t")
PIPE = Dialect("|")


def open_text(path: Path | str, encoding: str = "utf-8") -> IO[str]:
    """Open a (possibly .gz/.bz2) text file for reading its first lines on the driver."""
    name = str(path)
    if name.endswith(".gz"):
        return gzip.open(name, "rt", encoding=encoding, errors="replace", newline="")
    if name.endswith(".bz2"):
        return bz2.open(name, "rt", encoding=encoding, errors="replace", newline="")
    return open(name, encoding=encoding, errors="replace", newline="")


def read_header(path: Path | str, dialect: Dialect) -> list[str]:
    """The names on line 1 (BOM and surrounding blanks stripped; empty/duplicate names made unique)."""
    with open_text(path) as fh:
        first = fh.readline().lstrip("\ufeff").rstrip("\r\n")
    if not first.strip():
        return []
    if dialect.quoted:
        names = next(csv.reader([first], delimiter=dialect.sep))
    else:
        names = first.split(dialect.sep)
    return unique_names([n.strip() for n in names])


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with empty ones called ``_c<i>`` and repeats suffixed ``_2``, ``_3``..."""
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        name = name or f"_c{i}"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def split_fields(lines: DataFrame, names: Sequence[str], dialect: Dialect) -> DataFrame:
    """Add ``_fields`` (struct of ``names``, strings; empty field -> null) and ``_nfields``."""
    raw = F.col("raw")
    sep = re.escape(dialect.sep)
    if dialect.quoted:
        ddl = ", ".join(f"`{n.replace('`', '``')}` STRING" for n in names)
        fields = F.from_csv(raw, ddl, {"sep": dialect.sep, "escape": '"', "mode": "PERMISSIVE"})
        # Count separators outside quoted fields: drop every "..." (with "" escapes) first.
        unquoted = F.regexp_replace(raw, r'"(?:[^"]|"")*"', "")
        count = F.size(F.split(unquoted, sep, -1))
    else:
        parts = F.split(raw, sep, -1)
        fields = F.struct(*[F.nullif(F.get(parts, i), F.lit("")).alias(n) for i, n in enumerate(names)])
        count = F.size(parts)
    return lines.withColumn(FIELDS, fields).withColumn(NFIELDS, count)


def field(name: str) -> Column:
    """One parsed field of :func:`split_fields`."""
    return F.col(FIELDS).getField(name)


def count_error(expected: int) -> Column:
    """'line has N fields, expected M' where the count is wrong, else null."""
    return F.when(
        F.col(NFIELDS) != expected,
        F.format_string(f"line has %d fields, expected {expected}", F.col(NFIELDS)),
    )


def header_groups(paths: Sequence[Path | str], dialect: Dialect) -> Iterator[tuple[list[str], list[str]]]:
    """Group files by identical header so each group is one Spark scan: (names, paths)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        # A file with a blank line 1 gets one placeholder name: its rows then fail the
        # required-column check instead of breaking the parser.
        names = read_header(path, dialect) or ["_c0"]
        groups.setdefault(tuple(names), []).append(str(path))
    for names, members in groups.items():
        yield list(names), members


def delimited_rows(
    spark: SparkSession, paths: Sequence[str], names: Sequence[str], dialect: Dialect, header: bool
) -> DataFrame:
    """Records of ``paths`` (all with columns ``names``), split, with lineage.

    ``header``: line 1 holds names and is skipped (it still counts: data starts at line 2).
    """
    lines = numbered_lines(spark, paths).where(not_blank())
    if header:
        lines = lines.where(F.col("source_line") > 1)
    return split_fields(lines, names, dialect)


def missing_message(missing: Sequence[str]) -> str:
    """'column x' / 'columns x, y' for error messages."""
    return ("column " if len(missing) == 1 else "columns ") + ", ".join(missing)


def header_or_count_error(required: Sequence[str], names: Sequence[str]) -> Column:
    """Every row's error when the header lacks a required column, else the per-line count check."""
    missing = [c for c in required if c not in names]
    if missing:
        return F.lit(f"missing required {missing_message(missing)} in header")
    return count_error(len(names))

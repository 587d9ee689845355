"""Helpers for the loader tests: write tiny files, collect rows in lineage order."""

from __future__ import annotations

from pathlib import Path

import pytest


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def collect(df) -> list[dict]:
    """All rows as dicts, ordered by (source_file, source_line) (sorted here: no shuffle stage)."""
    return sorted((r.asDict() for r in df.collect()), key=lambda r: (r["source_file"], r["source_line"]))


@pytest.fixture
def small_splits(spark):
    """Make Spark cut every text file into ~16-byte blocks (many tasks per file)."""
    keys = {"spark.sql.files.maxPartitionBytes": "16", "spark.sql.files.openCostInBytes": "1"}
    old = {k: spark.conf.get(k, None) for k in keys}
    for k, v in keys.items():
        spark.conf.set(k, v)
    yield
    for k, v in old.items():
        if v is None:
            spark.conf.unset(k)
        else:
            spark.conf.set(k, v)

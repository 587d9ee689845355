"""Order-free checksums of every lake table, read through the Delta log with delta-rs.

Two runs of the same days must hold the same rows, whatever the partitioning, file
layout or row order (a cluster spreads rows over executors, ``local[N]`` over threads).
A table's checksum is its row count and the sum (mod 2**64) of a hash of each row's
canonical text: floats at ``digits`` significant digits (summation order differs between
executors in the last bits), lists element by element, and the run's home folder in
strings (``source_file``) replaced by ``{home}``. A table that keeps a row per key and day
until maintenance compacts it (``maintenance.superseded``: ``user_state``) is summed over its
content, each key's latest row: which superseded rows are still there depends on how the
days arrived (in order, out of order, in bulk), not on what the table says.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from conf.settings import DEFAULT_TABLES, Settings

MASK = (1 << 64) - 1


def _canon(value: Any, digits: int, home: str) -> str:
    if value is None:
        return "~"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}" if value != 0 else "0"
    if isinstance(value, str):
        return repr(value.replace(home, "{home}"))
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_canon(v, digits, home)}" for k, v in sorted(value.items())) + "}"
    if hasattr(value, "tolist") and not isinstance(value, bytes):  # numpy arrays / scalars
        value = value.tolist()
        if not isinstance(value, list):
            return _canon(value, digits, home)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canon(v, digits, home) for v in value) + "]"
    return repr(str(value))


def table_checksum(cfg: Settings, table: str, digits: int = 6) -> dict[str, Any]:
    """``{"rows": n, "sum": hex, "columns": [...]}`` of one table (``{"absent": True}`` if it does not exist)."""
    from deltalake.exceptions import TableNotFoundError

    from models.continual import read_delta

    try:
        df = read_delta(cfg.table_path(table), storage_options=cfg.lake_storage_options())
    except (TableNotFoundError, FileNotFoundError):
        return {"absent": True}
    if table in cfg.maintenance.superseded:
        key, day = cfg.maintenance.superseded[table]
        df = df.sort_values(day, kind="stable").groupby(key, sort=False).tail(1)
    home = cfg.resolve("{home}")
    total = 0
    columns = sorted(df.columns)
    for row in df[columns].itertuples(index=False, name=None):
        text = "|".join(_canon(v, digits, home) for v in row)
        total = (total + int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")) & MASK
    return {"rows": len(df), "sum": f"{total:016x}", "columns": columns}


def lake_checksums(cfg: Settings, digits: int = 6) -> dict[str, dict[str, Any]]:
    """Checksums of every table the config names."""
    return {name: table_checksum(cfg, name, digits) for name in sorted(DEFAULT_TABLES)}


def column_diff(a: Settings, b: Settings, table: str, digits: int = 6) -> dict[str, Any]:
    """Which columns of ``table`` differ between two lakes (order-free, per column), with one example each.

    A diagnosis for a table whose whole checksum differs: rows are matched on the columns whose
    checksums are equal, then the first differing value of each other column is shown.
    """
    from models.continual import read_delta

    frames = [read_delta(c.table_path(table), storage_options=c.lake_storage_options()) for c in (a, b)]
    homes = [c.resolve("{home}") for c in (a, b)]

    def col_sum(df, col, home) -> str:
        total = 0
        for v in df[col]:
            total = (total + int.from_bytes(hashlib.blake2b(_canon(v, digits, home).encode(), digest_size=8).digest(),
                                            "big")) & MASK  # fmt: skip
        return f"{total:016x}"

    columns = sorted(set(frames[0].columns) & set(frames[1].columns))
    differ = [c for c in columns if col_sum(frames[0], c, homes[0]) != col_sum(frames[1], c, homes[1])]
    keys = [c for c in columns if c not in differ]
    out: dict[str, Any] = {"differ": differ, "rows": [len(f) for f in frames]}
    if keys and differ and len(frames[0]) == len(frames[1]):
        canon = [f.assign(_k=f[keys].astype(str).agg("|".join, axis=1)).sort_values("_k") for f in frames]
        for col in differ:
            for x, y in zip(canon[0][col], canon[1][col], strict=True):
                if _canon(x, digits, homes[0]) != _canon(y, digits, homes[1]):
                    out[col] = [_canon(x, digits, homes[0])[:300], _canon(y, digits, homes[1])[:300]]
                    break
    return out

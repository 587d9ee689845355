"""Bounded Spark results to numpy through Arrow (``DataFrame.toArrow``), without Python row objects.

``toPandas`` without Arrow builds a Python float per vector element (~32 B each, 8x the data);
the driver-side samples of jobs/semantic_ids.py and jobs/item_embeddings.py come through here
instead: one Arrow buffer, then one float32 matrix.
"""

from __future__ import annotations

import numpy as np


def vector_matrix(table, column: str, what: str) -> np.ndarray:
    """float32 ``(rows, d)`` from an Arrow ``array<float>`` column whose rows all have length ``d``.

    ``what`` names the table in the error raised for a null or a row of another width.
    """
    n = table.num_rows
    if n == 0:
        return np.zeros((0, 0), np.float32)
    lists = table.column(column).combine_chunks()
    if lists.null_count:
        raise ValueError(f"{what}: {lists.null_count} row(s) with a null {column}")
    lengths = np.diff(lists.offsets.to_numpy())
    if (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ValueError(f"{what}: row {row} has a {lengths[row]}-d {column}, row 0 a {lengths[0]}-d one")
    flat = lists.flatten().to_numpy(zero_copy_only=False)
    return np.array(flat, dtype=np.float32).reshape(n, int(lengths[0]))  # a writable copy (torch wants one)


def string_column(table, column: str) -> np.ndarray:
    """A string column as a numpy ``str`` array."""
    return np.asarray(table.column(column).to_pylist(), dtype=str)

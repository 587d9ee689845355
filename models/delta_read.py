"""Delta tables as pandas, through the Delta log, for the model side (no Spark).

One reader for ``models.train`` (a ``gold.training_examples`` directory), ``models.continual``
(one day of it) and the serving side: DataFusion's reader honours the deletion vectors that
Spark-written tables use, which the pyarrow dataset path refuses.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_delta(
    path: str | Path, where: str | None = None, storage_options: dict | None = None, order_by: str | None = None
) -> pd.DataFrame:
    """Rows of a Delta table as pandas, through its log. DataFusion's reader (deltalake's
    ``QueryBuilder``) honours deletion vectors, which Spark-written tables use and the pyarrow
    dataset path refuses. ``where``: a SQL predicate on table ``t``, e.g. ``ds = DATE '2026-10-05'``;
    ``storage_options``: delta-rs options for an object-store lake (``Settings.lake_storage_options``);
    ``order_by``: SQL sort keys. Give them wherever row order feeds training: a rewritten partition's
    files may come back in another order, and a re-run of a day must train the same model."""
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    sql = "SELECT * FROM t" + (f" WHERE {where}" if where else "") + (f" ORDER BY {order_by}" if order_by else "")
    table = pa.table(
        QueryBuilder().register("t", DeltaTable(str(path), storage_options=storage_options)).execute(sql).read_all()
    )
    return table.cast(pa.schema([f.with_type(_plain(f.type)) for f in table.schema])).to_pandas()


def _plain(t):
    """Arrow type with view / large string and list types replaced by plain ones (pandas-convertible)."""
    import pyarrow as pa

    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_plain(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_plain(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_plain(t.key_type), _plain(t.item_type))
    return t

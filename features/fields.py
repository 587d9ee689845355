"""Feast fields derived from the Spark schemas in ``jobs/schemas.py`` (one source of truth).

A view lists the column names it serves; names and types come from the table's
``StructType``. Spark maps become JSON strings: Feast's online stores have no map
type that survives every store, and the source views encode them with ``to_json``.
"""

from __future__ import annotations

from collections.abc import Sequence

from feast import Field
from feast.types import Array, Bool, FeastType, Float32, Float64, Int32, Int64, String, UnixTimestamp
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructType,
    TimestampType,
)

_SCALARS: dict[type[DataType], FeastType] = {
    StringType: String,
    LongType: Int64,
    IntegerType: Int32,
    DoubleType: Float64,
    FloatType: Float32,
    BooleanType: Bool,
    TimestampType: UnixTimestamp,
}


def feast_type(dtype: DataType) -> FeastType:
    """The Feast type a Spark column is served as (maps: a JSON ``String``).

    Raises ``TypeError`` for types with no faithful Feast equivalent (structs, nested arrays).
    """
    if isinstance(dtype, MapType):
        return String
    if isinstance(dtype, ArrayType) and type(dtype.elementType) in _SCALARS:
        return Array(_SCALARS[type(dtype.elementType)])
    if type(dtype) in _SCALARS:
        return _SCALARS[type(dtype)]
    raise TypeError(f"no Feast type for Spark type {dtype.simpleString()}")


def fields_from(schema: StructType, names: Sequence[str], descriptions: dict[str, str] | None = None) -> list[Field]:
    """Feast ``Field`` s for ``names``, typed from ``schema`` (``KeyError`` on an unknown column)."""
    by_name = {f.name: f for f in schema.fields}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"columns {missing} not in schema (have {sorted(by_name)})")
    descriptions = descriptions or {}
    return [Field(name=n, dtype=feast_type(by_name[n].dataType), description=descriptions.get(n, "")) for n in names]

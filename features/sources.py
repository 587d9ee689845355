"""Batch sources: Spark views over the lake's Delta tables, bound to paths at run time.

Why not ``FileSource(DeltaFormat())``: Feast's ``file`` offline store reads a Delta
folder's parquet files without its log, so rows that an overwrite (replaceWhere) or a
MERGE deleted come back (STACK-NOTES). Every table here is overwritten or MERGEd.

So each source is a ``SparkSource`` over a named Spark temporary view, and
``jobs/feature_store.py`` defines that view for the run's config as a query over
``delta.`<cfg.table_path(table)>``` (the SQL below). Spark resolves the view's
query each time it is used, through the Delta log, at the table's latest version:
historical retrieval and materialisation see only current rows. The definitions
hold no path, so every environment (local, tiny, cluster) registers the same
objects and ``apply`` diffs stay clean; the path comes from the one config.

Nothing runs at import: the SQL builders are plain functions.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable

from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from pyspark.sql.types import MapType, StructType

from jobs.schemas import ITEMS, USER_FEATURES

# Feast warns on every SparkSource and Spark query that the API is alpha. Feast is pinned
# and the store is tested here, so the warning carries no news: silence just that one,
# after importing the Spark store, whose import puts its own RuntimeWarning filter first.
importlib.import_module("feast.infra.offline_stores.contrib.spark_offline_store.spark")
warnings.filterwarnings(
    "ignore", message="The spark (data source API|offline store) is an experimental", category=RuntimeWarning
)

USER_FEATURES_VIEW = "onerec_gold_user_features"
ITEMS_VIEW = "onerec_bronze_items"


def _columns(schema: StructType, skip: tuple[str, ...] = ()) -> list[str]:
    """Select list for ``schema``: maps as JSON strings (same name), the rest as is."""
    return [
        f"to_json(`{f.name}`) AS `{f.name}`" if isinstance(f.dataType, MapType) else f"`{f.name}`"
        for f in schema.fields
        if f.name not in skip
    ]


def user_features_sql(relation: str) -> str:
    """gold.user_features as Feast reads it, from ``relation`` (``delta.`<path>```).

    ``event_date`` = the date of ``event_timestamp`` (midnight after ``ds``), computed
    from the partition column so Spark prunes partitions on it; Feast's date filter
    on it is then exactly as wide as its timestamp filter (``ds`` itself would be off
    by one day at the TTL edge).
    """
    cols = ", ".join(_columns(USER_FEATURES))
    return f"SELECT {cols}, date_add(`ds`, 1) AS event_date FROM {relation}"


def items_sql(relation: str) -> str:
    """bronze.items as Feast reads it (from ``relation``): one current row per item (MERGEd on item_id).

    An item's content is known once its day is ingested, so its event timestamp is
    midnight after ``updated_ds`` (UTC, like gold), the same convention as gold rows.
    """
    cols = ", ".join(_columns(ITEMS, skip=("image_vector",)))
    return f"SELECT {cols}, CAST(date_add(`updated_ds`, 1) AS TIMESTAMP) AS event_timestamp FROM {relation}"


# Spark view name -> (lake table in conf.settings.DEFAULT_TABLES, SQL over a relation holding it).
SPARK_VIEWS: dict[str, tuple[str, Callable[[str], str]]] = {
    USER_FEATURES_VIEW: ("user_features", user_features_sql),
    ITEMS_VIEW: ("items", items_sql),
}

# query="" and path="" (not None): the registry hands unset options back as "", and
# SparkSource.__eq__ compares them, so with None every fresh process would see changed
# sources and `apply` would report (and write) an update each day.
gold_user_features = SparkSource(
    name="gold_user_features",
    table=USER_FEATURES_VIEW,
    query="",
    path="",
    timestamp_field="event_timestamp",
    date_partition_column="event_date",
    description="gold.user_features: one row per (user, ds) for users active on ds; state as of the end of ds.",
    owner="onerec-data",
    tags={"lake_table": "user_features"},
)

bronze_items = SparkSource(
    name="bronze_items",
    table=ITEMS_VIEW,
    query="",
    path="",
    timestamp_field="event_timestamp",
    description="bronze.items: current content per item, valid from midnight after updated_ds.",
    owner="onerec-data",
    tags={"lake_table": "items"},
)

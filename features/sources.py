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
from pyspark.sql.types import ArrayType, DoubleType, FloatType, MapType, StructField, StructType

from jobs.schemas import ITEM_EMBEDDINGS, ITEM_SIDS, ITEM_STATS, ITEMS, USER_FEATURES, USER_LIFELONG_COMPRESSED

# Feast warns on every SparkSource and Spark query that the API is alpha. Feast is pinned
# and the store is tested here, so the warning carries no news: silence just that one,
# after importing the Spark store, whose import puts its own RuntimeWarning filter first.
importlib.import_module("feast.infra.offline_stores.contrib.spark_offline_store.spark")
warnings.filterwarnings(
    "ignore", message="The spark (data source API|offline store) is an experimental", category=RuntimeWarning
)

USER_FEATURES_VIEW = "onerec_gold_user_features"
ITEMS_VIEW = "onerec_bronze_items"
USER_LIFELONG_VIEW = "onerec_gold_user_lifelong_compressed"
ITEM_SIDS_VIEW = "onerec_gold_item_sids"
ITEM_EMBEDDINGS_VIEW = "onerec_gold_item_embeddings"
ITEM_STATS_VIEW = "onerec_gold_item_stats"


def _column(f: StructField) -> str:
    """One select item: a map as a JSON string; a float array whose elements may be null with NaN for
    null (Feast's protobuf lists have no null element and would turn it into 0.0, inventing a rating
    of 0 where the dataset has none: NaN survives both the online store and historical retrieval)."""
    if isinstance(f.dataType, MapType):
        return f"to_json(`{f.name}`) AS `{f.name}`"
    dtype = f.dataType
    if isinstance(dtype, ArrayType) and dtype.containsNull and isinstance(dtype.elementType, DoubleType | FloatType):
        nan = f"CAST('NaN' AS {dtype.elementType.simpleString().upper()})"  # keeps the element type
        return f"transform(`{f.name}`, x -> coalesce(x, {nan})) AS `{f.name}`"
    return f"`{f.name}`"


def _columns(schema: StructType, skip: tuple[str, ...] = ()) -> list[str]:
    """Select list for ``schema`` (see :func:`_column`), names unchanged."""
    return [_column(f) for f in schema.fields if f.name not in skip]


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


def daily_snapshot_sql(schema: StructType) -> Callable[[str], str]:
    """A gold table partitioned by ``ds`` (one row per entity and day, state as of the end of ``ds``).

    Same convention as :func:`user_features_sql`: ``event_timestamp`` = midnight after ``ds``
    and ``event_date`` its date, for partition pruning.
    """

    def sql(relation: str) -> str:
        cols = ", ".join(_columns(schema))
        stamp = "CAST(date_add(`ds`, 1) AS TIMESTAMP) AS event_timestamp"
        return f"SELECT {cols}, {stamp}, date_add(`ds`, 1) AS event_date FROM {relation}"

    return sql


def written_on_sql(schema: StructType, skip: tuple[str, ...] = ()) -> Callable[[str], str]:
    """An item table whose ``ds`` says which run wrote the row (item_sids, item_embeddings).

    A row is valid from midnight after that run until a later run writes the item again (a
    new codebook version, a re-embedding), which then has the later timestamp and wins.
    """

    def sql(relation: str) -> str:
        cols = ", ".join(_columns(schema, skip=skip))
        return f"SELECT {cols}, CAST(date_add(`ds`, 1) AS TIMESTAMP) AS event_timestamp FROM {relation}"

    return sql


# Spark view name -> (lake table in conf.settings.DEFAULT_TABLES, SQL over a relation holding it).
SPARK_VIEWS: dict[str, tuple[str, Callable[[str], str]]] = {
    USER_FEATURES_VIEW: ("user_features", user_features_sql),
    ITEMS_VIEW: ("items", items_sql),
    USER_LIFELONG_VIEW: ("user_lifelong_compressed", daily_snapshot_sql(USER_LIFELONG_COMPRESSED)),
    ITEM_SIDS_VIEW: ("item_sids", written_on_sql(ITEM_SIDS)),
    # content/behaviour vectors stay in the lake: 480 floats per item the models never read online.
    ITEM_EMBEDDINGS_VIEW: ("item_embeddings", written_on_sql(ITEM_EMBEDDINGS, ("content_vector", "behaviour_vector"))),
    ITEM_STATS_VIEW: ("item_stats", daily_snapshot_sql(ITEM_STATS)),
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

gold_user_lifelong = SparkSource(
    name="gold_user_lifelong_compressed",
    table=USER_LIFELONG_VIEW,
    query="",
    path="",
    timestamp_field="event_timestamp",
    date_partition_column="event_date",
    description="gold.user_lifelong_compressed: <= N representative items per user active on ds.",
    owner="onerec-data",
    tags={"lake_table": "user_lifelong_compressed"},
)

gold_item_sids = SparkSource(
    name="gold_item_sids",
    table=ITEM_SIDS_VIEW,
    query="",
    path="",
    timestamp_field="event_timestamp",
    description="gold.item_sids: an item's semantic ID per codebook version, valid from midnight after it was assigned.",
    owner="onerec-data",
    tags={"lake_table": "item_sids"},
)

gold_item_embeddings = SparkSource(
    name="gold_item_embeddings",
    table=ITEM_EMBEDDINGS_VIEW,
    query="",
    path="",
    timestamp_field="event_timestamp",
    description="gold.item_embeddings: one current row per item (MERGEd), valid from midnight after the run.",
    owner="onerec-data",
    tags={"lake_table": "item_embeddings"},
)

gold_item_stats = SparkSource(
    name="gold_item_stats",
    table=ITEM_STATS_VIEW,
    query="",
    path="",
    timestamp_field="event_timestamp",
    date_partition_column="event_date",
    description="gold.item_stats: per item with events on ds, its counts as of the end of ds.",
    owner="onerec-data",
    tags={"lake_table": "item_stats"},
)

"""Training rows with exactly the features the server reads: point-in-time retrieval from Feast.

    python -m jobs.training_features --ds 2026-10-03

For every ``gold.training_examples[protocol, ds]`` row, the features of the configured training
service (``onerec_train_v<model.pathways.feature_service_version>``) as of the row's target time,
by Feast's ``get_historical_features`` over the same feature views the online store is materialised
from (``features/``). A feature row stamped midnight after day ``d`` (the user's state at the end of
``d``) is what the server holds once ``d`` is materialised, so a target on ``d + 1`` gets exactly
the arrays ``get_online_features`` returned then, in the same order (tests/features/test_parity.py):
one feature path for training and serving. Events earlier on the target's own day are not in it --
the server does not have them either.

Written to ``gold.training_features`` partitioned by (protocol, ds), replaced per run. Runs after
``feast_apply`` (it applies the definitions itself when the service is not registered yet); it
reads the lake through the bound Spark views, never the online store, so materialisation order does
not matter. Nothing is collected to the driver: the entity rows are a Spark DataFrame.
"""

from __future__ import annotations

import json
import logging
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import TRAINING_EXAMPLES, TRAINING_FEATURES

log = logging.getLogger(__name__)


def entity_rows(examples: DataFrame) -> DataFrame:
    """The distinct ``(user_id, event_timestamp)`` the examples need features at (their target times).

    Distinct, because Feast's point-in-time join keys a row by entity and time: the three
    leave_one_out splits of a user can share a target time, and would multiply each other.
    """
    return examples.select("user_id", F.timestamp_seconds("target_ts").alias("event_timestamp")).distinct()


def with_features(examples: DataFrame, features: DataFrame, service: str) -> DataFrame:
    """``examples`` joined to their retrieved ``features`` (by user and target time), in the table's schema.

    A user with no feature row at or before the target (their first day) keeps null features: the
    model masks every pathway of such a row, as the server answers it with the cold start.
    """
    names = [f.name for f in TRAINING_FEATURES.fields]
    feature_cols = [c for c in features.columns if c in names and c not in ("user_id", "event_timestamp")]
    df = examples.withColumn("event_timestamp", F.timestamp_seconds("target_ts")).join(
        features.select("user_id", "event_timestamp", *feature_cols), ["user_id", "event_timestamp"], "left"
    )
    df = df.withColumn("feature_service", F.lit(service))
    return df.select(*[F.col(f.name).cast(f.dataType) for f in TRAINING_FEATURES.fields])


def retrieve(store, entities: DataFrame, service: str) -> DataFrame:
    """Feast's point-in-time retrieval of ``service`` for ``entities``, as a Spark DataFrame."""
    job = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(service), full_feature_names=False
    )
    return job.to_spark_df()


def day_examples(spark: SparkSession, cfg: Settings, ds: date) -> DataFrame:
    """Every protocol's ``gold.training_examples`` rows of ``ds``."""
    examples = delta.read(spark, cfg.table_path("training_examples"), TRAINING_EXAMPLES)
    return examples.where(F.col("ds") == F.lit(ds).cast("date"))


def features_at(spark: SparkSession, cfg: Settings, store, examples: DataFrame) -> DataFrame:
    """The training service's features at every target time of ``examples`` (one Feast retrieval)."""
    entities = entity_rows(examples)
    if entities.isEmpty():  # Feast cannot time-range an empty entity frame: nothing to retrieve
        return spark.createDataFrame([], "user_id string, event_timestamp timestamp")
    return retrieve(store, entities, cfg.model.pathways.train_service)


def build(spark: SparkSession, cfg: Settings, store, protocol: str, ds: date) -> DataFrame:
    """The ``gold.training_features`` rows of ``protocol`` and ``ds`` (lazy)."""
    examples = day_examples(spark, cfg, ds).where(F.col("protocol") == protocol)
    return with_features(examples, features_at(spark, cfg, store, examples), cfg.model.pathways.train_service)


def _store(cfg: Settings):
    """The feature store with its sources bound, the training service registered."""
    from feast.errors import FeatureServiceNotFoundException

    from jobs import feature_store

    feature_store._session(cfg)  # binds the Spark views Feast's offline store reads
    store = feature_store.get_store(cfg)
    try:
        store.get_feature_service(cfg.model.pathways.train_service)
    except FeatureServiceNotFoundException:
        log.info("%s not registered yet: applying features/", cfg.model.pathways.train_service)
        feature_store.apply(cfg)
        store = feature_store.get_store(cfg)
    return store


def run(cfg: Settings, ds: date, spark: SparkSession | None = None) -> dict:
    """Write gold.training_features[protocol, ds] for every configured protocol."""
    from pyspark import StorageLevel

    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    store = _store(cfg)
    service = cfg.model.pathways.train_service
    path, spec = cfg.table_path("training_features"), cfg.table("training_features")
    # One point-in-time retrieval for every protocol's target times (Feast's query scans each view's
    # source once per call), kept for the protocols' writes: the day's users only, not the history.
    examples = day_examples(spark, cfg, ds)
    features = features_at(spark, cfg, store, examples).persist(StorageLevel.MEMORY_AND_DISK)
    counts = {}
    try:
        for protocol in cfg.training_examples.protocols:
            where = f"protocol = '{protocol}' AND ds = {delta.date_literal(ds)}"
            rows = with_features(examples.where(F.col("protocol") == protocol), features, service)
            delta.overwrite_partition(rows, path, spec.partition_by, where)
            written = delta.read(spark, path).where(where)
            books = written.agg(F.count("*").alias("rows"), F.count("n_events").alias("with_features")).first()
            counts[protocol] = {"rows": int(books["rows"]), "with_features": int(books["with_features"])}
            log.info("training_features ds=%s protocol=%s: %s", ds, protocol, counts[protocol])
    finally:
        features.unpersist()
    return {"ds": ds.isoformat(), "service": service, "rows": counts}


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.ds), indent=2))


if __name__ == "__main__":
    main()

"""Training examples (user context as of a cutoff, target) for two protocols.

    python -m jobs.training_examples --ds 2026-10-03

* ``next_day`` (time split): for each user with positive feedback on ``ds``, the
  context is their history up to the end of ``ds - 1`` and the target is the
  session of items they engaged positively with on ``ds`` (the first is the
  point-wise target). Training on days < D and evaluating on D never leaks.
* ``leave_one_out`` (the benchmark protocol of SASRec/TIGER): from each user's
  history as of the end of ``ds``, the last item is ``test``, the second to last
  ``valid`` and the third to last ``train`` (its context + target is the whole
  training sequence). Users with fewer than 3 events are skipped.

Each reads only what it needs: ``next_day`` the day's chunk (``silver.user_events[ds]``,
the targets) and the bounded state rows of the users with a target (``user_state``
partition ``ds``; their context is the state's events before ``ds``); ``leave_one_out`` the state rows as of ``ds``
(``jobs.sequences.state_as_of``: ``recent`` holds the last context + 3 events), never a
whole history. This is the same as the latest ``gold.user_features`` row at or before
the cutoff (the feature store does the point-in-time join for the online path, see
features/).

Written to ``gold.training_examples`` partitioned by (protocol, ds), replaced per run; then, with
``model.pathways.from_feature_store``, ``gold.training_features`` (``jobs/training_features.py``: the
same rows with the feature service's values as of each target, what the generator trains on).
"""

from __future__ import annotations

import json
import logging
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import TRAINING_EXAMPLES, USER_EVENTS
from jobs.user_history import cap_tail

log = logging.getLogger(__name__)


def _ids(arr: Column) -> Column:
    return F.transform(arr, lambda e: e["item_id"])


def _ts(arr: Column) -> Column:
    return F.transform(arr, lambda e: F.unix_seconds(e["ts"]))


def _select(df: DataFrame) -> DataFrame:
    return df.select(*[F.col(f.name).cast(f.dataType) for f in TRAINING_EXAMPLES.fields])


def build_next_day(state: DataFrame, day: DataFrame, context_len: int) -> DataFrame:
    """next_day rows of each day of ``day``: context before that day, target = its positive items.

    ``day``: ``user_events`` rows (one day, or every day of a range); ``state``: ``user_state``
    rows as of each of those (user, day) pairs, i.e. with ``last_date`` = the chunk's day
    (:func:`jobs.sequences.state_as_of` for one day, ``jobs.user_history.states_by_day`` for a range).
    """
    dt = F.col("event_date")
    target = F.filter("events", lambda e: (e["event_date"] == dt) & e["positive"])
    targets = day.select("user_id", "event_date", target.alias("_tgt")).where(F.size("_tgt") > 0)
    before = cap_tail(F.filter("recent", lambda e: e["event_date"] < F.col("last_date")), context_len)
    ctx = state.select("user_id", F.col("last_date").alias("event_date"), before.alias("_ctx"))
    df = targets.join(ctx, ["user_id", "event_date"], "left")
    df = df.select(
        "user_id", "event_date", F.coalesce("_ctx", F.filter("_tgt", lambda e: F.lit(False))).alias("_ctx"), "_tgt"
    )
    return _select(
        df.select(
            "user_id",
            F.lit("target").alias("split"),
            _ids(F.col("_ctx")).alias("context_item_ids"),
            _ts(F.col("_ctx")).alias("context_ts"),
            F.col("_tgt")[0]["item_id"].alias("target_item_id"),
            _ids(F.col("_tgt")).alias("target_item_ids"),
            F.unix_seconds(F.col("_tgt")[0]["ts"]).alias("target_ts"),
            F.lit("next_day").alias("protocol"),
            dt.alias("ds"),
        )
    )


def build_leave_one_out(state: DataFrame, ds: date | None, context_len: int) -> DataFrame:
    """leave_one_out rows as of the end of ``ds`` (train/valid/test per user) from ``user_state``
    rows as of ``ds``: ``recent`` ends with the user's last events, context + 3 of them at least.

    ``ds`` None: ``state`` carries a ``ds`` column, the day each row is the state as of (a range
    in one pass: ``jobs.backfill``)."""
    day = F.lit(ds).cast("date") if ds is not None else F.col("ds")
    df = state.select("user_id", day.alias("_ds"), F.col("recent").alias("_past")).where(F.size("_past") >= 3)
    splits = F.array(
        *[
            F.struct(F.lit(name).alias("split"), F.lit(offset).alias("offset"))
            for name, offset in (("train", 3), ("valid", 2), ("test", 1))
        ]
    )
    df = df.select("user_id", "_ds", "_past", F.explode(splits).alias("_s"))
    n = F.size("_past")
    cut = n - F.col("_s.offset")  # number of events before the target
    ctx = cap_tail(F.slice("_past", F.lit(1), cut), context_len)
    # slice() rejects length 0, so an empty prefix is spelled out.
    ctx = F.when(cut > 0, ctx).otherwise(
        F.array_compact(F.array(F.lit(None).cast(df.schema["_past"].dataType.elementType)))
    )
    tgt = F.element_at("_past", cut + 1)
    return _select(
        df.select(
            "user_id",
            F.col("_s.split").alias("split"),
            _ids(ctx).alias("context_item_ids"),
            _ts(ctx).alias("context_ts"),
            tgt["item_id"].alias("target_item_id"),
            F.array(tgt["item_id"]).alias("target_item_ids"),
            F.unix_seconds(tgt["ts"]).alias("target_ts"),
            F.lit("leave_one_out").alias("protocol"),
            F.col("_ds").alias("ds"),
        )
    )


def examples(spark: SparkSession, cfg: Settings, protocol: str, ds: date) -> DataFrame:
    """The rows of ``protocol`` for ``ds``, reading only the tables' parts that protocol needs."""
    from jobs.sequences import state_as_of, state_on

    ctx = cfg.training_examples.context_len
    if protocol == "next_day":
        day = delta.read(spark, cfg.table_path("user_events"), USER_EVENTS)
        day = day.where(F.col("event_date") == F.lit(ds).cast("date"))
        users = day.where(F.col("n_positive") > 0).select("user_id")
        return build_next_day(state_on(spark, cfg, ds, users), day, ctx)  # their state partition ds only
    return build_leave_one_out(state_as_of(spark, cfg, ds), ds, ctx)


def run(cfg: Settings, ds: date, spark: SparkSession | None = None) -> dict:
    """Write gold.training_examples[protocol, ds] for every configured protocol."""
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    path, spec = cfg.table_path("training_examples"), cfg.table("training_examples")
    counts = {}
    for protocol in cfg.training_examples.protocols:
        rows = examples(spark, cfg, protocol, ds)
        where = f"protocol = '{protocol}' AND ds = {delta.date_literal(ds)}"
        delta.overwrite_partition(rows, path, spec.partition_by, where)
        counts[protocol] = delta.read(spark, path).where(where).count()
        log.info("training_examples ds=%s protocol=%s: %d rows", ds, protocol, counts[protocol])
    if cfg.model.pathways.from_feature_store:  # the generator's rows: these, with the features served then
        from jobs import training_features

        return {"ds": ds.isoformat(), "rows": counts, "features": training_features.run(cfg, ds, spark)["rows"]}
    return {"ds": ds.isoformat(), "rows": counts}


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="cutoff day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.ds), indent=2))


if __name__ == "__main__":
    main()

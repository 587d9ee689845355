"""Validate one table (one ds partition) with its GX suite, as a checkpoint with Data Docs.

Contract of :func:`validate`:

* reads the table only through ``jobs.delta`` (the Delta log, never parquet
  files), restricted to ``ds`` for tables partitioned by a date column
  (``event_date`` for events, ``ds`` for user_features / training_examples); for the
  other tables (user_state, items, users, item_embeddings) the rows that the commits of
  day ``ds`` inserted or updated, read from the change data feed
  (``jobs.delta.rows_written``), so a day's validation costs what the day wrote. Tables
  without tagged commits or without the feed, and ``ds=None``, are validated whole, as is
  ``item_sids``: only the
  newest codebook version up to ``ds``, whose ``codebook.json`` gives the suite its
  ``K`` per level (codes in range, utilisation; :func:`table_facts`). A table that
  does not exist yet is validated as an empty frame;
* adds the helper columns of :mod:`expectations.derived`, runs the checkpoint
  ``<layer>_<table>_checkpoint`` in the file context ``<home>/gx`` and updates the
  Data Docs at ``<reports_dir>/data_docs/index.html``;
* returns a :class:`ValidationReport`; logs warnings; raises
  :class:`DataQualityError` when any critical expectation failed (after the
  result and Data Docs are written, so the evidence is there to look at);
* is re-runnable: suite, validation definition and checkpoint are stored with
  ``add_or_update`` on every run, so the stored ones always match the code.

CLI: ``python -m expectations.validate --table events --ds 2026-10-03 [--config local]``
prints the summary and exits 1 on a critical failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from typing import TYPE_CHECKING, Any

from conf.settings import Settings
from expectations.context import SITE_NAME, context_lock, data_docs_dir, dataframe_batch_definition, open_context
from expectations.derived import add_derived_columns
from expectations.report import DataQualityError, Failure, ValidationReport, days_label, describe, failures_from
from expectations.suites import build_suite, suite_name
from jobs import delta
from jobs.schemas import BY_TABLE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["DataQualityError", "ValidationReport", "date_partition_column", "main", "validate"]

log = logging.getLogger(__name__)

# Unpartitioned tables validated whole whatever the day: the current codebook's item_sids are
# checked as one codebook (unique tuples, utilisation), which a day's new items alone cannot show.
WHOLE_TABLES = frozenset({"item_sids", "item_sid_mapping"})

# How many unexpected values GX keeps (and row keys we look up) per failed expectation.
PARTIAL_UNEXPECTED = 10


def validate(
    spark: SparkSession, cfg: Settings, table: str, ds: date | None = None, since: date | None = None
) -> ValidationReport:
    """Run ``table``'s suite on its ``ds`` partition; raise :class:`DataQualityError` on critical failures.

    ``since``: validate the date-partitioned table's partitions ``since``..``ds`` as one frame (the
    days a bulk backfill wrote in one pass; every such table's keys hold its date column, so
    uniqueness still means one row per key and day). Other tables are read as without it.
    """
    from pyspark import StorageLevel

    if date_partition_column(table, cfg) is None or ds is None:
        since = None  # only a date-partitioned table has a range of days to read
    name = suite_name(table, cfg)
    facts = table_facts(cfg, table, ds)
    frame = _read(spark, cfg, table, ds, since)
    if facts.get("codebook_version"):  # item_sids: the current codebook's rows only
        frame = frame.where(frame["codebook_version"] == facts["codebook_version"])
    frame = add_derived_columns(frame, table, cfg.item.semantic_ids.levels)
    # GX runs a few dozen Spark jobs over the frame: read the Delta files once, and
    # release the cache afterwards (the GX data source is created with persist=False).
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        row_count, values = _size(frame)
        engine = _engine(cfg, row_count, values)
        # Small partitions (at most pandas_max_rows, checked by _engine): one transfer, then GX's
        # pandas engine (no Spark job per expectation); the column types, which pandas cannot
        # see, are checked on the Spark schema. Anything bigger stays in Spark.
        data = frame.toPandas() if engine == "pandas" else frame
        result = _run_checkpoint(cfg, table, ds, data, engine=engine, facts=facts, since=since)
        wrong_types = _schema_failures(frame, table) if engine == "pandas" else []
        failures = failures_from(result) + wrong_types
        _add_failing_rows(frame, failures, list(cfg.table(table).keys))
    finally:
        frame.unpersist()

    index = data_docs_dir(cfg) / "index.html"
    report = ValidationReport(
        table=table,
        suite=name,
        ds=ds,
        success=bool(result.success) and not wrong_types,
        row_count=row_count,
        engine=engine,
        failures=failures,
        data_docs_path=str(index) if index.exists() else None,
        since=since,
    )
    for failure in report.warnings:
        log.warning("%s: %s", report.where, describe(failure))
    if report.critical:
        log.error("%s: %d critical expectation(s) failed", report.where, len(report.critical))
        raise DataQualityError(report)
    log.info("%s: %s rows valid (success=%s)", report.where, row_count, report.success)
    return report


def _size(frame: DataFrame) -> tuple[int, int]:
    """``(rows, values)`` in one Spark job: values = scalar cells + elements of array/map cells."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, MapType

    nested = [f.name for f in frame.schema if isinstance(f.dataType, ArrayType | MapType)]
    flat = len(frame.columns) - len(nested)
    sizes = [F.sum(F.greatest(F.size(F.col(c)), F.lit(0))) for c in nested]
    row = frame.agg(F.count("*").alias("n"), *[s.alias(f"s{i}") for i, s in enumerate(sizes)]).collect()[0]
    n = int(row["n"])
    return n, n * flat + sum(int(row[f"s{i}"] or 0) for i in range(len(nested)))


def _engine(cfg: Settings, row_count: int, values: int = 0) -> str:
    """``pandas`` for partitions within ``pandas_max_rows`` rows and ``pandas_max_values`` values
    (``auto`` or ``pandas``), else ``spark``.

    The pandas engine needs the whole partition on the driver (``toPandas``), so it is never
    used above the bounds, whatever the config asks: ``engine: pandas`` on a bigger partition
    falls back to Spark with a warning rather than collect an unbounded frame.
    """
    v = cfg.validation
    if v.engine == "spark":
        return "spark"
    if row_count <= v.pandas_max_rows and values <= v.pandas_max_values:
        return "pandas"
    if v.engine == "pandas":
        log.warning(
            "validation.engine=pandas but the partition has %d rows / %d values (bounds %d / %d): using Spark",
            row_count, values, v.pandas_max_rows, v.pandas_max_values,
        )  # fmt: skip
    return "spark"


def _schema_failures(frame: DataFrame, table: str) -> list[Failure]:
    """Spark type mismatches against ``jobs.schemas`` (the pandas engine's type check)."""
    from expectations.report import CRITICAL

    actual = {f.name: type(f.dataType).__name__ for f in frame.schema}
    out: list[Failure] = []
    for f in BY_TABLE[table]:
        expected = type(f.dataType).__name__
        if f.name in actual and actual[f.name] != expected:
            out.append(
                Failure(
                    expectation="expect_column_values_to_be_of_type",
                    column=f.name,
                    severity=CRITICAL,
                    observed={"observed_value": actual[f.name]},
                    expected={"type_": expected},
                )
            )
    return out


def table_facts(cfg: Settings, table: str, ds: date | None) -> dict:
    """What a table's artefacts say about the rows to validate (see ``build_suite``'s ``facts``).

    ``item_sids``: the newest codebook version up to ``ds`` (all versions when ``ds`` is None)
    and its ``k_per_level``, from ``codebook.json``; ``{}`` when there is no codebook yet.
    """
    if table != "item_sids":
        return {}
    from jobs.semantic_ids import codebook_root, codebook_versions
    from models.codebook_io import read_manifest

    versions = codebook_versions(codebook_root(cfg), ds or date.max)
    if not versions:
        return {}
    manifest = read_manifest(codebook_root(cfg) / versions[-1])
    return {"codebook_version": versions[-1], "k_per_level": [int(k) for k in manifest["k_per_level"]]}


def date_partition_column(table: str, cfg: Settings) -> str | None:
    """The table's date-typed partition column (``event_date``, ``ds``), if any."""
    from pyspark.sql.types import DateType

    types = {f.name: f.dataType for f in BY_TABLE[table].fields}
    return next((c for c in cfg.table(table).partition_by if isinstance(types.get(c), DateType)), None)


def _read(spark: SparkSession, cfg: Settings, table: str, ds: date | None, since: date | None = None) -> DataFrame:
    from pyspark.sql import functions as F

    path = cfg.table_path(table)
    if not delta.exists(spark, path):
        log.warning("%s does not exist yet; validating it as empty", path)
    df = delta.read(spark, path, schema=BY_TABLE[table])
    column = date_partition_column(table, cfg)
    if ds is not None and column is not None and since is not None and since < ds:
        log.info("%s: validating partitions %s..%s (a range written in one pass)", table, since, ds)
        return df.where(F.col(column).between(F.lit(since), F.lit(ds)))  # partition filters too
    if ds is not None and column is not None:
        return df.where(F.col(column) == F.lit(ds))  # a partition filter: Delta prunes the other days
    if ds is not None and table not in WHOLE_TABLES and delta.exists(spark, path):
        written = delta.rows_written(spark, path, delta.day_tag(ds), cfg.table(table).keys)
        if written is not None:
            log.info("%s ds=%s: validating the rows the day's commits wrote (change data feed)", table, ds)
            return written
        log.info("%s ds=%s: no tagged commits with a change data feed; validating the whole table", table, ds)
    return df


def _add_failing_rows(frame: DataFrame, failures: list[Failure], keys: list[str]) -> None:
    """Add ``observed["rows"]``: the keys of a few rows holding the unexpected values.

    GX can do this itself (``unexpected_index_column_names``), but then it runs one
    more Spark job per column expectation on every run; this runs only for failures,
    and a value like 0 in a helper flag says little without the row it came from.
    """
    from pyspark.sql import functions as F

    for failure in failures:
        column, values = failure["column"], failure["observed"].get("partial_unexpected_list")
        if not keys or not values or column is None or column in keys or column not in frame.columns:
            continue
        try:
            present = list(dict.fromkeys(v for v in values if v is not None))
            condition = F.col(column).isin(present) if present else F.lit(False)
            if None in values:
                condition = condition | F.col(column).isNull()
            rows = frame.where(condition).select(*keys).limit(PARTIAL_UNEXPECTED).collect()
        except Exception as exc:  # evidence is best effort; the failure itself stands
            log.debug("could not look up rows for %s: %s", column, exc)
            continue
        failure["observed"]["rows"] = [{k: _plain(v) for k, v in row.asDict().items()} for row in rows]


def _plain(value: Any) -> Any:
    """JSON-friendly key values (dates as ISO strings) for XCom and the message."""
    return value.isoformat() if isinstance(value, date) else value


def _run_checkpoint(
    cfg: Settings,
    table: str,
    ds: date | None,
    frame: Any,
    engine: str = "spark",
    facts: dict | None = None,
    since: date | None = None,
) -> Any:
    """Store suite/validation definition/checkpoint (add_or_update), run, return the suite's result."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    name = suite_name(table, cfg)
    with context_lock(cfg):
        context = open_context(cfg)
        validation = gx.ValidationDefinition(
            name=name,
            data=dataframe_batch_definition(context, name, engine),
            suite=build_suite(table, cfg, engine, facts),
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{name}_checkpoint",
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE_NAME])],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED},
            )
        )
        run_name = f"{name} ds={days_label(ds, since)}" if ds else f"{name} whole table"
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name))
    (suite_result,) = result.run_results.values()
    return suite_result


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (1 on a critical failure)."""
    parser = argparse.ArgumentParser(prog="python -m expectations.validate", description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="logical table name, e.g. events")
    parser.add_argument("--ds", type=date.fromisoformat, default=None, help="partition date (YYYY-MM-DD)")
    parser.add_argument(
        "--since", type=date.fromisoformat, default=None,
        help="first day of a range of partitions to validate as one (with --ds, its last; e.g. a bulk backfill's)",
    )  # fmt: skip
    parser.add_argument("--config", default=None, help="conf/<name>.yaml (default $ONEREC_CONFIG or local)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from conf import load_settings
    from jobs.spark import get_spark

    cfg = load_settings(args.config, args.overrides)
    spark = get_spark(cfg)
    try:
        report = validate(spark, cfg, args.table, args.ds, args.since)
    except DataQualityError as err:
        print(err.report.summary())
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

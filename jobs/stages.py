"""What each Airflow task calls: one function per stage, ``(ds, run_conf) -> small dict``.

The DAG stays wiring only. ``run_conf`` is the DAG run's conf: ``config`` (a conf
name or path) and ``set`` (a list of ``key=value`` overrides), so one DAG file
runs the sample, another dataset or the cluster config without edits.
XCom carries these small dicts (counts, paths), never data.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from conf.settings import Settings, load_settings
from jobs.stage_report import write_stage_json

log = logging.getLogger(__name__)


def settings_for_run(run_conf: dict[str, Any] | None) -> Settings:
    """Settings named by a DAG run's conf (default: $ONEREC_CONFIG or local)."""
    run_conf = run_conf or {}
    return load_settings(run_conf.get("config"), list(run_conf.get("set", [])))


def _day(ds: str | date) -> date:
    return ds if isinstance(ds, date) else date.fromisoformat(str(ds)[:10])


def _tags_commits(stage: Callable[..., dict]) -> Callable[..., dict]:
    """Run ``stage`` with every Delta commit it makes tagged ``onerec ds=<ds>``.

    Validation then reads what the day wrote to an unpartitioned table from the change data
    feed of those commits (``jobs.delta.rows_written``), not the whole table.
    """

    @functools.wraps(stage)
    def tagged(ds: str, run_conf: dict | None = None, *args: Any, **kwargs: Any) -> dict:
        from jobs import delta
        from jobs.spark import get_spark

        spark = get_spark(settings_for_run(run_conf))
        with delta.commit_tag(spark, delta.day_tag(_day(ds))):
            return stage(ds, run_conf, *args, **kwargs)

    return tagged


def _written_by_bulk(stage: Callable[..., dict]) -> Callable[..., dict]:
    """Skip a data stage on the last day of a bulk backfill that just wrote it.

    ``dags.runner`` runs ``onerec_daily`` once on END after ``jobs.backfill`` and says so in
    the run conf (``bulk``: the range). The bulk pass wrote END's rows of this stage (tested
    equal to the daily stage's, tests/jobs/test_backfill.py), so running the stage again would
    rewrite the same rows; instead its books for the range (``backfill.json``) become the stage's
    JSON, which the run report reads. Without that conf or that file the stage runs as always.
    """

    @functools.wraps(stage)
    def maybe(ds: str, run_conf: dict | None = None, *args: Any, **kwargs: Any) -> dict:
        books = bulk_books(run_conf, ds, stage.__name__)
        if books is None:
            return stage(ds, run_conf, *args, **kwargs)
        cfg, day = settings_for_run(run_conf), _day(ds)
        payload = {**books, "written_by": f"bulk backfill {run_conf['bulk']['start']}..{day}"}
        write_stage_json(cfg, day, stage.__name__, payload)
        log.info("%s ds=%s skipped: %s wrote it", stage.__name__, day, payload["written_by"])
        return {"ds": day.isoformat(), "skipped": payload["written_by"]}

    return maybe


def bulk_range(run_conf: dict | None, ds: str | date) -> tuple[date, date] | None:
    """``(start, end)`` of the bulk pass this run follows on ``ds`` (its last day), else None."""
    bulk = (run_conf or {}).get("bulk") or {}
    if bulk.get("end") != _day(ds).isoformat() or not bulk.get("start"):
        return None
    return _day(bulk["start"]), _day(ds)


def bulk_books(run_conf: dict | None, ds: str | date, stage: str) -> dict | None:
    """The bulk pass's books of ``stage`` when this run is the daily run right after it on ``ds``."""
    from jobs.stage_report import day_report_dir

    if bulk_range(run_conf, ds) is None:
        return None
    path = day_report_dir(settings_for_run(run_conf), _day(ds)) / "backfill.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get(stage)


@_written_by_bulk
@_tags_commits
def ingest(ds: str, run_conf: dict | None = None) -> dict:
    """Raw files of ``ds`` -> bronze events/items/users + quarantine."""
    from jobs import ingest as job

    return job.run(settings_for_run(run_conf), _day(ds))


@_written_by_bulk
@_tags_commits
def sequences(ds: str, run_conf: dict | None = None) -> dict:
    """bronze.events[ds] -> silver.user_events[ds] + silver.user_state[last_date=ds] -> gold.user_features[ds]."""
    from jobs import sequences as job

    return job.run(settings_for_run(run_conf), _day(ds))


@_written_by_bulk
@_tags_commits
def item_pairs(ds: str, run_conf: dict | None = None, if_missing: bool = False) -> dict:
    """silver.user_events (trailing window) -> gold.item_pairs[ds] (Swing / cosine, top-k per item).

    ``if_missing`` (the weekly DAG): keep the day's partition when the daily run already wrote it;
    the daily run owns it (a re-run of the day rewrites it), the weekly only needs it to exist.
    """
    from pyspark.sql import functions as F

    from jobs import delta
    from jobs import item_pairs as job
    from jobs.spark import get_spark

    cfg, day = settings_for_run(run_conf), _day(ds)
    path = cfg.table_path("item_pairs")
    if if_missing and delta.exists(get_spark(cfg), path):
        rows = delta.read(get_spark(cfg), path).where(F.col("ds") == F.lit(day).cast("date")).count()
        if rows:
            log.info("item_pairs ds=%s skipped: the partition holds %d rows (the daily run wrote it)", day, rows)
            return {"ds": day.isoformat(), "skipped": f"the daily run wrote the partition ({rows} rows)"}
    return job.run(cfg, day)


@_tags_commits
def item_alignment(ds: str, run_conf: dict | None = None, retrain: bool = False) -> dict:
    """Train the content->behaviour alignment model (a new embedding version) only when needed.

    Daily (``retrain=False``): trains only when no model version of the current embedding config
    exists up to ``ds``; otherwise it is skipped and the reason logged (the weekly DAG retrains).
    A new model version defines a new embedding space, so training re-embeds the whole catalogue
    (``item_embeddings`` full mode); the daily ``item_embeddings`` task then finds nothing new.
    """
    from jobs import item_embeddings as job

    cfg, day = settings_for_run(run_conf), _day(ds)
    existing = job.current_version(job.artifacts_root(cfg), day, job.config_fingerprint(cfg))
    if existing and not retrain:
        reason = f"alignment model {existing} exists for this config; the weekly DAG retrains it"
        log.info("item_alignment ds=%s skipped: %s", day, reason)
        report = {"ds": day.isoformat(), "skipped": reason, "model_version": existing}
    else:
        report = job.run(cfg, day, mode="full")
    # The embeddings job's own JSON is rewritten by the daily item_embeddings task: keep this one apart.
    write_stage_json(cfg, day, "item_alignment", report)
    return json.loads(json.dumps(report, default=str))


@_tags_commits
def item_embeddings(ds: str, run_conf: dict | None = None) -> dict:
    """New, changed and newly-warm items -> gold.item_embeddings (MERGE), with the current model version."""
    from jobs import item_embeddings as job

    return job.run(settings_for_run(run_conf), _day(ds), mode="incremental")


@_tags_commits
def semantic_ids(ds: str, run_conf: dict | None = None, mode: str = "auto") -> dict:
    """gold.item_embeddings -> gold.item_sids: daily ``auto`` encodes new items with the current codebook
    (a full fit when there is none, or the embeddings moved to a new model version); weekly ``full``."""
    from jobs import semantic_ids as job

    return job.run(settings_for_run(run_conf), _day(ds), mode=mode)


@_tags_commits
def lifelong(ds: str, run_conf: dict | None = None) -> dict:
    """silver.user_events up to ds (the day's users) -> gold.user_lifelong_compressed[ds] (<= N representatives).

    Right after a bulk backfill (run conf ``bulk`` ending on ds) the range's users get theirs as of
    each of their last active days instead (``jobs.lifelong.run_bulk``): the training rows of ds
    read those, not ds's.
    """
    from jobs import lifelong as job

    cfg = settings_for_run(run_conf)
    if bulk := bulk_range(run_conf, ds):
        return job.run_bulk(cfg, *bulk)
    return job.run(cfg, _day(ds))


@_written_by_bulk
@_tags_commits
def item_stats(ds: str, run_conf: dict | None = None) -> dict:
    """bronze.events[ds] + the running totals -> gold.item_stats[ds] for the items with events on ``ds``."""
    from jobs import item_stats as job

    return job.run(settings_for_run(run_conf), _day(ds))


@_tags_commits
def maintenance(ds: str, run_conf: dict | None = None) -> dict:
    """OPTIMIZE (Z-order), deletion-vector purge and VACUUM of the big tables; figures -> maintenance.json."""
    from jobs import maintenance as job

    return job.run(settings_for_run(run_conf), _day(ds))


def feast_apply(ds: str, run_conf: dict | None = None) -> dict:
    """Register the Feast repo (idempotent); the plan of what changed is logged and returned."""
    from jobs import feature_store

    return feature_store.apply(settings_for_run(run_conf))


def feast_materialize(ds: str, run_conf: dict | None = None) -> dict:
    """Materialise the day into the online store and check online == gold (skipped for days older than online;
    every entity's latest row on the day a bulk backfill ends)."""
    from jobs import feature_store

    # Right after a bulk backfill (run conf ``bulk``) the earlier days' entities are not online yet:
    # every entity's latest row as of the day goes online, as a day-by-day replay would leave it.
    full = bulk_books(run_conf, ds, "ingest") is not None
    report = feature_store.materialize_day(settings_for_run(run_conf), _day(ds), full=full)
    return json.loads(json.dumps(report, default=str))


@_tags_commits
def training_examples(ds: str, run_conf: dict | None = None) -> dict:
    """History as of ``ds`` -> gold.training_examples[protocol, ds]."""
    from jobs import training_examples as job

    cfg, day = settings_for_run(run_conf), _day(ds)
    if bulk_books(run_conf, day, "training_examples") is not None:  # the bulk pass wrote the examples
        if not cfg.model.pathways.from_feature_store:
            return {"ds": day.isoformat(), "skipped": "written by the bulk backfill"}
        from jobs import training_features

        return {"ds": day.isoformat(), "features": training_features.run(cfg, day)["rows"]}
    return job.run(cfg, day)


def validate(tables: list[str], ds: str, run_conf: dict | None = None) -> dict:
    """Run the GX checkpoint of each table for ``ds`` (a bulk backfill's range after one); raises on a critical failure."""
    from expectations.validate import DataQualityError
    from expectations.validate import validate as run_validation
    from jobs.spark import get_spark

    cfg = settings_for_run(run_conf)
    spark = get_spark(cfg)
    results: dict[str, dict] = {}
    # After a bulk backfill ending on ds, the date-partitioned tables hold the whole range written
    # in one pass and never validated day by day: their checkpoints cover the range.
    bulk = bulk_range(run_conf, ds)
    since = bulk[0] if bulk else None

    def record(report) -> None:
        results[report.table] = {
            "success": report.success,  # GX's: every expectation met, warnings included
            "rows": report.row_count,
            "failures": len(report.failures),
            "critical": len(report.critical),
            "warnings": len(report.warnings),
        }
        if report.since:  # a range's rows, not one day's
            results[report.table]["since"] = report.since.isoformat()

    try:
        for table in tables:
            record(run_validation(spark, cfg, table, _day(ds), since=since))
    except DataQualityError as error:  # the verdict is kept for the run summary, then the task fails
        record(error.report)
        raise
    finally:
        write_stage_json(cfg, _day(ds), f"validation_{'_'.join(tables)}", results)
    return results


def report(ds: str, run_conf: dict | None = None) -> dict:
    """Write the day's run report (HTML + JSON) and return its path."""
    from jobs import run_report

    return {"report": str(run_report.run(settings_for_run(run_conf), _day(ds)))}

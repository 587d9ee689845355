"""What each Airflow task calls: one function per stage, ``(ds, run_conf) -> small dict``.

The DAG stays wiring only. ``run_conf`` is the DAG run's conf: ``config`` (a conf
name or path) and ``set`` (a list of ``key=value`` overrides), so one DAG file
runs the sample, another dataset or the cluster config without edits.
XCom carries these small dicts (counts, paths), never data.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from conf.settings import Settings, load_settings


def settings_for_run(run_conf: dict[str, Any] | None) -> Settings:
    """Settings named by a DAG run's conf (default: $ONEREC_CONFIG or local)."""
    run_conf = run_conf or {}
    return load_settings(run_conf.get("config"), list(run_conf.get("set", [])))


def _day(ds: str | date) -> date:
    return ds if isinstance(ds, date) else date.fromisoformat(str(ds)[:10])


def ingest(ds: str, run_conf: dict | None = None) -> dict:
    """Raw files of ``ds`` -> bronze events/items/users + quarantine."""
    from jobs import ingest as job

    return job.run(settings_for_run(run_conf), _day(ds))


def sequences(ds: str, run_conf: dict | None = None) -> dict:
    """bronze.events[ds] -> silver.user_history (MERGE) -> gold.user_features[ds]."""
    from jobs import sequences as job

    return job.run(settings_for_run(run_conf), _day(ds))


def feast_apply(ds: str, run_conf: dict | None = None) -> dict:
    """Register the Feast repo (idempotent); the plan of what changed is logged and returned."""
    from jobs import feature_store

    return feature_store.apply(settings_for_run(run_conf))


def feast_materialize(ds: str, run_conf: dict | None = None) -> dict:
    """Materialise the day into the online store and check online == gold (skipped for days older than online)."""
    from jobs import feature_store

    report = feature_store.materialize_day(settings_for_run(run_conf), _day(ds))
    return json.loads(json.dumps(report, default=str))


def training_examples(ds: str, run_conf: dict | None = None) -> dict:
    """History as of ``ds`` -> gold.training_examples[protocol, ds]."""
    from jobs import training_examples as job

    return job.run(settings_for_run(run_conf), _day(ds))


def validate(tables: list[str], ds: str, run_conf: dict | None = None) -> dict:
    """Run the GX checkpoint of each table for ``ds``; raises on a critical failure."""
    from expectations.validate import validate as run_validation
    from jobs.spark import get_spark

    cfg = settings_for_run(run_conf)
    spark = get_spark(cfg)
    results = {}
    for table in tables:
        report = run_validation(spark, cfg, table, _day(ds))
        results[table] = {"success": report.success, "rows": report.row_count, "failures": len(report.failures)}
    out = Path(cfg.resolve(cfg.reports_dir)) / "runs" / _day(ds).isoformat() / f"validation_{'_'.join(tables)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results


def report(ds: str, run_conf: dict | None = None) -> dict:
    """Write the day's run report (HTML + JSON) and return its path."""
    from jobs import run_report

    return {"report": str(run_report.run(settings_for_run(run_conf), _day(ds)))}

"""End to end: onerec_daily through real Airflow (dag.test on SQLite) on the tiny sample.

Checks every table the DAG writes, the ingest books (raw = accepted + quarantined),
that a re-run of a day changes no row, and that the run report renders.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs import delta

pytestmark = pytest.mark.slow

TABLES = ("events", "items", "users", "quarantine", "user_history", "user_features", "training_examples")


@pytest.fixture(scope="module")
def daily_run(tiny_cfg, spark):
    from dags.runner import ensure_sample, prepare_airflow, run_days

    prepare_airflow(tiny_cfg)
    ensure_sample(tiny_cfg)
    manifest = json.loads((Path(tiny_cfg.resolve(tiny_cfg.source.path)) / "MANIFEST.json").read_text())
    start = tiny_cfg.sample.start_date
    days = [start, start + timedelta(days=1)]
    run_conf = {"config": "tiny", "set": [f"home={tiny_cfg.home}"]}
    results = run_days(tiny_cfg, days, run_conf)
    return {"days": days, "results": results, "run_conf": run_conf, "manifest": manifest}


def _plain(value):
    """Rows as JSON-able values; map keys (dates) become strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _snapshot(spark, cfg):
    """Every table as a sorted list of canonical JSON rows."""
    return {
        name: sorted(
            json.dumps(_plain(r.asDict(recursive=True)), sort_keys=True, default=str)
            for r in delta.read(spark, cfg.table_path(name)).collect()
        )
        for name in TABLES
    }


def test_every_day_succeeds_and_every_table_is_written(daily_run, tiny_cfg, spark):
    assert [state for _, state in daily_run["results"]] == ["success", "success"]
    for name in TABLES:
        assert delta.exists(spark, tiny_cfg.table_path(name)), name
    day1 = daily_run["days"][1]
    events = delta.read(spark, tiny_cfg.table_path("events"))
    assert events.select("event_date").distinct().count() == 2
    feats = delta.read(spark, tiny_cfg.table_path("user_features")).where(F.col("ds") == F.lit(day1))
    active = events.where(F.col("event_date") == F.lit(day1)).select("user_id").distinct().count()
    assert feats.count() == active > 0
    history = delta.read(spark, tiny_cfg.table_path("user_history"))
    assert history.count() == events.select("user_id").distinct().count()
    total = history.select(F.sum(F.size("events"))).first()[0]
    assert total == events.count()
    te = delta.read(spark, tiny_cfg.table_path("training_examples")).where(F.col("ds") == F.lit(day1))
    assert {r.protocol for r in te.select("protocol").distinct().collect()} <= {"next_day", "leave_one_out"}


def test_ingest_books_balance_and_broken_rows_are_quarantined(daily_run, tiny_cfg, spark):
    reports = Path(tiny_cfg.resolve(tiny_cfg.reports_dir)) / "runs"
    quarantine = delta.read(spark, tiny_cfg.table_path("quarantine")).where(F.col("source_table") == "events")
    for day in daily_run["days"]:
        books = json.loads((reports / day.isoformat() / "ingest.json").read_text())["events"]
        assert books["raw"] == books["accepted"] + books["quarantined"]
        landing = f"/ds={day.isoformat()}/"
        lines = Path(tiny_cfg.resolve(tiny_cfg.source.path), "interactions", f"ds={day.isoformat()}", "part-0.csv")
        raw_rows = len(lines.read_text().splitlines()) - 1  # header
        assert books["raw"] == raw_rows
        assert quarantine.where(F.col("source_file").contains(landing)).count() == books["quarantined"]
        assert books["quarantined"] >= tiny_cfg.sample.broken_rows_per_day
    assert quarantine.where(F.col("reason") == "").count() == 0


def test_rerunning_a_day_changes_no_row(daily_run, tiny_cfg, spark):
    from dags.runner import run_days

    before = _snapshot(spark, tiny_cfg)
    results = run_days(tiny_cfg, daily_run["days"][:1], daily_run["run_conf"])
    assert [s for _, s in results] == ["success"]
    after = _snapshot(spark, tiny_cfg)
    for name in TABLES:
        assert after[name] == before[name], f"{name} changed on re-run"


def test_online_store_matches_the_gold_table(daily_run, tiny_cfg):
    """The DAG materialised the last day and its own check compared online with gold."""
    from jobs import feature_store

    report = feature_store.check_online(tiny_cfg, daily_run["days"][-1])
    assert report  # raises OnlineMismatch on any difference
    assert (tiny_cfg.home_path / "feast").is_dir()


def test_run_report_and_data_docs_exist(daily_run, tiny_cfg):
    reports = Path(tiny_cfg.resolve(tiny_cfg.reports_dir))
    page = reports / "runs" / daily_run["days"][1].isoformat() / "index.html"
    html = page.read_text()
    assert "raw rows =" in html and "<img" in html
    assert (reports / "data_docs" / "index.html").exists()

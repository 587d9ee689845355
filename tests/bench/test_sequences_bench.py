"""bench.sequences at a tiny size: the report has every figure, the timings are sane, the engines agree."""

from __future__ import annotations

import json

from bench.sequences import duckdb_flags_sql, duckdb_positive_sql, main
from conf.settings import PositiveRule

TIMINGS = (
    "setup_s",
    "spark_full_rebuild_s",
    "spark_history_only_s",
    "spark_incremental_day_s",
    "duckdb_full_s",
    "duckdb_incremental_day_s",
)
RATIOS = (
    "incremental_over_full",
    "spark_full_events_per_s",
    "spark_full_over_duckdb_full",
    "spark_history_only_over_duckdb_full",
    "spark_incremental_over_duckdb_incremental",
)


def test_duckdb_rule_follows_the_config():
    rule = PositiveRule(min_rating=3.5, min_play_ratio=None, signals=("like",), dislike_vetoes=False)
    sql = duckdb_positive_sql(rule)
    assert "3.5" in sql and "play_seconds" not in sql and '"like"' in sql and "dislike" not in sql
    assert "16" in duckdb_flags_sql() and '"share" = 1 THEN 8' in duckdb_flags_sql()


def test_tiny_run_writes_a_sane_report(spark, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [
        "--events",
        "20000",
        "--days",
        "5",
        "--no-ml100k",
        "--no-warm-up",
        "--out",
        str(out),
        "--work-dir",
        str(work),
    ]
    assert main(argv) == 0

    report = json.loads((out / "sequences.json").read_text())
    assert {"machine", "sizes", "ml100k", "memory_lifetime", "command"} <= report.keys()
    assert report["ml100k"] == {"skipped": "disabled"}
    (size,) = report["sizes"]
    assert size["events"] == 20000 and size["days"] == 5 and size["users"] == 1000 and size["items"] == 200
    for key in TIMINGS:
        assert size[key] > 0, key
    for key in RATIOS:
        assert size[key] is not None and size[key] > 0, key
    assert 0 < size["last_day_events"] < 20000 and size["last_day_active_users"] > 0

    checks = size["checks"]
    assert checks["duckdb_events_eq_spark"] is True
    assert checks["spark_counts"]["events"] == checks["duckdb_counts"]["events"] == 20000
    assert checks["duckdb_counts_eq_spark"] is True
    assert checks["full_eq_incremental_active"] is True
    assert checks["full_eq_incremental_checksum"] is True
    assert checks["duckdb_full_eq_incremental"] is True

    phases = size["phases"]
    assert {"spark_full_rebuild", "spark_incremental_day", "duckdb_full", "duckdb_incremental_day"} <= phases.keys()
    # the lifelong assembly jobs.lifelong does, timed apart: every event of the day's users, capped
    assert phases["spark_lifelong_assembly"]["items"] > 0 and size["spark_lifelong_assembly_s"] > 0
    assert phases["spark_incremental_day"]["state_write"]["operation"] == "WRITE"  # an append, no MERGE
    assert all(p["wall_s"] > 0 for p in phases.values())
    # The temp state is removed unless --keep; only the (empty) parent folder stays.
    assert list(work.iterdir()) == []

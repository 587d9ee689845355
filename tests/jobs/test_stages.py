"""jobs/stages.py: the item-side decisions the DAG tasks make (no Spark)."""

from __future__ import annotations

from datetime import date

import pytest

from jobs import item_embeddings, stages

DS = date(2026, 10, 8)


@pytest.fixture
def run_conf(tmp_path):
    return {"config": "tiny", "set": [f"home={tmp_path}"]}


@pytest.fixture
def full_runs(monkeypatch):
    """Records item_embeddings.run calls instead of running them."""
    calls = []
    monkeypatch.setattr(item_embeddings, "run", lambda cfg, ds, mode="auto": calls.append((ds, mode)) or {"mode": mode})
    return calls


def _write_version(run_conf, day: date) -> str:
    cfg = stages.settings_for_run(run_conf)
    version = item_embeddings.version_for(day, item_embeddings.config_fingerprint(cfg))
    vdir = item_embeddings.artifacts_root(cfg) / version
    vdir.mkdir(parents=True)
    (vdir / item_embeddings.MANIFEST).write_text("{}")
    return version


def test_alignment_trains_only_when_no_model_exists(run_conf, full_runs, caplog):
    assert stages.item_alignment(DS.isoformat(), run_conf) == {"mode": "full"}
    assert full_runs == [(DS, "full")]

    version = _write_version(run_conf, date(2026, 10, 1))
    caplog.set_level("INFO", logger="jobs.stages")
    report = stages.item_alignment(DS.isoformat(), run_conf)
    assert report["skipped"].startswith(f"alignment model {version} exists") and full_runs == [(DS, "full")]
    assert "item_alignment ds=2026-10-08 skipped" in caplog.text


def test_weekly_retrains_even_when_a_model_exists(run_conf, full_runs):
    _write_version(run_conf, date(2026, 10, 1))
    stages.item_alignment(DS.isoformat(), run_conf, retrain=True)
    assert full_runs == [(DS, "full")]


def test_a_model_from_a_later_day_does_not_count_for_a_backfill(run_conf, full_runs):
    _write_version(run_conf, date(2026, 10, 9))
    stages.item_alignment(DS.isoformat(), run_conf)
    assert full_runs == [(DS, "full")]

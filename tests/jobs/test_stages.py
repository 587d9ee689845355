"""jobs/stages.py: the item-side decisions the DAG tasks make (no Spark)."""

from __future__ import annotations

import json
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


# ---- the daily run right after a bulk backfill ------------------------------------------
@pytest.fixture
def bulk_books(run_conf):
    """backfill.json of a bulk pass 2026-10-01..DS, as jobs.backfill.run writes it."""
    from jobs.stage_report import write_stage_json

    books = {"ingest": {"events": {"raw": 12, "accepted": 10, "quarantined": 2}}, "sequences": {"user_days": 7},
             "item_pairs": {"rows": 30}, "item_stats": {"item_days": 9}, "training_examples": {"next_day": 4}}  # fmt: skip
    write_stage_json(stages.settings_for_run(run_conf), DS, "backfill", {"start": "2026-10-01", **books})
    return books


@pytest.fixture
def ran(monkeypatch):
    """The data jobs the stages would run, recorded instead of run (no Spark)."""
    import contextlib

    from jobs import delta, ingest, item_pairs, item_stats, sequences, training_examples, training_features

    calls = []
    for module in (ingest, sequences, item_pairs, item_stats, training_examples, training_features):
        name = module.__name__.rsplit(".", 1)[1]
        monkeypatch.setattr(module, "run", lambda cfg, ds, *a, _n=name, **k: calls.append(_n) or {"rows": _n})
    monkeypatch.setattr("jobs.spark.get_spark", lambda cfg: None)
    monkeypatch.setattr(delta, "commit_tag", lambda spark, tag: contextlib.nullcontext())
    return calls


def test_the_day_a_bulk_pass_wrote_skips_its_data_stages_and_keeps_their_books(run_conf, bulk_books, ran):
    from jobs.stage_report import day_report_dir

    conf = {**run_conf, "bulk": {"start": "2026-10-01", "end": DS.isoformat()}}
    for stage in (stages.ingest, stages.sequences, stages.item_pairs, stages.item_stats):
        out = stages.__dict__[stage.__name__](DS.isoformat(), conf)
        assert out == {"ds": DS.isoformat(), "skipped": f"bulk backfill 2026-10-01..{DS}"}
    # training_examples: the examples are the bulk pass's; only their feature-store rows are built
    assert stages.training_examples(DS.isoformat(), conf) == {"ds": DS.isoformat(), "features": "training_features"}
    assert ran == ["training_features"]
    written = json.loads((day_report_dir(stages.settings_for_run(run_conf), DS) / "ingest.json").read_text())
    assert written["events"] == bulk_books["ingest"]["events"] and written["written_by"].startswith("bulk backfill")


def test_other_days_and_runs_without_the_bulk_conf_run_every_stage(run_conf, bulk_books, ran):
    other = {**run_conf, "bulk": {"start": "2026-10-01", "end": "2026-10-07"}}  # a different END
    for conf in (run_conf, other):
        stages.ingest(DS.isoformat(), conf)
        stages.training_examples(DS.isoformat(), conf)
    assert ran == ["ingest", "training_examples"] * 2  # training_examples.run builds its features itself


def test_the_daily_run_after_a_bulk_pass_puts_every_entity_online(run_conf, bulk_books, monkeypatch):
    from jobs import feature_store

    calls = []
    monkeypatch.setattr(feature_store, "materialize_day", lambda cfg, ds, full=False: calls.append((ds, full)) or {})
    stages.feast_materialize(DS.isoformat(), {**run_conf, "bulk": {"start": "2026-10-01", "end": DS.isoformat()}})
    stages.feast_materialize(DS.isoformat(), run_conf)
    assert calls == [(DS, True), (DS, False)]  # the whole TTL window after the pass; the day's rows otherwise


def test_the_daily_run_after_a_bulk_pass_compresses_the_ranges_last_days(run_conf, ran, monkeypatch):
    from jobs import lifelong

    calls = []
    monkeypatch.setattr(lifelong, "run", lambda cfg, ds: calls.append(("day", ds)) or {})
    monkeypatch.setattr(lifelong, "run_bulk", lambda cfg, start, end: calls.append(("bulk", start, end)) or {})
    bulk = {"start": "2026-10-01", "end": DS.isoformat()}
    stages.lifelong(DS.isoformat(), {**run_conf, "bulk": bulk})
    stages.lifelong(DS.isoformat(), {**run_conf, "bulk": {**bulk, "end": "2026-10-07"}})  # another END
    stages.lifelong(DS.isoformat(), run_conf)
    assert calls == [("bulk", date(2026, 10, 1), DS), ("day", DS), ("day", DS)]


def test_weekly_item_pairs_keep_the_partition_the_daily_run_wrote(run_conf, spark, monkeypatch):
    from jobs import delta
    from jobs import item_pairs as job

    calls = []
    monkeypatch.setattr(job, "run", lambda cfg, ds: calls.append(ds) or {"rows": 1})
    cfg = stages.settings_for_run(run_conf)
    rows = spark.createDataFrame([(DS, "i1", "i2", 0.5)], "ds date, item_id string, other_item_id string, score double")
    delta.overwrite(rows, cfg.table_path("item_pairs"), ["ds"])

    out = stages.item_pairs(DS.isoformat(), run_conf, if_missing=True)
    assert out["skipped"] == "the daily run wrote the partition (1 rows)" and calls == []
    stages.item_pairs("2026-10-09", run_conf, if_missing=True)  # no partition yet: computed
    stages.item_pairs(DS.isoformat(), run_conf)  # the daily run always computes its day
    assert calls == [date(2026, 10, 9), DS]

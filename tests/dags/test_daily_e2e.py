"""End to end: onerec_daily through real Airflow (dag.test on SQLite) on the tiny sample.

The run itself is the session fixture ``daily_run`` (tests/conftest.py), shared with the
report-in-a-browser and cluster tests. Checks every table the DAG writes, the ingest books
(raw = accepted + quarantined), that a re-run of a day changes no row, and that the run
report renders. Item side: every catalogue item gets a finite unit embedding and a unique
semantic ID, items arriving on the second day are encoded with the first day's codebook
while the first day's items keep their IDs (the day-1 lake copy is the "before"), and the
item views are online. The item settings are made cheap (``CHEAP_ITEM_SIDE``) to keep the run short.
"""

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs import delta

pytestmark = pytest.mark.slow

TABLES = (
    "events",
    "items",
    "users",
    "quarantine",
    "user_events",
    "user_state",
    "user_features",
    "training_examples",
    "item_pairs",
    "item_embeddings",
    "item_sids",
    "user_lifelong_compressed",
    "item_stats",
)


def _sids(spark, cfg) -> dict[str, tuple[str, tuple[int, ...]]]:
    if not delta.exists(spark, cfg.table_path("item_sids")):
        return {}
    rows = delta.read(spark, cfg.table_path("item_sids")).collect()
    return {r.item_id: (r.codebook_version, tuple(r.codes)) for r in rows}


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
    from jobs.user_history import current_state

    state = current_state(delta.read(spark, tiny_cfg.table_path("user_state")))
    assert state.count() == events.select("user_id").distinct().count()
    assert state.select(F.sum("n_events")).first()[0] == events.count()
    chunks = delta.read(spark, tiny_cfg.table_path("user_events"))
    assert chunks.select(F.sum(F.size("events"))).first()[0] == events.count()
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
    from models.registry import registry_for

    registry = registry_for(tiny_cfg)
    before, champion = _snapshot(spark, tiny_cfg), registry.get("champion")
    versions = registry.versions()
    results = run_days(tiny_cfg, daily_run["days"][:1], daily_run["run_conf"])
    assert [s for _, s in results] == ["success"]
    after = _snapshot(spark, tiny_cfg)
    for name in TABLES:
        assert after[name] == before[name], f"{name} changed on re-run"
    # The model side too: the same day's candidate is the same version, and the champion stays.
    assert registry.versions() == versions
    assert registry.get("champion").version == champion.version


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


def test_every_item_has_a_unit_embedding_and_a_unique_semantic_id(daily_run, tiny_cfg, spark):
    import numpy as np

    day1 = daily_run["days"][1]
    events = delta.read(spark, tiny_cfg.table_path("events")).select("item_id").distinct()
    items = delta.read(spark, tiny_cfg.table_path("items")).select("item_id")
    catalogue = {r.item_id for r in events.union(items).distinct().collect()}
    emb = {r.item_id: r.embedding for r in delta.read(spark, tiny_cfg.table_path("item_embeddings")).collect()}
    assert set(emb) == catalogue
    norms = np.linalg.norm(np.array(list(emb.values()), dtype=np.float64), axis=1)
    assert np.all(np.isfinite(norms)) and np.allclose(norms, 1.0, atol=1e-3)

    sids = _sids(spark, tiny_cfg)
    assert set(sids) == catalogue
    assert len({v for v in sids.values()}) == len(sids)  # one tuple per item (within the version)
    assert len({version for version, _ in sids.values()}) == 1  # daily runs never refit
    assert delta.read(spark, tiny_cfg.table_path("item_pairs")).where(F.col("ds") == F.lit(day1)).count() > 0
    stats = delta.read(spark, tiny_cfg.table_path("item_stats")).where(F.col("ds") == F.lit(day1))
    active = delta.read(spark, tiny_cfg.table_path("events")).where(F.col("event_date") == F.lit(day1))
    assert stats.count() == active.select("item_id").distinct().count()
    lifelong = delta.read(spark, tiny_cfg.table_path("user_lifelong_compressed")).where(F.col("ds") == F.lit(day1))
    assert lifelong.count() == active.select("user_id").distinct().count()


def test_new_items_are_encoded_and_existing_ids_stay(daily_run, tiny_cfg, spark):
    before, after = _sids(spark, daily_run["day1_cfg"]), _sids(spark, tiny_cfg)
    assert before and {k: after[k] for k in before} == before
    new = set(after) - set(before)
    reports = Path(tiny_cfg.resolve(tiny_cfg.reports_dir)) / "runs" / daily_run["days"][1].isoformat()
    stage = json.loads((reports / "semantic_ids.json").read_text())
    assert stage["mode"] == "encode" and stage.get("new_items", 0) == len(new)
    page = (reports / "index.html").read_text()
    assert 'id="codebook"' in page and "new items encoded today" in page


def test_item_features_are_online(daily_run, tiny_cfg, spark):
    from jobs import feature_store

    store = feature_store.get_store(tiny_cfg)
    sids = _sids(spark, tiny_cfg)
    some = sorted(sids)[:3]
    online = store.get_online_features(
        features=["item_sids:codes", "item_embeddings:embedding_source"], entity_rows=[{"item_id": i} for i in some]
    ).to_dict()
    assert online["codes"] == [list(sids[i][1]) for i in some]


def test_models_are_trained_aligned_and_promoted(daily_run, tiny_cfg):
    """Day 1's candidate is the first champion; day 2 continues from it and the gates decide."""
    from models.registry import registry_for

    first, second = daily_run["promotions"]
    assert first["promoted"] is True and first["champion_before"] is None
    assert second["champion_before"] == first["champion_after"] and second["gates"]
    assert second["champion_after"] == (second["candidate"] if second["promoted"] else first["champion_after"])
    champion = registry_for(tiny_cfg).get("champion")
    assert champion is not None and champion.version == second["champion_after"]
    assert (champion.path / "items").is_dir()
    page = Path(tiny_cfg.resolve(tiny_cfg.reports_dir)) / "runs" / daily_run["days"][1].isoformat() / "index.html"
    text = page.read_text()
    assert 'id="promotion"' in text and 'id="gates"' in text and 'id="alignment"' in text

"""Item pairs: windows and sessions bound the pairs; Swing and cosine rank the known pairs first."""

from datetime import UTC, date, datetime, timedelta

import pytest
from pyspark.testing import assertDataFrameEqual

from conf.settings import ItemPairSettings
from jobs import delta, item_pairs
from jobs.schemas import USER_EVENTS

DS = date(2026, 10, 5)


@pytest.fixture(scope="module", autouse=True)
def no_adaptive_execution(spark):
    """AQE re-plans every stage: pure overhead on frames of a few rows (5x slower here)."""
    before = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    yield
    spark.conf.set("spark.sql.adaptive.enabled", before)


def _history(spark, seqs: dict[str, list[tuple[str, int]]]):
    """``user_events`` chunks: user -> [(item, minutes after 08:00 on DS[, "implicit" | "negative"])],
    positive by default."""
    rows = []
    for user, evs in seqs.items():
        by_day: dict[date, list] = {}
        for item, minutes, *kind in evs:
            ts = datetime(DS.year, DS.month, DS.day, 8, tzinfo=UTC) + timedelta(minutes=minutes)
            signals = {"implicit": (None, None, None, 0, False), "negative": (1.0, 1.0, 10.0, 0, False)}
            ev = (ts, item, ts.date(), *signals.get(kind[0] if kind else "", (5.0, 10.0, 10.0, 0, True)))
            by_day.setdefault(ts.date(), []).append(ev)
        for day, events in by_day.items():
            events.sort()
            rows.append((user, day, events, len(events), sum(1 for e in events if e[-1])))
    return spark.createDataFrame(rows, USER_EVENTS)


# A and B go together for three users who share little else; C/D/E are noise.
SEQS = {
    "u1": [("A", 0), ("B", 1), ("C", 2)],
    "u2": [("A", 0), ("B", 1), ("D", 2)],
    "u3": [("B", 0), ("A", 1), ("E", 2)],
    "u4": [("C", 0), ("D", 1)],
    "u5": [("X", 0), ("Y", 120)],  # two hours apart: different sessions
    "u6": [("P", 0), ("Q", 1), ("R", 2), ("S", 3)],  # S is 3 positions after P
    # an old event outside a 1-day window
    "u7": [("A", -3 * 24 * 60), ("Z", -3 * 24 * 60 + 1)],
    "u8": [("K", 0, "implicit"), ("L", 1, "implicit"), ("M", 2, "negative")],  # no signals = positive
}


def test_pairs_respect_window_session_and_rank_known_pairs_first(spark):
    history = _history(spark, SEQS)
    params = ItemPairSettings(window_days=1, window_positions=2, top_k=3, session_gap_minutes=30)
    seqs = item_pairs.build_window_sequences(history, DS, 1, True, 100).cache()
    found = item_pairs.build_user_pairs(seqs, 2, 1800.0)
    assert {r.ds for r in found.collect()} == {DS}
    user_pairs = {tuple(r) for r in found.select("user_id", "item_id", "other_item_id").collect()}
    assert ("u5", "X", "Y") not in user_pairs  # session break
    assert ("u6", "P", "R") in user_pairs and ("u6", "P", "S") not in user_pairs  # window of 2
    assert not any(u == "u7" for u, _, _ in user_pairs)  # outside the 1-day window
    assert ("u8", "K", "L") in user_pairs and ("u8", "L", "M") not in user_pairs  # implicit yes, negative no

    for method in ("swing", "cosine"):
        p = params.model_copy(update={"method": method})
        rows = item_pairs.build_item_pairs(seqs, p).collect()
        by_item: dict[str, list] = {}
        for r in sorted(rows, key=lambda r: (r.item_id, -r.score, r.other_item_id)):
            by_item.setdefault(r.item_id, []).append(r)
        assert by_item["A"][0].other_item_id == "B" and by_item["A"][0].co_count == 3, method
        assert by_item["B"][0].other_item_id == "A", method
        assert all(len(v) <= 3 for v in by_item.values())
        assert all(r.ds == DS and r.score > 0 for r in rows)
        if method == "swing":  # needs two users per pair: one user's pairs drop out
            assert "X" not in by_item and "P" not in by_item
    seqs.unpersist()


def test_cosine_fallback_pairs_the_items_swing_leaves_out_below_every_swing_pair(spark):
    """C, D, E, K, L, P, Q, R and S are co-engaged by one user each: Swing drops them, the fallback keeps their
    cosine partners, each scored under the day's lowest Swing score; the Swing pairs stay as they were."""
    history = _history(spark, SEQS)
    params = ItemPairSettings(window_days=1, window_positions=2, top_k=10, session_gap_minutes=30)
    seqs = item_pairs.build_window_sequences(history, DS, 1, True, 100).cache()
    swing = {(r.item_id, r.other_item_id): r.score for r in item_pairs.build_item_pairs(seqs, params).collect()}
    fallback = params.model_copy(update={"cold_fallback": "cosine"})
    rows = item_pairs.build_item_pairs(seqs, fallback).collect()
    seqs.unpersist()
    both = {(r.item_id, r.other_item_id): r.score for r in rows}

    assert {k: v for k, v in both.items() if k in swing} == swing  # every Swing pair, same score
    added = {k: v for k, v in both.items() if k not in swing}
    swing_items = {i for pair in swing for i in pair}
    assert {i for pair in added for i in pair} - swing_items == {"C", "D", "E", "K", "L", "P", "Q", "R", "S"}
    assert ("P", "Q") in added and ("P", "R") in added and ("P", "S") not in added  # the window still holds
    assert all(any(i not in swing_items for i in pair) for pair in added)  # only pairs of uncovered items
    assert max(added.values()) < min(swing.values())  # below every Swing pair: rankings unchanged
    assert max((v, k) for k, v in both.items() if k[0] == "A")[1] == ("A", "B")


def test_run_writes_partition_and_rerun_leaves_it_identical(spark, lake_cfg):
    cfg = lake_cfg.model_copy(
        update={"item": lake_cfg.item.model_copy(update={"pairs": ItemPairSettings(method="cosine", window_days=2)})}
    )
    delta.overwrite(_history(spark, SEQS), cfg.table_path("user_events"), ("event_date",))
    first = item_pairs.run(cfg, DS, spark)
    before = delta.read(spark, cfg.table_path("item_pairs")).collect()
    second = item_pairs.run(cfg, DS, spark)
    assert first["rows"] == second["rows"] == len(before) > 0
    assertDataFrameEqual(delta.read(spark, cfg.table_path("item_pairs")), before)


def test_only_the_window_partitions_are_read(spark, lake_cfg):
    """Files of a day outside the window are gone from disk: a run that read them would fail."""
    import shutil
    from pathlib import Path

    cfg = lake_cfg.model_copy(
        update={"item": lake_cfg.item.model_copy(update={"pairs": ItemPairSettings(method="cosine", window_days=2)})}
    )
    path = cfg.table_path("user_events")
    delta.overwrite(_history(spark, SEQS), path, ("event_date",))
    expected = item_pairs.run(cfg, DS, spark)
    old = DS - timedelta(days=3)  # u7's day, outside the 2-day window
    (folder,) = [p for p in Path(path).iterdir() if p.name == f"event_date={old.isoformat()}"]
    shutil.rmtree(folder)
    assert item_pairs.run(cfg, DS, spark)["rows"] == expected["rows"]


def test_order_only_formats_pair_consecutive_items_a_day_apart(spark, lake_cfg):
    """Amazon's loaders place item k on day k: with the 30-minute session gap every consecutive pair
    would be cut (zero pairs, no behaviour vectors). For a format whose clock is its order the gap is
    off; for a timed format it stays."""
    day = 24 * 60
    seqs = {u: [("A", 0), ("B", day), ("C", 2 * day)] for u in ("u1", "u2", "u3")}
    cfg = lake_cfg.model_copy(
        update={"item": lake_cfg.item.model_copy(update={"pairs": ItemPairSettings(window_days=5)})}
    )
    amazon = cfg.model_copy(update={"source": cfg.source.model_copy(update={"format": "amazon_seq"})})
    assert item_pairs.pair_settings(cfg).session_gap_minutes == 30.0
    assert item_pairs.pair_settings(amazon).session_gap_minutes is None
    delta.overwrite(_history(spark, seqs), cfg.table_path("user_events"), ("event_date",))
    end = DS + timedelta(days=2)
    assert item_pairs.run(cfg, end, spark)["rows"] == 0  # timed format: a day is a session break
    report = item_pairs.run(amazon, end, spark)
    assert report["session_gap_minutes"] is None and report["rows"] == 6  # A-B, B-C, A-C both ways

"""Sequences: incremental MERGE in any day order equals a full rebuild; features as of ds."""

import random
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from conf.settings import PositiveRule
from jobs import delta
from jobs.schemas import EVENTS
from jobs.sequences import build_day_batch, build_history_full, build_user_features, merge_day

START = date(2026, 10, 1)
RULE = PositiveRule()


def _events(spark, n_days=5, seed=3):
    rng = random.Random(seed)
    rows = []
    for d in range(n_days):
        day = START + timedelta(days=d)
        for user in range(6):
            for k in range(rng.randint(0, 4)):
                ts = datetime(day.year, day.month, day.day, 8 + k, rng.randint(0, 59), tzinfo=UTC)
                item = f"i{rng.randint(0, 9)}"
                rating = float(rng.randint(1, 5))
                rows.append(
                    (
                        f"{user}-{d}-{k}",
                        f"u{user}",
                        item,
                        ts,
                        rating,
                        30.0,
                        60.0,
                        rng.randint(0, 1),
                        0,
                        0,
                        0,
                        0,
                        "f",
                        1,
                        day,
                    )
                )
    return spark.createDataFrame(rows, EVENTS)


def _apply_days(spark, path, events, days, cap):
    for ds in days:
        batch = build_day_batch(events.where(F.col("event_date") == F.lit(ds)), RULE, cap)
        merge_day(spark, path, batch, ds, cap)


def test_incremental_in_any_order_with_reruns_equals_full_rebuild(spark, tmp_path):
    events = _events(spark)
    days = [START + timedelta(days=d) for d in range(5)]
    for cap in (1000, 4):
        full = build_history_full(events, RULE, cap)
        path = str(tmp_path / f"hist{cap}")
        shuffled = days[:]
        random.Random(cap).shuffle(shuffled)
        _apply_days(spark, path, events, shuffled + shuffled[:2], cap)  # re-runs change nothing
        assertDataFrameEqual(delta.read(spark, path), full)
        assert delta.read(spark, path).where(F.size("events") > cap).count() == 0


def test_rerun_of_a_day_leaves_history_identical(spark, tmp_path):
    events = _events(spark, n_days=3)
    days = [START + timedelta(days=d) for d in range(3)]
    path = str(tmp_path / "hist")
    _apply_days(spark, path, events, days, 100)
    before = delta.read(spark, path).collect()
    _apply_days(spark, path, events, [days[1]], 100)
    assertDataFrameEqual(delta.read(spark, path), before)


def test_features_as_of_ds_ignore_later_events_and_cap_sequences(spark):
    events = _events(spark, n_days=5)
    history = build_history_full(events, RULE, 1000)
    users = spark.createDataFrame([("u1", {"age": "30"})], "user_id string, attributes map<string,string>")
    ds = START + timedelta(days=2)
    feats = build_user_features(history, users, ds, 3, 2, 1000).collect()
    expected_users = {
        r.user_id for r in events.where(F.col("event_date") <= F.lit(ds)).select("user_id").distinct().collect()
    }
    assert {r.user_id for r in feats} == expected_users
    for row in feats:
        past = events.where((F.col("user_id") == row.user_id) & (F.col("event_date") <= F.lit(ds))).orderBy(
            "ts", "item_id"
        )
        past_items = [r.item_id for r in past.collect()]
        assert row.n_events == len(past_items)
        assert row.lifelong_item_ids == past_items
        assert row.short_item_ids == past_items[-3:]
        assert len(row.short_ts) == len(row.short_flags) == len(row.short_item_ids)
        assert row.short_ts == sorted(row.short_ts)
        assert len(row.positive_item_ids) <= 2
        assert row.event_timestamp == datetime(2026, 10, 4)
    assert [r.attributes for r in feats if r.user_id == "u1"] == [{"age": "30"}]

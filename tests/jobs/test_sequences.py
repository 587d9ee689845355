"""Sequences: day chunks + bounded state, applied in any day order with re-runs, equal a full rebuild."""

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from conf.settings import PositiveRule
from jobs import delta, sequences
from jobs.lifelong import lifelong_items
from jobs.schemas import EVENTS
from jobs.user_history import (
    append_day,
    build_chunks,
    build_state,
    current_state,
    recent_len,
    user_sequences,
)

START = date(2026, 10, 1)
DAYS = [START + timedelta(days=d) for d in range(4)]
RULE = PositiveRule()
SILVER_GOLD = ("user_events", "user_state", "user_features")


def _events(spark, n_days=4, seed=3):
    rng = random.Random(seed)
    rows = []
    for d in range(n_days):
        day = START + timedelta(days=d)
        for user in range(6):
            for k in range(rng.randint(0, 4)):
                ts = datetime(day.year, day.month, day.day, 8 + k, rng.randint(0, 59), tzinfo=UTC)
                rating = float(rng.randint(1, 5))
                like = rng.randint(0, 1)
                row = (f"{user}-{d}-{k}", f"u{user}", f"i{rng.randint(0, 9)}", ts, rating, 30.0, 60.0, like)
                rows.append((*row, 0, 0, 0, 0, "f", 1, day))
    return spark.createDataFrame(rows, EVENTS)


def _small_caps(cfg):
    """Windows far below the users' histories, so every cap and window is exercised."""
    seq = cfg.sequences.model_copy(update={"short_term_len": 3, "positive_len": 2, "lifelong_cap": 4})
    te = cfg.training_examples.model_copy(update={"context_len": 2})
    return cfg.model_copy(update={"sequences": seq, "training_examples": te})


def _lake(lake_cfg, events, name):
    cfg = _small_caps(lake_cfg.model_copy(update={"home": f"{lake_cfg.home}/{name}"}))
    delta.overwrite(events, cfg.table_path("events"), ("event_date",))
    return cfg


def _rows(spark, cfg, name):
    rows = delta.read(spark, cfg.table_path(name)).collect()
    return sorted(json.dumps(r.asDict(recursive=True), sort_keys=True, default=str) for r in rows)


def _same(a, b) -> bool:
    return sorted(map(str, a.collect())) == sorted(map(str, b.collect()))


@pytest.fixture(scope="module")
def events(spark):
    return _events(spark).cache()


def test_appending_days_to_the_state_equals_building_it_from_the_chunks(spark, events):
    """The O(day) path (old state row + the day's chunk) against the definition, day after day."""
    chunks = build_chunks(events, RULE).cache()
    n, p = 5, 2
    state = build_state(chunks.where(F.col("event_date") == F.lit(DAYS[0])), n, p)
    for ds in DAYS[1:]:
        day = chunks.where(F.col("event_date") == F.lit(ds))
        untouched = state.join(day, "user_id", "left_anti")
        state = untouched.unionByName(append_day(state, day, n, p)).localCheckpoint()
        assert _same(state, build_state(chunks.where(F.col("event_date") <= F.lit(ds)), n, p)), ds
    # bounded: at most n events before the last day, p positives
    before_last = F.filter("recent", lambda e: e["event_date"] < F.col("last_date"))
    assert state.where((F.size(before_last) > n) | (F.size("positives") > p)).count() == 0
    assert state.agg(F.sum("n_events")).first()[0] == events.count()
    # the chunks, flattened in date order, are every event sorted by (ts, item_id)
    seqs = {r.user_id: [e.item_id for e in r.events] for r in user_sequences(chunks).collect()}
    for user, items in seqs.items():
        ordered = events.where(F.col("user_id") == user).orderBy("ts", "item_id").collect()
        assert items == [r.item_id for r in ordered]


def test_features_as_of_ds_ignore_later_events_and_cap_sequences(spark, events):
    ds = DAYS[2]
    upto = build_chunks(events.where(F.col("event_date") <= F.lit(ds)), RULE)
    state = build_state(upto, recent_len(_small_caps_cfg()), 2)
    active = upto.where(F.col("event_date") == F.lit(ds)).select("user_id")
    state = state.join(active, "user_id", "left_semi")
    # the lifelong sequence is not in the snapshot: jobs.lifelong assembles it from the chunks
    life = {r.user_id: r.lifelong_item_ids for r in lifelong_items(upto, active, 4).collect()}
    users = spark.createDataFrame([("u1", {"age": "30"})], "user_id string, attributes map<string,string>")
    feats = sequences.build_user_features(state, users, ds, 3).collect()
    assert {r.user_id for r in feats} == {r.user_id for r in active.collect()}
    for row in feats:
        past = events.where((F.col("user_id") == row.user_id) & (F.col("event_date") <= F.lit(ds)))
        past = past.orderBy("ts", "item_id").collect()
        items = [r.item_id for r in past]
        positives = [r.item_id for r in past if r.rating >= 4 or r.like == 1]
        assert row.n_events == len(items) and row.n_positive == len(positives)
        assert life[row.user_id] == items[-4:]
        assert row.short_item_ids == items[-3:]
        assert row.positive_item_ids == positives[-2:]
        assert row.active_days == len({r.event_date for r in past})
        assert row.tenure_days == (ds - min(r.event_date for r in past)).days
        assert len(row.short_ts) == len(row.short_flags) == len(row.short_item_ids)
        assert row.short_ts == sorted(row.short_ts)
        assert row.event_timestamp == datetime(2026, 10, 4)
    assert [r.attributes for r in feats if r.user_id == "u1"] in ([{"age": "30"}], [])


def _small_caps_cfg():
    from conf import load_settings

    return _small_caps(load_settings("tiny"))


def test_any_order_with_reruns_and_a_changed_day_equals_in_order_and_a_full_rebuild(spark, lake_cfg, events):
    days = DAYS[:3]
    events = events.where(F.col("event_date") <= F.lit(days[-1]))
    in_order, shuffled = _lake(lake_cfg, events, "in_order"), _lake(lake_cfg, events, "shuffled")
    for ds in days:
        report = sequences.run(in_order, ds, spark)
        assert report["state_rebuilt"] == 0  # in order: every active user is the old row + the day
        steps = ["day_chunks", "user_state", "user_events", "user_features", "later_snapshots"]
        assert list(report["seconds"]) == steps and all(v >= 0 for v in report["seconds"].values())
    # in order, the state table appends one row per active user and day: a row per chunk
    state = delta.read(spark, in_order.table_path("user_state"))
    chunks = build_chunks(events, RULE)
    assert _same(state.select("user_id", "last_date"), chunks.select("user_id", F.col("event_date").alias("last_date")))
    for ds in (days[2], days[0], days[1], days[0]):  # out of order, then a re-run
        sequences.run(shuffled, ds, spark)
    for name in SILVER_GOLD:
        assert _rows(spark, shuffled, name) == _rows(spark, in_order, name), name
    full = {"user_events": chunks, "user_state": build_state(chunks, recent_len(in_order), 2)}
    assert _same(delta.read(spark, in_order.table_path("user_events")), full["user_events"])
    assert _same(current_state(delta.read(spark, in_order.table_path("user_state"))), full["user_state"])

    # the day's events change (a user's rows removed): re-applying it leaves nothing stale
    day = days[1]
    gone = (F.col("event_date") == F.lit(day)) & (F.col("user_id") == "u0")
    assert events.where(gone).count() > 0
    fewer = events.where(~gone)
    delta.overwrite(fewer, shuffled.table_path("events"), ("event_date",))
    assert sequences.run(shuffled, day, spark)["state_rebuilt"] > 0
    chunks = build_chunks(fewer, RULE)
    assert _same(delta.read(spark, shuffled.table_path("user_events")), chunks)
    state = delta.read(spark, shuffled.table_path("user_state"))
    assert _same(current_state(state), build_state(chunks, recent_len(shuffled), 2))
    assert _same(
        state.select("user_id", "last_date"), chunks.select("user_id", F.col("event_date").alias("last_date"))
    )  # none stale

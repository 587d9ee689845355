"""Training examples from the bounded state and the day's chunk equal the definitions on raw events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pyspark.sql import functions as F

from conf.settings import PositiveRule
from jobs.schemas import EVENTS
from jobs.training_examples import build_leave_one_out, build_next_day
from jobs.user_history import build_chunks, build_state

START = date(2026, 10, 1)
DS = START + timedelta(days=2)
CTX = 2
RECENT = CTX + 3  # jobs.user_history.recent_len with a short-term length below it


def _events(spark):
    """u1: 7 events over 3 days; u2: 2 events (too few for leave-one-out); u3: positives on DS only."""
    plan = {
        "u1": [(0, "a", 5.0), (0, "b", 1.0), (1, "c", 5.0), (1, "d", 5.0), (2, "e", 5.0), (2, "f", 1.0), (2, "g", 5.0)],
        "u2": [(1, "a", 5.0), (2, "b", 5.0)],
        "u3": [(2, "x", 5.0), (2, "y", 2.0)],
    }
    rows = []
    for user, evs in plan.items():
        for k, (d, item, rating) in enumerate(evs):
            day = START + timedelta(days=d)
            ts = datetime(day.year, day.month, day.day, 9, k, tzinfo=UTC)
            rows.append((f"{user}-{k}", user, item, ts, rating, None, None, 0, 0, 0, 0, 0, "f", k, day))
    return spark.createDataFrame(rows, EVENTS)


def test_next_day_and_leave_one_out_from_state(spark):
    events = _events(spark)
    chunks = build_chunks(events, PositiveRule())
    state = build_state(chunks.where(F.col("event_date") <= F.lit(DS)), RECENT, 256)
    day = chunks.where(F.col("event_date") == F.lit(DS))

    nd = {r.user_id: r for r in build_next_day(state, day, CTX).collect()}
    assert set(nd) == {"u1", "u2", "u3"}
    assert nd["u1"].context_item_ids == ["c", "d"] and nd["u1"].target_item_ids == ["e", "g"]
    assert nd["u1"].target_item_id == "e" and nd["u1"].split == "target" and nd["u1"].protocol == "next_day"
    assert nd["u2"].context_item_ids == ["a"] and nd["u2"].target_item_ids == ["b"]
    assert nd["u3"].context_item_ids == [] and nd["u3"].target_item_ids == ["x"]
    assert all(max(r.context_ts, default=0) < r.target_ts for r in nd.values())

    loo = {(r.user_id, r.split): r for r in build_leave_one_out(state, DS, CTX).collect()}
    assert {u for u, _ in loo} == {"u1"}  # u2 and u3 have fewer than 3 events
    items = ["a", "b", "c", "d", "e", "f", "g"]
    for split, offset in (("train", 3), ("valid", 2), ("test", 1)):
        row = loo[("u1", split)]
        cut = len(items) - offset
        assert row.target_item_id == items[cut] and row.target_item_ids == [items[cut]]
        assert row.context_item_ids == items[:cut][-CTX:]
        assert row.protocol == "leave_one_out" and row.ds == DS

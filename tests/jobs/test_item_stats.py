"""jobs/item_stats.py: cumulative item counts as of a day, for the day's items only."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.testing import assertDataFrameEqual

from conf.settings import PositiveRule
from jobs.item_stats import build_item_stats
from jobs.schemas import EVENTS, ITEM_STATS

D1, D2, D3 = date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)


def _event(n: int, user: str, item: str, day: date, hour: int, rating=None, like=None) -> tuple:
    ts = datetime(day.year, day.month, day.day, hour)
    return (f"e{n}", user, item, ts, rating, None, None, like, None, None, None, None, "f.csv", n, day)


def test_counts_up_to_the_day_for_items_active_that_day(spark):
    events = spark.createDataFrame(
        [
            _event(1, "u1", "a", D1, 8, rating=5.0),  # positive (rating >= 4)
            _event(2, "u2", "a", D2, 9, rating=1.0),  # negative
            _event(3, "u1", "a", D2, 10, like=1),  # positive (like)
            _event(4, "u3", "b", D1, 11),  # no signal at all: implicit positive
            _event(5, "u3", "a", D3, 12, rating=5.0),  # after ds: never seen
        ],
        EVENTS,
    )
    got = build_item_stats(events, D2, PositiveRule())
    a = ("a", D2, 3, 2, 2, 2, 2 / 3, datetime(2026, 10, 1, 8), datetime(2026, 10, 2, 10))
    assertDataFrameEqual(got, spark.createDataFrame([a], ITEM_STATS))  # b had no events on D2
    implicit = build_item_stats(events, D1, PositiveRule()).where("item_id = 'b'").first()
    assert (implicit.n_positive, implicit.positive_rate) == (1, 1.0)

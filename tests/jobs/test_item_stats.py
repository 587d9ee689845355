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


def _random_events(spark, n_days: int = 4):
    import random

    rng = random.Random(5)
    rows, n = [], 0
    for d in range(n_days):
        day = date(2026, 10, 1 + d)
        for _ in range(rng.randint(8, 14)):
            n += 1
            rating = rng.choice([None, 1.0, 5.0])
            like = rng.choice([None, 0, 1])
            user, item = f"u{rng.randint(0, 5)}", f"i{rng.randint(0, 6)}"
            rows.append(_event(n, user, item, day, rng.randint(0, 23), rating=rating, like=like))
    return spark.createDataFrame(rows, EVENTS)


def _partition(spark, cfg, ds):
    from pyspark.sql import functions as F

    from jobs import delta

    return delta.read(spark, cfg.table_path("item_stats")).where(F.col("ds") == F.lit(ds))


def test_yesterdays_totals_plus_the_day_equal_the_full_computation_in_any_order(spark, lake_cfg):
    from jobs import delta, item_stats
    from jobs.item_stats import cumulative

    events = _random_events(spark)
    delta.overwrite(events, lake_cfg.table_path("events"), ("event_date",))
    days = [date(2026, 10, 1 + d) for d in range(4)]
    bronze = lake_cfg.table_path("events")
    # in order, each day ingested just before its stats (as the DAG runs): the day's items appended
    for k, ds in enumerate(days):
        delta.overwrite(events.where(f"event_date <= '{ds}'"), bronze, ("event_date",))
        report = item_stats.run(lake_cfg, ds, spark)
        assert report["items_recomputed"] == (report["items"] if k == 0 else 0)  # day 1: fresh totals
        assertDataFrameEqual(_partition(spark, lake_cfg, ds), build_item_stats(events, ds, PositiveRule()))
    before = _partition(spark, lake_cfg, days[1]).collect()
    assert item_stats.run(lake_cfg, days[1], spark)["items_appended"] == 0  # a re-run: recomputed
    assertDataFrameEqual(_partition(spark, lake_cfg, days[1]), before)
    state = delta.read(spark, lake_cfg.table_path("item_state"))
    assertDataFrameEqual(state, cumulative(events, PositiveRule()))


def test_a_first_run_on_an_existing_lake_counts_the_history(spark, lake_cfg):
    from jobs import delta, item_stats

    events = _random_events(spark)
    delta.overwrite(events, lake_cfg.table_path("events"), ("event_date",))
    last = date(2026, 10, 4)
    item_stats.run(lake_cfg, last, spark)
    assertDataFrameEqual(_partition(spark, lake_cfg, last), build_item_stats(events, last, PositiveRule()))

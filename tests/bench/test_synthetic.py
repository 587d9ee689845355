"""bench.synthetic: schema, size, unique ids, dates in range, and the by-day Parquet layout."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from bench.synthetic import EVENTS_SCHEMA, fixed_width_ids, synthetic_events, write_parquet_by_day

START = date(2026, 10, 1)
DAYS = 5


@pytest.fixture(scope="module")
def events() -> pa.Table:
    return synthetic_events(10_000, n_users=500, n_items=300, days=DAYS, start=START, seed=11)


def test_schema_matches_bronze_events(events):
    assert events.schema.equals(EVENTS_SCHEMA)
    assert events.column_names == [
        "event_id",
        "user_id",
        "item_id",
        "ts",
        "rating",
        "play_seconds",
        "item_duration_seconds",
        "like",
        "follow",
        "comment",
        "share",
        "dislike",
        "source_file",
        "source_line",
        "event_date",
    ]
    assert events.schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_rows_ids_and_lines(events):
    df = events.to_pandas()
    assert len(df) == 10_000
    assert df.event_id.is_unique
    assert df.source_line.tolist() == list(range(1, 10_001))
    assert set(df.source_file) == {"synthetic"}
    assert df.user_id.str.fullmatch(r"u\d+").all() and df.item_id.str.fullmatch(r"i\d+").all()
    assert df.user_id.nunique() <= 500 and df.item_id.nunique() <= 300


def test_dates_within_range_and_consistent(events):
    df = events.to_pandas()
    assert df.event_date.min() >= START
    assert df.event_date.max() <= START + timedelta(days=DAYS - 1)
    assert (df.ts.dt.date == df.event_date).all()
    assert df.ts.is_monotonic_increasing
    assert df.event_date.nunique() == DAYS


def test_values_are_plausible(events):
    df = events.to_pandas()
    assert df.rating.between(1, 5).all()
    assert (df.play_seconds >= 0).all() and (df.item_duration_seconds > 0).all()
    for flag in ("like", "follow", "comment", "share", "dislike"):
        assert set(df[flag].unique()) <= {0, 1}
    # Zipf items: the top 10% of items carry far more than 10% of events.
    counts = df.item_id.value_counts()
    assert counts.iloc[:30].sum() / len(df) > 0.4


def test_deterministic_by_seed():
    a = synthetic_events(1_000, 50, 40, 3, START, seed=5)
    b = synthetic_events(1_000, 50, 40, 3, START, seed=5)
    c = synthetic_events(1_000, 50, 40, 3, START, seed=6)
    assert a.equals(b)
    assert not a.equals(c)


def test_fixed_width_ids():
    ids = fixed_width_ids("e-", np.array([0, 7, 42, 1000]))
    assert ids.to_pylist() == ["e-0000", "e-0007", "e-0042", "e-1000"]


def test_write_parquet_by_day(events, tmp_path):
    files = write_parquet_by_day(events, tmp_path)
    assert len(files) == DAYS
    assert sorted(p.parent.name for p in files) == [f"event_date={START + timedelta(days=d)}" for d in range(DAYS)]
    back = pads.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert back.num_rows == events.num_rows
    assert sorted(back.column("event_id").to_pylist()) == sorted(events.column("event_id").to_pylist())
    day_of = dict(zip(back.column("event_id").to_pylist(), back.column("event_date").to_pylist(), strict=True))
    truth = dict(zip(events.column("event_id").to_pylist(), events.column("event_date").to_pylist(), strict=True))
    assert all(day_of[k] == str(v) for k, v in truth.items())


def test_write_parquet_by_day_unsorted_input(events, tmp_path):
    shuffled = events.take(pa.array(np.random.default_rng(0).permutation(events.num_rows)))
    files = write_parquet_by_day(shuffled, tmp_path, keep_partition_column=True)
    assert len(files) == DAYS
    first = pads.dataset(files[0], format="parquet").to_table()
    assert set(first.column("event_date").to_pylist()) == {START}

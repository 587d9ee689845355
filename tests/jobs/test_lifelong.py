"""Lifelong compression: <= N representatives, members of the input, deterministic, short users untouched."""

import shutil
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from pyspark.testing import assertDataFrameEqual

from conf.settings import PositiveRule
from jobs import delta, lifelong
from jobs.schemas import EVENTS, ITEM_EMBEDDINGS
from jobs.user_history import build_chunks

DS = date(2026, 10, 5)


@pytest.fixture(scope="module", autouse=True)
def no_adaptive_execution(spark):
    """AQE re-plans every stage: pure overhead on frames of a few rows (5x slower here)."""
    before = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    yield
    spark.conf.set("spark.sql.adaptive.enabled", before)


def _clustered(n, seed=0):
    rng = np.random.default_rng(seed)
    centres = 5 * rng.standard_normal((7, 6))
    truth = rng.integers(0, 7, n)
    return centres[truth] + rng.standard_normal((n, 6)), truth


@pytest.mark.parametrize("n,budget", [(500, 20), (500, 7), (50, 50), (50, 1), (2000, 300)])
def test_representatives_are_few_members_and_deterministic(n, budget):
    x, truth = _clustered(n)
    reps = lifelong.hierarchical_representatives(x, budget, seed=3)
    assert 1 <= len(reps) <= budget and len(set(reps)) == len(reps)
    assert ((reps >= 0) & (reps < n)).all()
    np.testing.assert_array_equal(reps, lifelong.hierarchical_representatives(x, budget, seed=3))
    if budget >= 20:  # every dense region gets a representative
        assert set(truth[reps]) == set(truth)


def test_identical_vectors_do_not_recurse_forever():
    reps = lifelong.hierarchical_representatives(np.ones((100, 4)), 5)
    assert len(reps) == 5


def test_run_compresses_long_users_only_and_is_idempotent(spark, lake_cfg):
    life = lake_cfg.item.lifelong.model_copy(update={"max_representatives": 6})
    cfg = lake_cfg.model_copy(update={"item": lake_cfg.item.model_copy(update={"lifelong": life})})
    x, _ = _clustered(40, seed=1)
    emb = [(f"i{k}", None, None, [float(v) for v in x[k]], "content", "h", "v", DS) for k in range(40)]
    delta.overwrite(spark.createDataFrame(emb, ITEM_EMBEDDINGS), cfg.table_path("item_embeddings"))
    long_seq = [f"i{k % 40}" for k in range(60)]  # 40 distinct items, repeats
    before, after = DS - timedelta(days=1), DS + timedelta(days=1)

    def event(user: str, item: str, day: date, k: int) -> tuple:
        ts = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=k)
        return (f"{user}-{day}-{k}", user, item, ts, 4.0, 30.0, 60.0, 0, 0, 0, 0, 0, "f", 1, day)

    rows = [event("u1", item, before if k < 30 else DS, k) for k, item in enumerate(long_seq)]  # two chunks
    rows += [event("u2", item, DS, k) for k, item in enumerate(["i3", "i1", "i3", "i2"])]
    rows += [event("u2", "i9", after, 0), event("u3", "i5", before, 0)]  # a later day, a user not active on DS
    chunks = build_chunks(spark.createDataFrame(rows, EVENTS), PositiveRule())
    delta.overwrite(chunks, cfg.table_path("user_events"), ("event_date",))
    report = lifelong.run(cfg, DS, spark)
    assert report["users"] == 2 and report["users_compressed"] == 1
    out = {r.user_id: r for r in delta.read(spark, cfg.table_path("user_lifelong_compressed")).collect()}
    assert out["u2"].item_ids == ["i1", "i3", "i2"] and out["u2"].n_source == 3  # by last occurrence, not i9
    assert 1 <= len(out["u1"].item_ids) <= 6 and set(out["u1"].item_ids) <= set(long_seq)
    assert out["u1"].n_source == 40 and len(set(out["u1"].item_ids)) == len(out["u1"].item_ids)
    before = delta.read(spark, cfg.table_path("user_lifelong_compressed")).collect()
    lifelong.run(cfg, DS, spark)
    assertDataFrameEqual(delta.read(spark, cfg.table_path("user_lifelong_compressed")), before)


def test_bulk_rows_are_the_daily_rows_of_each_users_last_days(spark, lake_cfg, tmp_path):
    """run_bulk after a backfill == the day-by-day rows of each user's last N (here 2) active days in the range."""
    life = lake_cfg.item.lifelong.model_copy(update={"max_representatives": 5, "backfill_last_days": 2})
    cfg = lake_cfg.model_copy(update={"item": lake_cfg.item.model_copy(update={"lifelong": life})})
    x, _ = _clustered(30, seed=2)
    emb = [(f"i{k}", None, None, [float(v) for v in x[k]], "content", "h", "v", DS) for k in range(30)]
    delta.overwrite(spark.createDataFrame(emb, ITEM_EMBEDDINGS), cfg.table_path("item_embeddings"))
    days = [DS + timedelta(days=k) for k in range(3)]

    def event(user: str, item: str, day: date, k: int) -> tuple:
        ts = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=k)
        return (f"{user}-{day}-{k}", user, item, ts, 4.0, 30.0, 60.0, 0, 0, 0, 0, 0, "f", 1, day)

    rows = [event("u1", f"i{(3 * k + d) % 30}", day, k) for d, day in enumerate(days) for k in range(8)]  # every day
    rows += [event("u2", f"i{k}", days[0], k) for k in range(3)] + [event("u2", "i7", days[2], 0)]
    rows += [event("u3", "i4", days[0] - timedelta(days=1), 0)]  # before the range only: no row
    delta.overwrite(build_chunks(spark.createDataFrame(rows, EVENTS), PositiveRule()), cfg.table_path("user_events"),
                    ("event_date",))  # fmt: skip
    table = cfg.table_path("user_lifelong_compressed")
    for day in days:
        lifelong.run(cfg, day, spark)
    daily = {(r.user_id, r.ds): (r.item_ids, r.n_source) for r in delta.read(spark, table).collect()}
    assert {d for u, d in daily if u == "u1"} == set(days) and daily[("u1", days[-1])][1] == 24  # compressed
    shutil.rmtree(table)

    report = lifelong.run_bulk(cfg, days[0], days[-1], spark)
    bulk = {(r.user_id, r.ds): (r.item_ids, r.n_source) for r in delta.read(spark, table).collect()}
    assert set(bulk) == {("u1", days[1]), ("u1", days[2]), ("u2", days[0]), ("u2", days[2])}
    assert bulk == {key: daily[key] for key in bulk}
    assert report["users"] == 4 and report["users_compressed"] == 2 and report["last_days_per_user"] == 2
    lifelong.run_bulk(cfg, days[0], days[-1], spark)  # a re-run replaces the range: same rows
    assert sorted(map(tuple, delta.read(spark, table).collect())) == sorted(
        (u, d, items, n) for (u, d), (items, n) in bulk.items()
    )

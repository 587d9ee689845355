"""Bulk backfill: one pass per stage over a range ends with the tables of a day-by-day replay.

The day-by-day side calls the data stages in the DAG's order, day after day (what
``onerec_daily`` runs for them); the bulk side is ``jobs.backfill.run`` once. Both read the
same raw folder (the tiny sample, broken rows included; its last day lies outside the range,
so the range's scope is checked too) and are compared with the cluster test's order-free
checksums. The window and carry-over logic is exercised by caps far below the histories.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from pyspark.sql import functions as F

from jobs import backfill, delta, ingest, item_pairs, item_stats, sequences, training_examples
from jobs.sample_data import generate
from tests.cluster.checksums import table_checksum


def _small(cfg, home, raw):
    """Short windows and caps (every cap and carry-over is hit on the tiny sample)."""
    seq = cfg.sequences.model_copy(update={"short_term_len": 3, "positive_len": 2, "lifelong_cap": 4})
    te = cfg.training_examples.model_copy(update={"context_len": 2})
    pairs = cfg.item.pairs.model_copy(update={"window_days": 2, "max_events_per_user": 5})
    return cfg.model_copy(
        update={
            "home": str(home),
            "sequences": seq,
            "training_examples": te,
            "item": cfg.item.model_copy(update={"pairs": pairs}),
            "source": cfg.source.model_copy(update={"path": str(raw)}),
        }
    )


@pytest.fixture(scope="module")
def sample(tiny_cfg, tmp_path_factory):
    raw = tmp_path_factory.mktemp("bulk-raw")
    generate(tiny_cfg.sample, raw)
    return raw


def test_bulk_backfill_equals_day_by_day_on_every_table(spark, tiny_cfg, sample, tmp_path):
    start = tiny_cfg.sample.start_date
    days = [start + timedelta(days=k) for k in range(2)]  # of the sample's 4: the others are out of range
    daily, bulk = _small(tiny_cfg, tmp_path / "daily", sample), _small(tiny_cfg, tmp_path / "bulk", sample)
    for ds in days:
        for stage in (ingest, sequences, item_pairs, item_stats, training_examples):
            stage.run(daily, ds, spark)
    report = backfill.run(bulk, days[0], days[-1], spark)

    for name in backfill.TABLES:
        got, want = table_checksum(bulk, name), table_checksum(daily, name)
        assert got == want, name
        assert want.get("rows", 0) > 0 or name == "users", name  # every table is really compared
    events = delta.read(spark, bulk.table_path("events"))
    assert {r.event_date for r in events.select("event_date").distinct().collect()} == set(days)
    quarantined = delta.read(spark, bulk.table_path("quarantine")).where(F.col("source_table") == "events").count()
    books = report["ingest"]["events"]
    assert books["raw"] == books["accepted"] + books["quarantined"] and books["quarantined"] == quarantined > 0
    # every day of the range has its leave-one-out partition, days without a user's events included
    loo = delta.read(spark, bulk.table_path("training_examples")).where("protocol = 'leave_one_out'")
    assert {r.ds for r in loo.select("ds").distinct().collect()} == set(days)

    with pytest.raises(backfill.LakeNotEmptyError, match="events"):
        backfill.run(bulk, days[0], days[-1], spark)


def test_bulk_backfill_survives_every_broken_row_class_of_a_real_format(spark, lake_cfg, tmp_path):
    """The MovieLens rows of tests/jobs/test_ingest_replay.py, broken classes included, through the
    bulk path: it completes, walks no made-up day and accounts for every raw row once."""
    from tests.jobs.test_ingest_replay import BROKEN, DAYS, GOOD, HEADER, SIGNALS, SIGNALS_HEADER, _cfg, _quarantined

    root = tmp_path / "ml"
    root.mkdir()
    (root / "ml.inter").write_text("\n".join([HEADER, *GOOD, *(row for row, _ in BROKEN.values())]) + "\n")
    (root / "signals.inter").write_text("\n".join([SIGNALS_HEADER, *(row for row, _ in SIGNALS.values())]) + "\n")
    (root / "ml.item").write_text("item_id:token\tmovie_title:token_seq\n10\tHeat\n11\tFargo\n12\tAlien\n")
    cfg = _cfg(lake_cfg, root, "movielens_atomic", reject_unknown_items=True)
    n_raw = len(GOOD) + len(BROKEN) + len(SIGNALS)

    report = backfill.run(cfg, DAYS[0], DAYS[-1], spark)

    books = report["ingest"]["events"]
    events = delta.read(spark, cfg.table_path("events"))
    reasons = _quarantined(spark, cfg)
    assert books["raw"] == n_raw == books["accepted"] + books["quarantined"]
    assert events.count() == books["accepted"] and len(reasons) == books["quarantined"]
    assert {r.event_date for r in events.select("event_date").distinct().collect()} == set(DAYS)
    for line, (_, why) in BROKEN.items():
        assert reasons[("ml.inter", line)].startswith(why), (line, reasons[("ml.inter", line)])
    for line, (_, why) in SIGNALS.items():
        assert why is None or reasons[("signals.inter", line)].startswith(why), line
    # the run went through every data stage on the accepted rows
    assert delta.read(spark, cfg.table_path("user_state")).count() == events.select("user_id").distinct().count()
    assert delta.read(spark, cfg.table_path("item_stats")).count() > 0


def test_states_by_day_equal_the_state_built_as_of_each_day(spark):
    """The window frames against the definition, four days, caps far below the histories."""
    from jobs.user_history import build_chunks, build_state, states_by_day
    from tests.jobs.test_sequences import DAYS, RULE, _events

    chunks = build_chunks(_events(spark), RULE).cache()
    by_day = states_by_day(chunks, 3, 2).cache()
    for ds in DAYS:
        upto = chunks.where(F.col("event_date") <= F.lit(ds))
        active = chunks.where(F.col("event_date") == F.lit(ds)).select("user_id")
        want = build_state(upto, 3, 2).join(active, "user_id", "left_semi")
        got = by_day.where(F.col("last_date") == F.lit(ds))
        assert sorted(map(str, got.collect())) == sorted(map(str, want.collect())), ds
    assert by_day.count() == chunks.count()
    chunks.unpersist()
    by_day.unpersist()

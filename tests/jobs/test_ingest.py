"""ingest.run on a real format with broken rows appended: nothing lost, re-runs change nothing."""

from datetime import date

from pyspark.sql import functions as F

from jobs import delta, ingest

GOOD = [  # user, item, rating, unix seconds (1997-09-21 and 1997-09-22 UTC)
    ("1", "10", "5", "874800000"),
    ("1", "11", "3", "874800060"),
    ("2", "10", "4", "874800120"),
    ("2", "12", "2", "874886400"),
    ("3", "11", "4", "874886460"),
]
BROKEN = [
    "4\t10\t5",  # too few fields
    "\t10\t4\t874800000",  # missing user
    "5\t10\tfive\t874800000",  # bad rating
    "6\t10\t4\tyesterday",  # bad timestamp (undated)
    "1\t10\t5\t874800000",  # duplicate of line 2
    "7\t13\t9\t874886400",  # rating out of range
]


def _write_dataset(root):
    root.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += ["\t".join(row) for row in GOOD] + BROKEN
    (root / "ml.inter").write_text("\n".join(lines) + "\n")
    (root / "ml.item").write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n10\tHeat\tAction\n11\tFargo\tCrime\n"
    )
    return len(lines) - 1


def test_broken_rows_appended_to_a_real_format_are_quarantined_and_nothing_is_lost(spark, lake_cfg, tmp_path):
    root = tmp_path / "ml"
    n_raw = _write_dataset(root)
    cfg = lake_cfg.model_copy(
        update={"source": lake_cfg.source.model_copy(update={"format": "movielens_atomic", "path": str(root)})}
    )
    days = [date(1997, 9, 21), date(1997, 9, 22)]
    reports = [ingest.run(cfg, ds, spark) for ds in days]
    for r in reports:
        assert r["events"]["raw"] == r["events"]["accepted"] + r["events"]["quarantined"]
    events = delta.read(spark, cfg.table_path("events"))
    quarantine = delta.read(spark, cfg.table_path("quarantine")).where(F.col("source_table") == "events")
    assert events.count() == len(GOOD)
    assert quarantine.count() == len(BROKEN)
    assert events.count() + quarantine.count() == n_raw
    reasons = {r.source_line: r.reason for r in quarantine.collect()}
    assert reasons[7].startswith("schema:")
    assert reasons[8] == "missing user_id"
    assert reasons[9] == "bad number: rating='five'"
    assert reasons[10] == "bad timestamp: timestamp='yesterday'"
    assert reasons[11].startswith("duplicate event: first seen at") and reasons[11].endswith(":2")
    assert reasons[12].startswith("rating outside [0, 5]")
    assert delta.read(spark, cfg.table_path("items")).count() == 2

    versions = {name: delta.version(spark, cfg.table_path(name)) for name in ("items", "quarantine")}
    before = sorted(map(str, events.collect()))
    ingest.run(cfg, days[0], spark)  # re-run: same rows, entity tables and quarantine untouched
    assert sorted(map(str, delta.read(spark, cfg.table_path("events")).collect())) == before
    assert {name: delta.version(spark, cfg.table_path(name)) for name in versions} == versions

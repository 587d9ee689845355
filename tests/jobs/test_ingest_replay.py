"""A replay survives bad rows: every broken-row class appended to real formats, day by day.

The days come from ``dags.runner.dataset_days`` (the replay's own list); each is ingested
as the daily DAG's first task does. The run must reach the last day, walk no day made up
by a broken clock (1900, 1970, 2200), and account for every raw row exactly once:
accepted + quarantined = raw.
"""

import gzip
from datetime import date

from pyspark.sql import functions as F

from jobs import delta, ingest

DAYS = [date(1997, 9, 21), date(1997, 9, 22)]
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"  # ml-100k.inter, as RecBole ships it
GOOD = [  # user, item, rating, unix seconds (1997-09-21 and 1997-09-22 UTC)
    "1\t10\t5\t874800000",
    "1\t11\t3\t874800060",
    "2\t10\t4\t874800120",
    "2\t12\t2\t874886400",
    "3\t11\t4\t874886460",
]
# line number in ml.inter (header = 1) -> (row, the reason's start)
BROKEN = {
    7: ("4\t10\t5", "schema: line has 3 fields"),
    8: ("\t10\t4\t874800000", "missing user_id"),
    9: ("8\t\t4\t874800000", "missing item_id"),
    10: ("8\t10\t4\t", "missing timestamp"),
    11: ("6\t10\t4\tyesterday", "bad timestamp: timestamp='yesterday'"),
    12: ("9\t10\t4\t1e30", "bad timestamp: timestamp='1e30'"),  # used to fail the day's job (cast overflow)
    13: ("5\t10\tfive\t874800000", "bad number: rating='five'"),
    14: ("5\t11\t-1\t874800000", "negative value: rating='-1'"),
    15: ("7\t11\t9\t874886400", "rating outside [0, 5]"),
    16: ("1\t10\t5\t874800000", "duplicate event: first seen at"),
    17: ("9\t99\t4\t874800000", "unknown item_id '99'"),
    18: ("9\t10\t4\t-2208988800", "implausible timestamp: timestamp='-2208988800' is 1900-01-01"),
    19: ("9\t10\t4\t0", "implausible timestamp: timestamp='0' is 1970-01-01"),
    20: ("9\t10\t4\t7258118400", "implausible timestamp: timestamp='7258118400' is 2200-01-01"),
}
# A second .inter file with the optional columns a RecBole file may carry.
SIGNALS_HEADER = (
    "user_id:token\titem_id:token\ttimestamp:float\tplay_seconds:float\titem_duration_seconds:float\tlike:token"
)
SIGNALS = {
    2: ("10\t11\t874800300\t30\t60\t1", None),
    3: ("10\t10\t874800400\t5000\t60\t0", "play_seconds above 20x item_duration_seconds"),
    4: ("10\t12\t874886500\t30\t60\tmaybe", "bad flag: like='maybe'"),
}


def _cfg(lake_cfg, root, fmt, **ingest):
    return lake_cfg.model_copy(
        update={
            "source": lake_cfg.source.model_copy(update={"format": fmt, "path": str(root)}),
            "ingest": lake_cfg.ingest.model_copy(update=ingest),
        }
    )


def _replay(cfg, spark) -> tuple[list[date], list[dict]]:
    from dags.runner import dataset_days

    days = dataset_days(cfg)
    return days, [ingest.run(cfg, ds, spark)["events"] for ds in days]


def _quarantined(spark, cfg) -> dict[tuple[str, int], str]:
    rows = delta.read(spark, cfg.table_path("quarantine")).where(F.col("source_table") == "events").collect()
    return {(r.source_file.rsplit("/", 1)[-1], r.source_line): r.reason for r in rows}


def test_movielens_replay_quarantines_every_broken_class_and_walks_only_real_days(spark, lake_cfg, tmp_path):
    root = tmp_path / "ml"
    root.mkdir()
    (root / "ml.inter").write_text("\n".join([HEADER, *GOOD, *(row for row, _ in BROKEN.values())]) + "\n")
    (root / "signals.inter").write_text("\n".join([SIGNALS_HEADER, *(row for row, _ in SIGNALS.values())]) + "\n")
    (root / "ml.item").write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n10\tHeat\tAction\n11\tFargo\tCrime\n12\tAlien\tHorror\n"
    )
    cfg = _cfg(lake_cfg, root, "movielens_atomic", reject_unknown_items=True)
    n_raw = len(GOOD) + len(BROKEN) + len(SIGNALS)

    days, books = _replay(cfg, spark)

    assert days == DAYS  # no 1900, 1970 or 2200 day: those rows are quarantined, the replay goes on
    for b in books:
        assert b["raw"] == b["accepted"] + b["quarantined"]
    events = delta.read(spark, cfg.table_path("events"))
    reasons = _quarantined(spark, cfg)
    good_signals = sum(1 for _, why in SIGNALS.values() if why is None)
    assert events.count() == len(GOOD) + good_signals
    assert events.count() + len(reasons) == n_raw
    for line, (_, why) in BROKEN.items():
        assert reasons[("ml.inter", line)].startswith(why), (line, reasons[("ml.inter", line)])
    for line, (_, why) in SIGNALS.items():
        assert why is None or reasons[("signals.inter", line)].startswith(why), line
    assert "outside [1990-01-01, 2100-01-01]" in reasons[("ml.inter", 18)]
    quarantine = delta.read(spark, cfg.table_path("quarantine"))
    assert (
        quarantine.where(F.col("reason").startswith("implausible")).where(F.col("event_date").isNotNull()).count() == 0
    )


def test_plausible_range_is_configurable(spark, lake_cfg, tmp_path):
    root = tmp_path / "ml"
    root.mkdir()
    (root / "ml.inter").write_text("\n".join([HEADER, *GOOD]) + "\n")
    cfg = _cfg(lake_cfg, root, "movielens_atomic", min_event_date=date(1997, 9, 22))
    days, books = _replay(cfg, spark)
    assert days == DAYS[1:]
    reasons = _quarantined(spark, cfg)
    assert len(reasons) == 3 and all(r.startswith("implausible timestamp") for r in reasons.values())
    assert books[0]["raw"] == len(GOOD) and books[0]["accepted"] == 2


def test_canonical_daily_folders_replay_past_a_mismatched_row_and_a_broken_file(spark, lake_cfg, tmp_path):
    root = tmp_path / "landing"
    day1, day2 = (root / "interactions" / f"ds={d.isoformat()}" for d in DAYS)
    day1.mkdir(parents=True)
    day2.mkdir(parents=True)
    (day1 / "part-0.csv").write_text(
        "user_id,item_id,timestamp\n"
        "u1,i1,1997-09-21T10:00:00Z\n"
        "u2,i1,1997-09-22T10:00:00Z\n"  # landed a day early: outside landing day
        "u3,i1,2200-01-01T00:00:00Z\n"  # implausible
    )
    (day2 / "part-0.csv").write_text("user_id,item_id,timestamp\nu1,i2,1997-09-22T11:00:00Z\n")
    (day2 / "part-1.csv.gz").write_bytes(
        gzip.compress(b"user_id,item_id,timestamp\nu4,i2,1997-09-22T11:00:00Z\n")[:-12]
    )
    cfg = _cfg(lake_cfg, root, "canonical")

    days, books = _replay(cfg, spark)

    assert days == DAYS
    assert [b["raw"] for b in books] == [3, 2]
    reasons = _quarantined(spark, cfg)
    assert delta.read(spark, cfg.table_path("events")).count() + len(reasons) == 3 + 1 + 1
    assert reasons[("part-0.csv", 3)].startswith("outside landing day: event date 1997-09-22 in folder ds=1997-09-21")
    assert reasons[("part-0.csv", 4)].startswith("implausible timestamp")
    assert reasons[("part-1.csv.gz", 0)].startswith("schema: unreadable file: corrupt or truncated gz stream")

"""Faults: a job killed mid-write, days replayed out of order, corrupt raw files.

* A ``jobs.ingest`` process is SIGKILLed while Spark writes ``bronze.events`` (after the
  first task wrote its files, before the Delta commit; jobs/delta.py's test hook holds
  it there). The table stays at its last good version with the same rows, and a re-run
  gives exactly what an uninterrupted run gives.
* Days ingested and sequenced newest first end with the same bronze tables and history as
  oldest first, ``user_features`` included (a day applied late rewrites the later snapshots).
* Binary garbage, a truncated gzip, Latin-1 and UTF-16 text, a fake parquet and a link
  out of the raw root, dropped beside a day's good file, are each quarantined whole
  with the reason; the good file still loads.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs import delta, ingest, sequences
from jobs.sample_data import generate

pytestmark = pytest.mark.slow

TABLES = ("events", "items", "users", "quarantine")
RAW_PREFIX = re.compile(r'"[^"]*/raw/')


def _cfg(tiny_cfg, home: Path):
    return tiny_cfg.model_copy(update={"home": str(home)})


def _sample(cfg) -> Path:
    root = Path(cfg.resolve(cfg.source.path))
    generate(cfg.sample, root)
    return root


def _rows(spark, cfg, name: str) -> list[str]:
    """A table as sorted canonical JSON rows (order-free comparison)."""
    if not delta.exists(spark, cfg.table_path(name)):
        return []
    rows = delta.read(spark, cfg.table_path(name)).collect()
    # lineage names the raw file under each lake's own home: compare from raw/ on
    return sorted(
        RAW_PREFIX.sub('"<home>/raw/', json.dumps(_plain(r.asDict(recursive=True)), sort_keys=True, default=str))
        for r in rows
    )


def _plain(value):
    """Row values as JSON-able ones: map keys (dates) become strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _data_files(path: str) -> set[str]:
    return {str(p.relative_to(path)) for p in Path(path).rglob("*.parquet")}


def _kill_mid_write(cfg, ds, table: str, marker: Path, timeout: float = 600) -> None:
    """Start ``python -m jobs.ingest`` for ``ds`` stalled in ``table``'s write; SIGKILL it there."""
    env = {**os.environ, delta.FAULT_STALL: table, delta.FAULT_MARKER: str(marker)}
    cmd = [sys.executable, "-m", "jobs.ingest", "--config", "tiny", "--set", f"home={cfg.home}", "--ds", str(ds)]
    # Its own process group: the kill reaches the JVM and Spark's Python workers too.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"ingest ended before the stall ({proc.returncode}): {proc.stderr.read()[-3000:]}")
            assert time.time() < deadline, "the write never reached the stall"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_a_job_killed_mid_write_leaves_the_last_good_version_and_a_rerun_completes_it(
    spark, tiny_cfg, tmp_path_factory
):
    killed = _cfg(tiny_cfg, tmp_path_factory.mktemp("killed"))
    day1 = tiny_cfg.sample.start_date
    day2 = day1 + timedelta(days=1)
    _sample(killed)
    ingest.run(killed, day1, spark)
    # the same state, to run day 2 without interruption (a copy: cheaper than a second day 1)
    clean = _cfg(tiny_cfg, tmp_path_factory.mktemp("clean") / "home")
    shutil.copytree(killed.home, clean.home)
    events = killed.table_path("events")
    version, rows, files = delta.version(spark, events), _rows(spark, killed, "events"), _data_files(events)

    _kill_mid_write(killed, day2, "events", tmp_path_factory.mktemp("marker") / "stalled")

    assert _data_files(events) - files, "the kill came before any data file was written (not mid-write)"
    assert delta.version(spark, events) == version, "a killed write committed"
    assert _rows(spark, killed, "events") == rows, "a killed write changed the table"

    ingest.run(killed, day2, spark)  # the re-run
    ingest.run(clean, day2, spark)  # the same day, never interrupted
    assert delta.version(spark, events) == delta.version(spark, clean.table_path("events"))
    for name in TABLES:
        assert _rows(spark, killed, name) == _rows(spark, clean, name), f"{name} differs after the re-run"
    # the orphaned files of the killed attempt are not part of the table
    day2_rows = delta.read(spark, events).where(F.col("event_date") == F.lit(day2)).count()
    books = Path(killed.resolve(killed.reports_dir)) / "runs" / str(day2) / "ingest.json"
    assert day2_rows == json.loads(books.read_text())["events"]["accepted"]


@pytest.fixture(scope="module")
def replays(spark, tiny_cfg, tmp_path_factory):
    """Two lakes from the same sample: ingest + sequences per day, oldest first and newest first
    (what ``make backfill --order reverse`` does, minus Airflow)."""
    forward = _cfg(tiny_cfg, tmp_path_factory.mktemp("forward"))
    reverse = _cfg(tiny_cfg, tmp_path_factory.mktemp("reverse"))
    days = [tiny_cfg.sample.start_date + timedelta(days=k) for k in range(2)]
    for cfg, order in ((forward, days), (reverse, days[::-1])):
        _sample(cfg)
        for ds in order:
            ingest.run(cfg, ds, spark)
            sequences.run(cfg, ds, spark)
    return forward, reverse


@pytest.mark.parametrize("name", [*TABLES, "user_events", "user_state"])
def test_days_replayed_out_of_order_end_with_the_same_tables(spark, replays, name):
    forward, reverse = replays
    assert _rows(spark, forward, name) == _rows(spark, reverse, name), f"{name} depends on the replay order"


def test_user_features_do_not_depend_on_the_replay_order(spark, replays):
    forward, reverse = replays
    assert _rows(spark, forward, "user_features") == _rows(spark, reverse, "user_features")


def _write_bad_files(folder: Path, outside: Path) -> dict[str, str]:
    """Corrupt files beside a good day file; name -> the reason's expected words."""
    good = next(folder.glob("*.csv")).read_bytes()
    (folder / "garbage.csv").write_bytes(os.urandom(2048) + b"\x00" * 16)
    packed = gzip.compress(good * 20)
    (folder / "truncated.csv.gz").write_bytes(packed[: len(packed) // 2])
    (folder / "latin1.csv").write_bytes(good.splitlines()[0] + b"\nu1,caf\xe9,2026-10-01T00:00:00Z\n")
    (folder / "utf16.csv").write_bytes(good.decode().encode("utf-16"))
    (folder / "fake.parquet").write_bytes(b"not parquet at all")
    outside.write_text(good.decode())
    (folder / "escape.csv").symlink_to(outside)
    return {
        "garbage.csv": "binary content",
        "truncated.csv.gz": "truncated",
        "latin1.csv": "not UTF-8",
        "utf16.csv": "binary content",
        "fake.parquet": "not a parquet file",
        "escape.csv": "outside the raw root",
    }


def test_corrupt_raw_files_are_quarantined_and_the_day_completes(spark, tiny_cfg, tmp_path_factory):
    cfg = _cfg(tiny_cfg, tmp_path_factory.mktemp("corrupt"))
    root = _sample(cfg)
    ds = tiny_cfg.sample.start_date
    before = ingest.run(cfg, ds, spark)["events"]
    expected = _write_bad_files(root / "interactions" / f"ds={ds}", tmp_path_factory.mktemp("outside") / "x.csv")

    after = ingest.run(cfg, ds, spark)["events"]  # must not raise

    assert after["accepted"] == before["accepted"], "the good file no longer loads in full"
    assert after["quarantined"] == before["quarantined"] + len(expected)
    assert after["raw"] == after["accepted"] + after["quarantined"]
    rows = delta.read(spark, cfg.table_path("quarantine")).where(F.col("source_line") == 0).collect()
    reasons = {Path(r.source_file).name: r.reason for r in rows}
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert "unreadable file" in reasons[name] and words in reasons[name], (name, reasons[name])

"""bench.day_cost's pure parts: the day plan, the per-history raw folders (the measured day's file
is byte-identical in each, only the history differs) and the figures (groups, ratios, growth).

The bench itself runs a DAG per history (minutes each), so it is not run here."""

from __future__ import annotations

from datetime import date

import pytest

from bench.day_cost import (
    compare,
    copy_days,
    day_folder,
    group_of,
    group_seconds,
    history_days,
    plan,
    sha256_dir,
    tree_cpu_seconds,
)
from conf.settings import SampleSettings
from jobs.sample_data import generate

START = date(2026, 10, 1)


def test_plan_and_history_days():
    days, day = plan([30, 10, 90], START)
    assert days == 91 and day == date(2026, 12, 30)
    assert history_days(day, 10) == [date(2026, 12, 20 + k) for k in range(10)]
    assert history_days(day, 90)[0] == START  # the longest history starts on the sample's first day
    assert len(history_days(day, 30)) == 30 and day not in history_days(day, 30)
    with pytest.raises(ValueError):
        plan([0, 10], START)


def test_each_history_gets_its_days_and_the_same_day_file(tmp_path):
    sample = tmp_path / "sample"
    n_days, day = plan([1, 3], START)
    generate(SampleSettings(n_users=12, n_items=20, n_clusters=4, days=n_days), sample)
    hashes = []
    for n in (1, 3):
        raw = tmp_path / f"h{n}"
        copy_days(sample, raw, history_days(day, n))
        folders = sorted(p.name for p in (raw / "interactions").iterdir())
        assert folders == [f"ds={d}" for d in history_days(day, n)]  # the history only, before the day
        copy_days(sample, raw, [day])
        assert (raw / "items" / "items.jsonl").read_bytes() == (sample / "items" / "items.jsonl").read_bytes()
        hashes.append(sha256_dir(day_folder(raw, day)))
    assert hashes[0] == hashes[1] == sha256_dir(day_folder(sample, day))
    assert sha256_dir(day_folder(sample, day)) != sha256_dir(day_folder(sample, START))
    with pytest.raises(FileNotFoundError):
        copy_days(sample, tmp_path / "x", [date(2027, 1, 1)])


def test_tree_cpu_seconds_counts_this_process_and_its_children():
    import subprocess
    import sys

    before = tree_cpu_seconds()
    sum(i * i for i in range(3_000_000))  # ~0.2 s of CPU here
    child = subprocess.Popen([sys.executable, "-c", "sum(i * i for i in range(3_000_000)); input()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        import time

        deadline = time.time() + 20
        while tree_cpu_seconds() - before < 0.2 and time.time() < deadline:
            time.sleep(0.05)
        assert tree_cpu_seconds() - before >= 0.2
    finally:
        child.communicate(b"\n")


def _run(wall: float, **seconds: float) -> dict:
    tasks = [{"task_id": k, "state": "success", "seconds": v} for k, v in seconds.items()]
    return {"day": {"wall_s": wall, "groups": group_seconds(tasks), "tasks": tasks}}


def test_groups_and_comparison():
    assert [group_of(t) for t in ("ingest", "validate_bronze", "semantic_ids", "train", "report")] == [
        "data", "data", "item", "model", "report"
    ]  # fmt: skip
    short = _run(100.0, ingest=10.0, sequences=20.0, item_embeddings=5.0, train=40.0, report=5.0)
    long = _run(130.0, ingest=11.0, sequences=44.0, item_embeddings=5.0, train=45.0, report=5.0)
    assert short["day"]["groups"] == {"data": 30.0, "item": 5.0, "model": 40.0, "report": 5.0}
    cmp = compare({90: long, 10: short})
    assert (cmp["short"], cmp["long"]) == (10, 90)
    assert cmp["wall_ratio"] == 1.3 and not cmp["met"] and cmp["over_target_pct"] == 8.3
    assert cmp["group_ratios"]["data"] == round(55 / 30, 3) and cmp["group_ratios"]["item"] == 1.0
    assert [g["task"] for g in cmp["growth"][:2]] == ["sequences", "train"]
    assert cmp["growth"][0]["delta_s"] == 24.0 and cmp["growth"][0]["ratio"] == 2.2
    assert cmp["cpu_ratio"] is None  # no CPU figures in these runs
    ok = compare({10: short, 90: _run(115.0, ingest=10.0)})
    assert ok["met"] and ok["over_target_pct"] == 0.0

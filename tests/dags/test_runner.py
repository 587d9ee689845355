"""The runner's pieces that need no DAG run: sample freshness, the quiet console, the summary."""

import json
import os
from datetime import date

from conf import load_settings
from dags.console import QuietConsole
from dags.runner import ensure_sample
from jobs import run_summary
from jobs.stage_report import write_stage_json


def _cfg(home, **sample):
    cfg = load_settings("tiny", overrides=[f"home={home}", "sample.n_users=6", "sample.n_items=10", "sample.days=2"])
    return cfg.model_copy(update={"sample": cfg.sample.model_copy(update=sample)})


def test_sample_regenerates_only_when_its_settings_change(tmp_path):
    cfg = _cfg(tmp_path)
    manifest = tmp_path / "raw" / "sample" / "MANIFEST.json"
    ensure_sample(cfg)
    first = json.loads(manifest.read_text())
    assert len(first["days"]) == 2 and first["fingerprint"]
    stamp = manifest.stat().st_mtime_ns
    ensure_sample(cfg)
    assert manifest.stat().st_mtime_ns == stamp  # same settings: reused
    ensure_sample(_cfg(tmp_path, days=3))
    second = json.loads(manifest.read_text())
    assert len(second["days"]) == 3 and second["fingerprint"] != first["fingerprint"]
    assert len(list((tmp_path / "raw" / "sample" / "interactions").iterdir())) == 3
    # A sample written before fingerprints existed is regenerated too.
    manifest.write_text(json.dumps({k: v for k, v in second.items() if k != "fingerprint"}))
    ensure_sample(_cfg(tmp_path, days=3))
    assert json.loads(manifest.read_text())["fingerprint"] == second["fingerprint"]


def test_quiet_console_sends_logs_to_the_file_and_progress_to_the_terminal(tmp_path, capfd):
    with QuietConsole(tmp_path / "logs") as console:
        print("airflow chatter")
        os.write(2, b"jvm chatter\n")  # what a child process (the JVM) writes to its inherited stderr
        console.task_started("ingest")
        console.say("[1/1] onerec_daily ds=2026-10-01")
        print("the error's traceback")
        console.task_ended("ingest", "failed", RuntimeError("boom"))
    out = capfd.readouterr()
    assert "[1/1] onerec_daily ds=2026-10-01" in out.out
    assert "chatter" not in out.out + out.err
    assert "ingest" in out.out and "failed" in out.out and "error: boom" in out.out
    assert "| the error's traceback" in out.out and "| airflow chatter" not in out.out  # the task's own lines
    text = console.log_path.read_text()
    assert "airflow chatter" in text and "jvm chatter" in text and "[1/1]" not in text
    assert (tmp_path / "logs" / "latest.log").resolve() == console.log_path.resolve()


def test_summary_lists_every_delta_table_and_the_quality_verdicts(tmp_path):
    cfg = load_settings("tiny", overrides=[f"home={tmp_path}"])
    lake = tmp_path / "lake"
    for table in ("bronze/events", "silver/user_events", "gold/item_sids"):
        (lake / table / "_delta_log").mkdir(parents=True)
        (lake / table / "event_date=2026-10-01").mkdir()
    (lake / "bronze" / "not_a_table").mkdir()
    assert list(run_summary.lake_tables(cfg)) == ["bronze.events", "gold.item_sids", "silver.user_events"]
    days = [date(2026, 10, 1), date(2026, 10, 2)]
    write_stage_json(cfg, days[0], "validation_events", {"events": {"success": True}})
    write_stage_json(cfg, days[1], "validation_events", {"events": {"success": False, "failures": 2}})
    # Only warning-level expectations unmet: the checkpoint passed, with warnings, not "FAILED".
    write_stage_json(
        cfg, days[1], "validation_item_sids", {"item_sids": {"success": False, "critical": 0, "warnings": 1}}
    )
    verdicts = run_summary.quality_verdicts(cfg, days)
    assert verdicts == {
        "events": {"passed": 1, "failed": ["2026-10-02"], "warned": []},
        "item_sids": {"passed": 1, "failed": [], "warned": ["2026-10-02"]},
    }
    text = run_summary.render(
        {"days": ["2026-10-01", "2026-10-02"], "tables": {"bronze.events": 12}, "quality": verdicts,
         "champion": {"version": "v0002", "metrics": {"recall@10": 0.25}}, "user": "u7",
         "report": "r/index.html", "data_docs": "d/index.html"}, "--config tiny",
    )  # fmt: skip
    assert "bronze.events" in text and "12" in text and "FAILED events: 2026-10-02" in text
    assert "2 checkpoint(s) passed over 2 day(s) (1 with warnings), 1 failed" in text
    assert "warnings item_sids: 2026-10-02" in text and "FAILED item_sids" not in text
    assert "Champion: v0002  recall@10 0.2500" in text
    assert "python -m features.lookup --user u7 --config tiny" in text
    assert "python -m serving.recommend --user u7 --config tiny" in text

    # After a bulk pass, END's checkpoints read the whole range: the summary says so.
    write_stage_json(cfg, days[1], "validation_user_features",
                     {"user_features": {"success": True, "critical": 0, "since": "2026-09-01"}})  # fmt: skip
    ranged = run_summary.quality_verdicts(cfg, days)["user_features"]
    assert ranged == {"passed": 1, "failed": [], "warned": [], "since": "2026-09-01"}
    text = run_summary.render({"days": ["2026-10-02"], "tables": {}, "quality": {"user_features": ranged},
                               "champion": None, "user": None, "report": "r", "data_docs": "d"})  # fmt: skip
    assert "1 checkpoint(s) passed over 1 day(s), the bulk range from 2026-09-01 included, 0 failed" in text

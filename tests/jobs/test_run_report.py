"""The run report page from its template: escaped values, counts only, the task timeline."""

import json
from datetime import date

from conf import load_settings
from jobs.run_report import add_timings, render
from jobs.stage_report import day_report_dir

DAY = date(2026, 10, 2)


def _data() -> dict:
    return {
        "ds": DAY.isoformat(),
        "stages": {
            "ingest": {"events": {"raw": 12, "accepted": 10, "quarantined": 2}},
            "validation_events": {"events": {"success": True}, "items": {"success": False, "failures": 3}},
            "validation_item_sids": {"item_sids": {"success": False, "failures": 1, "critical": 0, "warnings": 1}},
        },
        "tables": {"bronze.events[ds]": 10},
        "events_per_day": [["2026-10-01", 8], ["2026-10-02", 10]],
        "quarantine_by_reason": {"events: bad timestamp": 2},
        "quarantine_examples": [
            {
                "table": "events",
                "file": "/raw/ds=2026-10-02/part-0.csv",
                "line": 4,
                "reason": "bad flag: like='<script>x</script>'",
            }
        ],
        "sequence_lengths": {"short": [[1, 3], [5, 2]], "positive": [[0, 5]], "lifelong": [[2, 4], [9, 1]]},
        "codebook": None,
        "model": {"train": None, "align": None, "promotion": None},
    }


TASKS = [
    {
        "task_id": "ingest",
        "state": "success",
        "start": "2026-12-06T10:00:00+00:00",
        "end": "2026-12-06T10:00:04.5+00:00",
        "seconds": 4.5,
    },
    {
        "task_id": "validate_bronze",
        "state": "failed",
        "start": "2026-12-06T10:00:05+00:00",
        "end": "2026-12-06T10:00:07+00:00",
        "seconds": 2.0,
    },
]


def test_page_escapes_raw_text_and_shows_counts_and_verdicts():
    page = render(_data())
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert '<p id="accounting">12 raw rows = 10 accepted + 2 quarantined</p>' in page
    assert "<td>items</td><td class=n>FAILED (3 failures)</td>" in page
    assert "<td>item_sids</td><td class=n>passed with 1 warning(s)</td>" in page
    assert "part-0.csv:4" in page and "/raw/ds=" not in page
    assert 'alt="sequence_lengths"' in page and 'alt="events_per_day"' in page
    assert "no codebook yet" in page and "no model stages ran" in page
    assert "not recorded" in page and 'alt="task_timeline"' not in page


def test_timings_are_recorded_per_dag_and_the_page_is_re_rendered(tmp_path):
    cfg = load_settings("tiny", overrides=[f"home={tmp_path}"])
    out = day_report_dir(cfg, DAY)
    out.mkdir(parents=True)
    (out / "report.json").write_text(json.dumps(_data()))
    add_timings(cfg, DAY, "onerec_daily", TASKS, 9.0)
    add_timings(cfg, DAY, "onerec_codebook_weekly", TASKS[:1], 5.0)
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {"onerec_daily", "onerec_codebook_weekly"}
    assert timings["onerec_daily"]["task_s"] == 6.5 and timings["onerec_daily"]["wall_s"] == 9.0
    page = (out / "index.html").read_text()
    assert 'alt="task_timeline"' in page
    assert "onerec_daily: 2 task(s), 9.0 s wall, 6.5 s in tasks" in page
    assert "<td>onerec_daily: ingest</td><td class=n>4.5</td>" in page

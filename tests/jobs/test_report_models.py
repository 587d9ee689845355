"""The model section of the run report: verdict, gates, training and alignment from the stages' JSON."""

import json
from datetime import date
from pathlib import Path

from conf import load_settings
from jobs.report_models import model_html, model_section

DAY = date(2026, 10, 2)
PROMOTION = {
    "ds": "2026-10-02",
    "candidate": "v0002",
    "champion_before": "v0001",
    "champion_after": "v0001",
    "promoted": False,
    "reason": "gate ndcg@10 failed",
    "gates": [
        {"metric": "ndcg@10", "candidate": 0.10, "champion": 0.20, "threshold": 0.19, "passed": False},
        {"metric": "legal_rate", "candidate": 1.0, "champion": 1.0, "threshold": 0.99, "passed": True},
    ],
}


def test_section_reads_train_and_align_and_renders_the_failed_gate(tmp_path):
    tiny_cfg = load_settings("tiny", overrides=[f"home={tmp_path}"])
    folder = Path(tiny_cfg.resolve(tiny_cfg.model.work_dir)) / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_text(
        json.dumps(
            {"mode": "continue", "from": "v0001", "steps": 20, "train": {"loss": 2.5}, "valid": {"recall@10": 0.1}}
        )
    )
    metrics = {"recall@10": 0.2, "mean_reward": 0.5}
    log = [{"step": 1, "rollout_reward": 0.5}, {"step": 2, "rollout_reward": 0.6}]
    (folder / "align.json").write_text(
        json.dumps({"method": "ecpo", "steps": 2, "step_s": 0.3, "before": metrics, "after": metrics, "log": log})
    )
    section = model_section(tiny_cfg, DAY, PROMOTION)
    assert section["train"]["mode"] == "continue" and section["train"]["last loss"] == "2.5000"
    assert section["align"]["reward_curve"] == [(1, 0.5), (2, 0.6)]
    page = model_html(section)
    assert "NOT PROMOTED" in page and 'id="gates"' in page and page.count("FAIL") == 1
    assert "<td>ndcg@10</td><td>0.1000</td><td>0.2000</td><td>0.1900</td><td>FAIL</td>" in page
    assert 'id="alignment"' in page and "<td>recall@10</td><td>0.2000</td><td>0.2000</td>" in page


def test_a_day_without_model_stages_gives_an_empty_section(tmp_path):
    tiny_cfg = load_settings("tiny", overrides=[f"home={tmp_path}"])
    section = model_section(tiny_cfg, date(1999, 1, 1), None)
    assert section == {"train": None, "align": None, "promotion": None}
    assert "no model stages ran" in model_html(section)

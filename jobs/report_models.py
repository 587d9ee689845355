"""The model part of the daily run report: training, alignment and the promotion decision.

Reads what ``jobs.model_stages`` wrote for ``ds``: ``train.json`` and ``align.json`` under
``model.work_dir/<ds>/`` and ``promotion.json`` beside the report. Missing files (a day the
model stages skipped, or a data-only run) give an empty section, never a failed report.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from conf.settings import Settings
from jobs.report_html import fmt as _fmt
from jobs.report_html import render

METRICS = ("recall@10", "ndcg@10", "mean_reward", "legal_rate", "coverage@10", "diversity@10")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def model_section(cfg: Settings, ds: date, promotion: dict | None) -> dict[str, Any]:
    """Training, alignment and promotion figures of ``ds`` (each None when that stage did not run)."""
    run = Path(cfg.resolve(cfg.model.work_dir)) / ds.isoformat()
    train, align = _load(run / "train.json"), _load(run / "align.json")
    section: dict[str, Any] = {"train": None, "align": None, "promotion": promotion}
    if train:
        last = train.get("train") or {}
        section["train"] = {
            "mode": train.get("mode"),
            "continued from": train.get("from") or "-",
            "codebook": train.get("codebook_version"),
            "users / items": f"{train.get('n_users')} / {train.get('n_items')}",
            "steps": train.get("steps"),
            "last loss": _fmt(last.get("loss")),
            "tokens/s": _fmt(last.get("tokens_per_s"), "{:.0f}"),
            "valid recall@10": _fmt((train.get("valid") or {}).get("recall@10")),
        }
    if align:
        section["align"] = {
            "method": align.get("method"),
            "steps": align.get("steps"),
            "step_s": align.get("step_s"),
            "before": align.get("before") or {},
            "after": align.get("after") or {},
            "reward_curve": [(r.get("step"), r.get("rollout_reward")) for r in align.get("log") or []],
        }
    return section


def model_html(section: dict[str, Any]) -> str:
    """HTML for ``model_section``: a promotion verdict first, then the gates, training and alignment."""
    promo = section.get("promotion") or {}
    gates = [
        [
            g.get("metric"),
            g.get("candidate"),
            g.get("champion"),
            g.get("threshold"),
            "pass" if g.get("passed") else "FAIL",
        ]
        for g in promo.get("gates") or []
    ]
    align = section.get("align")
    align_rows = (
        [[m, align["before"].get(m), align["after"].get(m)] for m in METRICS if m in align["before"]] if align else []
    )
    return str(render("model.html.j2", section=section, gates=gates, align_rows=align_rows))

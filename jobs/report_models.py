"""The model part of the daily run report: training, alignment and the promotion decision.

Reads what ``jobs.model_stages`` wrote for ``ds``: ``train.json`` and ``align.json`` under
``model.work_dir/<ds>/`` and ``promotion.json`` beside the report. Missing files (a day the
model stages skipped, or a data-only run) give an empty section, never a failed report.
"""

from __future__ import annotations

import html
import json
from datetime import date
from pathlib import Path
from typing import Any

from conf.settings import Settings

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


def _fmt(value: Any, pattern: str = "{:.4f}") -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    return pattern.format(value) if isinstance(value, int | float) else str(value)


def _rows(rows: list[list[Any]], head: list[str], row_id: str | None = None) -> str:
    ident = f' id="{row_id}"' if row_id else ""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table{ident}><tr>{th}</tr>{body}</table>"


def model_html(section: dict[str, Any]) -> str:
    """HTML for ``model_section``: a promotion verdict first, then the gates, training and alignment."""
    parts: list[str] = []
    promo = section.get("promotion")
    if promo:
        verdict = "PROMOTED" if promo.get("promoted") else "NOT PROMOTED"
        parts.append(
            f'<p id="promotion"><b>{verdict}</b>: candidate {html.escape(str(promo.get("candidate")))}, '
            f"champion {html.escape(str(promo.get('champion_before')))} -> "
            f"{html.escape(str(promo.get('champion_after')))}. {html.escape(str(promo.get('reason', '')))}</p>"
        )
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
        if gates:
            parts.append(_rows(gates, ["gate", "candidate", "champion", "threshold", "result"], "gates"))
    else:
        parts.append("<p>no model stages ran for this day</p>")
    if section.get("train"):
        parts.append("<h3>Training</h3>" + _rows([[k, v] for k, v in section["train"].items()], ["", "value"]))
    align = section.get("align")
    if align:
        rows = [[m, align["before"].get(m), align["after"].get(m)] for m in METRICS if m in align["before"]]
        title = f"<h3>Alignment ({html.escape(str(align['method']))}, {align['steps']} steps, {_fmt(align['step_s'], '{:.2f}')} s/step)</h3>"
        parts.append(title + _rows(rows, ["metric", "before", "after"], "alignment"))
    return "".join(parts)

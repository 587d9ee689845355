"""Where each stage leaves its small JSON report for the day's run report: ``reports/runs/<ds>/``."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from conf.settings import Settings


def day_report_dir(cfg: Settings, ds: date) -> Path:
    """The folder of ``ds``'s run report and of every stage's JSON for that day."""
    return Path(cfg.resolve(cfg.reports_dir)) / "runs" / ds.isoformat()


def write_stage_json(cfg: Settings, ds: date, name: str, payload: dict[str, Any], sort_keys: bool = False) -> Path:
    """Write ``<run_dir>/<name>.json`` (replaced on a re-run) and return its path."""
    out = day_report_dir(cfg, ds) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, sort_keys=sort_keys, default=str))
    return out

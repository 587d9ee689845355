"""What a replay built, in a dozen lines: the end of ``make run``.

Every Delta table under the lake with its row count (found by walking the lake for
``_delta_log`` folders, so new tables appear without a list to update), the
data-quality verdicts of the days run, the champion and its metrics, where the run
report and Data Docs are, and two commands that work on what was just built, with a
user id taken from the lake. Counts and one id only: nothing per user is collected.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from conf.settings import Settings
from jobs.stage_report import day_report_dir


def lake_tables(cfg: Settings) -> dict[str, str]:
    """``layer.name`` -> path of every Delta table under a local lake root (sorted)."""
    root = Path(cfg.resolve(cfg.lake_root))
    if not root.is_dir():
        return {}
    found = {}
    for folder, subdirs, _ in os.walk(root):
        if "_delta_log" in subdirs:
            found[".".join(Path(folder).relative_to(root).parts)] = folder
            subdirs.clear()  # a table's partitions and files are not walked
    return dict(sorted(found.items()))


def table_counts(spark, cfg: Settings) -> dict[str, int]:
    """Row count of every lake table, read through the Delta log."""
    from jobs import delta

    return {name: delta.read(spark, path).count() for name, path in lake_tables(cfg).items()}


def quality_verdicts(cfg: Settings, days: list[date]) -> dict[str, Any]:
    """Per table: how many of ``days`` passed validation, the days that failed (a critical
    expectation) and the days that passed with warnings (only warning-level expectations unmet)."""
    verdicts: dict[str, dict[str, Any]] = {}
    for ds in days:
        for path in sorted(day_report_dir(cfg, ds).glob("validation_*.json")):
            for table, result in json.loads(path.read_text()).items():
                entry = verdicts.setdefault(table, {"passed": 0, "failed": [], "warned": []})
                if result.get("since"):  # the checkpoint read a bulk pass's range, not the day alone
                    entry["since"] = min(entry.get("since", result["since"]), result["since"])
                # Files written before "critical" was recorded: an unmet expectation counts as a failure.
                critical = result.get("critical", 0 if result.get("success") else 1)
                if critical:
                    entry["failed"].append(ds.isoformat())
                    continue
                entry["passed"] += 1
                if result.get("warnings"):
                    entry["warned"].append(ds.isoformat())
    return verdicts


def champion(cfg: Settings) -> dict[str, Any] | None:
    """The champion's version and metrics (read the way serving reads it), or None."""
    from models.registry import registry_for

    current = registry_for(cfg).get("champion")
    if current is None:
        return None
    return {"version": current.version, "metrics": current.metrics}


def sample_user(spark, cfg: Settings, ds: date) -> str | None:
    """One real user id with features on ``ds`` (the smallest, so the choice is stable)."""
    from pyspark.sql import functions as F

    from jobs import delta

    path = cfg.table_path("user_features")
    if not delta.exists(spark, path):
        return None
    row = delta.read(spark, path).where(F.col("ds") == F.lit(ds).cast("date")).agg(F.min("user_id")).first()
    return row[0] if row else None


def collect(spark, cfg: Settings, days: list[date]) -> dict[str, Any]:
    """The summary's figures for a replay of ``days`` (the last one is the day of the commands)."""
    reports = Path(cfg.resolve(cfg.reports_dir))
    last = max(days)
    return {
        "days": [d.isoformat() for d in days],
        "tables": table_counts(spark, cfg),
        "quality": quality_verdicts(cfg, days),
        "champion": champion(cfg),
        "user": sample_user(spark, cfg, last),
        "report": str(day_report_dir(cfg, last) / "index.html"),
        "data_docs": str(reports / "data_docs" / "index.html"),
    }


def _metrics(metrics: dict[str, Any]) -> str:
    flat = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(flat.items())[:8])


def render(summary: dict[str, Any], config_args: str = "") -> str:
    """The summary as console text."""
    width = max((len(n) for n in summary["tables"]), default=10)
    lines = ["", "Lake tables (rows):"]
    lines += [f"  {name:<{width}} {n:>10,}" for name, n in summary["tables"].items()] or ["  (none)"]
    quality = summary["quality"]
    failed = {t: v["failed"] for t, v in quality.items() if v["failed"]}
    warned = {t: v.get("warned", []) for t, v in quality.items() if v.get("warned")}
    n_warned = sum(len(w) for w in warned.values())
    since = min((v["since"] for v in quality.values() if v.get("since")), default=None)
    covered = f"{len(summary['days'])} day(s)" + (f", the bulk range from {since} included" if since else "")
    lines.append(
        f"Data quality: {sum(v['passed'] for v in quality.values())} checkpoint(s) passed over "
        f"{covered}" + (f" ({n_warned} with warnings)" if n_warned else "")
        + f", {sum(len(f) for f in failed.values())} failed"
    )  # fmt: skip
    lines += [f"  FAILED {t}: {', '.join(days)}" for t, days in failed.items()]
    lines += [f"  warnings {t}: {', '.join(days)} (Data Docs has the details)" for t, days in warned.items()]
    champ = summary["champion"]
    if champ:
        lines.append(f"Champion: {champ['version']}  {_metrics(champ.get('metrics') or {})}")
    else:
        lines.append("Champion: none yet")
    lines.append(f"Run report: {summary['report']}")
    lines.append(f"Data Docs:  {summary['data_docs']}")
    user = summary["user"]
    if user is not None:
        extra = f" {config_args}" if config_args else ""
        lines.append("Try:")
        lines.append(f"  python -m features.lookup --user {user}{extra}")
        if champ:
            lines.append(f"  python -m serving.recommend --user {user}{extra}")
    return "\n".join(lines)

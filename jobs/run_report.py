"""The day's run report: one HTML page for people, ``report.json`` beside it for machines.

    python -m jobs.run_report --ds 2026-10-03

It reads what the stages wrote for ``ds`` (their JSON under ``reports/runs/<ds>/``)
and the tables themselves (through the Delta log): data volumes per day, ingest
accounting, quarantine counts by reason, sequence length distributions,
validation outcomes, and the semantic-ID codebook (utilisation per level, collision
rate before/after the dedup code, max/mean cluster size -- now and at the fit --
and how many new items were encoded on ``ds``), and the models (training, alignment
before/after, the promotion decision with every gate: jobs/report_models.py), and
each task's wall time (``timings.json``, written by the runner after the DAG run, which
then re-renders the page: :func:`add_timings`). Plots are PNGs embedded in the page, so
the file works offline and can be mailed around. The page is a Jinja2 template
(``jobs/templates/run_report.html.j2``, autoescaped); only counts are collected, never
per-user rows.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.report_html import render as render_template
from jobs.report_models import model_html, model_section
from jobs.report_plots import plots as _plots
from jobs.stage_report import day_report_dir

log = logging.getLogger(__name__)


def _read(spark, cfg: Settings, table: str):
    """A table through the Delta log; empty (with its schema) where nothing was written yet.

    A clean dataset never creates the quarantine table, an early day may have no training examples.
    """
    from jobs.schemas import BY_TABLE

    return delta.read(spark, cfg.table_path(table), BY_TABLE[table])


def collect(cfg: Settings, ds: date) -> dict:
    """Gather the report's numbers for ``ds`` (no HTML)."""
    from jobs.spark import get_spark

    spark = get_spark(cfg)
    run_dir = day_report_dir(cfg, ds)
    stages = {
        p.stem: json.loads(p.read_text()) for p in sorted(run_dir.glob("*.json")) if p.stem not in ("report", "timings")
    }
    day = F.lit(ds).cast("date")
    data: dict = {"ds": ds.isoformat(), "stages": stages, "tables": {}}
    events = _read(spark, cfg, "events")
    data["events_per_day"] = [
        (r.event_date.isoformat(), int(r["count"]))
        for r in events.where(F.col("event_date") <= day).groupBy("event_date").count().orderBy("event_date").collect()
    ]
    quarantine = _read(spark, cfg, "quarantine")
    # This day's rows: dated ds, from its landing folder, or undated rows of whole-file sources.
    landing = F.col("source_file").contains(f"/ds={ds.isoformat()}/")
    undated = F.col("event_date").isNull() & ~F.col("source_file").contains("/ds=")
    q_day = quarantine.where((F.col("event_date") == day) | landing | undated)
    kind = F.regexp_extract("reason", r"^([^:;']+)", 1)
    data["quarantine_by_reason"] = {
        f"{r.source_table}: {r.kind.strip()}": int(r["count"])
        for r in q_day.groupBy("source_table", kind.alias("kind")).count().collect()
    }
    data["quarantine_examples"] = [
        {"table": r.source_table, "file": r.source_file, "line": r.source_line, "reason": r.reason}
        for r in q_day.orderBy("source_file", "source_line").limit(15).collect()
    ]
    feats = _read(spark, cfg, "user_features").where(F.col("ds") == day)
    # Counts only: (length, users) per distinct length, bounded by the caps, not by the user base.
    sizes = {"short": "short_item_ids", "positive": "positive_item_ids"}
    # One job for the two: (sequence, length) pairs, counted.
    lengths = feats.select(
        F.explode(
            F.array(*[F.struct(F.lit(name).alias("name"), F.size(col).alias("n")) for name, col in sizes.items()])
        )
    ).select("col.*")
    # The lifelong sequence as the model reads it: its representatives (gold.user_lifelong_compressed).
    compressed = _read(spark, cfg, "user_lifelong_compressed").where(F.col("ds") == day)
    sizes["lifelong"] = "item_ids"
    lengths = lengths.unionByName(compressed.select(F.lit("lifelong").alias("name"), F.size("item_ids").alias("n")))
    counted = lengths.groupBy("name", "n").count().collect()
    data["sequence_lengths"] = {
        name: sorted([int(r["n"]), int(r["count"])] for r in counted if r["name"] == name) for name in sizes
    }
    n_features = sum(users for _, users in data["sequence_lengths"]["short"])
    data["tables"] = {
        "bronze.events[ds]": events.where(F.col("event_date") == day).count(),
        "bronze.items": _read(spark, cfg, "items").count(),
        "bronze.users": _read(spark, cfg, "users").count(),
        "silver.user_events[ds]": _read(spark, cfg, "user_events").where(F.col("event_date") == day).count(),
        "silver.user_state[last_date=ds]": _read(spark, cfg, "user_state").where(F.col("last_date") == day).count(),
        "gold.user_features[ds]": n_features,
        "quarantine (all)": quarantine.count(),
    }
    data["codebook"] = codebook_section(spark, cfg, ds, stages.get("semantic_ids", {}))
    data["model"] = model_section(cfg, ds, stages.get("promotion"))
    if delta.exists(spark, cfg.table_path("training_examples")):
        te = _read(spark, cfg, "training_examples").where(F.col("ds") == day)
        for r in te.groupBy("protocol", "split").count().collect():
            data["tables"][f"gold.training_examples[{r.protocol}/{r.split}]"] = int(r["count"])
    return data


def codebook_section(spark, cfg: Settings, ds: date, stage: dict) -> dict | None:
    """The current codebook (newest version up to ``ds``): its fit metrics and today's figures."""
    from jobs.item_sid_stats import new_items_on, sid_figures
    from jobs.semantic_ids import codebook_root, codebook_versions
    from models.codebook_io import read_manifest

    versions = codebook_versions(codebook_root(cfg), ds)
    if not versions or not delta.exists(spark, cfg.table_path("item_sids")):
        return None
    version = versions[-1]
    manifest = read_manifest(codebook_root(cfg) / version)
    fit = manifest.get("metrics") or {}
    sids = _read(spark, cfg, "item_sids").where(F.col("codebook_version") == version)
    mode = stage.get("mode")
    # encode: the items it coded; a full fit codes every item (a skipped re-run: none).
    if not stage:
        encoded = new_items_on(sids, ds)
    else:
        encoded = 0 if stage.get("skipped") else stage.get("new_items", stage.get("items"))
    return {
        "version": version,
        "mode": mode,
        "new_items_encoded": encoded,
        "now": sid_figures(sids, [int(k) for k in manifest["k_per_level"]]),
        "at_fit": fit.get(fit.get("chosen", ""), {}),
        "plain_at_fit": fit.get("plain") if fit.get("chosen") == "balanced" else None,
    }


def _codebook_html(cb: dict | None) -> str:
    if not cb:
        return str(render_template("codebook.html.j2", cb=None, summary={}, levels=[]))
    now, fit = cb["now"], cb["at_fit"]

    def per_level(d: dict, key: str, level: int, fmt: str = "{:.3f}") -> str:
        values = d.get(key) or []
        return fmt.format(values[level]) if level < len(values) else "-"

    levels = [
        {
            "level": lv,
            "k": k,
            "utilisation": per_level(now, "utilisation", lv),
            "at_fit": per_level(fit, "utilisation", lv),
            "max": per_level(now, "cluster_size_max", lv, "{}"),
            "mean": per_level(now, "cluster_size_mean", lv, "{:.1f}"),
        }
        for lv, k in enumerate(now["k_per_level"])
    ]
    summary = {
        "version (mode today)": f"{cb['version']} ({cb['mode'] or '?'})",
        "items": now["n_items"],
        "new items encoded today": cb["new_items_encoded"],
        "collision rate before dedup (now / at fit)": f"{now['collision_rate_before']:.3f} / "
        + (f"{fit['collision_rate_before']:.3f}" if "collision_rate_before" in fit else "-"),
        "collision rate after dedup": f"{now['collision_rate_after']:.3f}",
        "reconstruction error at fit": fit.get("reconstruction_error", "-"),
    }
    plain = cb.get("plain_at_fit")
    if plain:
        summary["plain RQ-KMeans at fit: utilisation / collisions"] = (
            f"{[round(u, 3) for u in plain['utilisation']]} / {plain['collision_rate_before']:.3f}"
        )
    return str(render_template("codebook.html.j2", cb=cb, summary=summary, levels=levels))


def _verdict(result: dict) -> str:
    """One table's validation for the report: a critical failure fails it; warnings alone do not."""
    critical = result.get("critical", 0 if result.get("success") else result.get("failures"))
    if critical:
        return f"FAILED ({result.get('failures')} failures)"
    if result.get("warnings"):
        return f"passed with {result['warnings']} warning(s)"
    return "passed"


def render(data: dict) -> str:
    """The HTML page for ``collect()``'s numbers (and the runner's ``timings``, when present)."""
    from markupsafe import Markup

    curve = ((data.get("model") or {}).get("align") or {}).get("reward_curve")
    timings = data.get("timings") or {}
    plots = {k: v for k, v in _plots(data["events_per_day"], data["sequence_lengths"], curve, timings).items() if v}
    ingest = data["stages"].get("ingest", {}).get("events", {})
    validation = {
        # A bulk backfill's last day validates the whole range it wrote: the key says so.
        (f"{table} ({res['since']}..{data.get('ds', '')})" if res.get("since") else table): _verdict(res)
        for stage, payload in data["stages"].items()
        if stage.startswith("validation")
        for table, res in payload.items()
    }
    accounting = f"{ingest.get('raw', '?')} raw rows = {ingest.get('accepted', '?')} accepted + {ingest.get('quarantined', '?')} quarantined"
    tasks = [(f"{dag_id}: {t['task_id']}", t["seconds"]) for dag_id, run in timings.items() for t in run["tasks"]]
    slowest = {name: f"{sec:.1f}" for name, sec in sorted(tasks, key=lambda x: -(x[1] or 0))[:8] if sec is not None}
    return str(
        render_template(
            "run_report.html.j2",
            data=data,
            accounting=accounting,
            validation=validation,
            codebook_html=Markup(_codebook_html(data.get("codebook"))),
            model_html=Markup(model_html(data.get("model") or {})),
            timings=timings,
            slowest=slowest,
            plots=plots,
        )
    )


def run(cfg: Settings, ds: date) -> Path:
    """Write ``reports/runs/<ds>/index.html`` and ``report.json``; return the HTML path."""
    data = collect(cfg, ds)
    out = day_report_dir(cfg, ds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=2, default=str))
    page = _write_page(out, data)
    log.info("run report ds=%s: %s", ds, page)
    return page


def _write_page(out: Path, data: dict) -> Path:
    timings = out / "timings.json"
    if timings.exists():
        data = {**data, "timings": json.loads(timings.read_text())}
    page = out / "index.html"
    page.write_text(render(data))
    return page


def add_timings(cfg: Settings, ds: date, dag_id: str, tasks: list[dict], wall_s: float) -> Path:
    """Record one DAG run's task timings in ``timings.json`` (per DAG) and re-render the day's page.

    ``tasks``: task_id, state, start, end (ISO) and seconds, as the runner read them from
    the DAG run. The page is re-rendered from ``report.json`` (no Spark); a day whose
    report task did not run keeps only the JSON.
    """
    out = day_report_dir(cfg, ds)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    task_s = sum(t["seconds"] or 0 for t in tasks)
    timings[dag_id] = {"wall_s": round(wall_s, 2), "task_s": round(task_s, 2), "tasks": tasks}
    path.write_text(json.dumps(timings, indent=2))
    report = out / "report.json"
    if report.exists():
        _write_page(out, json.loads(report.read_text()))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    print(run(settings_from_args(args), args.ds))


if __name__ == "__main__":
    main()

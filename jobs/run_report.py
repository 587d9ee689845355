"""The day's run report: one HTML page for people, ``report.json`` beside it for machines.

    python -m jobs.run_report --ds 2026-10-03

It reads what the stages wrote for ``ds`` (their JSON under ``reports/runs/<ds>/``)
and the tables themselves (through the Delta log): data volumes per day, ingest
accounting, quarantine counts by reason, sequence length distributions,
validation outcomes, and the semantic-ID codebook (utilisation per level, collision
rate before/after the dedup code, max/mean cluster size -- now and at the fit --
and how many new items were encoded on ``ds``), and the models (training, alignment
before/after, the promotion decision with every gate: jobs/report_models.py). Plots are PNGs embedded in the page, so the file works
offline and can be mailed around.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from datetime import date
from pathlib import Path

from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.report_models import model_html, model_section
from jobs.stage_report import day_report_dir

log = logging.getLogger(__name__)


def _read(spark, cfg: Settings, table: str):
    """A table through the Delta log; empty (with its schema) where nothing was written yet.

    A clean dataset never creates the quarantine table, an early day may have no training examples.
    """
    from jobs.schemas import BY_TABLE

    return delta.read(spark, cfg.table_path(table), BY_TABLE[table])


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(
    daily: list[tuple[str, int]], lengths: dict[str, list[int]], reward_curve: list | None = None
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    if daily:
        fig, ax = plt.subplots(figsize=(8, 2.8))
        ax.bar([d for d, _ in daily], [n for _, n in daily], color="#4c72b0")
        ax.set_title("accepted events per day")
        ax.tick_params(axis="x", labelrotation=70, labelsize=7)
        out["events_per_day"] = _png(fig)
        plt.close(fig)
    if any(lengths.values()):
        fig, axes = plt.subplots(1, len(lengths), figsize=(10, 2.8))
        for ax, (name, values) in zip(axes, lengths.items(), strict=True):
            ax.hist(values or [0], bins=20, color="#55a868")
            ax.set_title(f"{name} length (users active on ds)", fontsize=9)
        out["sequence_lengths"] = _png(fig)
        plt.close(fig)
    if reward_curve and len(reward_curve) > 1:
        fig, ax = plt.subplots(figsize=(5, 2.6))
        ax.plot([s for s, _ in reward_curve], [r for _, r in reward_curve], marker="o", color="#c44e52")
        ax.set_title("alignment: mean reward of the rollouts per step", fontsize=9)
        out["alignment_reward"] = _png(fig)
        plt.close(fig)
    return out


def collect(cfg: Settings, ds: date) -> dict:
    """Gather the report's numbers for ``ds`` (no HTML)."""
    from jobs.spark import get_spark

    spark = get_spark(cfg)
    run_dir = day_report_dir(cfg, ds)
    stages = {p.stem: json.loads(p.read_text()) for p in sorted(run_dir.glob("*.json")) if p.stem != "report"}
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
    rows = feats.select(
        F.size("short_item_ids").alias("short"),
        F.size("positive_item_ids").alias("positive"),
        F.size("lifelong_item_ids").alias("lifelong"),
    ).collect()
    data["sequence_lengths"] = {k: [int(r[k]) for r in rows] for k in ("short", "positive", "lifelong")}
    data["tables"] = {
        "bronze.events[ds]": events.where(F.col("event_date") == day).count(),
        "bronze.items": _read(spark, cfg, "items").count(),
        "bronze.users": _read(spark, cfg, "users").count(),
        "silver.user_events[ds]": _read(spark, cfg, "user_events").where(F.col("event_date") == day).count(),
        "gold.user_features[ds]": len(rows),
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
        return "<p>no codebook yet</p>"
    now, fit = cb["now"], cb["at_fit"]

    def per_level(d: dict, key: str, level: int, fmt: str = "{:.3f}") -> str:
        values = d.get(key) or []
        return fmt.format(values[level]) if level < len(values) else "-"

    rows = "".join(
        f"<tr><td>{lv}</td><td class=n>{k}</td><td class=n>{per_level(now, 'utilisation', lv)}</td>"
        f"<td class=n>{per_level(fit, 'utilisation', lv)}</td><td class=n>{per_level(now, 'cluster_size_max', lv, '{}')}</td>"
        f"<td class=n>{per_level(now, 'cluster_size_mean', lv, '{:.1f}')}</td></tr>"
        for lv, k in enumerate(now["k_per_level"])
    )
    head = (
        "<tr><th>level</th><th>K</th><th>utilisation</th><th>at fit</th><th>max cluster</th><th>mean cluster</th></tr>"
    )
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
    return _table(summary, ("codebook", "value")) + f"<table>{head}{rows}</table>"


def _table(rows: dict, head: tuple[str, str]) -> str:
    body = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td class=n>{html.escape(str(v))}</td></tr>" for k, v in rows.items()
    )
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body or '<tr><td colspan=2>none</td></tr>'}</table>"


def render(data: dict) -> str:
    """The HTML page for ``collect()``'s numbers."""
    curve = ((data.get("model") or {}).get("align") or {}).get("reward_curve")
    plots = _plots(data["events_per_day"], data["sequence_lengths"], curve)
    ingest = data["stages"].get("ingest", {}).get("events", {})
    validation = {
        f"{table}": "passed" if res.get("success") else f"FAILED ({res.get('failures')} failures)"
        for stage, payload in data["stages"].items()
        if stage.startswith("validation")
        for table, res in payload.items()
    }
    imgs = "".join(f'<figure><img alt="{k}" src="data:image/png;base64,{v}"></figure>' for k, v in plots.items())
    examples = "".join(
        f"<tr><td>{html.escape(e['table'])}</td><td>{html.escape(Path(e['file']).name)}:{e['line']}</td>"
        f"<td>{html.escape(e['reason'])}</td></tr>"
        for e in data["quarantine_examples"]
    )
    accounting = f"{ingest.get('raw', '?')} raw rows = {ingest.get('accepted', '?')} accepted + {ingest.get('quarantined', '?')} quarantined"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>onerec_daily {data["ds"]}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} td.n{{text-align:right}} img{{max-width:100%}}</style></head>
<body><h1>onerec_daily — {data["ds"]}</h1>
<h2>Ingest</h2><p id="accounting">{html.escape(accounting)}</p>
<h2>Tables</h2>{_table(data["tables"], ("table", "rows"))}
<h2>Quarantine by reason (this day)</h2>{_table(data["quarantine_by_reason"], ("reason", "rows"))}
<table><tr><th>table</th><th>source</th><th>reason</th></tr>{examples}</table>
<h2>Data quality</h2>{_table(validation, ("table", "result"))}
<h2 id="codebook">Semantic-ID codebook</h2>{_codebook_html(data.get("codebook"))}
<h2 id="model">Model: training, alignment, promotion</h2>{model_html(data.get("model") or {})}
<h2>Plots</h2>{imgs}
</body></html>"""


def run(cfg: Settings, ds: date) -> Path:
    """Write ``reports/runs/<ds>/index.html`` and ``report.json``; return the HTML path."""
    data = collect(cfg, ds)
    out = day_report_dir(cfg, ds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=2, default=str))
    page = out / "index.html"
    page.write_text(render(data))
    log.info("run report ds=%s: %s", ds, page)
    return page


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    print(run(settings_from_args(args), args.ds))


if __name__ == "__main__":
    main()

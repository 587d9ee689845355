"""``metrics.json`` and ``report.html`` of ``bench/quality.py``, with the published figures beside ours."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

MODELS = ("onerec", "sasrec", "sasrec_bce")
KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")

# TIGER (Rajput et al., NeurIPS 2023), Table 2, Amazon Beauty 5-core; the SASRec row there is the
# BCE variant. Also in ../shared/data/amazon-beauty/PROVENANCE.md.
_BEAUTY = {
    "tiger": {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384},
    "sasrec_in_tiger_table": {"recall@5": 0.0387, "ndcg@5": 0.0249, "recall@10": 0.0605, "ndcg@10": 0.0318},
    "s3rec_in_tiger_table": {"recall@5": 0.0387, "ndcg@5": 0.0244, "recall@10": 0.0647, "ndcg@10": 0.0327},
}


def published(dataset: str) -> dict[str, Any]:
    """Published figures for the dataset (Beauty only: TIGER's table), else an empty dict."""
    return {"source": "TIGER, NeurIPS 2023, Table 2", **_BEAUTY} if "beauty" in dataset.lower() else {}


def table(metrics: dict[str, Any]) -> str:
    """Plain-text table: our three models, then the published rows."""
    rows = [(m, metrics[m]) for m in MODELS if m in metrics]
    rows += [(k, v) for k, v in sorted(metrics.items()) if k.startswith("onerec_") and isinstance(v, dict)
             and "recall@10" in v]  # fmt: skip
    rows += [(f"{k} (published)", v) for k, v in metrics.get("published", {}).items() if isinstance(v, dict)]
    lines = [f"{'model':<34}" + "".join(f"{k:>11}" for k in KEYS)]
    for name, row in rows:
        lines.append(f"{name:<34}" + "".join(f"{row.get(k, float('nan')):>11.4f}" for k in KEYS))
    lines += [f"  {name}: {row['label']}" for name, row in rows if row.get("label")]
    lines.append(f"dataset {metrics['dataset']}, profile {metrics['profile']}, {metrics['device']}, "
                 f"wall {metrics.get('wall_s')} s")  # fmt: skip
    return "\n".join(lines)


def validation_curves(runs: Path) -> dict[str, list[tuple[int, float]]]:
    """``{run: [(step, valid Recall@10), ...]}`` from each ``<runs>/<run>/train_log.jsonl``."""
    curves = {}
    for log in sorted(Path(runs).glob("*/train_log.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        points = [(r["step"], r["valid"]["recall@10"]) for r in rows if "recall@10" in r.get("valid", {})]
        if points:
            curves[log.parent.name] = points
    return curves


def curves_png(curves: dict[str, list[tuple[int, float]]]) -> str | None:
    """Base64 PNG of the validation curves (where each model peaked, whether it was still rising)."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for name, points in curves.items():
        ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=name)
    ax.set(xlabel="optimizer step", ylabel="valid Recall@10", title="Validation during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _cell(key: str, v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4f}" if isinstance(v, float) and key != "wall_s" else str(v)


def _html(metrics: dict[str, Any], curves_b64: str | None = None) -> str:
    """``report.html`` from ``templates/quality_report.html.j2`` (Jinja2, autoescaped)."""
    extra = ("legal_rate", "coverage@10", "wall_s")
    side = tuple(k for k in sorted(metrics) if k.startswith("onerec_") and isinstance(metrics[k], dict)
                 and "recall@10" in metrics[k])  # fmt: skip
    rows = [{"name": f"{m} ({metrics[m]['label']})" if metrics[m].get("label") else m, "cells": [_cell(k, metrics[m].get(k)) for k in (*KEYS, *extra)], "published": False}
            for m in (*MODELS, *side) if m in metrics]  # fmt: skip
    rows += [{"name": f"{k} (published)", "cells": [_cell(key, v.get(key)) for key in KEYS], "published": True}
             for k, v in metrics.get("published", {}).items() if isinstance(v, dict)]  # fmt: skip
    candidates = [{"source": s, "recall": c["valid"].get("recall@10", 0), "ndcg": c["valid"].get("ndcg@10", 0),
                   "codes": c["codes"], "wall_s": c["wall_s"]}
                  for s, c in metrics.get("onerec_candidates", {}).items()]  # fmt: skip
    return _template().render(
        dataset=metrics["dataset"], protocol=metrics.get("protocol", ""), profile=metrics["profile"],
        device=metrics["device"], wall_s=metrics.get("wall_s", "(unfinished)"), data=metrics.get("data"),
        head=("model", *KEYS, *extra), rows=rows, curves_b64=curves_b64, candidates=candidates,
        stages=list(metrics.get("stages", {}).items()), raw_json=json.dumps(metrics, indent=1, sort_keys=True),
    )  # fmt: skip


def _template():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "html.j2"]), undefined=StrictUndefined)  # fmt: skip
    return env.get_template("quality_report.html.j2")


def write(out: str | Path, metrics: dict[str, Any]) -> Path:
    """``<out>/metrics.json`` and ``<out>/report.html``; returns the JSON path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n")
    (out / "report.html").write_text(_html(metrics, curves_png(validation_curves(out / "runs"))))
    return path

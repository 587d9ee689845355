"""``metrics.json`` and ``report.html`` of ``bench/quality.py``, with the published figures beside ours."""

from __future__ import annotations

import base64
import html
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


def _html(metrics: dict[str, Any], curves_b64: str | None = None) -> str:
    def cells(row: dict[str, Any], extra: tuple[str, ...]) -> str:
        def fmt(key: str, v: Any) -> str:
            if v is None:
                return ""
            return f"{v:.4f}" if isinstance(v, float) and key != "wall_s" else str(v)

        return "".join(f"<td>{fmt(k, row.get(k))}</td>" for k in (*KEYS, *extra))

    extra = ("legal_rate", "coverage@10", "wall_s")
    head = "".join(f"<th>{h}</th>" for h in ("model", *KEYS, *extra))
    side = tuple(k for k in sorted(metrics) if k.startswith("onerec_") and isinstance(metrics[k], dict)
                 and "recall@10" in metrics[k])  # fmt: skip
    body = "".join(f"<tr><td>{m}</td>{cells(metrics[m], extra)}</tr>" for m in (*MODELS, *side) if m in metrics)
    body += "".join(f"<tr class=pub><td>{html.escape(k)} (published)</td>{cells(v, ())}</tr>"
                    for k, v in metrics.get("published", {}).items() if isinstance(v, dict))  # fmt: skip
    cand = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{c['valid'].get('recall@10', 0):.4f}</td>"
        f"<td>{c['valid'].get('ndcg@10', 0):.4f}</td><td>{c['codes']}</td><td>{c['wall_s']}</td></tr>"
        for s, c in metrics.get("onerec_candidates", {}).items()
    )
    stages = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in metrics.get("stages", {}).items())
    return f"""<!doctype html><meta charset=utf-8><title>Quality: {html.escape(metrics["dataset"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
tr.pub{{color:#666}}</style>
<h1>Leave-one-out quality: {html.escape(metrics["dataset"])}</h1>
<p>{html.escape(metrics.get("protocol", ""))}. Profile <b>{metrics["profile"]}</b> on {html.escape(metrics["device"])},
total wall time {metrics.get("wall_s", "(unfinished)")} s. Data: {metrics.get("data")}.</p>
<h2>Test split</h2><table><tr>{head}</tr>{body}</table>
{f'<h2>Validation curves</h2><img alt="validation curves" src="data:image/png;base64,{curves_b64}">' if curves_b64 else ""}
<h2>OneRec candidates (semantic-ID source; chosen on valid Recall@10)</h2>
<table><tr><th>source</th><th>valid R@10</th><th>valid N@10</th><th>codes</th><th>wall s</th></tr>{cand}</table>
<h2>Stages (seconds)</h2><table>{stages}</table>
<pre>{html.escape(json.dumps(metrics, indent=1, sort_keys=True))}</pre>
"""


def write(out: str | Path, metrics: dict[str, Any]) -> Path:
    """``<out>/metrics.json`` and ``<out>/report.html``; returns the JSON path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n")
    (out / "report.html").write_text(_html(metrics, curves_png(validation_curves(out / "runs"))))
    return path

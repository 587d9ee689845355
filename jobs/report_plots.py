"""The run report's plots: matplotlib figures as base64 PNGs, embedded inline in the page."""

from __future__ import annotations

import base64
import io
from datetime import datetime


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(
    daily: list[tuple[str, int]],
    lengths: dict[str, list[list[int]]],
    reward_curve: list | None = None,
    timings: dict | None = None,
) -> dict[str, str]:
    """Name -> PNG (base64) of each plot the data allows (a plot without data is left out)."""
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
        for ax, (name, counts) in zip(axes, lengths.items(), strict=True):
            # (length, users) pairs: a weighted histogram, the same picture as one value per user.
            values, weights = [v for v, _ in counts] or [0], [w for _, w in counts] or [0]
            ax.hist(values, bins=20, weights=weights, color="#55a868")
            ax.set_title(f"{name} length (users active on ds)", fontsize=9)
        out["sequence_lengths"] = _png(fig)
        plt.close(fig)
    if reward_curve and len(reward_curve) > 1:
        fig, ax = plt.subplots(figsize=(5, 2.6))
        ax.plot([s for s, _ in reward_curve], [r for _, r in reward_curve], marker="o", color="#c44e52")
        ax.set_title("alignment: mean reward of the rollouts per step", fontsize=9)
        out["alignment_reward"] = _png(fig)
        plt.close(fig)
    if timings:
        out["task_timeline"] = _timeline(plt, timings)
    return out


def _timeline(plt, timings: dict) -> str:
    """One bar per task from its start to its end, seconds since the run's first task started."""
    rows = [
        (f"{dag_id.replace('onerec_', '')}: {t['task_id']}", t)
        for dag_id, run in timings.items()
        for t in run["tasks"]
        if t.get("start") and t.get("end")
    ]
    if not rows:
        return ""
    origin = min(datetime.fromisoformat(t["start"]) for _, t in rows)
    fig, ax = plt.subplots(figsize=(9, 0.25 * len(rows) + 1.0))
    for y, (_, t) in enumerate(rows):
        start = (datetime.fromisoformat(t["start"]) - origin).total_seconds()
        width = max((datetime.fromisoformat(t["end"]) - datetime.fromisoformat(t["start"])).total_seconds(), 0.05)
        color = "#4c72b0" if t["state"] == "success" else "#c44e52"
        ax.barh(y, width, left=start, color=color)
        ax.text(start + width, y, f" {width:.1f}s", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first task started")
    ax.set_title("task timeline", fontsize=9)
    png = _png(fig)
    plt.close(fig)
    return png

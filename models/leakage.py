"""Held-out targets a reward model never saw: the cut-off rule and its check.

A reward model trained on events through day ``D`` may score rollouts, or judge a policy, only
on held-out targets that happened *after* ``D`` ends: otherwise it has seen the answer (the
target event itself) and a policy optimised against it is graded by its own coach. ``cutoff``
turns the last training day into the first second it never saw; ``after`` keeps the held-out
samples whose target is at or after it; ``check_unseen`` raises if any target is earlier, or if
any target event is among the rows the reward model was trained on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from models.data import Examples


class LeakageError(AssertionError):
    """A held-out target reached the reward model's training data."""


def epoch_seconds(ts: pd.Series) -> np.ndarray:
    """Timestamps (naive = UTC, any resolution) as int epoch seconds."""
    return pd.to_datetime(ts, utc=True).dt.as_unit("s").astype("int64").to_numpy()


def cutoff(trained_through: date) -> int:
    """Epoch seconds of the midnight (UTC) after ``trained_through``: the first instant the model never saw."""
    return int(datetime.combine(trained_through + timedelta(days=1), datetime.min.time(), UTC).timestamp())


def subset(examples: Examples, keep: np.ndarray) -> Examples:
    """The samples of ``examples`` where ``keep`` (boolean or index array) selects."""
    idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
    ts = None if examples.target_ts is None else examples.target_ts[idx]
    # Pathway arrays are per sequence row, which ``rows`` still indexes: kept whole.
    return Examples(examples.seqs, examples.rows[idx], examples.ends[idx], examples.targets[idx],
                    examples.users[idx], ts, examples.pathways)  # fmt: skip


def after(examples: Examples, first_unseen: int) -> Examples:
    """Held-out samples whose target happened at or after ``first_unseen`` (epoch seconds)."""
    if examples.target_ts is None:
        raise LeakageError("held-out samples carry no target timestamps: cannot show the reward never saw them")
    return subset(examples, examples.target_ts >= first_unseen)


def check_unseen(examples: Examples, first_unseen: int, training_events: pd.DataFrame | None = None,
                 user_ids: list[str] | None = None, item_ids: list[str] | None = None) -> None:  # fmt: skip
    """Raise ``LeakageError`` if a target of ``examples`` precedes ``first_unseen``, or -- given the reward
    model's training rows (``user_id, item_id, ts``) and the id lists of ``examples`` -- is one of them."""
    if examples.target_ts is None or len(examples) == 0:
        if len(examples):
            raise LeakageError("held-out samples carry no target timestamps")
        return
    early = examples.target_ts < first_unseen
    if early.any():
        raise LeakageError(f"{int(early.sum())} held-out target(s) before the reward model's cut-off {first_unseen}")
    if training_events is None or user_ids is None or item_ids is None:
        return
    users = np.asarray(user_ids, dtype=object)[examples.rows]
    items = np.asarray(item_ids, dtype=object)[examples.targets[:, 0]]
    ts = epoch_seconds(training_events["ts"]).tolist()
    seen = set(zip(training_events["user_id"].astype(str), training_events["item_id"].astype(str), ts, strict=True))
    hits = [k for k, key in enumerate(zip(users, items, examples.target_ts.tolist(), strict=True)) if key in seen]
    if hits:
        raise LeakageError(f"{len(hits)} held-out target event(s) are in the reward model's training data")

"""Logged exposures as alignment samples, with OneRec-V2's advantages from real feedback.

OneRec-V2 (arXiv 2508.20900, §3.1 "Preference Alignment with Real-World User Interactions") aligns
the generator on what users actually did with the items they were shown, instead of only on a
reward model's opinion of rollouts. ``logged_feedback`` turns ``bronze.events`` rows into
``models.align.Feedback``: for each exposure on the chosen days, the context is the same user's
items before it, the item is the exposure, the advantage is ``reward_shaping.v2_advantages``
(+1 top-quartile play in the user's own duration bucket without a dislike, -1 dislike, others
dropped), and ``pi_old`` is the logged generation log-probability (column
``generation_logprob``) where the serving model wrote one, NaN -- i.e. ``sg(pi_theta)`` -- otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from models.align import Feedback
from models.config import OneRecConfig
from models.data import Examples, Ragged, user_buckets
from models.leakage import epoch_seconds
from models.reward_shaping import v2_advantages


def logged_feedback(events: pd.DataFrame, exposure: np.ndarray, item_index: Mapping[str, int], cfg: OneRecConfig,
                    base: float = 2.0, top: float = 0.75) -> Feedback:  # fmt: skip
    """``events`` (bronze.events columns; the history window) -> Feedback of the rows where ``exposure``.

    Percentiles compare each play with the same user's plays over all of ``events`` (the history
    window), so a day with few plays still has a reference. Items outside ``item_index`` are
    skipped (the generator cannot name them); so are exposures whose advantage is dropped.
    """
    ev = events.assign(_exposure=np.asarray(exposure, bool))
    ev = ev[ev["item_id"].astype(str).isin(item_index)].sort_values(["user_id", "ts", "item_id"], kind="stable")
    dislike = ev["dislike"].to_numpy(float) if "dislike" in ev else np.zeros(len(ev))
    adv = v2_advantages(ev["user_id"].astype(str).to_numpy(), ev["play_seconds"].to_numpy(float),
                        ev["item_duration_seconds"].to_numpy(float), dislike, base, top)  # fmt: skip
    users = ev["user_id"].astype(str).to_numpy()
    items = ev["item_id"].astype(str).map(item_index).to_numpy(np.int64)
    ts = epoch_seconds(ev["ts"])
    new_user = np.r_[True, users[1:] != users[:-1]] if len(users) else np.zeros(0, bool)
    row = np.cumsum(new_user) - 1
    offsets = np.r_[np.flatnonzero(new_user), len(users)].astype(np.int64)
    seqs = Ragged(items, offsets, ts)
    pos = np.arange(len(users)) - offsets[row]  # position inside the user's sequence = context length
    keep = ev["_exposure"].to_numpy() & np.isfinite(adv) & (pos >= 1)
    logp = ev["generation_logprob"].to_numpy(float) if "generation_logprob" in ev else np.full(len(ev), np.nan)
    first = users[offsets[:-1]] if len(users) else np.zeros(0, dtype=object)
    examples = Examples(seqs, row[keep], pos[keep], items[keep][:, None],
                        user_buckets(list(first), cfg.n_user_buckets)[row[keep]], ts[keep])  # fmt: skip
    return Feedback(examples, adv[keep], logp[keep])

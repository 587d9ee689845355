"""The reward cut-off rule and logged-feedback samples, on hand-made rows with known answers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from models import data, leakage
from models.config import preset
from models.feedback import logged_feedback


def test_cutoff_after_and_check_unseen():
    first = leakage.cutoff(date(2026, 10, 1))
    assert first == int(datetime(2026, 10, 2, tzinfo=UTC).timestamp())
    loo = data.leave_one_out({"a": [1, 2, 3, 4], "b": [2, 3, 1, 4]}, n_items=4)
    ex = data.eval_examples(loo, "test", preset("tiny").onerec)
    ex.target_ts = np.array([first - 1, first])
    kept = leakage.after(ex, first)
    assert kept.rows.tolist() == [1] and kept.targets[:, 0].tolist() == [4]
    leakage.check_unseen(kept, first)
    with pytest.raises(leakage.LeakageError, match="1 held-out target"):
        leakage.check_unseen(ex, first)
    # The target event (user b, item 4, at `first`) among the reward's training rows is caught.
    ids = ["", "i1", "i2", "i3", "i4"]
    trained = pd.DataFrame({"user_id": ["b"], "item_id": ["i4"], "ts": [pd.Timestamp(first, unit="s", tz="UTC")]})
    with pytest.raises(leakage.LeakageError, match="training data"):
        leakage.check_unseen(kept, first, trained, loo.users, ids)
    leakage.check_unseen(kept, first, trained.assign(item_id="i3"), loo.users, ids)  # another event: fine


def test_logged_feedback_contexts_advantages_and_old_probabilities():
    t0 = pd.Timestamp("2026-10-01", tz="UTC")
    ev = pd.DataFrame({
        "user_id": ["u"] * 5, "item_id": ["a", "b", "c", "d", "zz"],
        "ts": [t0 + pd.Timedelta(seconds=s) for s in (0, 100, 200, 300, 400)],
        "play_seconds": [1.0, 18.0, 2.0, 3.0, 20.0], "item_duration_seconds": [20.0] * 5,
        "dislike": [0, 0, 0, 1, 0], "generation_logprob": [np.nan, -2.0, np.nan, -1.0, np.nan],
    })  # fmt: skip
    index = {"a": 1, "b": 2, "c": 3, "d": 4}  # "zz" is not in the generator's catalogue: skipped
    exposure = np.array([False, True, True, True, True])
    fb = logged_feedback(ev, exposure, index, preset("tiny").onerec)
    # Percentiles among u's 4 known plays of 16-31 s videos: b 18 s -> 0.875 (+1); c 2 s -> 0.375 (dropped);
    # d disliked (-1). a is not an exposure of the chosen days.
    assert fb.examples.targets[:, 0].tolist() == [2, 4] and fb.adv.tolist() == [1.0, -1.0]
    assert fb.examples.ends.tolist() == [1, 3]  # contexts: [a] and [a, b, c]
    assert fb.examples.seqs[0][: fb.examples.ends[1]].tolist() == [1, 2, 3]
    assert fb.logp_old.tolist() == [-2.0, -1.0]

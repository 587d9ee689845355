"""Ground truth for the bundled sample: what a recommended item is worth to a user, by the simulator.

The sample (``jobs/sample_data.py``) draws every outcome from a latent user-item affinity. The
oracle rebuilds that world from the sample settings and seed (``build_world``: no behaviour is
replayed, nothing is copied) and, for a user and a list of recommended items, returns the
*expected* engagement the simulator would produce if the user watched them: watch ratio
(play / duration, loops above 1), like, dislike, rating >= 4, follow, comment, share, "engaged". Expectations are Monte-Carlo means
over ``draws`` calls of the generator's own ``outcomes`` function with a fixed seed, so the oracle
is deterministic and cannot drift from the sample's behaviour model.

``models.policy_eval.oracle_metrics`` turns the per-user figures into means with standard errors.
Only a run on the bundled sample has an oracle: ``from_source`` reads the source's
``MANIFEST.json`` and returns None for any other data ("no oracle").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conf.settings import SampleSettings
from jobs.sample_data import World, build_world, outcomes

SIGNALS = ("watch_ratio", "like", "dislike", "rating_4plus", "follow", "comment", "share", "engaged")


class SampleOracle:
    """Expected engagement of (user, item) pairs under the sample's latent affinity."""

    def __init__(self, settings: SampleSettings, draws: int = 128, seed: int = 0) -> None:
        self.world: World = build_world(settings)
        self.draws, self.seed = draws, seed

    @classmethod
    def from_source(cls, source_dir: str | Path, **kw: Any) -> SampleOracle | None:
        """The oracle of the sample under ``source_dir`` (its MANIFEST.json), or None if it is not the sample."""
        path = Path(source_dir) / "MANIFEST.json"
        if not path.is_file():
            return None
        manifest = json.loads(path.read_text())
        if manifest.get("generator") != "jobs.sample_data":
            return None
        return cls(SampleSettings(**manifest["settings"]), **kw)

    def _index(self, ids: np.ndarray, prefix: str, n: int) -> np.ndarray:
        """``"u12"`` -> 12; anything else (padding, illegal, another dataset's id) -> -1."""
        out = np.full(len(ids), -1, dtype=np.int64)
        for k, x in enumerate(ids):
            if isinstance(x, str) and x.startswith(prefix) and x[1:].isdigit() and int(x[1:]) < n:
                out[k] = int(x[1:])
        return out

    def expected(self, user_ids: np.ndarray, item_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Expected value of each signal for each pair ``(user_ids[k], item_ids[k])``; NaN for unknown ids."""
        s = self.world.settings
        users = self._index(np.asarray(user_ids, dtype=object), "u", s.n_users)
        items = self._index(np.asarray(item_ids, dtype=object), "i", s.n_items)
        ok = (users >= 0) & (items >= 0)
        out = {name: np.full(len(users), np.nan) for name in SIGNALS}
        if not ok.any():
            return out
        u, i = np.repeat(users[ok], self.draws), np.repeat(items[ok], self.draws)
        # A fixed stream: the same pairs always get the same expectations (no run-to-run noise).
        rating, play, flags = outcomes(self.world, u, i, np.random.default_rng([self.seed, 99]))
        dislike = flags[:, 4] > 0
        draws = {"watch_ratio": play / self.world.item_duration[i], "like": flags[:, 0], "dislike": dislike,
                 "rating_4plus": rating >= 4, "follow": flags[:, 1], "comment": flags[:, 2], "share": flags[:, 3],
                 # the reward model's fused label, less its long-view clause (a population percentile)
                 "engaged": ((flags[:, :4] > 0).any(1) | (rating >= 4)) & ~dislike}  # fmt: skip
        for name, values in draws.items():
            out[name][ok] = np.asarray(values, dtype=float).reshape(-1, self.draws).mean(1)
        return out

    def of_lists(self, user_ids: list[str], lists: list[list[str | None]]) -> dict[str, np.ndarray]:
        """Per user: the mean expected signal over their recommended list (unknown entries skipped)."""
        k = max((len(row) for row in lists), default=0)
        grid = np.array([[*row, *[None] * (k - len(row))] for row in lists], dtype=object).reshape(len(lists), k)
        flat = self.expected(np.repeat(np.asarray(user_ids, dtype=object), k), grid.reshape(-1))
        out = {}
        for name, v in flat.items():
            v = v.reshape(len(lists), k)
            known = np.isfinite(v).sum(1)
            out[name] = np.where(known > 0, np.nansum(v, 1) / np.maximum(known, 1), np.nan)
        return out

"""bronze.events-shaped frames straight from the sample's behaviour model (no Spark, no files)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from conf.settings import SampleSettings
from jobs.sample_data import build_world, simulate_day
from jobs.schemas import FLAG_NAMES


def sample_events(settings: SampleSettings | None = None, days: int | None = None) -> pd.DataFrame:
    """Every valid interaction of the first ``days`` sample days, with bronze.events columns."""
    settings = settings or SampleSettings()
    world = build_world(settings)
    rng = np.random.default_rng([settings.seed, 2])  # the stream jobs.sample_data.generate uses
    frames = []
    for d in range(days or settings.days):
        log = simulate_day(world, d, rng)
        day = pd.Timestamp(settings.start_date + timedelta(days=d))
        frame = pd.DataFrame({
            "user_id": [f"u{u}" for u in log.user], "item_id": [f"i{i}" for i in log.item],
            "ts": day + pd.to_timedelta(log.second, unit="s"), "rating": log.rating.astype(float),
            "play_seconds": log.play, "item_duration_seconds": world.item_duration[log.item],
            **{name: log.flags[:, k] for k, name in enumerate(FLAG_NAMES)},
        })  # fmt: skip
        frame["event_date"] = day.date()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def leave_one_out_rows(events: pd.DataFrame, ds, context_len: int = 50) -> pd.DataFrame:
    """gold.training_examples leave_one_out rows as of the end of ``ds`` (as jobs.training_examples builds them)."""
    past = events[events["event_date"] <= ds].sort_values(["user_id", "ts", "item_id"], kind="stable")
    rows = []
    for user, g in past.groupby("user_id", sort=True):
        items, ts = g["item_id"].tolist(), (g["ts"].astype("int64") // 10**9).tolist()
        if len(items) < 3:
            continue
        for split, offset in (("train", 3), ("valid", 2), ("test", 1)):
            cut = len(items) - offset
            lo = max(0, cut - context_len)
            rows.append({"user_id": user, "split": split, "context_item_ids": items[lo:cut],
                         "context_ts": ts[lo:cut], "target_item_id": items[cut], "target_item_ids": [items[cut]],
                         "target_ts": ts[cut], "protocol": "leave_one_out", "ds": ds})  # fmt: skip
    return pd.DataFrame(rows)


def random_sids(item_ids, levels: int = 2, k: int = 8, version: str = "v20261001", ds=None, seed: int = 0):
    """gold.item_sids-shaped rows: random tuples plus a dedup code that makes each one unique."""
    rng = np.random.default_rng(seed)
    item_ids = sorted(item_ids)
    seen: dict[tuple, int] = {}
    codes = []
    for _ in item_ids:
        tup = tuple(int(c) for c in rng.integers(0, k, levels))
        codes.append([*tup, seen.get(tup, 0)])
        seen[tup] = seen.get(tup, 0) + 1
    return pd.DataFrame({"item_id": item_ids, "codes": codes, "codebook_version": version, "ds": ds})

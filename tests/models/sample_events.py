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

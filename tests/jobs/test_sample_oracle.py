"""The simulator oracle: rebuilt from the sample's settings, deterministic, and true to the sample."""

from __future__ import annotations

import json

import numpy as np

from conf.settings import SampleSettings
from jobs.sample_oracle import SampleOracle
from tests.models.sample_events import sample_events

SETTINGS = SampleSettings(n_users=150, n_items=120, n_clusters=4, days=8)


def test_expected_engagement_follows_the_latent_taste():
    oracle = SampleOracle(SETTINGS, draws=256)
    world = oracle.world
    users = np.arange(40)
    liked = [np.flatnonzero(world.item_cluster == world.user_primary[u])[:5] for u in users]
    other = [np.flatnonzero((world.item_cluster != world.user_primary[u])
                            & (world.item_cluster != world.user_secondary[u]))[:5] for u in users]  # fmt: skip
    ids = [f"u{u}" for u in users]
    good = oracle.of_lists(ids, [[f"i{i}" for i in row] for row in liked])
    bad = oracle.of_lists(ids, [[f"i{i}" for i in row] for row in other])
    assert good["watch_ratio"].mean() > bad["watch_ratio"].mean() + 0.1
    assert good["like"].mean() > 2 * bad["like"].mean() and good["dislike"].mean() < bad["dislike"].mean()
    # Deterministic: a second oracle of the same settings gives the same figures.
    again = SampleOracle(SETTINGS, draws=256).of_lists(ids, [[f"i{i}" for i in row] for row in liked])
    np.testing.assert_array_equal(again["like"], good["like"])


def test_oracle_matches_what_the_sample_realised():
    """Averaged over the sample's own (user, item) pairs, the oracle's expectations are the realised rates."""
    events = sample_events(SETTINGS)
    exp = SampleOracle(SETTINGS, draws=64).expected(events["user_id"].to_numpy(), events["item_id"].to_numpy())
    ratio = events["play_seconds"] / events["item_duration_seconds"]
    n = len(events)
    assert n > 1000
    for name, realised in (("like", events["like"]), ("dislike", events["dislike"]), ("watch_ratio", ratio)):
        se = realised.std() / np.sqrt(n)
        assert abs(exp[name].mean() - realised.mean()) < 4 * se + 0.005, (name, exp[name].mean(), realised.mean())


def test_unknown_ids_and_non_sample_sources(tmp_path):
    oracle = SampleOracle(SETTINGS, draws=8)
    out = oracle.of_lists(["u1", "u999", "x"], [["i1", None, "B00X"], ["i1"], ["i2"]])
    assert np.isfinite(out["like"][0]) and np.isnan(out["like"][1:]).all()
    assert SampleOracle.from_source(tmp_path) is None  # no manifest: not the sample
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"generator": "amazon"}))
    assert SampleOracle.from_source(tmp_path) is None
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"generator": "jobs.sample_data",
                                                        "settings": SETTINGS.model_dump(mode="json")}))  # fmt: skip
    rebuilt = SampleOracle.from_source(tmp_path)
    np.testing.assert_array_equal(rebuilt.world.user_pref, oracle.world.user_pref)

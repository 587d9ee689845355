"""serving.recommend against the real Feast online store of the ``lake`` fixture (conftest.py).

It lives here to share that session fixture (one apply + materialise for the whole run). A random
generator over the lake's items stands in for a trained champion: what is tested is the serving
path (online user features -> batch -> constrained beam -> titles from ``item_content``; popular
items from ``gold.item_stats`` for a cold start), not the model's quality.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tests.features.conftest import EXPECTED_STATS, EXPECTED_TITLES

ITEMS = ["i1", "i2", "i5"]  # the catalogue items with titles; u1 (as of D2) has seen all three


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    from models import checkpoint
    from models.config import tiny
    from models.continual import ItemSpace
    from models.onerec import build

    codes = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [3, 1, 0]], dtype=np.int64)  # row 0 = padding
    cfg = dataclasses.replace(tiny().onerec, n_items=len(ITEMS), dedup_codes=3)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("champion") / "v-test"
    checkpoint.save(directory, build(cfg, codes), model_config=cfg, rng=False,
                    versions={"feature_service": "onerec_serve_v3"})  # fmt: skip
    ItemSpace(["", *ITEMS], codes, 8, "cb-test").save(directory / "items")
    return directory


def test_known_user_served_from_the_online_store(lake, checkpoint_dir):
    from serving.recommend import load

    rec = load(lake.cfg, str(checkpoint_dir))
    answer = rec.recommend("u1", k=3)
    assert answer.source == "model" and not answer.cold_start
    assert sorted(it.item_id for it in answer.items) == ITEMS  # the beam covers this tiny catalogue
    assert {it.item_id: it.title for it in answer.items} == EXPECTED_TITLES  # titles read online
    # u1's onerec_serve_v3 features as of D2 (i4 is not in the model's item space): short i2 i4 i5,
    # positives i1 i4, lifelong representatives i2 i5 (gold.user_lifelong_compressed)
    assert answer.context == {"short": 2, "positive": 1, "lifelong": 2}


def test_unknown_user_gets_popular_items_from_item_stats(lake, checkpoint_dir):
    from serving.recommend import load, popular_items

    assert popular_items(lake.cfg) == sorted(EXPECTED_STATS, key=lambda i: -EXPECTED_STATS[i][1])
    answer = load(lake.cfg, str(checkpoint_dir)).recommend("nobody", k=5)
    assert answer.cold_start and answer.source == "popular"
    assert [(it.item_id, it.title) for it in answer.items] == [("i1", "Jazz, remastered"), ("i5", "Swing")]


def test_cli(lake, checkpoint_dir, capsys):
    from serving.recommend import main

    args = ["--config", "tiny", "--set", f"home={lake.cfg.home}", "--checkpoint", str(checkpoint_dir)]
    assert main([*args, "--user", "u1", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "model v-test" in out and "Jazz, remastered" in out
    assert main([*args, "--user", "nobody", "-k", "2"]) == 0
    assert "COLD START" in capsys.readouterr().out


def test_no_champion_is_a_clear_error(lake, capsys, tmp_path):
    from serving.recommend import main

    assert main(["--config", "tiny", "--set", f"home={tmp_path}", "--user", "u1"]) == 2
    assert "no champion" in capsys.readouterr().err


def test_a_checkpoint_trained_on_other_features_is_refused(lake, checkpoint_dir, tmp_path, capsys):
    """Serving never feeds a model features it was not trained on: a clear error, exit code 2."""
    import shutil

    from models import checkpoint
    from serving.recommend import FeatureServiceMismatch, load, main

    legacy = tmp_path / "v-legacy"
    shutil.copytree(checkpoint_dir, legacy)
    manifest = checkpoint.read_manifest(legacy)
    (legacy / checkpoint.CONFIG_FILE).write_text(json.dumps({**manifest, "versions": {}}))
    with pytest.raises(
        FeatureServiceMismatch, match="trained on sequences, no feature service .* reads onerec_serve_v3"
    ):
        load(lake.cfg, str(legacy))
    args = ["--config", "tiny", "--set", f"home={lake.cfg.home}", "--checkpoint", str(legacy), "--user", "u1"]
    assert main(args) == 2
    assert "cannot serve: checkpoint v-legacy was trained on sequences" in capsys.readouterr().err

"""Daily continuation: a stable item space (new items appended) and champion weights grown to fit it."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pandas as pd
import pytest
import torch

from models.config import preset
from models.continual import ItemSpace, load_grown, model_config
from models.onerec import build


def _sids(rows):
    return pd.DataFrame(rows, columns=["item_id", "codes", "codebook_version", "ds"])


def test_item_space_appends_new_items_and_round_trips(tmp_path):
    day1, day2 = date(2026, 10, 1), date(2026, 10, 2)
    old = [("b", [0, 1, 0], "v1", day1), ("a", [1, 0, 0], "v1", day1)]
    space1 = ItemSpace.from_sids(_sids(old), "v1", 4)
    # "aa" sorts before "b" but arrives later: it must go to the end, not shift "b".
    space2 = ItemSpace.from_sids(_sids(old + [("aa", [0, 1, 1], "v1", day2), ("z", [2, 2, 0], "v2", day2)]), "v1", 4)
    assert space1.item_ids == ["", "a", "b"] and space2.item_ids == ["", "a", "b", "aa"]
    assert (space2.codes[:3] == space1.codes).all() and space2.dedup_codes == 2
    space2.save(tmp_path)
    back = ItemSpace.load(tmp_path)
    assert back.item_ids == space2.item_ids and (back.codes == space2.codes).all()
    cfg = model_config("tiny", space2)
    assert (cfg.n_items, cfg.levels, cfg.codes_per_level, cfg.dedup_codes) == (3, 2, 4, 2)


def test_load_grown_keeps_old_rows_and_rejects_other_models():
    torch.manual_seed(0)
    cfg = dataclasses.replace(preset("tiny").onerec, n_items=10, codes_per_level=4, levels=2, dedup_codes=2)
    old = build(cfg)
    bigger = build(dataclasses.replace(cfg, n_items=12, dedup_codes=3))
    grown = load_grown(bigger, old.state_dict(), keep=("item_codes",))
    assert "context.items.ids.weight" in grown and "heads.2.weight" in grown
    torch.testing.assert_close(bigger.context.items.ids.weight[:11], old.context.items.ids.weight)
    torch.testing.assert_close(bigger.heads[2].weight[:2], old.heads[2].weight)
    wider = build(dataclasses.replace(cfg, d_model=64, n_heads=4))
    with pytest.raises(ValueError, match="checkpoint"):
        load_grown(wider, old.state_dict())
    assert np.isfinite(bigger.heads[0].weight.detach().numpy()).all()


def test_run_without_test_scores_validation_only(tmp_path):
    from models import continual
    from tests.models.sample_events import leave_one_out_rows, random_sids, sample_events

    events = sample_events(days=4)
    day = sorted(events["event_date"].unique())[-1]
    space = ItemSpace.from_sids(random_sids(events["item_id"].unique(), ds=day), "v20261001", 8)
    result = continual.run(leave_one_out_rows(events, day), space, tmp_path, preset_name="tiny", steps=4,
                           score_test=False)  # fmt: skip
    assert result["test"] == {} and result["valid"]["n_users"] > 0 and 0.0 <= result["valid"]["recall@10"] <= 1.0

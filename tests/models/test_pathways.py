"""models.pathways: feature rows -> the four pathways, with missing signals masked, never invented."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from models.config import SIGNAL_NAMES, tiny
from models.pathways import observed_signals, pathway_arrays

NAN = float("nan")
INDEX = {f"i{k}": k for k in range(1, 9)}
ROW = {
    "n_events": [5], "n_positive": [2], "active_days": [2], "tenure_days": [0],
    "attributes": [json.dumps({"gender": "f"})],
    "short_item_ids": [["i1", "zzz", "i2", "i3"]], "short_ts": [[1000, 1100, 1200, 3400]],
    "short_flags": [[1, 0, 16, 0]], "short_rating": [[4.0, 1.0, NAN, 5.0]],
    "short_play_seconds": [[10.0, 1.0, 30.0, NAN]], "short_duration_seconds": [[20.0, 1.0, 10.0, 10.0]],
    "positive_item_ids": [["i1", "i3"]], "item_ids": [["i7", "i8", "zzz"]],
}  # fmt: skip


def config(**kw):
    cfg = dataclasses.replace(tiny().onerec, n_items=8, user_attr_names=("gender", "age"),
                              user_count_features=("n_events",), user_attr_sizes=(65, 65, 17))  # fmt: skip
    return dataclasses.replace(cfg, **kw)


def col(name: str) -> int:
    return SIGNAL_NAMES.index(name)


def test_each_pathway_from_its_features():
    a = pathway_arrays(ROW, ["u1"], [3600], config(), INDEX)
    cfg = config()
    # short-term: the unknown item is dropped with its signals; most recent last, left-padded
    assert a["short_items"][0].tolist() == [0] * (cfg.short_len - 3) + [1, 2, 3]
    assert a["short_gap"][0, -3:].tolist() == [5, 5, 2]  # log2(1 + minutes before the request)
    assert a["pos_items"][0, -2:].tolist() == [1, 3] and a["life_items"][0, -2:].tolist() == [7, 8]
    gender, age, events = a["user_attrs"][0].tolist()
    assert gender > 0 and age == 0 and events == 1 + math.floor(math.log2(6))  # age: not given -> masked


def test_missing_signals_are_masked_not_invented():
    a = pathway_arrays(ROW, ["u1"], [3600], config(), INDEX)
    k = len(SIGNAL_NAMES)
    values, present = a["short_signals"][0, -3:, :k], a["short_signals"][0, -3:, k:]
    assert values[:, col("like")].tolist() == [1, 0, 0] and values[:, col("dislike")].tolist() == [0, 1, 0]
    assert present[:, col("rating")].tolist() == [1, 0, 1]  # i2 has no rating: absent, not 0
    assert present[:, col("play_ratio")].tolist() == [1, 1, 0]  # i3 has no play time
    assert values[1, col("play_ratio")] == 1.0  # 30 s of a 10 s item: clipped at 2x, scaled to 1
    # A dataset that never sets a flag (ml-100k has ratings only) has it absent everywhere.
    only = pathway_arrays(ROW, ["u1"], [3600], config(signals=("rating",)), INDEX)
    assert only["short_signals"][0, -3:, k + col("like")].tolist() == [0, 0, 0]
    assert only["short_signals"][0, -3:, k + col("rating")].tolist() == [1, 0, 1]


def test_observed_signals_name_what_the_rows_carry():
    assert observed_signals(ROW) == ("like", "dislike", "play_ratio", "rating")
    silent = {**ROW, "short_flags": [[0, 0, 0, 0]], "short_play_seconds": [[NAN] * 4]}
    assert observed_signals(silent) == ("rating",)


def test_a_user_without_features_and_the_ablation_switches():
    empty = {k: [None] for k in ROW}
    a = pathway_arrays(empty, ["u9"], [0], config(), INDEX)
    assert not any(v.any() for k, v in a.items() if k != "user")
    off = pathway_arrays(ROW, ["u1"], [3600], config(masked_pathways=("lifelong", "static")), INDEX)
    assert not off["life_items"].any() and not off["user_attrs"].any() and off["user"][0] == 0
    assert off["pos_items"].any() and off["short_items"].any()


@pytest.mark.parametrize("architecture", ["encoder_decoder", "lazy_decoder"])
def test_the_generator_trains_on_pathway_batches(architecture):
    from models.onerec import build

    cfg = config(architecture=architecture, levels=2, codes_per_level=8)
    codes = np.random.default_rng(0).integers(0, 8, (9, 2))
    codes[0] = 0
    a = pathway_arrays(ROW, ["u1"], [3600], cfg, INDEX)
    batch = {k: torch.from_numpy(v) for k, v in a.items()}
    batch["target_items"] = torch.tensor([[4]])
    batch["target_codes"] = torch.from_numpy(codes[[4]])
    torch.manual_seed(0)
    model = build(cfg, codes)
    loss, _ = model(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.context.signals.weight.grad.abs().sum() > 0
    assert model.context.attrs[1].weight.grad[0].abs().sum() == 0  # a missing attribute adds nothing

"""Per-position training: windows whose every position is a target, a causal context, both
architectures; no position sees its own future, and the newest position decodes as inference does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models import data
from models.config import TrainConfig, tiny
from models.onerec import build
from models.tasks import OneRecTask

pytestmark = pytest.mark.usefixtures("one_thread")


def config(arch: str, **changes):
    item_head = 1.0 if arch == "encoder_decoder" else 0.0  # the item head needs the encoder
    return dataclasses.replace(tiny().onerec, architecture=arch, per_position=True, pos_len=0, lifelong_len=0,
                               n_items=40, dedup_codes=0, item_loss_weight=item_head, **changes)  # fmt: skip


def codes_table() -> np.ndarray:
    codes = np.zeros((41, 2), dtype=np.int64)
    codes[1:, 0], codes[1:, 1] = np.arange(40) // 8, np.arange(40) % 8
    return codes


def loo() -> data.LeaveOneOut:
    rng = np.random.default_rng(0)
    seqs = {str(u): [int(i) for i in rng.integers(1, 41, int(rng.integers(4, 16)))] for u in range(30)}
    return data.leave_one_out(seqs, n_items=40)


def test_config_refuses_pathways_that_see_the_future():
    with pytest.raises(ValueError, match="per_position"):
        dataclasses.replace(tiny().onerec, per_position=True)  # tiny has positive and lifelong pathways
    with pytest.raises(ValueError, match="per_position"):
        config("encoder_decoder", session_len=2)


def test_position_batch_targets_every_next_item_once():
    split = loo()
    cfg = config("encoder_decoder")
    ex = data.position_examples(split, cfg)
    batch = data.position_batch(ex, range(len(ex)), codes_table())
    assert batch["short_items"].shape == (len(ex), cfg.short_len) and batch["target_codes"].shape[1:] == (6, 2)
    # every item of a training sequence but its first is a target exactly once
    assert int((batch["target_items"] > 0).sum()) == int(sum(max(n - 1, 0) for n in split.train.lengths))
    inputs, targets = batch["short_items"], batch["target_items"]
    assert ((targets > 0) <= (inputs > 0)).all()  # a target always has an item before it
    assert (batch["target_codes"][targets == 0] == 0).all()


@pytest.mark.parametrize("arch", ["encoder_decoder", "lazy_decoder"])
def test_no_position_sees_its_future_and_the_newest_decodes_as_inference(arch):
    torch.manual_seed(0)
    cfg, codes = config(arch), codes_table()
    model = build(cfg, codes).eval()
    ex = data.position_examples(loo(), cfg)
    batch = data.position_batch(ex, range(8), codes)
    _, logits = model(batch)
    rows, positions = (batch["target_items"] > 0).nonzero(as_tuple=True)
    # Change the last context item of every window: only targets at the last position may move.
    changed = {**batch, "short_items": batch["short_items"].clone()}
    changed["short_items"][:, -1] = changed["short_items"][:, -1] % 40 + 1
    _, logits2 = model(changed)
    early = positions < cfg.short_len - 1
    torch.testing.assert_close(logits2[early], logits[early])
    assert not torch.allclose(logits2[~early], logits[~early])
    # The newest position's logits are the point-wise forward of that window (what inference runs).
    last = (positions == cfg.short_len - 1).nonzero()[:, 0]
    point = {"user": batch["user"][rows[last]], "short_items": batch["short_items"][rows[last]],
             "target_codes": batch["target_codes"][rows[last], -1], "target_items": batch["target_items"][rows[last], -1:]}  # fmt: skip
    _, point_logits = model(point)
    torch.testing.assert_close(point_logits, logits[last], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["encoder_decoder", "lazy_decoder"])
def test_per_position_training_learns_and_beam_search_runs(arch, tmp_path):
    from models.train import train

    torch.manual_seed(0)
    cfg, codes, split = config(arch), codes_table(), loo()
    tc = TrainConfig(batch_size=8, lr=3e-3, warmup_steps=2, steps=30, eval_every=30, ckpt_every=30,
                     eval_batch_size=64, beam_size=10, log_every=5, out_dir=str(tmp_path), select_by="recall@10")  # fmt: skip
    model = build(cfg, codes)
    task = OneRecTask(split, cfg, tc, codes)
    assert task.n_examples == len(data.position_examples(split, cfg))
    with torch.no_grad():
        before = float(model(task.batch(range(task.n_examples)))[0])
    result = train(model, task, tc, cfg, {}, score_test=False)
    with torch.no_grad():
        model.train()
        after = float(model(task.batch(range(task.n_examples)))[0])
    assert after < 0.9 * before
    assert result["valid"]["legal_rate"] == 1.0 and 0.0 <= result["valid"]["recall@10"] <= 1.0

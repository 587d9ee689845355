"""models.train model selection: select_by, early stopping (patience), the time box, test left
alone when asked, the wide test beam, and label smoothing of the generator (CPU, tiny, seconds)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from models import data
from models.config import tiny
from models.onerec import build
from models.sasrec import SASRec
from models.tasks import OneRecTask, SASRecTask
from models.train import _patience_spent, train


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def loo() -> data.LeaveOneOut:
    rng = np.random.default_rng(0)
    seqs = {str(u): [(int(rng.integers(0, 40)) + 3 * i) % 40 + 1 for i in range(int(rng.integers(4, 12)))]
            for u in range(40)}  # fmt: skip
    return data.leave_one_out(seqs, n_items=40)


def codes_for(n_items: int, k: int) -> np.ndarray:
    i = np.arange(n_items + 1) - 1
    codes = np.stack([(i // k) % k, i % k], 1)
    codes[0] = 0
    return codes


def test_patience_counts_validations_since_the_best():
    tc = dataclasses.replace(tiny().train, eval_every=10, patience=2)
    assert not _patience_spent(tc, 30, {"step": 20})
    assert _patience_spent(tc, 40, {"step": 20})
    assert not _patience_spent(tc, 45, {"step": 20})  # only on validation steps
    assert not _patience_spent(dataclasses.replace(tc, patience=0), 100, {"step": 10})


def test_early_stop_time_box_and_select_by(tmp_path):
    d = loo()
    p = tiny()
    cfg = dataclasses.replace(p.sasrec, n_items=d.n_items)
    tc = dataclasses.replace(p.train, batch_size=8, steps=400, eval_every=5, ckpt_every=5, select_by="recall@10",
                             patience=1, lr=0.0, out_dir=str(tmp_path))  # fmt: skip
    torch.manual_seed(0)
    result = train(SASRec(cfg), SASRecTask(d, cfg, tc), tc, cfg, {})
    # lr 0: valid never improves after the first validation, so it stops one validation later.
    assert result["valid"]["step"] == 5 and result["train"]["step"] == 10
    assert result["selected_by"] == "valid recall@10" and "recall@10" in result["test"]
    tc = dataclasses.replace(tc, patience=0, time_limit_s=1e-9, out_dir=str(tmp_path / "boxed"))
    result = train(SASRec(cfg), SASRecTask(d, cfg, tc), tc, cfg, {})
    assert result["train"]["step"] == 1  # out of time after the first step: validated and finished


def test_score_test_false_leaves_test_alone_and_test_beam(tmp_path):
    d = loo()
    p = tiny()
    cfg = dataclasses.replace(p.onerec, n_items=d.n_items, label_smoothing=0.1)
    codes = codes_for(d.n_items, 8)
    tc = dataclasses.replace(p.train, batch_size=8, steps=6, eval_every=3, ckpt_every=3, beam_size=10,
                             test_beam_size=20, out_dir=str(tmp_path))  # fmt: skip
    torch.manual_seed(0)
    model = build(cfg, codes)
    task = OneRecTask(d, cfg, tc, codes)
    result = train(model, task, tc, cfg, {}, score_test=False)
    assert result["test"] == {} and "legal_rate_greedy" not in result["valid"]  # no greedy pass on valid
    assert json.loads((tmp_path / "metrics.json").read_text())["test"] == {}
    test = task.evaluate(model, "test", beam_size=tc.test_beam_size)
    assert test["legal_rate"] == 1.0 and "legal_rate_greedy" in test


def test_label_smoothing_is_per_level_and_zero_is_plain_ce():
    p = tiny()
    codes = codes_for(p.onerec.n_items, 8)
    batch = data.synthetic_batch(p.onerec, codes, 6)
    torch.manual_seed(0)
    plain = build(p.onerec, codes).eval()
    loss, logits = plain(batch)
    reference = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["target_codes"].flatten())
    assert torch.allclose(loss, reference, atol=1e-6)
    smooth = build(dataclasses.replace(p.onerec, label_smoothing=0.2), codes).eval()
    smooth.load_state_dict(plain.state_dict())
    smoothed, _ = smooth(batch)
    assert torch.isfinite(smoothed) and smoothed > loss  # finite: never smooths onto -inf columns

"""models.sasrec: shapes, causality, padding invariance, both losses learn (CPU, tiny, < 3 s)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models.config import tiny
from models.data import Ragged, sasrec_batch, sasrec_windows
from models.sasrec import SASRec

pytestmark = pytest.mark.usefixtures("one_thread")


def make(**changes) -> SASRec:
    torch.manual_seed(0)
    return SASRec(dataclasses.replace(tiny().sasrec, **changes))


def test_shapes_and_padding_column():
    model = make()
    seq = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    assert model.hidden(seq).shape == (2, 5, 32)
    scores = model.score(seq)
    assert scores.shape == (2, 41) and torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    for loss_kind in ("ce", "bce"):
        loss, _ = make(loss=loss_kind, n_negatives=3)({"input": seq, "target": seq.roll(-1, 1)})
        assert loss.ndim == 0 and torch.isfinite(loss)


def test_causal_a_later_item_does_not_change_earlier_states():
    model = make().eval()
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = a.clone()
    b[0, 4] = 9
    ha, hb = model.hidden(a), model.hidden(b)
    assert torch.allclose(ha[:, :4], hb[:, :4], atol=1e-6)
    assert not torch.allclose(ha[:, 4:], hb[:, 4:])


def test_left_padding_does_not_change_the_score():
    model = make().eval()
    short = model.score(torch.tensor([[0, 5, 6, 7]]))
    long = model.score(torch.tensor([[0, 0, 0, 0, 0, 5, 6, 7]]))
    assert torch.allclose(short, long, atol=1e-5)


def tiny_sequences(n_users: int = 24, n_items: int = 40) -> Ragged:
    """Deterministic successor chains (i -> i + 1), so the next item is learnable."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n_users):
        start, length = int(rng.integers(1, n_items - 12)), int(rng.integers(4, 12))
        rows.append(list(range(start, start + length)))
    return Ragged.from_lists(rows)


@pytest.mark.parametrize("loss_kind", ["ce", "bce"])
def test_both_losses_learn_a_tiny_dataset(loss_kind):
    model = make(loss=loss_kind, n_negatives=4)
    windows = sasrec_windows(tiny_sequences(), model.cfg.max_len)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    torch.manual_seed(1)
    losses = []
    for _ in range(60):
        batch = sasrec_batch(windows, np.arange(len(windows)))
        loss, _ = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), (losses[:5], losses[-5:])

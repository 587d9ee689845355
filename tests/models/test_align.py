"""Alignment: ECPO's early clip, group advantages, DPO's sign, and both raising a known reward."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from models import data
from models.align import AlignConfig, align, dpo_loss, ecpo_loss, group_advantages, rollout, sequence_logprob
from models.beam import SemanticIdTrie
from models.config import preset
from models.onerec import build


def _grad(logp: float, logp_old: float, adv: float, **kw) -> tuple[float, float]:
    x = torch.tensor([logp], requires_grad=True)
    loss = ecpo_loss(x, torch.tensor([logp_old]), torch.tensor([adv]), **kw)
    loss.backward()
    return float(loss.detach()), float(x.grad[0])


def test_ecpo_positive_advantage_is_ppo_clip():
    assert _grad(0.0, 0.0, 1.0) == pytest.approx((-1.0, -1.0))  # ratio 1: plain policy gradient
    loss, grad = _grad(math.log(2.0), 0.0, 1.0)  # ratio 2 > 1 + eps: clipped, no gradient
    assert loss == pytest.approx(-1.2) and grad == 0.0


def test_ecpo_early_clip_bounds_negative_advantages():
    # Ratio 10 on a negative advantage: PPO's min() keeps the unclipped 10 * A, a huge push down.
    # The early clip floors pi_old at pi_theta / (1 + eps + delta): the ratio is 1.3, so is the gradient.
    loss, grad = _grad(math.log(10.0), 0.0, -1.0, eps=0.2, delta=0.1)
    assert loss == pytest.approx(1.3) and grad == pytest.approx(1.3)
    loss_ppo, grad_ppo = _grad(math.log(10.0), 0.0, -1.0, eps=0.2, delta=1e9)  # floor never binds: PPO
    assert loss_ppo == pytest.approx(10.0) and grad_ppo == pytest.approx(10.0)
    # A ratio below 1 - eps on a negative advantage is clipped as in PPO (no gradient).
    assert _grad(math.log(0.5), 0.0, -1.0)[1] == 0.0


def test_group_advantages():
    adv = group_advantages(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    torch.testing.assert_close(adv[0], torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-4, rtol=0)
    assert (adv[1] == 0).all()  # a group of ties carries no signal


def test_dpo_loss_sign():
    z = torch.zeros(1)
    assert float(dpo_loss(z, z, z, z)) == pytest.approx(math.log(2.0))
    c, r = torch.ones(1, requires_grad=True), torch.full((1,), -1.0, requires_grad=True)
    loss = dpo_loss(c, r, z, z, beta=0.5)
    loss.backward()
    assert float(loss.detach()) < math.log(2.0)  # chosen already above the reference: lower loss
    assert c.grad[0] < 0 < r.grad[0]  # descent raises the chosen and lowers the rejected log-prob


class FirstCodeReward:
    """Known reward: 1 for items whose first code is 0, 0 for other real items, -1 for illegal tuples."""

    def __init__(self, codes: np.ndarray) -> None:
        self.good = torch.from_numpy(codes[:, 0] == 0).float()

    def history(self, examples, idx):
        return torch.zeros(len(idx), 1, dtype=torch.long)

    def __call__(self, history, items):
        return torch.where(items >= 0, self.good[items.clamp(min=0)], torch.full(items.shape, -1.0))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = dataclasses.replace(preset("tiny").onerec, n_items=40, n_experts=0, dedup_codes=0)
    keys = rng.choice(64, 40, replace=False)
    codes = np.zeros((41, 2), dtype=np.int64)
    codes[1:] = np.stack([keys // 8, keys % 8], 1)
    loo = data.leave_one_out({f"u{u}": rng.integers(1, 41, 8).tolist() for u in range(64)}, n_items=40)
    return cfg, codes, data.eval_examples(loo, "valid", cfg)


def test_logprob_matches_decode_steps(setup):
    cfg, codes, contexts = setup
    model = build(cfg, codes).eval()
    batch = data.onerec_batch(contexts, np.arange(4), cfg, codes)
    seq = torch.from_numpy(codes[[1, 2, 3, 4]])
    state = model.encode_context(batch)
    manual = sum(torch.log_softmax(model.decode_step(state, seq[:, :t]), -1).gather(1, seq[:, t : t + 1])[:, 0]
                 for t in range(2))  # fmt: skip
    torch.testing.assert_close(sequence_logprob(model, batch, seq), manual, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["ecpo", "dpo"])
def test_alignment_raises_a_known_reward(setup, method):
    cfg, codes, contexts = setup
    torch.manual_seed(1)
    model = build(cfg, codes)
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    reward = FirstCodeReward(codes)
    batch = data.onerec_batch(contexts, np.arange(len(contexts)), cfg, codes)

    def greedy_reward() -> float:
        _, items = rollout(model, batch, trie, 4, "beam", False)
        return float(reward(None, items).mean())

    before = greedy_reward()
    # Sampled rollouts: an untrained model's beams are the same few items for everyone, often all
    # with the same reward, and a group of ties has no advantage to learn from.
    acfg = AlignConfig(method=method, steps=12, users_per_step=32, group_size=8, lr=3e-3, sft_weight=0.0,
                       dpo_beta=1.0, rollout="sample")  # fmt: skip
    log = align(model, contexts, codes, trie, reward, acfg)
    assert len(log) == 12 and all(np.isfinite(row["loss"]) for row in log if "loss" in row)
    assert greedy_reward() > before + 0.2

"""Alignment: GBPO's and ECPO's gradient bounds, group advantages, the format reward, DPO's sign,
and every method raising a known reward."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from models import data
from models.align import (
    AlignConfig,
    Feedback,
    align,
    dpo_loss,
    ecpo_loss,
    gbpo_loss,
    group_advantages,
    rollout,
    rollout_advantages,
    sequence_logprob,
)
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


def _gbpo(pi: float, pi_old: float, adv: float) -> tuple[float, float]:
    """(loss, d loss / d pi) of one sequence with probability ``pi`` (NaN ``pi_old``: not logged)."""
    p = torch.tensor([pi], dtype=torch.float64, requires_grad=True)
    loss = gbpo_loss(torch.log(p), torch.log(torch.tensor([pi_old], dtype=torch.float64)), torch.tensor([adv]))
    loss.backward()
    return float(loss.detach()), float(p.grad[0])


def test_gbpo_gradient_is_bounded_like_bce():
    # Positive advantage, pi_old tiny: PPO's ratio would be 5e5 (and clipped to zero gradient);
    # GBPO floors pi_old at sg(pi): ratio 1, gradient -A / pi = BCE's -d log(pi) / d pi.
    loss, grad = _gbpo(0.5, 1e-6, 1.0)
    assert loss == pytest.approx(-1.0) and grad == pytest.approx(-1.0 / 0.5)
    # Negative advantage, pi_old tiny: the floor is 1 - sg(pi), gradient |A| / (1 - pi) = BCE's
    # d -log(1 - pi) / d pi; ECPO's early clip at the same point would push with ratio 1.3.
    loss, grad = _gbpo(0.1, 1e-6, -1.0)
    assert loss == pytest.approx(0.1 / 0.9) and grad == pytest.approx(1.0 / 0.9)
    # The bound holds everywhere: |d loss / d pi| <= |A| / pi (A >= 0), |A| / (1 - pi) (A < 0).
    for pi in (1e-4, 0.01, 0.3, 0.7, 0.99):
        for old in (1e-8, 0.05, 0.5, 0.999):
            assert abs(_gbpo(pi, old, 2.0)[1]) <= 2.0 / pi * (1 + 1e-9)
            assert abs(_gbpo(pi, old, -2.0)[1]) <= 2.0 / (1 - pi) * (1 + 1e-9)
    # A large pi_old is used as is: an ordinary importance ratio, with no clip zeroing the gradient.
    loss, grad = _gbpo(0.6, 0.2, 1.0)
    assert loss == pytest.approx(-0.6 / 0.6) and grad == pytest.approx(-1.0 / 0.6)
    loss, grad = _gbpo(0.9, 0.95, -1.0)  # ratio 0.947 (PPO would clip nothing here either)
    assert loss == pytest.approx(0.9 / 0.95) and grad == pytest.approx(1 / 0.95)
    # No logged generation probability: pi_old := sg(pi).
    assert _gbpo(0.3, float("nan"), 1.0) == pytest.approx((-1.0, -1.0 / 0.3))
    assert _gbpo(0.3, float("nan"), -1.0) == pytest.approx((0.3 / 0.7, 1.0 / 0.7))


def test_ecpo_unlogged_old_probability_is_the_current_one():
    assert _grad(math.log(0.3), float("nan"), 1.0) == pytest.approx((-1.0, -1.0))


def test_group_advantages():
    adv = group_advantages(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    torch.testing.assert_close(adv[0], torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-4, rtol=0)
    assert (adv[1] == 0).all()  # a group of ties carries no signal
    # Masked entries (illegal generations) neither get an advantage nor move the group's mean / std.
    masked = group_advantages(torch.tensor([[1.0, 2.0, 3.0, -1.0]]), torch.tensor([[True, True, True, False]]))
    torch.testing.assert_close(masked[0], torch.tensor([-1.2247, 0.0, 1.2247, 0.0]), atol=1e-4, rtol=0)


def test_format_reward_is_positive_for_legal_and_drops_illegal():
    rewards = torch.tensor([[0.9, 0.1, float("nan"), 0.5], [float("nan")] * 4])
    items = torch.tensor([[3, 4, -1, 5], [-1, -1, -1, -1]])
    cfg = AlignConfig(group_size=4, format_samples=4, format_weight=1.0)
    idx, adv = rollout_advantages(rewards, items, cfg, torch.Generator().manual_seed(0))
    pref, fmt = idx[adv != 1.0], idx[adv == 1.0]
    assert sorted(fmt.tolist()) == [0, 1, 3]  # every legal sample once with A = 1; no illegal one at all
    assert 2 not in idx.tolist() and not any(i >= 4 for i in idx.tolist())
    assert set(pref.tolist()) <= {0, 1, 3} and (adv >= -2).all()
    # K of G at random: 2 of 4 picked, always legal ones.
    idx2, adv2 = rollout_advantages(rewards, items, AlignConfig(group_size=4, format_samples=2),
                                    torch.Generator().manual_seed(1))  # fmt: skip
    assert len(idx2[adv2 == 1.0]) <= 2 and set(idx2[adv2 == 1.0].tolist()) <= {0, 1, 3}


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


@pytest.mark.parametrize("method", ["gbpo", "ecpo", "dpo"])
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


def test_gbpo_learns_from_logged_feedback_alone(setup):
    """Real feedback only (no reward model signal): +1 exposures rise, -1 exposures fall."""
    cfg, codes, contexts = setup
    torch.manual_seed(2)
    model = build(cfg, codes)
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    n = len(contexts)
    good, bad = 5, 9
    targets = np.where(np.arange(n) % 2 == 0, good, bad)[:, None]
    ex = data.Examples(contexts.seqs, contexts.rows, contexts.ends, targets, contexts.users)
    fb = Feedback(ex, np.where(targets[:, 0] == good, 1.0, -1.0), np.full(n, np.nan))

    class Flat:  # a reward that ties every rollout: only the feedback carries a signal
        def history(self, examples, idx):
            return torch.zeros(len(idx), 1, dtype=torch.long)

        def __call__(self, history, items):
            return torch.zeros(items.shape)

    batch = data.onerec_batch(contexts, np.arange(n), cfg, codes)
    lp = lambda item: float(sequence_logprob(model, batch, torch.from_numpy(codes[[item] * n])).detach().mean())  # noqa: E731
    before = lp(good), lp(bad)
    acfg = AlignConfig(method="gbpo", steps=10, users_per_step=8, group_size=2, lr=3e-3, sft_weight=0.0,
                       format_samples=0, feedback_per_step=32, rollout="sample")  # fmt: skip
    log = align(model, contexts, codes, trie, Flat(), acfg, feedback=fb)
    assert all(np.isfinite(row["loss"]) for row in log if "loss" in row)
    assert lp(good) > before[0] + 0.5 and lp(bad) < before[1] - 0.5


def test_iterative_dpo_replaces_the_reference_each_round(setup, monkeypatch):
    from models import align as align_module

    cfg, codes, contexts = setup
    torch.manual_seed(3)
    model = build(cfg, codes)
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    import copy
    from types import SimpleNamespace

    copies = []
    # Count the references align() makes (only its own name `copy` is replaced).
    monkeypatch.setattr(align_module, "copy", SimpleNamespace(deepcopy=lambda m: copies.append(1) or copy.deepcopy(m)))
    acfg = AlignConfig(method="dpo", steps=6, dpo_rounds=3, users_per_step=16, group_size=4, lr=3e-3,
                       sft_weight=0.0, rollout="sample")  # fmt: skip
    log = align(model, contexts, codes, trie, FirstCodeReward(codes), acfg)
    assert len(copies) == 3  # the pre-alignment reference, then one per later round
    trained = [row for row in log if "loss" in row]
    assert len(trained) >= 4 and all(row["round"] == (row["step"] - 1) // 2 + 1 for row in trained)

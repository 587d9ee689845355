"""models.moe: top-k routing, auxiliary-loss-free bias balancing, no extra loss term (CPU, < 2 s)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.config import tiny
from models.data import synthetic_batch
from models.moe import MoE, SwiGLU, moe_layers, update_moe_biases
from models.onerec import build

pytestmark = pytest.mark.usefixtures("one_thread")


def assert_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    # torch.testing.assert_close imports torch.distributed.tensor on first use (~5 s here).
    assert a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol), (a - b).abs().max()


def make_moe(n_experts: int = 4, top_k: int = 2, rate: float = 0.01) -> MoE:
    torch.manual_seed(0)
    return MoE(d_model=8, d_ff=16, n_experts=n_experts, top_k=top_k, bias_rate=rate)


def test_shapes_and_routing_picks_top_k_distinct_experts():
    moe = make_moe()
    x = torch.randn(3, 5, 8)
    assert moe(x).shape == x.shape
    chosen, gates = moe.route(x.reshape(-1, 8))
    assert chosen.shape == gates.shape == (15, 2)
    assert all(len(set(row.tolist())) == 2 for row in chosen)
    assert_close(gates.sum(-1), torch.ones(15))
    # The chosen experts are the top-2 by routing score (bias is zero at start).
    scores = torch.sigmoid(moe.router(x.reshape(-1, 8)))
    assert torch.equal(chosen.sort(-1).values, scores.topk(2, -1).indices.sort(-1).values)


def test_output_is_gate_weighted_sum_of_chosen_experts():
    moe = make_moe()
    x = torch.randn(6, 8)
    chosen, gates = moe.route(x)
    expected = torch.stack(
        [sum(gates[i, j] * moe.experts[int(chosen[i, j])](x[i]) for j in range(2)) for i in range(6)]
    )
    assert_close(moe(x), expected, rtol=1e-5, atol=1e-6)


def test_bias_changes_selection_but_not_gate_weights():
    moe = make_moe()
    x = torch.randn(10, 8)
    with torch.no_grad():
        moe.expert_bias[3] = 100.0  # expert 3 always selected
    chosen, gates = moe.route(x)
    assert (chosen == 3).any(-1).all()
    scores = torch.sigmoid(moe.router(x))
    raw = scores.gather(-1, chosen)
    assert_close(gates, raw / raw.sum(-1, keepdim=True))  # unbiased scores weight outputs


def test_bias_update_moves_a_skewed_router_toward_balance():
    moe = make_moe(n_experts=4, top_k=1, rate=0.01)
    with torch.no_grad():
        moe.router.weight.copy_(torch.randn(4, 8, generator=torch.Generator().manual_seed(5)))
        moe.router.weight[0] += 1.5  # inputs are positive: expert 0 wins every token
    moe.train()
    torch.manual_seed(1)
    ratios = []
    for _ in range(150):
        x = torch.randn(256, 8).abs()
        moe(x)
        moe.update_bias()
        ratios.append(float(moe.last_load.max() * 4))  # max load / mean load
    assert ratios[0] > 3.5  # starts with one expert taking nearly everything
    assert max(ratios[-10:]) < 1.5  # ends close to balanced (1.0 = perfect)
    assert moe.expert_bias[0] == moe.expert_bias.min() < 0  # the overloaded expert was pushed down
    assert moe.load_count.sum() == 0  # counts are consumed by the update


def test_load_counted_only_in_training():
    moe = make_moe()
    moe.eval()
    moe(torch.randn(4, 8))
    assert moe.load_count.sum() == 0
    moe.train()
    moe(torch.randn(4, 8))
    assert moe.load_count.sum() == 4 * 2  # tokens x top_k


def test_no_auxiliary_loss_in_the_graph():
    cfg = tiny().onerec
    codes = np.zeros((cfg.n_items + 1, cfg.n_levels), dtype=np.int64)
    model = build(cfg, codes)
    layers = moe_layers(model)
    assert layers, "tiny preset must exercise the MoE"
    batch = synthetic_batch(cfg, codes, 4)
    loss, logits = model(batch)
    # The loss is exactly the token cross-entropy: no balancing term was added.
    ce = F.cross_entropy(logits.flatten(0, 1), batch["target_codes"].flatten())
    assert torch.equal(loss, ce)
    loss.backward()
    for layer in layers:
        assert "expert_bias" not in dict(layer.named_parameters())
        assert not layer.expert_bias.requires_grad and layer.expert_bias.grad is None
        assert "expert_bias" in layer.state_dict()  # persistent: routing at inference depends on it
    stats = update_moe_biases(model)
    assert stats["moe_max_load"] >= 1.0


def test_swiglu_shape():
    assert SwiGLU(8, 16)(torch.randn(2, 3, 8)).shape == (2, 3, 8)

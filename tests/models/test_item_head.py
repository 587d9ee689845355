"""The generator's auxiliary item head (``OneRecConfig.item_loss_weight``) and beam reranking
(``beam.rerank``): shapes, the loss term, known-answer reordering, and the evaluation's
"generative" figures from the same beam (CPU, < 5 s)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.beam import BeamResult, SemanticIdTrie, beam_search, rerank
from models.config import tiny
from models.data import Examples, Ragged, synthetic_batch
from models.evaluate import evaluate_onerec
from models.onerec import build
from tests.models.test_onerec import item_codes, memorisation_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def make(weight: float = 1.0):
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny().onerec, item_loss_weight=weight)
    codes = item_codes(cfg)
    return cfg, codes, build(cfg, codes)


def test_item_logits_shape_padding_and_absent_without_weight():
    cfg, codes, model = make()
    batch = synthetic_batch(cfg, codes, 5)
    logits = model.item_logits(model.encode_context(batch))
    assert logits.shape == (5, cfg.n_items + 1)
    assert torch.isinf(logits[:, 0]).all() and torch.isfinite(logits[:, 1:]).all()
    _, _, plain = make(weight=0.0)
    assert plain.item_logits(plain.encode_context(batch)) is None
    assert beam_search(plain, batch, SemanticIdTrie.from_item_codes(codes, cfg.level_sizes), 4).item_logp is None


def test_loss_adds_the_weighted_item_cross_entropy():
    cfg, codes, model = make(weight=0.5)
    model.eval()  # no dropout: the two computations must agree exactly
    batch = synthetic_batch(cfg, codes, 6, seed=2)
    loss, logits = model(batch)
    code_loss = F.cross_entropy(logits.flatten(0, 1), batch["target_codes"].flatten())
    item_loss = F.cross_entropy(model.item_logits(model.encode_context(batch)), batch["target_items"][:, 0])
    assert torch.allclose(loss, code_loss + 0.5 * item_loss, atol=1e-5)


def test_config_rejects_negative_weight_and_the_lazy_decoder():
    with pytest.raises(ValueError, match="item_loss_weight"):
        dataclasses.replace(tiny().onerec, item_loss_weight=-1.0)
    with pytest.raises(ValueError, match="encoder"):
        dataclasses.replace(tiny().onerec, item_loss_weight=1.0, architecture="lazy_decoder")


def test_rerank_known_answer():
    codes = torch.arange(3 * 2).view(1, 3, 2)
    result = BeamResult(torch.tensor([[7, 8, 9]]), torch.tensor([[-1.0, -2.0, -3.0]]), codes,
                        torch.tensor([[-5.0, -0.1, -0.2]]))  # fmt: skip
    out = rerank(result, 1.0)
    assert out.items.tolist() == [[8, 9, 7]]  # -2.1, -3.2, -6.0
    assert torch.allclose(out.scores, torch.tensor([[-2.1, -3.2, -6.0]]))
    assert out.codes[0].tolist() == [[2, 3], [4, 5], [0, 1]]  # tuples travel with their items
    assert rerank(result, 0.0) is result
    assert rerank(result._replace(item_logp=None), 1.0).items.tolist() == [[7, 8, 9]]
    assert rerank(result, 0.1).items.tolist() == [[7, 8, 9]]  # a small weight keeps the beam order


def test_trained_head_reranks_to_the_target_and_stays_legal():
    """Memorise next items with both losses; reranked beams return only real items, target first."""
    cfg, codes, model = make()
    batch = memorisation_batch(cfg, codes)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss, _ = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert float(loss.detach()) < 0.1
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    result = beam_search(model, batch, trie, beam_size=6, top_k=4, item_weight=1.0)
    assert result.items.shape == (8, 4) and (result.items > 0).all()
    assert torch.equal(result.items[:, 0], batch["target_items"][:, 0])
    assert (result.scores[:, :-1] >= result.scores[:, 1:]).all()  # sorted by the combined score


def test_evaluate_reports_generative_figures_from_the_same_beam():
    cfg, codes, model = make()
    rng = np.random.default_rng(0)
    seqs = Ragged.from_lists([list(rng.integers(1, cfg.n_items + 1, 5)) for _ in range(12)])
    ex = Examples(seqs, np.arange(12), seqs.lengths, rng.integers(1, cfg.n_items + 1, (12, 1)),
                  np.zeros(12, dtype=np.int64))  # fmt: skip
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    both = evaluate_onerec(model, ex, codes, trie, beam_size=12, greedy=False, item_weight=1.0)
    plain = evaluate_onerec(model, ex, codes, trie, beam_size=12, greedy=False)
    assert both["item_weight"] == 1.0 and "generative" not in plain
    for key in ("recall@10", "ndcg@10", "coverage@10"):
        assert both["generative"][key] == pytest.approx(plain[key])

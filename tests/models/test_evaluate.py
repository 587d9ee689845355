"""models.evaluate: metrics on hand-made cases with known answers, and both model paths end to end."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from models.beam import SemanticIdTrie
from models.config import tiny
from models.data import Examples, Ragged
from models.evaluate import (
    coverage,
    evaluate_onerec,
    evaluate_sasrec,
    ranking_metrics,
    ranks_from_scores,
    ranks_from_topk,
    write_metrics,
)
from models.onerec import build
from models.sasrec import SASRec

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ranks_1_3_11():
    m = ranking_metrics(torch.tensor([1.0, 3.0, 11.0]))
    assert m["recall@10"] == pytest.approx(2 / 3) and m["recall@5"] == pytest.approx(2 / 3)
    # NDCG with one relevant item: 1 / log2(rank + 1) -> (1 + 1/2 + 0) / 3.
    assert m["ndcg@10"] == pytest.approx(0.5) and m["ndcg@5"] == pytest.approx(0.5)


def test_rank_7_counts_for_10_not_5():
    m = ranking_metrics(torch.tensor([7.0, math.inf]))
    assert m["recall@5"] == 0 and m["ndcg@5"] == 0
    assert m["recall@10"] == 0.5 and m["ndcg@10"] == pytest.approx(0.5 / math.log2(8))


def test_ranks_from_scores_over_all_items_ties_count_against():
    scores = torch.tensor([[-math.inf, 0.9, 0.1, 0.5, 0.7], [-math.inf, 0.2, 0.2, 0.2, 0.2]])
    ranks = ranks_from_scores(scores, torch.tensor([3, 2]))
    assert ranks.tolist() == [3.0, 4.0]  # 0.9, 0.7 beat 0.5; a constant scorer gets the worst rank


def test_ranks_from_topk_with_misses():
    items = torch.tensor([[5, 2, 9], [1, 4, -1], [3, 3, 3]])
    assert ranks_from_topk(items, torch.tensor([9, 7, 3])).tolist() == [3.0, math.inf, 1.0]


def test_coverage():
    assert coverage(torch.tensor([[1, 2], [2, -1], [3, 1]]), n_items=6) == pytest.approx(0.5)


def test_evaluate_sasrec_end_to_end(tmp_path):
    torch.manual_seed(0)
    model = SASRec(tiny().sasrec)
    contexts = Ragged.from_lists([[1, 2, 3], [4, 5], [6]])
    out = evaluate_sasrec(model, contexts, np.array([4, 6, 7]), batch_size=2)
    assert out["n_users"] == 3 and 0 <= out["recall@10"] <= 1 and 0 < out["coverage@10"] <= 1
    # Same numbers as ranking all items by hand.
    inputs = torch.tensor([[0] * 7 + [1, 2, 3], [0] * 8 + [4, 5], [0] * 9 + [6]])
    ranks = ranks_from_scores(model.score(inputs), torch.tensor([4, 6, 7]))
    assert out["ndcg@10"] == pytest.approx(ranking_metrics(ranks)["ndcg@10"])
    assert json.loads(write_metrics(tmp_path / "m" / "metrics.json", out).read_text()) == out


def test_evaluate_onerec_reports_legal_rates_and_rejects_small_beams():
    cfg = dataclasses.replace(tiny().onerec, n_items=20)
    codes = np.zeros((21, 2), dtype=np.int64)
    codes[1:] = np.stack([np.arange(20) // 8, np.arange(20) % 8], 1)
    torch.manual_seed(0)
    model = build(cfg, codes)
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    seqs = Ragged.from_lists([[1, 2], [3], [4, 5, 6], [7]])
    ex = Examples(seqs, np.arange(4), seqs.lengths, np.array([[3], [4], [7], [8]]), np.zeros(4, dtype=np.int64))
    out = evaluate_onerec(model, ex, codes, trie, beam_size=10, batch_size=3)
    assert out["legal_rate"] == 1.0 and 0.0 <= out["legal_rate_greedy"] <= 1.0
    assert out["n_users"] == 4 and set(out) >= {"recall@5", "ndcg@5", "recall@10", "ndcg@10", "coverage@10"}
    assert out["coverage@10"] >= 10 / 20  # each user gets 10 distinct items of the 20
    with pytest.raises(ValueError):
        evaluate_onerec(model, ex, codes, trie, beam_size=5)


def test_eval_users_is_a_fixed_random_subset_not_the_first_users():
    from models.tasks import eval_users

    pick = eval_users(1000, 100, seed=0)
    assert len(pick) == 100 and len(set(pick.tolist())) == 100 and (np.diff(pick) > 0).all()
    assert pick.max() > 500  # drawn from the whole file, not its head
    assert np.array_equal(pick, eval_users(1000, 100, seed=0))  # every validation scores the same users
    assert np.array_equal(eval_users(50, 100), np.arange(50)) and np.array_equal(eval_users(50, None), np.arange(50))


def test_both_tasks_validate_on_the_same_random_users_as_a_full_pass_scores_them():
    """``evaluate(limit=k)`` == scoring those ``k`` users alone (contexts, targets, times kept aligned)."""
    from models.data import leave_one_out
    from models.tasks import OneRecTask, SASRecTask, eval_users

    rng = np.random.default_rng(3)
    seqs = {f"u{u}": list(rng.integers(1, 21, int(rng.integers(4, 9)))) for u in range(30)}
    loo = leave_one_out(seqs, n_items=20)
    tc = dataclasses.replace(tiny().train, beam_size=10, eval_batch_size=7)
    pick = eval_users(len(loo.users), 6, tc.seed)
    torch.manual_seed(0)
    sasrec = SASRec(dataclasses.replace(tiny().sasrec, n_items=20))
    part = SASRecTask(loo, sasrec.cfg, tc).evaluate(sasrec, "valid", limit=6)
    alone = evaluate_sasrec(sasrec, Ragged.from_lists([loo.valid[u] for u in pick]), loo.valid_target[pick])
    assert part["n_users"] == 6 and part["recall@10"] == pytest.approx(alone["recall@10"])
    cfg = dataclasses.replace(tiny().onerec, n_items=20)
    codes = np.zeros((21, 2), dtype=np.int64)
    codes[1:] = np.stack([np.arange(20) // 8, np.arange(20) % 8], 1)
    task = OneRecTask(loo, cfg, tc, codes)
    model = build(cfg, codes)
    full = Examples(loo.valid, pick, loo.valid.lengths[pick], loo.valid_target[pick][:, None], np.zeros(6, np.int64))
    expected = evaluate_onerec(model, full, codes, task.trie, beam_size=10, greedy=False)
    got = task.evaluate(model, "valid", limit=6)
    assert got["n_users"] == 6 and got["ndcg@10"] == pytest.approx(expected["ndcg@10"])
    assert 0 < part["recall@10"] < 1 and 0 < got["recall@10"] < 1  # not a trivially equal 0 or 1

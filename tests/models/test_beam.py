"""models.beam: the trie against brute force; constrained beam search returns only real, distinct
items, exact when the beam covers the catalogue; unconstrained decoding can go illegal (CPU, < 3 s)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from models.beam import SemanticIdTrie, beam_search
from models.config import tiny
from models.data import synthetic_batch
from models.onerec import build

pytestmark = pytest.mark.usefixtures("one_thread")


def sparse_catalogue(n_items: int, sizes=(8, 8, 3), seed: int = 0) -> np.ndarray:
    """``(n_items + 1, 3)`` distinct random tuples (row 0 = padding): a small share of all 192."""
    rng = np.random.default_rng(seed)
    every = np.array(list(itertools.product(*[range(s) for s in sizes])))
    codes = every[rng.choice(len(every), n_items, replace=False)]
    return np.concatenate([np.zeros((1, 3), dtype=np.int64), codes])


def model_for(codes: np.ndarray, arch: str = "encoder_decoder"):
    cfg = dataclasses.replace(tiny().onerec, n_items=len(codes) - 1, dedup_codes=3, architecture=arch)
    torch.manual_seed(0)
    return cfg, build(cfg, codes)


def test_trie_matches_brute_force():
    codes = sparse_catalogue(30)[1:]
    trie = SemanticIdTrie(codes, level_sizes=(8, 8, 3))
    tuples = {tuple(c) for c in codes.tolist()}
    for t in range(3):
        prefixes = torch.tensor(list(itertools.product(range(8), repeat=t)) or [()], dtype=torch.long)
        prefixes = prefixes.reshape(len(prefixes), t)
        allowed = trie.allowed(prefixes)
        for p, row in zip(prefixes.tolist(), allowed.tolist(), strict=True):
            expected = {c[t] for c in tuples if list(c[:t]) == p}
            assert {i for i, ok in enumerate(row) if ok} == expected
    probe = torch.tensor([list(c) for c in list(tuples)[:5]] + [[7, 7, 2], [0, 0, 0]])
    items = trie.lookup(probe)
    assert (items[:5] >= 0).all()
    assert torch.equal(torch.as_tensor(codes)[items[:5]], probe[:5])
    absent = [list(c) not in [list(x) for x in tuples] for c in probe[5:].tolist()]
    assert torch.equal(items[5:] < 0, torch.tensor(absent))


def test_trie_from_item_codes_skips_padding_and_rejects_collisions():
    codes = sparse_catalogue(10)
    trie = SemanticIdTrie.from_item_codes(codes, (8, 8, 3))
    assert torch.equal(trie.lookup(torch.as_tensor(codes[1:])), torch.arange(1, 11))
    with pytest.raises(ValueError, match="share"):
        SemanticIdTrie(np.array([[1, 2], [1, 2]]))
    with pytest.raises(ValueError):
        SemanticIdTrie(np.array([[9, 0]]), level_sizes=(8, 8))


@pytest.mark.parametrize("arch", ["encoder_decoder", "lazy_decoder"])
def test_constrained_beam_returns_k_distinct_real_items(arch):
    codes = sparse_catalogue(25)
    cfg, model = model_for(codes, arch)
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    batch = synthetic_batch(cfg, codes, 64, seed=3)  # 64 users, random model
    result = beam_search(model, batch, trie, beam_size=12, top_k=10)
    assert result.items.shape == result.scores.shape == (64, 10)
    assert ((result.items >= 1) & (result.items <= 25)).all()
    assert all(len(set(row)) == 10 for row in result.items.tolist())
    assert torch.equal(torch.as_tensor(codes)[result.items], result.codes)  # items and tuples agree
    assert (result.scores[:, :-1] >= result.scores[:, 1:]).all()  # best first


def test_beam_covering_the_catalogue_is_exact():
    """With beam >= #items, beam search = scoring every catalogue item by a full forward."""
    codes = sparse_catalogue(12)
    cfg, model = model_for(codes)
    model.eval()
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    batch = synthetic_batch(cfg, codes, 3, seed=5)
    result = beam_search(model, batch, trie, beam_size=12)
    with torch.no_grad():
        all_items = torch.arange(1, 13)
        exhaustive = torch.empty(3, 12)
        for u in range(3):
            rep = {k: v[u : u + 1].expand(12, *v.shape[1:]) for k, v in batch.items()}
            rep["target_codes"] = torch.as_tensor(codes)[all_items]
            _, logits = model(rep)
            exhaustive[u] = torch.log_softmax(logits, -1).gather(-1, rep["target_codes"][..., None]).sum((1, 2))
    best = exhaustive.sort(1, descending=True)
    assert torch.equal(result.items, all_items[best.indices])
    assert torch.allclose(result.scores, best.values, atol=1e-5)


def test_unconstrained_decoding_can_be_illegal_and_is_flagged():
    codes = sparse_catalogue(6)  # 6 of 192 tuples exist
    cfg, model = model_for(codes)
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    batch = synthetic_batch(cfg, codes, 32, seed=7)
    greedy = beam_search(model, batch, trie, beam_size=1, constrained=False)
    assert (greedy.items < 0).any()  # a random model rarely hits one of 6 tuples
    assert torch.equal(greedy.items >= 0, trie.contains(greedy.codes[:, 0]).unsqueeze(1))
    constrained = beam_search(model, batch, trie, beam_size=10, top_k=6)
    assert (constrained.items >= 1).all()  # 6 items, 6 returned, all real
    wide = beam_search(model, batch, trie, beam_size=10)
    assert (wide.items[:, 6:] == -1).all() and torch.isinf(wide.scores[:, 6:]).all()  # nothing beyond the catalogue


def test_top_k_larger_than_beam_is_rejected():
    codes = sparse_catalogue(6)
    cfg, model = model_for(codes)
    with pytest.raises(ValueError):
        beam_search(model, synthetic_batch(cfg, codes, 1), SemanticIdTrie.from_item_codes(codes), 2, top_k=5)

"""models.onerec (and the shared generator interface): shapes, pathways, cached-vs-full parity,
memorisation by both architectures followed by beam search (CPU, tiny preset, ~10 s)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models.beam import SemanticIdTrie, beam_search
from models.config import OneRecConfig, tiny
from models.data import Examples, Ragged, onerec_batch, synthetic_batch
from models.onerec import ContextEmbedder, OneRec, build

ARCHS = ["encoder_decoder", "lazy_decoder"]


pytestmark = pytest.mark.usefixtures("one_thread")


def assert_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    # torch.testing.assert_close imports torch.distributed.tensor on first use (~5 s here).
    assert a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol), (a - b).abs().max()


def item_codes(cfg: OneRecConfig) -> np.ndarray:
    """Unique tuples for items 1..n: item i -> base-K digits of i - 1 (row 0 = padding)."""
    i = np.arange(cfg.n_items + 1) - 1
    codes = np.stack([(i // cfg.codes_per_level**p) % cfg.codes_per_level for p in range(cfg.levels)][::-1], 1)
    codes[0] = 0
    return codes.astype(np.int64)


def make(arch: str = "encoder_decoder", **changes) -> tuple[OneRecConfig, np.ndarray, torch.nn.Module]:
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny().onerec, architecture=arch, **changes)
    codes = item_codes(cfg)
    return cfg, codes, build(cfg, codes)


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_and_interface_shapes(arch):
    cfg, codes, model = make(arch)
    batch = synthetic_batch(cfg, codes, 5)
    loss, logits = model(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert logits.shape == (5, cfg.target_len, max(cfg.level_sizes))
    state = model.encode_context(batch)
    assert state["mask"].shape == (5, cfg.context_len) and state["mask"].dtype == torch.bool
    assert all(t.shape[0] == 5 for t in state.values())
    for t in range(cfg.target_len):
        step = model.decode_step(state, batch["target_codes"][:, :t])
        assert step.shape == (5, cfg.level_sizes[t % cfg.n_levels])
    loss.backward()
    assert model.heads[0].weight.grad is not None


def test_context_embedder_pathways_and_mask():
    cfg, codes, _ = make()
    ctx = ContextEmbedder(cfg, codes)
    batch = synthetic_batch(cfg, codes, 3)
    batch["short_items"][0] = 0  # a user with no short-term history
    tokens, mask = ctx(batch)
    assert tokens.shape == (3, cfg.context_len, cfg.d_model) == (3, 1 + 6 + 4 + 2, 32)
    assert mask[:, 0].all()  # static token always there
    assert not mask[0, 1 : 1 + cfg.short_len].any()
    assert mask[:, -cfg.n_queries :].all()  # lifelong queries always there
    # Optional signals: leaving them out is allowed and changes only the short-term tokens.
    minimal = {k: batch[k] for k in ("short_items", "pos_items", "life_items")}
    tokens2, _ = ctx(minimal)
    assert torch.isfinite(tokens2).all()


def test_item_embedding_adds_code_embeddings_so_new_items_are_not_blank():
    cfg, codes, model = make()
    items = model.context.items
    with torch.no_grad():
        items.ids.weight[7].zero_()  # an item whose id row never trained
    e = items(torch.tensor([7, 0]))
    expected = items.codes(torch.as_tensor(codes[7]) + items.offset).sum(0)
    assert_close(e[0], expected)
    assert torch.count_nonzero(e[1]) == 0  # padding stays zero
    _, _, plain = make(sid_item_embedding=False)
    assert not hasattr(plain.context.items, "item_codes")


def test_lifelong_pathway_with_no_items_is_finite():
    cfg, codes, model = make()
    batch = synthetic_batch(cfg, codes, 2)
    batch["life_items"].zero_()
    loss, _ = model(batch)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("arch", ARCHS)
def test_decode_step_matches_full_forward_logits(arch):
    """Context encoded once + step-by-step decoding == the teacher-forced forward (session of 2 items, MoE on)."""
    cfg = dataclasses.replace(tiny().onerec, architecture=arch, session_len=2, dedup_codes=3)
    codes = np.concatenate([item_codes(cfg), np.arange(cfg.n_items + 1)[:, None] % 3], 1)
    torch.manual_seed(0)
    model = build(cfg, codes).eval()
    batch = synthetic_batch(cfg, codes, 4, seed=1)
    with torch.no_grad():
        _, logits = model(batch)
        state = model.encode_context(batch)
        for t in range(cfg.target_len):
            step = model.decode_step(state, batch["target_codes"][:, :t])
            assert_close(step, logits[:, t, : step.shape[1]], rtol=1e-5, atol=1e-5)
            assert torch.isinf(logits[:, t, step.shape[1] :]).all()  # beyond this level's vocabulary


def test_session_wise_target_is_concatenated_tuples():
    cfg, codes, model = make(session_len=3)
    batch = synthetic_batch(cfg, codes, 2)
    assert batch["target_codes"].shape == (2, 3 * cfg.n_levels)
    assert torch.equal(batch["target_codes"][:, cfg.n_levels : 2 * cfg.n_levels],
                       torch.as_tensor(codes)[batch["target_items"][:, 1]])  # fmt: skip
    loss, logits = model(batch)
    assert logits.shape[:2] == (2, 3 * cfg.n_levels)


def memorisation_batch(cfg: OneRecConfig, codes: np.ndarray) -> dict[str, torch.Tensor]:
    """8 users whose next item is a fixed function of their history (no user id signal)."""
    rng = np.random.default_rng(0)
    contexts = [list(rng.choice(np.arange(1, cfg.n_items + 1), size=int(rng.integers(2, 7)), replace=False))
                for _ in range(8)]  # fmt: skip
    targets = np.array([3, 11, 19, 27, 35, 4, 12, 21])
    seqs = Ragged.from_lists(contexts)
    ex = Examples(seqs, np.arange(8), seqs.lengths, targets[:, None], np.zeros(8, dtype=np.int64))
    return onerec_batch(ex, np.arange(8), cfg, codes)


@pytest.mark.parametrize("arch", ARCHS)
def test_memorises_next_item_and_beam_search_returns_it_first(arch):
    cfg, codes, model = make(arch)
    batch = memorisation_batch(cfg, codes)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss, _ = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[0] > 1.5 and losses[-1] < 0.05, (losses[0], losses[-1])
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    result = beam_search(model, batch, trie, beam_size=5)
    assert torch.equal(result.items[:, 0], batch["target_items"][:, 0])
    assert model.training  # beam search restores the mode it found


def test_build_picks_architecture():
    assert isinstance(make()[2], OneRec)
    assert type(make("lazy_decoder")[2]).__name__ == "LazyDecoder"
    with pytest.raises(ValueError):
        dataclasses.replace(tiny().onerec, architecture="decoder_only")
    with pytest.raises(ValueError):
        build(tiny().onerec, np.zeros((3, 2), dtype=np.int64))  # wrong item_codes shape


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", ARCHS)
def test_cuda_bf16_and_beam_search_match_the_cpu_reference(arch):
    """The CPU fp32 path is the oracle for the CUDA path: bf16 loss close, fp32 beam scores equal."""
    cfg, codes, model = make(arch)
    model.eval()
    batch = synthetic_batch(cfg, codes, 16, seed=2)
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
    with torch.no_grad():
        loss_cpu, _ = model(batch)
        ref = beam_search(model, batch, trie, beam_size=10)
        model.cuda()
        gpu = {k: v.cuda() for k, v in batch.items()}
        with torch.autocast("cuda", torch.bfloat16):
            loss_bf16, _ = model(gpu)
        fast = beam_search(model, gpu, SemanticIdTrie.from_item_codes(codes, cfg.level_sizes), beam_size=10)
    assert abs(float(loss_bf16) - float(loss_cpu)) < 0.02 * float(loss_cpu)
    assert torch.allclose(fast.scores.cpu(), ref.scores, atol=1e-4)
    assert (fast.items.cpu() >= 1).all()

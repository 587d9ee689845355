"""models.lazy_decoder: context processor KV, KV sharing across layers, no K/V projections in the
decoder, block order and MoE placement (CPU, tiny preset, < 2 s). Training and beam search of
this architecture are covered with the encoder-decoder's in test_onerec.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models import flops
from models.config import tiny
from models.data import synthetic_batch
from models.lazy_decoder import ContextProcessor, LazyDecoder
from models.moe import MoE

pytestmark = pytest.mark.usefixtures("one_thread")


def make(**changes):
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny().onerec, architecture="lazy_decoder", **changes)
    codes = np.zeros((cfg.n_items + 1, cfg.n_levels), dtype=np.int64)
    return cfg, codes, LazyDecoder(cfg, codes)


def test_context_processor_shapes_and_k_equals_v_when_not_split():
    cfg, _, _ = make()
    tokens = torch.randn(3, cfg.context_len, cfg.d_model)
    (k, v), *rest = ContextProcessor(cfg)(tokens)
    assert not rest
    assert k.shape == (3, cfg.n_kv_heads, cfg.context_len, cfg.head_dim)
    assert k is v  # S_kv = 1: one tensor serves as key and value
    cfg2 = dataclasses.replace(cfg, kv_split=2, kv_sets=2)
    pairs = ContextProcessor(cfg2)(tokens)
    assert len(pairs) == 2 and all(k.shape == v.shape and not torch.equal(k, v) for k, v in pairs)


def test_decoder_cross_attention_has_no_kv_projection():
    _, _, model = make()
    for blk in model.blocks:
        assert set(dict(blk.cross.named_parameters())) == {"q.weight", "o.weight"}
    # The only K/V weights for the context live in the processor, once for all layers.
    kv_like = [n for n, _ in model.named_parameters() if ".kv." in n or n.startswith("processor")]
    assert all(n.startswith("processor") or ".self_attn." in n or "qformer" in n for n in kv_like)


def test_one_kv_set_shared_by_all_layers_or_by_groups():
    cfg, codes, model = make(n_dec_layers=4, kv_sets=1)
    state = model.encode_context(synthetic_batch(cfg, codes, 2))
    assert sorted(state) == ["k0", "mask", "v0"]
    assert [model.kv_set(i) for i in range(4)] == [0, 0, 0, 0]
    cfg, codes, model = make(n_dec_layers=4, kv_sets=2)
    state = model.encode_context(synthetic_batch(cfg, codes, 2))
    assert sorted(state) == ["k0", "k1", "mask", "v0", "v1"]
    assert [model.kv_set(i) for i in range(4)] == [0, 0, 1, 1]  # floor(l * L_kv / N_layer)


def test_cross_attention_reads_its_layers_kv_set():
    """Each KV set is read by some layer: perturbing either one changes the logits."""
    cfg, codes, model = make(n_dec_layers=2, kv_sets=2)
    model.eval()
    batch = synthetic_batch(cfg, codes, 2)
    with torch.no_grad():
        state = model.encode_context(batch)
        prefix = batch["target_codes"][:, :1]
        base = model.decode_step(state, prefix)
        state["k1"] = state["k1"] + torch.randn_like(state["k1"])
        assert not torch.allclose(model.decode_step(state, prefix), base)
        state = model.encode_context(batch)
        state["k0"] = state["k0"] + torch.randn_like(state["k0"])
        assert not torch.allclose(model.decode_step(state, prefix), base)


def test_moe_in_deeper_blocks_and_block_order():
    _, _, model = make(n_dec_layers=4, moe_every=2)
    assert [isinstance(b.ffn, MoE) for b in model.blocks] == [False, True, False, True]
    assert list(dict(model.blocks[0].named_children())) == [
        "norm1", "norm2", "norm3", "cross", "self_attn", "ffn", "drop",
    ]  # fmt: skip


def test_lazy_decoder_spends_far_less_compute_than_encoder_decoder():
    cfg = dataclasses.replace(tiny().onerec, n_enc_layers=2, n_dec_layers=2, n_experts=0)
    lazy = flops.onerec_forward_flops(dataclasses.replace(cfg, architecture="lazy_decoder"))
    assert lazy < 0.6 * flops.onerec_forward_flops(cfg)

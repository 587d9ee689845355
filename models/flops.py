"""Analytic FLOPs and Model FLOPs Utilisation (MFU).

Convention (Kaplan et al. 2020; PaLM, Chowdhery et al. 2022, App. B -- the "6N" rule that
nanoGPT's ``estimate_mfu`` uses): a forward pass costs 2 FLOPs per weight touched per token,
plus ``2 * 2 * q_len * k_len * d_attn`` per attention (scores and weighted sum, causal masks not
discounted); training costs 3x the forward (backward = 2x). Only matmuls count: embedding
lookups, norms, activations and softmax are left out. A MoE layer touches ``top_k`` experts
and its router. These are the FLOPs the OneRec Technical Report's MFU divides by device peak.

``tests/models/test_train.py`` checks these formulas against a hand count and against
``torch.utils.flop_counter`` on the real modules.
"""

from __future__ import annotations

import torch

from models.config import OneRecConfig, SASRecConfig

# Dense bf16 tensor-core peaks (vendor datasheets, SXM parts); H200 has the H100's compute.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def matmul(tokens: float, d_in: int, d_out: int) -> float:
    return 2.0 * tokens * d_in * d_out


def attention(q_len: float, k_len: float, d_attn: int) -> float:
    """Scores ``Q K^T`` and the weighted sum ``A V`` for one sequence, all heads."""
    return 4.0 * q_len * k_len * d_attn


def ffn(cfg: OneRecConfig, tokens: float, layer: int | None = None) -> float:
    """SwiGLU (3 matrices) or MoE (router + top_k experts) on ``tokens`` tokens."""
    if layer is not None and cfg.is_moe(layer):
        return matmul(tokens, cfg.d_model, cfg.n_experts) + cfg.top_k * 3 * matmul(tokens, cfg.d_model, cfg.d_ff)
    return 3 * matmul(tokens, cfg.d_model, cfg.d_ff)


def attention_block(cfg: OneRecConfig, q_len: float, k_len: float, kv_proj: bool = True) -> float:
    """Q and output projections on the queries, K/V projection on the keys, and the attention."""
    d, kv_dim = cfg.d_model, cfg.n_kv_heads * cfg.head_dim
    proj = 2 * matmul(q_len, d, d) + (matmul(k_len, d, 2 * kv_dim) if kv_proj else 0.0)
    return proj + attention(q_len, k_len, d)


def context_flops(cfg: OneRecConfig) -> float:
    """The four pathways (``onerec.ContextEmbedder``) for one sample."""
    d = cfg.d_model
    total = matmul(1, d * (1 + len(cfg.user_attr_sizes)), d) + matmul(1, d, d)  # static MLP
    total += matmul(cfg.short_len, cfg.signal_dim, d)  # interaction signals (counted even when absent)
    total += 2 * matmul(cfg.short_len, d, d) + 2 * matmul(cfg.pos_len, d, d)  # pathway MLPs
    if cfg.lifelong_len:
        total += 2 * matmul(cfg.lifelong_len, d, d)
        memory = cfg.lifelong_len + 1  # + the null item
        total += cfg.qformer_blocks * (attention_block(cfg, cfg.n_queries, memory) + ffn(cfg, cfg.n_queries))
    return total


def heads_flops(cfg: OneRecConfig) -> float:
    """One head per level, applied to the positions that predict that level; plus the item head."""
    item_head = matmul(1, cfg.d_model, cfg.n_items + 1) if cfg.item_loss_weight else 0.0
    return sum(matmul(cfg.session_len, cfg.d_model, k) for k in cfg.level_sizes) + item_head


def onerec_forward_flops(cfg: OneRecConfig) -> float:
    """Forward FLOPs of one sample through either architecture (teacher-forced, all target tokens)."""
    s, t, d = cfg.context_len, cfg.target_len, cfg.d_model
    total = context_flops(cfg) + heads_flops(cfg)
    if cfg.architecture == "lazy_decoder":
        total += matmul(s, d, cfg.kv_split * cfg.kv_sets * cfg.n_kv_heads * cfg.head_dim)  # context processor
        cross = [attention_block(cfg, t, s, kv_proj=False)] * cfg.n_dec_layers
    else:
        total += cfg.n_enc_layers * (attention_block(cfg, s, s) + ffn(cfg, s))
        cross = [attention_block(cfg, t, s)] * cfg.n_dec_layers  # cross K/V projected once per layer
    for layer in range(cfg.n_dec_layers):
        total += cross[layer] + attention_block(cfg, t, t) + ffn(cfg, t, layer)
    return total


def sasrec_forward_flops(cfg: SASRecConfig, seq_len: int, scored_positions: float | None = None) -> float:
    """Forward FLOPs of one sequence: the blocks on every position, the output on ``scored_positions``
    (default all) against ``n_items + 1`` items (CE) or ``1 + n_negatives`` (BCE)."""
    d = cfg.d_model
    scored = seq_len if scored_positions is None else scored_positions
    per_layer = 4 * matmul(seq_len, d, d) + attention(seq_len, seq_len, d) + 2 * matmul(seq_len, d, cfg.d_ff)
    items = cfg.n_items + 1 if cfg.loss == "ce" else 1 + cfg.n_negatives
    return cfg.n_layers * per_layer + matmul(scored, d, items)


def train_flops(forward: float) -> float:
    """Forward + backward (2x forward)."""
    return 3.0 * forward


def device_peak_flops(device: str | torch.device, dtype: str) -> float | None:
    """Dense peak FLOP/s for bf16 on a known GPU; ``None`` (MFU n/a) for CPU, fp32 or unknown parts."""
    device = torch.device(device)
    if device.type != "cuda" or dtype != "bf16" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def mfu(flops_per_second: float, peak: float | None) -> float | None:
    return None if peak is None else flops_per_second / peak

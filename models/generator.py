"""What both generator architectures share: attention, the context embedder and the interface.

``SemanticIdGenerator`` is the interface of ``onerec.OneRec`` (encoder-decoder) and
``lazy_decoder.LazyDecoder`` (decoder-only): ``forward(batch) -> (loss, logits)``,
``encode_context(batch)`` (a dict of tensors, batch-first, computed once per user) and
``decode_step(state, prefix)``. ``ContextEmbedder`` turns the four user pathways (static,
short-term, positive feedback, lifelong through a QFormer) into context tokens for either.

These pieces live here, not in ``onerec.py``, so that ``lazy_decoder`` does not import
``onerec`` (which builds a ``LazyDecoder``): no import circle between the two.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import per_position
from models.config import OneRecConfig
from models.moe import MoE, SwiGLU


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, dropout_p: float) -> Tensor:
    """SDPA over ``(B, H, T, hd)`` queries and ``(B, Hkv, S, hd)`` keys/values (GQA): ``(B, T, H*hd)``."""
    if k.shape[1] != q.shape[1]:  # grouped-query attention: each KV head serves H / Hkv query heads
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal)
    return y.transpose(1, 2).flatten(2)


class Attention(nn.Module):
    """Self- or cross-attention with ``n_kv_heads`` key/value heads. ``mask``: bool, True = attend."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(d_model, 2 * n_kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(d_model, d_model, bias=False)
        self.dropout = dropout

    def project_kv(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``ctx`` ``(B, S, d)``, each ``(B, Hkv, S, hd)``; cacheable per user."""
        kv = self.kv(ctx).unflatten(-1, (2, self.n_kv_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor] | None = None, mask: Tensor | None = None,
                causal: bool = False) -> Tensor:  # fmt: skip
        q = self.q(x).unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)
        k, v = self.project_kv(x) if kv is None else kv
        return self.o(attend(q, k, v, mask, causal, self.dropout if self.training else 0.0))


def mlp(d_in: int, d_out: int) -> nn.Sequential:
    """The tech report's pathway MLP, Dense(LeakyReLU(Dense(x)))."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.LeakyReLU(), nn.Linear(d_out, d_out))


def feed_forward(cfg: OneRecConfig, layer: int) -> nn.Module:
    if cfg.is_moe(layer):
        return MoE(cfg.d_model, cfg.d_ff, cfg.n_experts, cfg.top_k, cfg.moe_bias_rate, cfg.dropout)
    return SwiGLU(cfg.d_model, cfg.d_ff, cfg.dropout)


class ItemEmbedding(nn.Module):
    """Context item vectors: an item-id table plus, optionally, the sum of its code embeddings.

    The code sum means a brand-new item (an untrained id row) still lands near items that share
    its semantic-ID prefix. ``item_codes`` is ``(n_items + 1, n_levels)``, row 0 for padding.
    """

    def __init__(self, cfg: OneRecConfig, item_codes: Tensor | np.ndarray | None = None) -> None:
        super().__init__()
        self.ids = nn.Embedding(cfg.n_items + 1, cfg.d_model, padding_idx=0)
        self.use_codes = cfg.sid_item_embedding
        if not self.use_codes:
            return
        shape = (cfg.n_items + 1, cfg.n_levels)
        codes = torch.zeros(shape, dtype=torch.long) if item_codes is None else torch.as_tensor(item_codes).long()
        sizes = torch.tensor(cfg.level_sizes)
        if tuple(codes.shape) != shape or (codes < 0).any() or (codes >= sizes).any():
            raise ValueError(f"item_codes must be {shape} with level l codes in [0, {cfg.level_sizes}[l])")
        self.register_buffer("item_codes", codes.clone())  # persistent: the checkpoint is self-contained
        self.register_buffer("offset", torch.cumsum(sizes, 0) - sizes, persistent=False)
        self.codes = nn.Embedding(int(sizes.sum()), cfg.d_model)

    def table(self) -> Tensor:
        """Every item's vector ``(n_items + 1, d)``, row 0 the zero padding vector."""
        return self(torch.arange(self.ids.num_embeddings, device=self.ids.weight.device))

    def forward(self, items: Tensor) -> Tensor:
        e = self.ids(items)
        if self.use_codes:
            sid = self.codes(self.item_codes[items] + self.offset).sum(-2)
            e = e + sid * (items > 0).unsqueeze(-1)  # padding stays a zero vector
        return e


class QFormer(nn.Module):
    """``N_q`` learnable queries cross-attend to the lifelong items (tech report, lifelong pathway).

    A learned null item is always attendable, so a user without lifelong items gets no empty
    softmax (which would be NaN).
    """

    def __init__(self, cfg: OneRecConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.queries = nn.Parameter(torch.randn(cfg.n_queries, d) * 0.02)
        self.null = nn.Parameter(torch.zeros(1, 1, d))
        self.norm_mem = nn.RMSNorm(d)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"norm_q": nn.RMSNorm(d), "attn": Attention(d, cfg.n_heads, cfg.n_kv_heads, cfg.dropout),
                           "norm_f": nn.RMSNorm(d), "ffn": SwiGLU(d, cfg.d_ff, cfg.dropout)})
            for _ in range(cfg.qformer_blocks)
        )  # fmt: skip

    def forward(self, items: Tensor, mask: Tensor) -> Tensor:
        b = items.shape[0]
        memory = self.norm_mem(torch.cat([self.null.expand(b, 1, -1), items], 1))
        mask = torch.cat([mask.new_ones(b, 1), mask], 1)[:, None, None, :]
        q = self.queries.expand(b, -1, -1)
        for blk in self.blocks:
            q = q + blk["attn"](blk["norm_q"](q), kv=blk["attn"].project_kv(memory), mask=mask)
            q = q + blk["ffn"](blk["norm_f"](q))
        return q


class ContextEmbedder(nn.Module):
    """The four pathways -> ``(B, context_len, d)`` tokens with learned positions, and a ``(B, S)`` key mask.

    Batch keys (int64 items, 0 = padding, most recent last): ``short_items (B, L_s)``,
    ``pos_items (B, L_p)``, ``life_items (B, N_lifelong)``; optional ``user (B,)`` bucket,
    ``user_attrs (B, n_attrs)``, ``short_gap (B, L_s)`` bucket and ``short_signals (B, L_s,
    cfg.signal_dim)`` (the signal values, then their presence bits: ``models/pathways.py``).
    Missing optional signals count as zeros (absent).
    """

    def __init__(self, cfg: OneRecConfig, item_codes: Tensor | np.ndarray | None = None) -> None:
        super().__init__()
        d, self.cfg = cfg.d_model, cfg
        self.items = ItemEmbedding(cfg, item_codes)
        self.user = nn.Embedding(max(cfg.n_user_buckets, 1), d)
        self.attrs = nn.ModuleList(nn.Embedding(n, d, padding_idx=0) for n in cfg.user_attr_sizes)  # 0 = missing
        self.static = mlp(d * (1 + len(cfg.user_attr_sizes)), d)
        self.signals = nn.Linear(cfg.signal_dim, d, bias=False)
        self.gap = nn.Embedding(cfg.n_gap_buckets, d)
        self.short, self.positive = mlp(d, d), mlp(d, d)
        if cfg.lifelong_len:
            self.lifelong, self.qformer = mlp(d, d), QFormer(cfg)
        self.position = nn.Embedding(cfg.context_len, d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        cfg, short = self.cfg, batch["short_items"]
        b = short.shape[0]
        user = batch.get("user", short.new_zeros(b))
        attrs = [emb(batch["user_attrs"][:, i]) if "user_attrs" in batch else short.new_zeros(b, self.cfg.d_model,
                 dtype=self.user.weight.dtype) for i, emb in enumerate(self.attrs)]  # fmt: skip
        parts = [self.static(torch.cat([self.user(user), *attrs], -1)).unsqueeze(1)]
        masks = [short.new_ones(b, 1, dtype=torch.bool)]
        e = self.items(short) + self.gap(batch.get("short_gap", torch.zeros_like(short)))
        if "short_signals" in batch:
            e = e + self.signals(batch["short_signals"].to(e.dtype))
        parts.append(self.short(e))
        masks.append(short > 0)
        if cfg.pos_len:
            parts.append(self.positive(self.items(batch["pos_items"])))
            masks.append(batch["pos_items"] > 0)
        if cfg.lifelong_len:
            life = batch["life_items"]
            parts.append(self.qformer(self.lifelong(self.items(life)), life > 0))
            masks.append(short.new_ones(b, cfg.n_queries, dtype=torch.bool))
        return self.drop(torch.cat(parts, 1) + self.position.weight), torch.cat(masks, 1)


class SemanticIdGenerator(nn.Module):
    """Shared by both architectures: target-token embeddings, per-level heads, loss, decode step.

    Subclasses implement ``encode_context(batch) -> state`` (tensors, batch first) and
    ``run_decoder(x, state) -> hidden``. Decoder input ``[BOS, c_0 .. c_{T-2}]`` predicts
    ``[c_0 .. c_{T-1}]``; position ``p`` predicts level ``p % n_levels`` with that level's head.
    """

    def __init__(self, cfg: OneRecConfig, item_codes: Tensor | np.ndarray | None = None) -> None:
        super().__init__()
        self.cfg, d, sizes = cfg, cfg.d_model, torch.tensor(cfg.level_sizes)
        self.context = ContextEmbedder(cfg, item_codes)
        self.register_buffer("code_offset", torch.cumsum(sizes, 0) - sizes, persistent=False)
        self.bos = nn.Parameter(torch.randn(d) * 0.02)
        self.tokens = nn.Embedding(int(sizes.sum()), d)
        self.target_position = nn.Embedding(cfg.target_len, d)
        self.heads = nn.ModuleList(nn.Linear(d, k, bias=False) for k in cfg.level_sizes)
        self.out_norm = nn.RMSNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def init_weights(self) -> None:
        """GPT-2 / nanoGPT initialisation (normal 0.02); padding rows back to zero."""
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.context.items.ids.weight[0].zero_()
            for emb in self.context.attrs:  # a missing attribute or count adds nothing (masked)
                emb.weight[0].zero_()

    def encode_context(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def run_decoder(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def decode(self, state: dict[str, Tensor], prefix: Tensor) -> Tensor:
        """Hidden states ``(B, t + 1, d)`` for input ``[BOS, prefix]``; ``prefix`` is ``(B, t)`` codes."""
        b, t = prefix.shape
        level = torch.arange(t, device=prefix.device) % self.cfg.n_levels
        x = torch.cat([self.bos.expand(b, 1, -1), self.tokens(prefix + self.code_offset[level])], 1)
        x = self.drop(x + self.target_position.weight[: t + 1])
        return self.out_norm(self.run_decoder(x, state))

    def item_logits(self, state: dict[str, Tensor]) -> Tensor | None:
        """Item-head logits ``(B, n_items + 1)`` (column 0, padding, is -inf); None without a head."""
        if "user" not in state:
            return None
        logits = (state["user"] @ self.context.items.table().T).float()
        logits[:, 0] = float("-inf")
        return logits

    def decode_step(self, state: dict[str, Tensor], prefix: Tensor) -> Tensor:
        """Float logits ``(B, K_level)`` of the next code after ``prefix`` (recomputes the short prefix)."""
        h = self.decode(state, prefix)[:, -1]
        return self.heads[prefix.shape[1] % self.cfg.n_levels](h).float()

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``(loss, logits)``: mean next-token CE; logits ``(B, T, max K)``, -inf past a level's K."""
        if batch["target_codes"].dim() == 3:  # (B, T, L): every position of a window (cfg.per_position)
            return per_position.forward(self, batch)
        target = batch["target_codes"]
        state = self.encode_context(batch)
        h = self.decode(state, target[:, :-1])
        sizes, n = self.cfg.level_sizes, self.cfg.n_levels
        logits = h.new_full((*target.shape, max(sizes)), float("-inf"), dtype=torch.float32)
        for level, head in enumerate(self.heads):
            logits[:, level::n, : sizes[level]] = head(h[:, level::n]).float()
        if not self.cfg.label_smoothing:
            loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        else:
            # Smoothing per level, over that level's K codes only (never onto the -inf padding
            # columns); every level has the same token count, so the mean of the level means is
            # the mean over all tokens.
            losses = [F.cross_entropy(logits[:, level::n, : sizes[level]].flatten(0, 1), target[:, level::n].flatten(),
                                      label_smoothing=self.cfg.label_smoothing) for level in range(n)]  # fmt: skip
            loss = torch.stack(losses).mean()
        item_logits = self.item_logits(state)
        if item_logits is not None:  # the session's first item: the one the beam decodes first
            loss = loss + self.cfg.item_loss_weight * F.cross_entropy(item_logits, batch["target_items"][:, 0])
        return loss, logits

"""OneRec encoder-decoder generator (OneRec Technical Report, arXiv 2506.13695).

* Encoder ("Encoder: Multi-Scale Feature Engineering"): four user pathways -- static (user id and
  attributes -> Dense(LeakyReLU(Dense)) -> 1 token), short-term (last ``L_s`` interactions with
  their signals), positive-feedback (last ``L_p`` engaged items) and lifelong (representatives ->
  QFormer with ``N_q`` learnable queries) -- concatenated with learned positions, then
  ``L_enc`` pre-RMSNorm blocks of fully visible self-attention and SwiGLU.
* Decoder ("Decoder"): learnable BOS + the target's semantic-ID tokens (one table per level),
  causal self-attention, cross-attention to the encoder output, FFN that is a sparse MoE in the
  layers ``cfg.is_moe`` picks; one output head per level. Loss: next-token cross-entropy over
  the target's tokens; a session (OneRec, arXiv 2502.18965, "session-wise generation") is the
  concatenation of its items' ID tuples.

Optional item head (``cfg.item_loss_weight`` > 0, encoder-decoder only): the encoder output at
the most recent short-term position scores every item against the context item table (tied), a
full-softmax next-item loss added to the code loss. Neither OneRec report has it; it is LIGER's
(Yang et al. 2024) generative + dense training on one encoder. On Beauty the code loss alone left
the encoder weak (see ``bench/quality_plans.py``); the head gives it a per-item signal, and
``beam.rerank`` can score the beam's candidates with it.

``SemanticIdGenerator`` (``models/generator.py``) holds what both architectures share (this file's
``OneRec`` and ``lazy_decoder.LazyDecoder``): ``forward(batch) -> (loss, logits)``,
``encode_context(batch)`` (a dict of tensors, batch-first, computed once per user) and
``decode_step(state, prefix)``; its names are re-exported here for existing callers.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from models import per_position
from models.config import OneRecConfig
from models.generator import (  # noqa: F401  (re-exported: callers import them from here)
    Attention,
    ContextEmbedder,
    ItemEmbedding,
    QFormer,
    SemanticIdGenerator,
    attend,
    feed_forward,
    mlp,
)
from models.moe import SwiGLU


class EncoderBlock(nn.Module):
    """Pre-RMSNorm, fully visible self-attention (padding masked), SwiGLU."""

    def __init__(self, cfg: OneRecConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.RMSNorm(cfg.d_model), nn.RMSNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.dropout)
        self.ffn = SwiGLU(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask=mask))
        return x + self.ffn(self.norm2(x))


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, FFN or MoE; pre-RMSNorm."""

    def __init__(self, cfg: OneRecConfig, layer: int) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.RMSNorm(cfg.d_model) for _ in range(3))
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.dropout)
        self.cross = Attention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.dropout)
        self.ffn = feed_forward(cfg, layer)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], mask: Tensor) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm1(x), causal=True))
        x = x + self.drop(self.cross(self.norm2(x), kv=kv, mask=mask))
        return x + self.ffn(self.norm3(x))


class OneRec(SemanticIdGenerator):
    """The encoder-decoder. ``encode_context`` also projects every decoder layer's cross K/V once."""

    def __init__(self, cfg: OneRecConfig, item_codes: Tensor | np.ndarray | None = None) -> None:
        super().__init__(cfg, item_codes)
        self.encoder = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.n_enc_layers))
        self.enc_norm = nn.RMSNorm(cfg.d_model)
        self.decoder = nn.ModuleList(DecoderBlock(cfg, i) for i in range(cfg.n_dec_layers))
        self.init_weights()

    def encode_context(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x, mask = self.context(batch)
        # Per-position models encode causally: position p sees the static token and items <= p.
        enc_mask = per_position.causal_context_mask(mask) if self.cfg.per_position else mask[:, None, None, :]
        for blk in self.encoder:
            x = blk(x, enc_mask)
        memory = self.enc_norm(x)
        state = {"mask": mask}
        if self.cfg.item_loss_weight:  # the most recent short-term item's position (static token first)
            state["user"] = memory[:, self.cfg.short_len]
            if self.cfg.per_position and self.training:  # the item head's input at every position
                state["positions"] = memory[:, 1 : 1 + self.cfg.short_len]
        for i, blk in enumerate(self.decoder):
            state[f"k{i}"], state[f"v{i}"] = blk.cross.project_kv(memory)
        return state

    def run_decoder(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        mask = state["mask"][:, None, None, :]
        for i, blk in enumerate(self.decoder):
            x = blk(x, (state[f"k{i}"], state[f"v{i}"]), mask)
        return x


def build(cfg: OneRecConfig, item_codes: Tensor | np.ndarray | None = None) -> SemanticIdGenerator:
    """The generator ``cfg.architecture`` names."""
    if cfg.architecture == "lazy_decoder":
        from models.lazy_decoder import LazyDecoder  # late: most runs never build one

        return LazyDecoder(cfg, item_codes)
    return OneRec(cfg, item_codes)

"""OneRec-V2 lazy decoder-only generator (OneRec-V2 Technical Report, arXiv 2508.20900).

"Lazy Decoder-Only Architecture": there is no encoder. A light *context processor* maps each
context token straight to keys/values, once per user: the context (here the same four pathways
as OneRec's encoder input, ``generator.ContextEmbedder``) is projected to
``d_context = S_kv * L_kv * G_kv * d_head`` and split into ``S_kv * L_kv`` chunks; chunk
``l * S_kv`` RMS-normalised is ``k_l``, chunk ``l * S_kv + 1`` is ``v_l`` when ``S_kv = 2``,
else ``v_l = k_l``. Decoder layer ``i`` reads KV set ``floor(i * L_kv / N_layer)`` ("KV
sharing"; ``L_kv = 1`` -- one set for all layers -- lost nothing in the paper). The decoder's
cross-attention therefore has no K/V projections ("lazy cross-attention"), only Q and output.

Block (pre-RMSNorm each): cross-attention to the context, causal self-attention with GQA,
FFN (MoE in the layers ``cfg.is_moe`` picks, the deeper ones with ``moe_every`` > 1). Input
``[BOS, s_1 .. s_{L-1}]`` predicts ``[s_1 .. s_L]``, loss = mean CE over the target tokens; the
interface is ``generator.SemanticIdGenerator``'s, so beam search and training treat both alike.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from models.config import OneRecConfig
from models.generator import Attention, SemanticIdGenerator, attend, feed_forward


class ContextProcessor(nn.Module):
    """Context tokens ``(B, S, d)`` -> ``L_kv`` pairs ``(k, v)``, each ``(B, G_kv, S, d_head)``."""

    def __init__(self, cfg: OneRecConfig) -> None:
        super().__init__()
        self.n_kv_heads, self.head_dim = cfg.n_kv_heads, cfg.head_dim
        self.kv_sets, self.kv_split = cfg.kv_sets, cfg.kv_split
        chunk = cfg.n_kv_heads * cfg.head_dim
        self.proj = nn.Linear(cfg.d_model, cfg.kv_split * cfg.kv_sets * chunk, bias=False)
        self.norms = nn.ModuleList(nn.RMSNorm(chunk) for _ in range(cfg.kv_split * cfg.kv_sets))

    def heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.n_kv_heads, self.head_dim)).transpose(1, 2)

    def forward(self, tokens: Tensor) -> list[tuple[Tensor, Tensor]]:
        chunks = self.proj(tokens).chunk(self.kv_split * self.kv_sets, dim=-1)
        out = []
        for s in range(self.kv_sets):
            j = s * self.kv_split
            k = self.heads(self.norms[j](chunks[j]))
            v = self.heads(self.norms[j + 1](chunks[j + 1])) if self.kv_split == 2 else k
            out.append((k, v))
        return out


class LazyCrossAttention(nn.Module):
    """Cross-attention whose keys/values come ready-made from the context processor."""

    def __init__(self, cfg: OneRecConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.dropout = cfg.n_heads, cfg.head_dim, cfg.dropout
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.o = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], mask: Tensor) -> Tensor:
        q = self.q(x).unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)
        return self.o(attend(q, kv[0], kv[1], mask, False, self.dropout if self.training else 0.0))


class LazyBlock(nn.Module):
    """Cross-attention, causal GQA self-attention, FFN or MoE; each pre-RMSNorm."""

    def __init__(self, cfg: OneRecConfig, layer: int) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.RMSNorm(cfg.d_model) for _ in range(3))
        self.cross = LazyCrossAttention(cfg)
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.dropout)
        self.ffn = feed_forward(cfg, layer)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], mask: Tensor) -> Tensor:
        x = x + self.drop(self.cross(self.norm1(x), kv, mask))
        x = x + self.drop(self.self_attn(self.norm2(x), causal=True))
        return x + self.ffn(self.norm3(x))


class LazyDecoder(SemanticIdGenerator):
    """Decoder-only generator over a once-computed, layer-shared context KV."""

    def __init__(self, cfg: OneRecConfig, item_codes: Tensor | np.ndarray | None = None) -> None:
        super().__init__(cfg, item_codes)
        self.processor = ContextProcessor(cfg)
        self.blocks = nn.ModuleList(LazyBlock(cfg, i) for i in range(cfg.n_dec_layers))
        self.init_weights()

    def kv_set(self, layer: int) -> int:
        """``floor(l * L_kv / N_layer)``: consecutive layers share a set."""
        return layer * self.cfg.kv_sets // self.cfg.n_dec_layers

    def encode_context(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        tokens, mask = self.context(batch)
        state = {"mask": mask}
        for s, (k, v) in enumerate(self.processor(tokens)):
            state[f"k{s}"], state[f"v{s}"] = k, v
        return state

    def run_decoder(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        mask = state["mask"][:, None, None, :]
        for i, blk in enumerate(self.blocks):
            s = self.kv_set(i)
            x = blk(x, (state[f"k{s}"], state[f"v{s}"]), mask)
        return x

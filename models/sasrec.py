"""SASRec: causal self-attention over item ids (Kang & McAuley, "Self-Attentive Sequential
Recommendation", ICDM 2018), the baseline of TIGER's and OneRec's tables.

Learned absolute positions, pre-LayerNorm blocks, item embeddings tied to the output. Two losses:

* ``"bce"`` -- the paper's: for every position, the next item against ``n_negatives`` uniformly
  sampled items (collisions with the positive are not re-drawn: at 1/n_items they are noise);
  this is the SASRec of TIGER's Table 2 (Recall@10 0.0605 on Beauty).
* ``"ce"`` -- full softmax over all items (Klenitskiy & Vasilev, "Turning Dross Into Gold Loss:
  is BERT4Rec really better than SASRec?", RecSys 2023); public re-implementations reach
  Recall@10 ~0.085 on Beauty with it.

Sequences are left-padded with 0, most recent item last; ``score`` ranks all items for the
last position.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import SASRecConfig
from models.onerec import Attention


class SASRecBlock(nn.Module):
    """Pre-LN: causal self-attention, then a point-wise two-layer FFN."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.n_heads, cfg.dropout)
        self.ffn = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask=mask))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRec(nn.Module):
    """``forward(batch) -> (loss, None)`` with ``batch = {"input", "target"}`` ``(B, T)``; ``score(seq)``."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item = nn.Embedding(cfg.n_items + 1, cfg.d_model, padding_idx=0)
        self.position = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(SASRecBlock(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def hidden(self, seq: Tensor) -> Tensor:
        """``(B, T, d)`` states; position ``i`` has seen items ``0..i``."""
        t = seq.shape[1]
        x = self.item(seq) * math.sqrt(self.cfg.d_model) + self.position.weight[-t:]
        causal = torch.ones(t, t, dtype=torch.bool, device=seq.device).tril()
        # Padding keys are hidden; a position always sees itself, so no row of the mask is empty.
        mask = causal & ((seq > 0)[:, None, :] | torch.eye(t, dtype=torch.bool, device=seq.device))
        x = self.drop(x)
        for blk in self.blocks:
            x = blk(x, mask[:, None])
        return self.ln_f(x)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, None]:
        target = batch["target"]
        h = self.hidden(batch["input"])[target > 0]  # only positions with a next item
        pos = target[target > 0]
        if self.cfg.loss == "ce":
            logits = (h @ self.item.weight.T).float()
            logits[:, 0] = float("-inf")  # padding is never a candidate
            return F.cross_entropy(logits, pos), None
        neg = torch.randint(1, self.cfg.n_items + 1, (len(pos), self.cfg.n_negatives), device=pos.device)
        pos_score = (h * self.item(pos)).sum(-1).float()
        neg_score = torch.einsum("nd,nkd->nk", h, self.item(neg)).float()
        loss = -(F.logsigmoid(pos_score).mean() + F.logsigmoid(-neg_score).sum(-1).mean())
        return loss, None

    @torch.no_grad()
    def score(self, seq: Tensor) -> Tensor:
        """Scores of every item ``(B, n_items + 1)`` after each left-padded sequence; column 0 = -inf."""
        s = (self.hidden(seq)[:, -1] @ self.item.weight.T).float()
        s[:, 0] = float("-inf")
        return s

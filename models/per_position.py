"""Per-position training of a semantic-ID generator: every position of a sequence in one pass.

A point-wise sample teaches the generator one target per encoded context (about 512 targets per
step at batch 512, against SASRec's ~2,000 next items from the same number of sequences). Here a
sample is a window of ``short_len`` items and every position is a target (``data.position_batch``):

* the context is encoded once per window with a *causal* mask (``causal_context_mask``): the
  static token and short-term item ``j`` are visible to position ``p`` iff ``j <= p``, so the
  encoder output at ``p`` summarises exactly the items a request at ``p`` would see;
* each target's ID tuple is decoded by the model's own decoder (``SemanticIdGenerator.decode``),
  cross-attending to the context keys up to its position only (``target_state``): the encoder-
  decoder's cached cross K/V and the lazy decoder's context-processor K/V alike;
* the loss is the model's code loss (per-level heads, label smoothing) over every target token,
  plus, with an item head, a full-softmax next-item loss at every position (SASRec-CE's loss on
  the encoder).

Inference needs nothing new: the newest position sees the whole context, which is what
``encode_context`` gives beam search when the encoder mask is causal (``cfg.per_position``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Decoder state entries that are per-user summaries, not per-layer keys/values.
_NOT_KV = ("mask", "user", "positions")


def causal_context_mask(mask: Tensor) -> Tensor:
    """``(B, 1, S, S)`` encoder mask: key ``j`` is visible to query ``i`` iff it is not padding and
    ``j <= i`` (token 0, the static token, comes first and so is visible to every query)."""
    s = mask.shape[1]
    causal = torch.ones(s, s, dtype=torch.bool, device=mask.device).tril()
    return (causal[None] & mask[:, None, :]).unsqueeze(1)


def target_state(state: dict[str, Tensor], rows: Tensor, positions: Tensor) -> dict[str, Tensor]:
    """The decoder state of each target: its window's K/V rows, and a key mask cut at its position
    (context token ``p + 1`` is short-term position ``p``, token 0 the static token)."""
    out = {k: v[rows] for k, v in state.items() if k not in _NOT_KV}
    keys = torch.arange(state["mask"].shape[1], device=rows.device)
    out["mask"] = state["mask"][rows] & (keys[None, :] <= positions[:, None] + 1)
    return out


def code_loss(model: nn.Module, h: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``(loss, logits)`` of decoder states ``h (N, L, d)`` against ``target (N, L)`` codes: the
    per-level heads and label smoothing of ``SemanticIdGenerator.forward``."""
    cfg = model.cfg
    sizes, n = cfg.level_sizes, cfg.n_levels
    logits = h.new_full((*target.shape, max(sizes)), float("-inf"), dtype=torch.float32)
    for level, head in enumerate(model.heads):
        logits[:, level::n, : sizes[level]] = head(h[:, level::n]).float()
    losses = [F.cross_entropy(logits[:, level::n, : sizes[level]].flatten(0, 1), target[:, level::n].flatten(),
                              label_smoothing=cfg.label_smoothing) for level in range(n)]  # fmt: skip
    return torch.stack(losses).mean(), logits  # every level has one token per target: the token mean


def forward(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``(loss, logits (N, L, max K))`` over the ``N`` targets of a ``data.position_batch``."""
    items = batch["target_items"]
    state = model.encode_context(batch)
    rows, positions = (items > 0).nonzero(as_tuple=True)
    target = batch["target_codes"][rows, positions]
    h = model.decode(target_state(state, rows, positions), target[:, :-1])
    loss, logits = code_loss(model, h, target)
    if "positions" in state:  # the item head at every position (tied to the context item table)
        scores = (state["positions"][rows, positions] @ model.context.items.table().T).float()
        scores[:, 0] = float("-inf")
        loss = loss + model.cfg.item_loss_weight * F.cross_entropy(scores, items[rows, positions])
    return loss, logits

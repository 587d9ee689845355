"""Beam search over semantic IDs, constrained to tuples that exist (a prefix trie of the catalogue).

OneRec Technical Report (arXiv 2506.13695), "Decoder"/inference: beam search over the
semantic-ID levels, restricted to valid IDs, then IDs -> items. The trie is a set of sorted
integer keys per depth (a prefix ``(s_1..s_t)`` in mixed radix over the level sizes), so one
``searchsorted`` gives a whole batch of beams their allowed next codes: a prefix's children are
the keys in ``[key * K_t, (key + 1) * K_t)``, one contiguous run. No Python dict per node.

The context is encoded once per user (``model.encode_context``) and repeated per beam; each step
calls ``model.decode_step`` on the beams' prefixes, so both generators work unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from models.onerec import SemanticIdGenerator


class SemanticIdTrie:
    """The valid ID tuples of a catalogue: allowed next codes per prefix, and tuple -> item."""

    def __init__(self, codes: np.ndarray | Tensor, items: np.ndarray | None = None,
                 level_sizes: Sequence[int] | None = None) -> None:  # fmt: skip
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or len(codes) == 0 or (codes < 0).any():
            raise ValueError(f"expected non-empty, non-negative (n_items, L) codes, got {codes.shape}")
        items = np.arange(len(codes)) if items is None else np.asarray(items, dtype=np.int64)
        self.sizes = [int(s) for s in (level_sizes if level_sizes is not None else codes.max(0) + 1)]
        self.levels = codes.shape[1]
        if len(self.sizes) != self.levels or (codes >= np.array(self.sizes)).any():
            raise ValueError(f"codes do not fit level sizes {self.sizes}")
        if float(np.prod(np.array(self.sizes, dtype=np.float64))) >= 2.0**62:
            raise ValueError("level sizes too large for int64 keys")
        keys, self.prefix_keys = np.zeros(len(codes), dtype=np.int64), []
        for t in range(self.levels):
            keys = keys * self.sizes[t] + codes[:, t]
            self.prefix_keys.append(torch.from_numpy(np.unique(keys)))  # sorted keys of length t+1
        if len(self.prefix_keys[-1]) != len(codes):
            raise ValueError("two items share a semantic-ID tuple; resolve collisions first")
        order = np.argsort(keys)
        self.full_keys, self.items = torch.from_numpy(keys[order]), torch.from_numpy(items[order])

    @classmethod
    def from_item_codes(cls, item_codes: np.ndarray | Tensor, level_sizes: Sequence[int] | None = None):
        """From the ``(n_items + 1, L)`` table the data uses: row 0 (padding) is left out."""
        codes = np.asarray(item_codes)[1:]
        return cls(codes, np.arange(1, len(codes) + 1), level_sizes)

    def to(self, device: torch.device | str) -> SemanticIdTrie:
        self.prefix_keys = [k.to(device) for k in self.prefix_keys]
        self.full_keys, self.items = self.full_keys.to(device), self.items.to(device)
        return self

    def key(self, prefix: Tensor) -> Tensor:
        """Mixed-radix key of each ``(N, t)`` prefix."""
        key = torch.zeros(prefix.shape[0], dtype=torch.long, device=prefix.device)
        for t in range(prefix.shape[1]):
            key = key * self.sizes[t] + prefix[:, t]
        return key

    def allowed(self, prefix: Tensor) -> Tensor:
        """Bool ``(N, K_t)``: which codes may follow each ``(N, t)`` prefix."""
        t, n = prefix.shape[1], prefix.shape[0]
        size, keys = self.sizes[t], self.prefix_keys[t]
        base = self.key(prefix) * size
        lo = torch.searchsorted(keys, base)
        hi = torch.searchsorted(keys, base + size)
        width = int((hi - lo).max()) if n else 0
        mask = torch.zeros(n, size, dtype=torch.bool, device=prefix.device)
        if width == 0:
            return mask
        pos = lo[:, None] + torch.arange(width, device=prefix.device)  # each prefix's run of children
        inside = pos < hi[:, None]
        child = keys[pos.clamp(max=len(keys) - 1)] - base[:, None]
        rows = torch.arange(n, device=prefix.device)[:, None].expand_as(child)
        mask[rows[inside], child[inside]] = True
        return mask

    def lookup(self, codes: Tensor) -> Tensor:
        """Item of each full ``(N, L)`` tuple, -1 where the tuple is not in the catalogue."""
        key = self.key(codes)
        pos = torch.searchsorted(self.full_keys, key).clamp(max=len(self.full_keys) - 1)
        return torch.where(self.full_keys[pos] == key, self.items[pos], torch.full_like(key, -1))

    def contains(self, codes: Tensor) -> Tensor:
        return self.lookup(codes) >= 0


class BeamResult(NamedTuple):
    items: Tensor  # (B, k) item index, -1 for an illegal or dead beam
    scores: Tensor  # (B, k) sum of log-probabilities, best first
    codes: Tensor  # (B, k, L) the generated tuples
    item_logp: Tensor | None = None  # (B, k) the item head's log-probability of each item, if it has one


@torch.no_grad()
def beam_search(model: SemanticIdGenerator, batch: dict[str, Tensor], trie: SemanticIdTrie, beam_size: int,
                top_k: int | None = None, constrained: bool = True, item_weight: float = 0.0) -> BeamResult:  # fmt: skip
    """Top-``k`` items per user by beam search over one item's ``trie.levels`` codes.

    Constrained, every returned item is real and the ``k`` items are distinct (distinct beams are
    distinct tuples) whenever the catalogue has ``>= k`` items. ``beam_size=1,
    constrained=False`` is unconstrained greedy decoding. Session models decode their first item.
    ``item_weight`` > 0 reranks all ``beam_size`` beams with the model's item head (``rerank``)
    before keeping the top ``k``.
    """
    k = top_k or beam_size
    if not 1 <= k <= beam_size:
        raise ValueError(f"top_k must be in [1, beam_size], got {k} > {beam_size}")
    was_training = model.training
    model.eval()
    state = model.encode_context(batch)
    b = state["mask"].shape[0]
    state = {name: t.repeat_interleave(beam_size, 0) for name, t in state.items()}  # once per search
    device = state["mask"].device
    if trie.full_keys.device != device:
        trie.to(device)
    prefix = torch.zeros(b * beam_size, 0, dtype=torch.long, device=device)
    scores = torch.full((b, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start from the same empty prefix: keep one alive
    for t in range(trie.levels):
        logp = torch.log_softmax(model.decode_step(state, prefix), -1)
        if constrained:
            logp = logp.masked_fill(~trie.allowed(prefix), float("-inf"))
        size = logp.shape[-1]
        cand = (scores.unsqueeze(-1) + logp.view(b, beam_size, size)).view(b, -1)
        scores, idx = cand.topk(beam_size, dim=-1)
        parent = (idx // size).unsqueeze(-1).expand(b, beam_size, t)
        prefix = torch.cat([prefix.view(b, beam_size, t).gather(1, parent), (idx % size).unsqueeze(-1)], -1)
        prefix = prefix.view(b * beam_size, t + 1)
    codes = prefix.view(b, beam_size, trie.levels)
    items = trie.lookup(codes.reshape(-1, trie.levels)).view(b, beam_size)
    items = items.masked_fill(~torch.isfinite(scores), -1)
    item_logp = None
    head = model.item_logits({name: t[::beam_size] for name, t in state.items()})
    model.train(was_training)
    if head is not None:
        item_logp = torch.log_softmax(head, -1).gather(1, items.clamp(min=0))
        item_logp = item_logp.masked_fill(items < 0, float("-inf"))
    result = BeamResult(items, scores, codes, item_logp)
    if item_weight and item_logp is not None:
        result = rerank(result, item_weight)
    return BeamResult(*(None if t is None else t[:, :k] for t in result))


def rerank(result: BeamResult, item_weight: float) -> BeamResult:
    """Beams re-sorted by ``scores + item_weight * item_logp`` (the sum becomes the score).

    Generate-then-score: the constrained beam proposes real items, the encoder's item head
    (``OneRecConfig.item_loss_weight``) re-scores them; weight 1 ranks by the product of the two
    models' probabilities. Without an item head the result is returned unchanged.
    """
    if result.item_logp is None or not item_weight:
        return result
    scores = result.scores + item_weight * result.item_logp
    scores, order = scores.sort(dim=1, descending=True)
    pick = lambda t: t.gather(1, order if t.dim() == 2 else order.unsqueeze(-1).expand_as(t))  # noqa: E731
    return BeamResult(pick(result.items), scores, pick(result.codes), pick(result.item_logp))

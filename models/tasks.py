"""What the training loop needs per model: batches, token and FLOP counts, and evaluation.

``SASRecTask`` and ``OneRecTask`` adapt one model family each to ``models.train.train``; they
also serve the benchmark (``bench/quality.py``), which builds them in-process.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from models import data, evaluate, flops
from models.beam import SemanticIdTrie
from models.config import OneRecConfig, SASRecConfig, TrainConfig


def eval_users(n_users: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """The users an evaluation scores: all, or a seeded random ``limit`` of them (sorted).

    Not the first ``limit``: files list users in an order that is not random (on Amazon Beauty
    the first 2,000 users' valid Recall@10 was 0.039 for a model scoring 0.087 on 6,000 random
    ones), and a biased subset picks checkpoints on the wrong users. Fixed per run: every
    validation scores the same users.
    """
    if not limit or limit >= n_users:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(seed).permutation(n_users)[:limit])


class SASRecTask:
    """Batches, FLOPs and evaluation for SASRec."""

    def __init__(self, loo: data.LeaveOneOut, cfg: SASRecConfig, tc: TrainConfig) -> None:
        self.loo, self.cfg, self.tc = loo, cfg, tc
        self.windows = data.sasrec_windows(loo.train, cfg.max_len)
        self.n_examples = len(self.windows)

    def batch(self, idx: list[int]) -> dict[str, torch.Tensor]:
        return data.sasrec_batch(self.windows, idx)

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["target"] > 0).sum())

    def flops(self, batch: dict[str, torch.Tensor]) -> float:
        b, t = batch["input"].shape
        return flops.train_flops(b * flops.sasrec_forward_flops(self.cfg, t, self.tokens(batch) / b))

    def evaluate(self, model: nn.Module, split: str, limit: int | None = None,
                 beam_size: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Full-ranking metrics on ``split`` (``beam_size`` is accepted and unused: no beam here)."""
        ctx, target = getattr(self.loo, split), getattr(self.loo, f"{split}_target")
        if limit:
            users = eval_users(len(target), limit, self.tc.seed)
            ctx = data.Ragged.from_lists([ctx[u] for u in users])
            target = target[users]
        return evaluate.evaluate_sasrec(model, ctx, target, self.tc.eval_batch_size, self.tc.device)


class OneRecTask:
    """Batches, FLOPs and beam-search evaluation for a generator."""

    def __init__(self, loo: data.LeaveOneOut, cfg: OneRecConfig, tc: TrainConfig, codes: np.ndarray) -> None:
        self.loo, self.cfg, self.tc, self.codes = loo, cfg, tc, codes
        self.trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes)
        # Per-position: a sample is a window whose every position is a target (models/per_position.py).
        self.train = data.position_examples(loo, cfg) if cfg.per_position else data.training_examples(loo, cfg)
        self.n_examples = len(self.train)

    def batch(self, idx: list[int]) -> dict[str, torch.Tensor]:
        if self.cfg.per_position:
            return data.position_batch(self.train, idx, self.codes)
        return data.onerec_batch(self.train, idx, self.cfg, self.codes)

    def targets(self, batch: dict[str, torch.Tensor]) -> int:
        """Target items in the batch (one per sample, or every non-padding position per window)."""
        return int((batch["target_items"] > 0).sum()) if self.cfg.per_position else len(batch["target_codes"])

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return self.targets(batch) * self.cfg.target_len

    def flops(self, batch: dict[str, torch.Tensor]) -> float:
        # Per-position: counted as one point-wise sample per target, an upper bound (the encoder
        # runs once per window, not once per target).
        return flops.train_flops(self.targets(batch) * flops.onerec_forward_flops(self.cfg))

    def evaluate(self, model: nn.Module, split: str, limit: int | None = None,
                 beam_size: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Metrics on ``split`` (``limit``: a fixed random subset of users, ``eval_users``);
        ``beam_size`` overrides the config's."""
        ex = data.eval_examples(self.loo, split, self.cfg)
        if limit:
            pick = eval_users(len(ex), limit, self.tc.seed)
            ex = dataclasses.replace(ex, rows=ex.rows[pick], ends=ex.ends[pick], targets=ex.targets[pick],
                                     users=ex.users[pick],
                                     target_ts=None if ex.target_ts is None else ex.target_ts[pick])  # fmt: skip
        return evaluate.evaluate_onerec(model, ex, self.codes, self.trie, beam_size or self.tc.beam_size,
                                        self.tc.eval_batch_size, self.tc.device, greedy=split == "test",
                                        item_weight=self.tc.item_weight)  # fmt: skip

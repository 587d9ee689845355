"""P-Score: the preference reward model (OneRec Technical Report, arXiv 2506.13695, "Reward System"
/ "Preference Reward"; OneRec, arXiv 2502.18965, "Training Reward Model").

One shared user/item representation -- the user is the pooled embedding of their recent items, the
item its own embedding -- feeds one small tower per engagement signal the data has, and a fusion
network turns the towers' probabilities *and the user vector* into one personalised score: how much
this user would value this item. Towers are trained with BCE on their own label (rows without that
label are masked); the fused head is trained on the pipeline's "engaged" label (any positive
signal, no dislike), so the score has a meaning a person can check by AUC.

Signals (``derive_labels``) come from ``bronze.events`` columns; a signal whose column is absent,
all null or single-class is skipped, so Amazon-style data (ratings only) gets one tower and the
bundled sample gets seven. ``long_view`` is duration-aware (models/reward_shaping.py): the play
time's percentile among plays of similar-length items is in the top quartile.

Saved as ``model.safetensors`` + ``reward.json`` (config, tasks, item vocabulary, metrics); never pickle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models.reward_shaping import duration_aware_reward

FORMAT = "onerec.reward/1"
FLAGS = ("like", "follow", "comment", "share")
FUSED = "fused"


@dataclass(kw_only=True)
class RewardConfig:
    """Shape of a P-Score model; ``tasks`` is fixed by the first version's data."""

    n_items: int = 1
    tasks: tuple[str, ...] = ("like",)
    history_len: int = 50
    d_model: int = 32
    hidden: int = 64
    duration_buckets: int = 10
    long_view_quantile: float = 0.75


def derive_labels(events: pd.DataFrame, cfg: RewardConfig | None = None) -> pd.DataFrame:
    """One float column per signal (1/0, NaN = unknown) plus ``fused`` (engaged, never NaN).

    ``events`` has bronze.events columns; only those present are used.
    """
    cfg = cfg or RewardConfig()
    out = pd.DataFrame(index=events.index)
    cols = set(events.columns)
    dislike = events["dislike"].fillna(0).to_numpy(float) > 0 if "dislike" in cols else np.zeros(len(events), bool)
    for flag in FLAGS:
        if flag in cols:
            out[flag] = events[flag].astype(float)
    if "rating" in cols:
        out["rating_4plus"] = np.where(events["rating"].isna(), np.nan, (events["rating"] >= 4).astype(float))
    if {"play_seconds", "item_duration_seconds"} <= cols:
        pct, _ = duration_aware_reward(events["play_seconds"].to_numpy(float),
                                       events["item_duration_seconds"].to_numpy(float), cfg.duration_buckets)  # fmt: skip
        out["long_view"] = np.where(np.isnan(pct), np.nan, (pct >= cfg.long_view_quantile).astype(float))
    if "dislike" in cols:
        out["dislike"] = dislike.astype(float)
    positive = [c for c in out.columns if c != "dislike"]
    engaged = (out[positive].fillna(0).to_numpy() > 0).any(axis=1) if positive else np.zeros(len(out), bool)
    out[FUSED] = (engaged & ~dislike).astype(float)
    return out


def usable_tasks(labels: pd.DataFrame, min_positives: int = 5) -> tuple[str, ...]:
    """Signals with labels of both classes (at least ``min_positives`` positives): one tower each."""
    keep = []
    for col in labels.columns:
        y = labels[col].dropna()
        if col != FUSED and (y > 0).sum() >= min_positives and (y == 0).sum() >= min_positives:
            keep.append(col)
    return tuple(keep)


@dataclass
class Interactions:
    """Model inputs: ``history (N, H)`` and ``item (N,)`` vocabulary indices, ``labels (N, T + 1)``
    (the tasks in order, then fused; NaN = unknown)."""

    history: np.ndarray
    item: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.item)


def histories(users: np.ndarray, items: np.ndarray, length: int) -> np.ndarray:
    """For rows sorted by (user, time): each row's previous ``length`` items of the same user, left-padded."""
    n = len(items)
    start = np.zeros(n, dtype=np.int64)
    if n:
        new_user = np.r_[True, users[1:] != users[:-1]]
        start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    pos = np.arange(n)[:, None] - length + np.arange(length)
    return np.where(pos >= start[:, None], items[np.maximum(pos, 0)], 0)


def build_interactions(events: pd.DataFrame, vocab: dict[str, int], cfg: RewardConfig,
                       keep: np.ndarray | None = None) -> Interactions:  # fmt: skip
    """Rows of ``events`` (all days given, so histories reach back) -> model inputs.

    ``keep``: boolean mask of the rows to return (e.g. only the new day); history uses every row.
    Items missing from ``vocab`` map to 0 (the padding row: an unknown item scores as "no item").
    """
    ev = events.sort_values(["user_id", "ts", "item_id"], kind="stable")
    items = ev["item_id"].astype(str).map(vocab).fillna(0).to_numpy(np.int64)
    hist = histories(ev["user_id"].astype(str).to_numpy(), items, cfg.history_len)
    labels = derive_labels(ev, cfg)
    y = np.stack([labels[t].to_numpy(float) if t in labels else np.full(len(ev), np.nan)
                  for t in (*cfg.tasks, FUSED)], 1)  # fmt: skip
    mask = np.ones(len(ev), bool) if keep is None else np.asarray(keep)[ev.index.to_numpy()]
    return Interactions(hist[mask], items[mask], y[mask])


class PScore(nn.Module):
    """Shared representation -> one tower per task -> personalised fusion. ``forward`` returns
    ``(tower logits (B, T), fused logit (B,))``."""

    def __init__(self, cfg: RewardConfig) -> None:
        super().__init__()
        d, h, self.cfg = cfg.d_model, cfg.hidden, cfg
        self.items = nn.Embedding(cfg.n_items + 1, d, padding_idx=0)
        self.user = nn.Sequential(nn.Linear(d, d), nn.ReLU())
        self.shared = nn.Sequential(nn.Linear(3 * d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.towers = nn.ModuleList(nn.Sequential(nn.Linear(h, h // 2), nn.ReLU(), nn.Linear(h // 2, 1))
                                    for _ in cfg.tasks)  # fmt: skip
        # The fusion sees the user, so the weight of e.g. "like" vs "long view" differs per user.
        self.fusion = nn.Sequential(nn.Linear(len(cfg.tasks) + d, h // 2), nn.ReLU(), nn.Linear(h // 2, 1))
        nn.init.normal_(self.items.weight, std=0.1)

    def user_vector(self, history: Tensor) -> Tensor:
        mask = (history > 0).unsqueeze(-1).float()
        pooled = (self.items(history) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.user(pooled)

    def forward(self, history: Tensor, item: Tensor) -> tuple[Tensor, Tensor]:
        u, i = self.user_vector(history), self.items(item)
        shared = self.shared(torch.cat([u, i, u * i], -1))
        towers = torch.cat([t(shared) for t in self.towers], -1)
        return towers, self.fusion(torch.cat([torch.sigmoid(towers), u], -1)).squeeze(-1)

    def score(self, history: Tensor, items: Tensor) -> Tensor:
        """P-Score in ``(0, 1)`` of ``items (B, G)`` for each user's ``history (B, H)``: ``(B, G)``."""
        b, g = items.shape
        _, fused = self(history.repeat_interleave(g, 0), items.reshape(-1))
        return torch.sigmoid(fused).view(b, g)


def pos_weights(labels: np.ndarray, cap: float = 5.0) -> np.ndarray:
    """Per task (and fused, last): ``n_negative / n_positive`` of the known labels, in ``[1, cap]``."""
    known = ~np.isnan(labels)
    pos = np.nansum(labels, 0)
    return np.clip((known.sum(0) - pos) / np.maximum(pos, 1.0), 1.0, cap).astype(np.float32)


def loss_fn(towers: Tensor, fused: Tensor, labels: Tensor, pos_weight: Tensor | None = None) -> Tensor:
    """Mean masked BCE over the towers, plus the fused head's BCE.

    ``pos_weight`` (per task, then fused) up-weights the positives of rare signals: without it a
    tower with 3 % positives (dislike) gets a fraction of the gradient of the common ones, stays
    whatever the shared layers made it -- an "engaged" score -- and ranks dislikes below chance.
    """
    y, known = labels[:, :-1], ~torch.isnan(labels[:, :-1])
    w = None if pos_weight is None else pos_weight[:-1]
    bce = F.binary_cross_entropy_with_logits(towers, torch.nan_to_num(y), reduction="none", pos_weight=w)
    tower_loss = (bce * known).sum(0) / known.sum(0).clamp(min=1)
    fw = None if pos_weight is None else pos_weight[-1]
    return tower_loss.mean() + F.binary_cross_entropy_with_logits(fused, labels[:, -1], pos_weight=fw)


def fit(model: PScore, data: Interactions, epochs: int = 3, batch_size: int = 256, lr: float = 3e-3,
        seed: int = 0, balance_cap: float = 5.0) -> float:  # fmt: skip
    """A few epochs of Adam over ``data`` (continues from the model's current weights). Returns last loss.

    ``balance_cap`` > 1: positives weighted by ``n_neg / n_pos`` per task (at most the cap); 1 = plain BCE.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist, item, y = (torch.from_numpy(a) for a in (data.history, data.item, data.labels.astype(np.float32)))
    weight = torch.from_numpy(pos_weights(data.labels, balance_cap)) if balance_cap > 1 else None
    model.train()
    last = float("nan")
    for _ in range(epochs):
        for idx in torch.randperm(len(item), generator=g).split(batch_size):
            towers, fused = model(hist[idx], item[idx])
            loss = loss_fn(towers, fused, y[idx], weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            last = float(loss.detach())
    return last


@torch.no_grad()
def auc_report(model: PScore, data: Interactions) -> dict[str, float | None]:
    """ROC AUC per task and for the fused score on ``data`` (None where a label has one class)."""
    from sklearn.metrics import roc_auc_score

    model.eval()
    towers, fused = model(torch.from_numpy(data.history), torch.from_numpy(data.item))
    preds = torch.cat([towers, fused[:, None]], 1).numpy()
    out: dict[str, float | None] = {}
    for j, name in enumerate((*model.cfg.tasks, FUSED)):
        y = data.labels[:, j]
        known = ~np.isnan(y)
        both = known.any() and 0 < y[known].sum() < known.sum()
        out[name] = float(roc_auc_score(y[known], preds[known, j])) if both else None
    return out


def grow_vocab(model: PScore, n_items: int) -> PScore:
    """A model with room for ``n_items`` (new rows random, old rows kept): daily continuation."""
    if n_items <= model.cfg.n_items:
        return model
    bigger = PScore(dataclasses.replace(model.cfg, n_items=n_items))
    state = model.state_dict()
    with torch.no_grad():
        bigger.items.weight[: model.cfg.n_items + 1] = state.pop("items.weight")
    bigger.load_state_dict(state, strict=False)
    return bigger


def save(directory: str | Path, model: PScore, item_ids: list[str], metrics: dict[str, Any],
         extra: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write ``model.safetensors`` + ``reward.json``; the directory is swapped in whole."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    manifest = {"format": FORMAT, "config": dataclasses.asdict(model.cfg), "item_ids": list(item_ids),
                "metrics": metrics, **(extra or {})}  # fmt: skip
    (tmp / "reward.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    return directory


def load(directory: str | Path) -> tuple[PScore, dict[str, Any]]:
    """``(model, reward.json)`` of a saved version."""
    directory = Path(directory)
    manifest = json.loads((directory / "reward.json").read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{directory}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["config"].items()}
    model = PScore(RewardConfig(**fields))
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    return model.eval(), manifest

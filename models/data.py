"""Leave-one-out sequence data and the batches both models train on.

Inputs: the Amazon sequence text format (``user item item ...`` per line, chronological, items
1..n; SASRec/S3-Rec/TIGER's Beauty.txt) or rows of ``gold.training_examples`` with protocol
``leave_one_out`` (``user_id, split, context_item_ids, target_item_id`` [, ``context_ts``,
``target_ts``]; a train row's context + target is the user's whole training sequence). Both
become a ``LeaveOneOut``: per user the training sequence, and the valid / test (context,
target) pairs -- the last item is test, the one before valid, as in SASRec and TIGER.

Training samples: SASRec sees every prefix (next-item targets at every position, long
sequences cut into consecutive windows so no position is lost); OneRec trains on (context =
items before ``t``, target = items ``t .. t + session_len - 1``) for every ``t`` >= 1. Item 0 is
padding; contexts are left-padded, most recent last. Semantic IDs are an int array
``(n_items + 1, L)`` (row 0 unused).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.config import OneRecConfig
from models.pathways import gap_bucket  # noqa: F401  (one definition for training and serving)


@dataclass
class Ragged:
    """Variable-length int rows in one flat array (CSR), with optional parallel timestamps."""

    values: np.ndarray
    offsets: np.ndarray
    ts: np.ndarray | None = None

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], ts: Sequence[Sequence[int]] | None = None) -> Ragged:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=int(offsets[-1]))
        flat_ts = None if ts is None else np.fromiter((x for r in ts for x in r), dtype=np.int64, count=len(flat))
        return cls(flat, offsets, flat_ts)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> np.ndarray:
        return self.values[self.offsets[row] : self.offsets[row + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tail(self, rows: np.ndarray, ends: np.ndarray, length: int, ts: bool = False) -> np.ndarray:
        """``(B, length)``: items ``[end - length, end)`` of each row, left-padded with 0."""
        start = self.offsets[rows]
        pos = (start + ends)[:, None] - length + np.arange(length)
        source = self.ts if ts else self.values
        return np.where(pos >= start[:, None], source[np.maximum(pos, 0)], 0)


@dataclass
class LeaveOneOut:
    """Per user: training sequence, valid and test contexts with their targets (item indices)."""

    n_items: int
    users: list[str]
    train: Ragged
    valid: Ragged
    valid_target: np.ndarray
    test: Ragged
    test_target: np.ndarray
    valid_target_ts: np.ndarray | None = None
    test_target_ts: np.ndarray | None = None
    item_ids: list[str] | None = None  # index -> external id (index 0 = padding), from a table
    # Feature-store rows (``gold.training_features``): per split, the feature columns of each user's
    # row, aligned with ``users`` (models/pathways.py builds the pathways from them). None: sequences.
    features: dict[str, dict[str, list]] | None = None


def read_amazon_sequences(path: str | Path) -> dict[str, list[int]]:
    """``user item item ...`` per line -> ``{user: [items]}`` in file order."""
    out: dict[str, list[int]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            user, *items = line.split()
            out[user] = [int(i) for i in items]
    return out


def leave_one_out(sequences: Mapping[str, Sequence[int]], n_items: int | None = None) -> LeaveOneOut:
    """Split full sequences: last item test, second to last valid. Users with < 3 items are skipped."""
    users = [u for u, s in sequences.items() if len(s) >= 3]
    seqs = [list(sequences[u]) for u in users]
    n = n_items or max(max(s) for s in seqs)
    return LeaveOneOut(
        n_items=n,
        users=users,
        train=Ragged.from_lists([s[:-2] for s in seqs]),
        valid=Ragged.from_lists([s[:-2] for s in seqs]),
        valid_target=np.array([s[-2] for s in seqs], dtype=np.int64),
        test=Ragged.from_lists([s[:-1] for s in seqs]),
        test_target=np.array([s[-1] for s in seqs], dtype=np.int64),
    )


def from_training_examples(table: Any, item_index: Mapping[str, int] | None = None) -> LeaveOneOut:
    """From ``gold.training_examples`` rows (a pandas DataFrame or pyarrow Table), protocol leave_one_out.

    ``item_index`` maps external item ids to 1..n (e.g. the semantic-ID table's order); without
    it, the sorted ids seen become 1..n. Context items missing from the index are dropped;
    users without all three splits or with an unknown target are skipped.
    """
    df = table.to_pandas() if hasattr(table, "to_pandas") else table
    if "protocol" in df.columns:
        df = df[df["protocol"] == "leave_one_out"]
    if item_index is None:
        seen = set(df["target_item_id"].astype(str))
        seen.update(str(i) for ctx in df["context_item_ids"] for i in ctx)
        item_index = {item: i + 1 for i, item in enumerate(sorted(seen))}
    has_ts = {"context_ts", "target_ts"} <= set(df.columns)
    if "short_item_ids" in df.columns:  # gold.training_features: the pathways come from the feature store
        return _from_feature_rows(df, item_index)
    by_user: dict[str, dict[str, Any]] = {}
    for row in df.itertuples(index=False):
        by_user.setdefault(str(row.user_id), {})[row.split] = row
    users, lists, ts_lists, targets, target_ts = [], {s: [] for s in ("train", "valid", "test")}, {}, {}, {}
    for s in lists:
        ts_lists[s], targets[s], target_ts[s] = [], [], []
    for user, rows in by_user.items():
        if set(rows) != {"train", "valid", "test"} or any(
            str(r.target_item_id) not in item_index for r in rows.values()
        ):
            continue
        users.append(user)
        for s, r in rows.items():
            ctx_ts = list(r.context_ts) if has_ts else [0] * len(r.context_item_ids)
            kept = [
                (item_index[str(i)], t) for i, t in zip(r.context_item_ids, ctx_ts, strict=True) if str(i) in item_index
            ]
            items, ts = [i for i, _ in kept], [t for _, t in kept]
            if s == "train":  # context + target = the whole training sequence
                items, ts = items + [item_index[str(r.target_item_id)]], ts + [int(r.target_ts) if has_ts else 0]
            lists[s].append(items)
            ts_lists[s].append(ts)
            targets[s].append(item_index[str(r.target_item_id)])
            target_ts[s].append(int(r.target_ts) if has_ts else 0)
    ragged = {s: Ragged.from_lists(lists[s], ts_lists[s] if has_ts else None) for s in lists}
    ids = [""] * (len(item_index) + 1)
    for item, i in item_index.items():
        ids[i] = item
    return LeaveOneOut(
        n_items=len(item_index), users=users, train=ragged["train"], valid=ragged["valid"],
        valid_target=np.array(targets["valid"], dtype=np.int64), test=ragged["test"],
        test_target=np.array(targets["test"], dtype=np.int64),
        valid_target_ts=np.array(target_ts["valid"], dtype=np.int64) if has_ts else None,
        test_target_ts=np.array(target_ts["test"], dtype=np.int64) if has_ts else None, item_ids=ids,
    )  # fmt: skip


def _from_feature_rows(df: Any, item_index: Mapping[str, int]) -> LeaveOneOut:
    """``gold.training_features`` leave_one_out rows -> a ``LeaveOneOut`` whose ``features`` hold each
    split's feature row per user. Its sequences (for SASRec and per-position training, which read
    sequences) are the known short-term items; the generator reads ``features``."""
    from models.pathways import FEATURES, as_list

    by_user: dict[str, dict[str, Any]] = {}
    for row in df.to_dict("records"):
        by_user.setdefault(str(row["user_id"]), {})[row["split"]] = row
    splits = ("train", "valid", "test")
    users = [u for u, rows in by_user.items()
             if set(rows) == set(splits) and all(str(r["target_item_id"]) in item_index for r in rows.values())]  # fmt: skip
    features: dict[str, dict[str, list]] = {s: {f: [] for f in (*FEATURES, "target_ts")} for s in splits}
    lists: dict[str, list] = {s: [] for s in splits}
    for user in users:
        for s in splits:
            r = by_user[user][s]
            for f in (*FEATURES, "target_ts"):
                features[s][f].append(r.get(f))
            known = [item_index[str(i)] for i in as_list(r.get("short_item_ids")) if str(i) in item_index]
            lists[s].append(known + ([item_index[str(r["target_item_id"])]] if s == "train" else []))
    ids = [""] * (len(item_index) + 1)
    for item, i in item_index.items():
        ids[i] = item

    def target(s: str, key: str) -> np.ndarray:
        col = "target_item_id" if key == "item" else "target_ts"
        values = [by_user[u][s][col] for u in users]
        return np.array([item_index[str(v)] for v in values] if key == "item" else values, dtype=np.int64)

    return LeaveOneOut(
        n_items=len(item_index), users=users, train=Ragged.from_lists(lists["train"]),
        valid=Ragged.from_lists(lists["valid"]), valid_target=target("valid", "item"),
        test=Ragged.from_lists(lists["test"]), test_target=target("test", "item"),
        valid_target_ts=target("valid", "ts"), test_target_ts=target("test", "ts"), item_ids=ids, features=features,
    )  # fmt: skip


def feature_pathways(data: LeaveOneOut, split: str, cfg: OneRecConfig) -> dict[str, np.ndarray]:
    """The pathway arrays of ``split``'s feature rows (one per user) at their targets' times."""
    from models.pathways import pathway_arrays

    rows = data.features[split]
    index = {item: i for i, item in enumerate(data.item_ids or []) if i}
    return pathway_arrays(rows, data.users, rows["target_ts"], cfg, index)


# --- SASRec -----------------------------------------------------------------------------------


def sasrec_windows(train: Ragged, max_len: int) -> np.ndarray:
    """``(N, max_len + 1)`` windows ending at ``n, n - max_len, ...``: every next-item target once."""
    return window_rows(train, max_len)[1]


def window_rows(train: Ragged, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows (N,), windows (N, max_len + 1))``: ``sasrec_windows`` with each window's sequence row."""
    rows, ends = [], []
    for r, n in enumerate(train.lengths):
        for end in range(int(n), 1, -max_len):
            rows.append(r)
            ends.append(end)
    rows_, ends_ = np.array(rows, dtype=np.int64), np.array(ends, dtype=np.int64)
    return rows_, train.tail(rows_, ends_, max_len + 1)


def sasrec_batch(windows: np.ndarray, idx: Sequence[int]) -> dict[str, torch.Tensor]:
    w = torch.from_numpy(windows[np.asarray(idx)])
    inputs = w[:, :-1]
    # A sequence's first item has no input before it: it is never a target (as in SASRec).
    return {"input": inputs, "target": w[:, 1:] * (inputs > 0)}


def sasrec_inputs(contexts: Ragged, max_len: int) -> np.ndarray:
    """The last ``max_len`` items of every context row, left-padded: SASRec's evaluation input."""
    return contexts.tail(np.arange(len(contexts)), contexts.lengths, max_len)


# --- OneRec -----------------------------------------------------------------------------------


@dataclass
class Examples:
    """Generator samples: context = ``seqs[row][:end]``, target items ``targets[i]`` ``(N, S)``."""

    seqs: Ragged
    rows: np.ndarray
    ends: np.ndarray
    targets: np.ndarray
    users: np.ndarray  # static-pathway user bucket
    target_ts: np.ndarray | None = None
    # Context arrays per sequence row from feature rows (models/pathways.py); None: from ``seqs``.
    pathways: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.rows)


def user_buckets(users: Sequence[str], n_buckets: int) -> np.ndarray:
    """crc32 of the user id mod ``n_buckets`` (stable across runs, unlike ``hash``); 0 if no buckets."""
    if n_buckets < 1:
        return np.zeros(len(users), dtype=np.int64)
    return np.array([zlib.crc32(u.encode()) % n_buckets for u in users], dtype=np.int64)


def training_examples(data: LeaveOneOut, cfg: OneRecConfig) -> Examples:
    """Every ``(row, t)`` with ``1 <= t <= n - session_len`` of every training sequence; from feature
    rows, one sample per user: its train row's features and target (what the server saw then)."""
    if data.features is not None:
        rows = np.arange(len(data.users))
        target = data.train.values[data.train.offsets[1:] - 1][:, None]
        ts = np.asarray(data.features["train"]["target_ts"], dtype=np.int64)
        return Examples(data.train, rows, data.train.lengths - 1, target, user_buckets(data.users, cfg.n_user_buckets),
                        ts, feature_pathways(data, "train", cfg))  # fmt: skip
    lengths, s = data.train.lengths, cfg.session_len
    rows = np.repeat(np.arange(len(lengths)), np.maximum(lengths - s, 0))
    ends = np.concatenate([np.arange(1, n - s + 1) for n in lengths]).astype(np.int64) if len(rows) else rows
    pos = data.train.offsets[rows][:, None] + ends[:, None] + np.arange(s)
    ts = None if data.train.ts is None else data.train.ts[pos[:, 0]]
    buckets = user_buckets(data.users, cfg.n_user_buckets)
    return Examples(data.train, rows, ends, data.train.values[pos], buckets[rows], ts)


def eval_examples(data: LeaveOneOut, split: str, cfg: OneRecConfig) -> Examples:
    """One sample per user: the ``split`` ("valid" | "test") context and its single target item."""
    seqs: Ragged = getattr(data, split)
    rows = np.arange(len(seqs))
    target = getattr(data, f"{split}_target")[:, None]
    pathways = feature_pathways(data, split, cfg) if data.features is not None else None
    return Examples(seqs, rows, seqs.lengths, target, user_buckets(data.users, cfg.n_user_buckets),
                    getattr(data, f"{split}_target_ts"), pathways)  # fmt: skip


def onerec_batch(
    ex: Examples, idx: Sequence[int], cfg: OneRecConfig, item_codes: np.ndarray
) -> dict[str, torch.Tensor]:
    """Context pathways and targets of samples ``idx``: from the feature rows when the examples
    carry them (the daily pipeline, ``models/pathways.py``), else from the sequences (benchmarks:
    the lifelong pathway then gets the last ``lifelong_len`` items, a stand-in)."""
    idx = np.asarray(idx)
    rows, ends, targets = ex.rows[idx], ex.ends[idx], ex.targets[idx]
    if ex.pathways is not None:
        out = {k: torch.from_numpy(np.ascontiguousarray(v[rows])) for k, v in ex.pathways.items()}
        out["target_items"] = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64))
        if targets.shape[1] == cfg.session_len:
            out["target_codes"] = torch.from_numpy(np.ascontiguousarray(item_codes[targets].reshape(len(idx), -1),
                                                                        dtype=np.int64))  # fmt: skip
        return out
    short = ex.seqs.tail(rows, ends, cfg.short_len)
    batch = {
        "user": ex.users[idx],
        "short_items": short,
        "pos_items": ex.seqs.tail(rows, ends, cfg.pos_len),
        "life_items": ex.seqs.tail(rows, ends, cfg.lifelong_len),
        "target_items": targets,
    }
    if targets.shape[1] == cfg.session_len:
        batch["target_codes"] = item_codes[targets].reshape(len(idx), -1)
    # Per-position models never see the gap (it is relative to one request time, not to each
    # position's): leave it masked at inference too, as in training.
    if ex.seqs.ts is not None and ex.target_ts is not None and not cfg.per_position:
        age = ex.target_ts[idx][:, None] - ex.seqs.tail(rows, ends, cfg.short_len, ts=True)
        batch["short_gap"] = np.where(short > 0, gap_bucket(age, cfg.n_gap_buckets), 0)
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in batch.items()}


@dataclass
class PositionExamples:
    """Per-position samples (``cfg.per_position``): windows of ``short_len + 1`` training items."""

    rows: np.ndarray  # (N,) sequence row of each window
    windows: np.ndarray  # (N, short_len + 1), left-padded
    users: np.ndarray  # (N,) static-pathway user bucket

    def __len__(self) -> int:
        return len(self.rows)


def position_examples(data: LeaveOneOut, cfg: OneRecConfig) -> PositionExamples:
    """Every training sequence cut into windows (``window_rows``): each next item a target once."""
    rows, windows = window_rows(data.train, cfg.short_len)
    return PositionExamples(rows, windows, user_buckets(data.users, cfg.n_user_buckets)[rows])


def position_batch(ex: PositionExamples, idx: Sequence[int], item_codes: np.ndarray) -> dict[str, torch.Tensor]:
    """Windows ``idx``: ``short_items (B, T)``, ``target_items (B, T)`` (0 = no target: padding, or a
    sequence's first item), ``target_codes (B, T, L)``; position ``t``'s target follows item ``t``."""
    idx = np.asarray(idx)
    w = ex.windows[idx]
    inputs = w[:, :-1]
    targets = w[:, 1:] * (inputs > 0)
    batch = {"user": ex.users[idx], "short_items": inputs, "target_items": targets,
             "target_codes": item_codes[targets] * (targets > 0)[..., None]}  # fmt: skip
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in batch.items()}


def synthetic_batch(
    cfg: OneRecConfig, item_codes: np.ndarray, batch_size: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random batch of the right shapes and dtypes (tests, FLOP probes), with every optional signal."""
    g = torch.Generator().manual_seed(seed)
    n = cfg.n_items + 1

    def items(length: int) -> torch.Tensor:
        return torch.randint(0, n, (batch_size, length), generator=g)

    targets = torch.randint(1, n, (batch_size, cfg.session_len), generator=g)
    return {
        "user": torch.randint(0, max(cfg.n_user_buckets, 1), (batch_size,), generator=g),
        "short_items": items(cfg.short_len),
        "short_gap": torch.randint(0, cfg.n_gap_buckets, (batch_size, cfg.short_len), generator=g),
        "short_signals": torch.rand(batch_size, cfg.short_len, cfg.signal_dim, generator=g),
        "pos_items": items(cfg.pos_len),
        "life_items": items(cfg.lifelong_len),
        "target_items": targets,
        "target_codes": torch.as_tensor(item_codes, dtype=torch.long)[targets].reshape(batch_size, -1),
    }

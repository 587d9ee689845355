"""Daily continued training of the generator on one day's ``gold.training_examples`` partition.

The pieces come from the model package (``models.train.train`` is the loop, ``OneRecTask`` the
batches and evaluation); this module adds what a *daily* run needs on top of a one-off run:

* a stable item space: item index ``i`` is the ``i``-th item of ``gold.item_sids`` for the
  current codebook version ordered by (assignment day, item id), so items encoded later are
  appended and yesterday's embedding rows still mean the same items (``ItemSpace``);
* initialisation from the champion's weights, growing the item / dedup-code tables when new items
  arrived (``load_grown``), with a fresh optimizer and warmup: continued training, not a resume;
* a CLI, so a cluster launches the same code with ``torchrun ... -m models.continual``.

    python -m models.continual --examples var/lake/gold/training_examples --ds 2026-10-05 \
        --items var/models/runs/2026-10-05/items --out var/models/runs/2026-10-05/sft --preset tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from models import checkpoint, data
from models import train as trainer
from models.config import OneRecConfig, TrainConfig, preset
from models.delta_read import read_delta  # re-exported: jobs and serving read tables through it
from models.onerec import SemanticIdGenerator, build

ITEMS_FILE, CODES_FILE = "items.json", "codes.npy"


@dataclasses.dataclass
class ItemSpace:
    """Item index <-> external id, and the ``(n + 1, L + 1)`` semantic IDs (row 0 = padding)."""

    item_ids: list[str]  # index -> id; index 0 is ""
    codes: np.ndarray
    codes_per_level: int
    codebook_version: str

    @classmethod
    def from_sids(cls, sids: pd.DataFrame, codebook_version: str, codes_per_level: int) -> ItemSpace:
        """From ``gold.item_sids`` rows of one version (columns item_id, codes, ds)."""
        rows = sids[sids["codebook_version"] == codebook_version].sort_values(["ds", "item_id"], kind="stable")
        if rows.empty:
            raise ValueError(f"gold.item_sids has no rows for codebook version {codebook_version!r}")
        codes = np.stack([np.asarray(c, dtype=np.int64) for c in rows["codes"]])
        codes = np.vstack([np.zeros((1, codes.shape[1]), dtype=np.int64), codes])
        return cls(["", *rows["item_id"].astype(str)], codes, int(codes_per_level), codebook_version)

    @property
    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids) if i}

    @property
    def dedup_codes(self) -> int:
        return int(self.codes[:, -1].max()) + 1

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / CODES_FILE, self.codes, allow_pickle=False)
        meta = {"item_ids": self.item_ids, "codes_per_level": self.codes_per_level,
                "codebook_version": self.codebook_version}  # fmt: skip
        (directory / ITEMS_FILE).write_text(json.dumps(meta) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ItemSpace:
        directory = Path(directory)
        meta = json.loads((directory / ITEMS_FILE).read_text())
        codes = np.load(directory / CODES_FILE, allow_pickle=False).astype(np.int64)
        return cls(meta["item_ids"], codes, meta["codes_per_level"], meta["codebook_version"])


def model_config(preset_name: str, space: ItemSpace, architecture: str | None = None,
                 pathways: dict[str, Any] | None = None) -> OneRecConfig:  # fmt: skip
    """The preset's generator shaped to the item space (n items, levels, K, dedup level) and, from
    ``pathways`` (:func:`pathway_fields`), to the data's static attributes and signals."""
    base = preset(preset_name).onerec
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in (pathways or {}).items()}
    return dataclasses.replace(
        base, n_items=len(space.item_ids) - 1, levels=space.codes.shape[1] - 1, codes_per_level=space.codes_per_level,
        dedup_codes=space.dedup_codes, architecture=architecture or base.architecture, **fields,
    )  # fmt: skip


PATHWAY_FIELDS = ("user_attr_names", "user_count_features", "user_attr_sizes", "signals", "masked_pathways")


def pathway_fields(examples: pd.DataFrame, attributes: tuple[str, ...], counts: bool, masked: tuple[str, ...],
                   attr_buckets: int = 64, count_buckets: int = 16) -> dict[str, Any]:  # fmt: skip
    """The generator's static-pathway shape and observed signals for feature rows (``gold.training_features``):
    the configured attributes and counts, and the short-term signals the rows ever carry (others masked)."""
    from models.pathways import COUNT_FEATURES, observed_signals

    names = tuple(COUNT_FEATURES) if counts else ()
    train = examples[examples["split"] == "train"] if "split" in examples.columns else examples
    rows = {c: train[c].tolist() for c in ("short_flags", "short_rating", "short_play_seconds",
                                           "short_duration_seconds")}  # fmt: skip
    return {"user_attr_names": tuple(attributes), "user_count_features": names,
            "user_attr_sizes": (attr_buckets + 1,) * len(attributes) + (count_buckets + 1,) * len(names),
            "attr_buckets": attr_buckets, "count_buckets": count_buckets,
            "signals": observed_signals(rows), "masked_pathways": tuple(masked)}  # fmt: skip


def load_grown(model: torch.nn.Module, state: dict[str, torch.Tensor], keep: tuple[str, ...] = ()) -> list[str]:
    """Load ``state`` into ``model``; a tensor with fewer leading rows (old vocabulary) fills the first
    rows. Returns the names that grew. Raises on any other shape difference (a different model)."""
    own, grown = model.state_dict(), []
    with torch.no_grad():
        for name, value in state.items():
            if name not in own or name.endswith(keep):
                continue
            target = own[name]
            if target.shape == value.shape:
                target.copy_(value)
            elif target.dim() == value.dim() and target.shape[1:] == value.shape[1:] and len(value) < len(target):
                target[: len(value)].copy_(value)
                grown.append(name)
            else:
                raise ValueError(f"{name}: checkpoint {tuple(value.shape)} vs model {tuple(target.shape)}")
    missing = set(own) - set(state)
    if missing - {n for n in own if n.endswith(("load_count", "offset", "code_offset"))}:
        raise ValueError(f"checkpoint lacks {sorted(missing)[:5]}")
    return grown


def run(examples: pd.DataFrame, space: ItemSpace, out_dir: str | Path, *, preset_name: str, steps: int,
        init_dir: str | Path | None = None, architecture: str | None = None, overrides: dict[str, Any] | None = None,
        versions: dict[str, Any] | None = None, eval_users: int | None = None, rank: int = 0,
        world: int = 1, pathways: dict[str, Any] | None = None, score_test: bool = True) -> dict:  # fmt: skip
    """Train ``steps`` steps on the leave_one_out ``examples`` (from ``init_dir`` if given) into ``out_dir``.

    ``examples`` are ``gold.training_features`` rows (the four pathways; ``pathways`` then shapes the
    static pathway and the signals, :func:`pathway_fields`) or ``gold.training_examples`` rows
    (sequences). Returns train.train's result plus ``init`` (what was loaded, which tables grew).
    ``score_test=False`` never scores the test split (its ``test`` is empty): a choice made on these
    figures then rests on validation alone (bench.pathways).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:  # one writer under torchrun
        space.save(out / "items")
    loo = data.from_training_examples(examples, space.index)
    if len(loo.users) == 0:
        raise ValueError("no leave_one_out users whose targets have semantic IDs")
    p = preset(preset_name)
    cfg = model_config(preset_name, space, architecture, pathways)
    tc: TrainConfig = dataclasses.replace(
        p.train, steps=steps, epochs=0, out_dir=str(out), resume=False, eval_every=steps, ckpt_every=steps,
        warmup_steps=max(1, min(p.train.warmup_steps, steps // 10)), **(overrides or {}),
    )  # fmt: skip
    torch.manual_seed(tc.seed)
    model = build(cfg, space.codes)
    init: dict[str, Any] = {"from": None}
    if init_dir is not None:
        # The item_codes buffer is today's (a superset of yesterday's rows): never overwrite it.
        grown = load_grown(model, load_file(str(Path(init_dir) / checkpoint.MODEL_FILE)), keep=("item_codes",))
        init = {"from": str(init_dir), "grown": grown}
    model.to(tc.device)
    task = trainer.OneRecTask(loo, cfg, tc, space.codes)
    # Fewer examples than one batch (a tiny day): shrink the batch rather than fail.
    if task.n_examples < tc.batch_size * world:
        tc = dataclasses.replace(tc, batch_size=max(1, task.n_examples // world))
        task.tc = tc
    result = trainer.train(model, task, tc, cfg, versions or {}, rank, world, eval_limit=eval_users,
                           score_test=score_test)  # fmt: skip
    return {**result, "init": init, "n_users": len(loo.users), "n_examples": task.n_examples}


def load_generator(directory: str | Path) -> SemanticIdGenerator:
    """A generator rebuilt from a checkpoint dir (config.json + model.safetensors), in eval mode."""
    cfg = checkpoint.model_config(directory)
    model = build(cfg)
    checkpoint.load(directory, model)
    return model.eval()


def read_examples(table: str | Path, ds: str, storage_options: dict | None = None) -> pd.DataFrame:
    """The leave_one_out rows of one day of ``gold.training_examples`` or ``gold.training_features``."""
    day = str(ds)[:10]
    # Ordered by the table's key: the same day always trains on the same row order (re-runs change nothing).
    where = f"protocol = 'leave_one_out' AND ds = DATE '{day}'"
    return read_delta(table, where, storage_options, order_by="user_id, split")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", required=True, help="gold.training_examples table dir")
    p.add_argument("--ds", required=True)
    p.add_argument("--items", required=True, help="dir with items.json + codes.npy (ItemSpace.save)")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--architecture")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--init", help="checkpoint dir to continue from (the champion)")
    p.add_argument("--overrides", default="{}", help="JSON of TrainConfig fields (device, dtype, batch_size...)")
    p.add_argument("--eval-users", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--pathways", default="{}", help="JSON of OneRecConfig pathway fields (continual.pathway_fields)")
    p.add_argument("--versions", default="{}", help="JSON of versions for the manifest (feature_service, ...)")
    p.add_argument("--no-test", dest="score_test", action="store_false", help="never score the test split")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    overrides = json.loads(args.overrides)
    if world > 1:
        dist.init_process_group("nccl" if str(overrides.get("device", "cpu")).startswith("cuda") else "gloo")
        if str(overrides.get("device", "cpu")).startswith("cuda"):
            local = int(os.environ.get("LOCAL_RANK", "0"))
            overrides["device"] = f"cuda:{local}"
            torch.cuda.set_device(local)
    result = run(read_examples(args.examples, args.ds), ItemSpace.load(args.items), args.out, preset_name=args.preset,
                 steps=args.steps, init_dir=args.init, architecture=args.architecture, overrides=overrides,
                 versions={"data": f"{Path(args.examples).name} ds={args.ds}", **json.loads(args.versions)},
                 eval_users=args.eval_users, rank=rank, world=world, pathways=json.loads(args.pathways),
                 score_test=args.score_test)  # fmt: skip
    if rank == 0:
        (Path(args.out) / "continual.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if world > 1:
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()

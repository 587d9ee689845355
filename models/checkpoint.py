"""Checkpoints without pickle: safetensors for every tensor, JSON for everything else.

Layout of a checkpoint directory (nanoGPT's checkpoint contents, split by kind)::

    model.safetensors       the model's state_dict (parameters and persistent buffers)
    optimizer.safetensors   optimizer state flattened to "optim.<param>.<key>" tensors, and the
                            RNG states ("rng.torch", "rng.cuda.<i>", "rng.numpy", "rng.python")
    config.json             format, model class + config, train config, step, metrics, best
                            metric, data/codebook versions, optimizer param_groups and scalar
                            state, the non-tensor parts of the RNG states, sha256 of both files

A directory is written under a temporary name and swapped into place, so a run killed while
saving leaves the previous checkpoint intact. ``torch.load`` is never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models.config import OneRecConfig, SASRecConfig, TrainConfig

FORMAT = "onerec.checkpoint/1"
MODEL_FILE, OPTIM_FILE, CONFIG_FILE = "model.safetensors", "optimizer.safetensors", "config.json"
CONFIG_CLASSES = {c.__name__: c for c in (OneRecConfig, SASRecConfig, TrainConfig)}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return {"class": type(cfg).__name__, "fields": dataclasses.asdict(cfg)}


def config_from_dict(d: dict[str, Any]) -> Any:
    """Inverse of ``config_to_dict``; JSON lists go back to tuples where the field default is one."""
    cls = CONFIG_CLASSES[d["class"]]
    fields = dict(d["fields"])
    for f in dataclasses.fields(cls):
        if f.name in fields and isinstance(fields[f.name], list) and isinstance(f.default, tuple):
            fields[f.name] = tuple(fields[f.name])
    return cls(**fields)


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every RNG a training step draws from: tensors for the safetensors file, the rest as JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    tensors["rng.python"] = torch.tensor(internal, dtype=torch.int64)
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": [version, gauss]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, gauss = meta["python"]
    random.setstate((version, tuple(int(x) for x in tensors["rng.python"].tolist()), gauss))


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> tensors ``optim.<param>.<key>`` + JSON-able rest."""
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save(directory: str | Path, model: nn.Module, *, model_config: Any, optimizer: torch.optim.Optimizer | None = None,
         train_config: TrainConfig | None = None, step: int = 0, metrics: dict[str, Any] | None = None,
         best_metric: float | None = None, versions: dict[str, Any] | None = None, rng: bool = True) -> Path:  # fmt: skip
    """Write a checkpoint directory (replacing any previous one atomically). Returns its path."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / MODEL_FILE), metadata={"format": FORMAT})
    tensors: dict[str, torch.Tensor] = {}
    manifest: dict[str, Any] = {
        "format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "model_class": type(model).__name__,
        "model_config": config_to_dict(model_config), "step": step, "metrics": metrics or {},
        "best_metric": best_metric, "versions": versions or {},
        "train_config": config_to_dict(train_config) if train_config is not None else None,
    }  # fmt: skip
    if optimizer is not None:
        opt_tensors, manifest["optimizer"] = flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    if rng:
        rng_tensors, manifest["rng"] = rng_state()
        tensors.update(rng_tensors)
    save_file(tensors, str(tmp / OPTIM_FILE), metadata={"format": FORMAT})
    manifest["sha256"] = {name: _sha256(tmp / name) for name in (MODEL_FILE, OPTIM_FILE)}
    (tmp / CONFIG_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def load(directory: str | Path, model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
         restore_rng: bool = False) -> dict[str, Any]:  # fmt: skip
    """Load what is asked for into ``model`` / ``optimizer`` (and the RNGs); returns ``config.json``."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name, digest in manifest["sha256"].items():
        if _sha256(directory / name) != digest:
            raise ValueError(f"{directory / name}: sha256 differs from {directory / CONFIG_FILE}")
    if model is not None:
        model.load_state_dict(load_file(str(directory / MODEL_FILE)))
    if optimizer is not None or restore_rng:
        tensors = load_file(str(directory / OPTIM_FILE))
        if optimizer is not None:
            optimizer.load_state_dict(unflatten_optimizer(tensors, manifest["optimizer"]))
        if restore_rng:
            set_rng_state(tensors, manifest["rng"])
    return manifest


def model_config(directory: str | Path) -> Any:
    """The model config a checkpoint was trained with (rebuild the model from it, then ``load``)."""
    return config_from_dict(read_manifest(directory)["model_config"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

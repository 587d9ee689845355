"""Versioned RQ-KMeans codebooks on disk: ``centroids.safetensors`` + ``codebook.json``. Never pickle.

Layout of a codebook directory::

    centroids.safetensors   tensors ``level_0`` .. ``level_{L-1}``, float32 ``(K_l, dim)``
    codebook.json           format, version, created_at, levels, k_per_level, dim, tensor names,
                            config, info, metrics, input fingerprint, sha256 of the tensor file

``load`` trusts neither file alone: shapes, dtypes and tensor names must agree with the JSON and
the tensor file must hash to the recorded sha256, otherwise ``CodebookFormatError`` names the file.
Both files are written under temporary names and renamed into place, the JSON last, so a reader
never sees a JSON that describes a half-written tensor file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from models.rq_kmeans import Codebook, RQKMeansConfig

FORMAT = "onerec.rq_kmeans.codebook/1"
TENSORS_FILE = "centroids.safetensors"
MANIFEST_FILE = "codebook.json"


class CodebookFormatError(ValueError):
    """A codebook directory whose files are missing, malformed or disagree with each other."""


def tensor_name(level: int) -> str:
    return f"level_{level}"


def input_fingerprint(x: np.ndarray, item_ids: Sequence[str]) -> str:
    """sha256 over the embedding matrix and the item ids, in row order.

    Hashes the shape, the float32 little-endian C-order bytes of ``x``, then each id as UTF-8
    followed by a NUL (ids cannot contain NUL in practice, so the concatenation is unambiguous).
    Same rows in the same order -> same fingerprint on any machine.
    """
    x = np.ascontiguousarray(x, dtype="<f4")
    if x.ndim != 2 or len(item_ids) != len(x):
        raise ValueError(f"fingerprint needs (n, d) vectors and n ids, got {x.shape} and {len(item_ids)} ids")
    h = hashlib.sha256()
    h.update(f"{x.shape[0]}x{x.shape[1]}\0".encode())
    h.update(x.tobytes())
    for item in item_ids:
        h.update(str(item).encode())
        h.update(b"\0")
    return h.hexdigest()


def save(
    codebook: Codebook,
    directory: str | Path,
    *,
    version: str,
    fingerprint: str | None = None,
    metrics: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> Path:
    """Write ``codebook`` into ``directory`` (created if absent; existing files replaced). Returns it."""
    if not version:
        raise ValueError("a codebook needs a version string")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {tensor_name(i): np.ascontiguousarray(c, dtype=np.float32) for i, c in enumerate(codebook.centroids)}
    tmp_tensors = directory / f".{TENSORS_FILE}.tmp"
    save_file(tensors, str(tmp_tensors), metadata={"format": FORMAT, "version": version})
    manifest = {
        "format": FORMAT,
        "version": version,
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "levels": codebook.levels,
        "k_per_level": codebook.k_per_level,
        "dim": codebook.dim,
        "dtype": "float32",
        "tensors": {"file": TENSORS_FILE, "names": list(tensors), "sha256": _sha256_file(tmp_tensors)},
        "config": dataclasses.asdict(codebook.config),
        "info": dict(codebook.info),
        "metrics": metrics or {},
        "input_fingerprint": fingerprint,
    }
    tmp_manifest = directory / f".{MANIFEST_FILE}.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_tensors, directory / TENSORS_FILE)
    os.replace(tmp_manifest, directory / MANIFEST_FILE)
    return directory


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The parsed ``codebook.json``, with its required fields checked."""
    path = Path(directory) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CodebookFormatError(f"{path}: not found") from None
    except json.JSONDecodeError as e:
        raise CodebookFormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CodebookFormatError(f"{path}: format is {_get(manifest, 'format')!r}, expected {FORMAT!r}")
    for key, kind in (("version", str), ("levels", int), ("k_per_level", list), ("dim", int), ("tensors", dict)):
        if not isinstance(manifest.get(key), kind):
            raise CodebookFormatError(f"{path}: field {key!r} missing or not {kind.__name__}")
    if len(manifest["k_per_level"]) != manifest["levels"]:
        raise CodebookFormatError(
            f"{path}: k_per_level has {len(manifest['k_per_level'])} entries for {manifest['levels']} levels"
        )
    return manifest


def load(directory: str | Path) -> tuple[Codebook, dict[str, Any]]:
    """Read a codebook written by ``save``: ``(codebook, manifest)``. Validates everything it reads."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    json_path = directory / MANIFEST_FILE
    tensor_path = directory / TENSORS_FILE  # fixed name: a JSON cannot point the loader elsewhere
    if manifest["tensors"].get("file", TENSORS_FILE) != TENSORS_FILE:
        raise CodebookFormatError(f"{json_path}: tensors.file must be {TENSORS_FILE!r}")
    if not tensor_path.is_file():
        raise CodebookFormatError(f"{tensor_path}: not found (named by {json_path})")
    recorded = manifest["tensors"].get("sha256")
    if recorded is not None and recorded != _sha256_file(tensor_path):
        raise CodebookFormatError(f"{tensor_path}: sha256 differs from the one recorded in {json_path}")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError) as e:
        raise CodebookFormatError(f"{tensor_path}: unreadable ({e})") from None
    expected = [tensor_name(i) for i in range(manifest["levels"])]
    if sorted(tensors) != sorted(expected):
        raise CodebookFormatError(f"{tensor_path}: tensors {sorted(tensors)}, {json_path} expects {expected}")
    centroids = []
    for level, name in enumerate(expected):
        t = tensors[name]
        want = (manifest["k_per_level"][level], manifest["dim"])
        if t.dtype != np.float32 or t.shape != want:
            raise CodebookFormatError(f"{tensor_path}: {name} is {t.dtype} {t.shape}, {json_path} says float32 {want}")
        centroids.append(np.ascontiguousarray(t))
    try:
        config = RQKMeansConfig(**manifest.get("config", {}))
    except (TypeError, ValueError) as e:
        raise CodebookFormatError(f"{json_path}: bad config ({e})") from None
    if config.levels != manifest["levels"]:
        raise CodebookFormatError(f"{json_path}: config.levels {config.levels} != levels {manifest['levels']}")
    return Codebook(tuple(centroids), config, manifest.get("info", {})), manifest


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None

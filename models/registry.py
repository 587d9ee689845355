"""Model registry: immutable versions, named aliases (``champion``, ``candidate``), a history with reasons.

Layout under ``root``::

    versions/<version>/        a copy of the registered checkpoint dir + version.json (metrics, versions)
    aliases/<alias>.json       {"version", "previous": [older versions, newest first], "reason", "at"}
    history.jsonl              one line per register / alias switch / rollback

Every write that readers can see is atomic: a version directory is built under a temporary name
and renamed into place; an alias file is written to a temp file, fsynced, then ``os.replace``d
over the old one (and the directory fsynced), so a process killed at any point leaves either the
old alias or the new one, never a torn file. ``rollback`` pops the alias's ``previous`` stack.

``ONEREC_REGISTRY_CRASH_AT=<point>`` makes the process SIGKILL itself at a marked point
(``alias_temp_written``: the new alias is on disk but not yet switched in; ``version_copied``:
a version's files are copied but not yet renamed into place); tests use it to kill promotion midway.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VERSION_FILE = "version.json"
CRASH_ENV = "ONEREC_REGISTRY_CRASH_AT"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where its files are and what was measured."""

    version: str
    path: Path
    metrics: dict[str, Any]
    versions: dict[str, Any]


def _crash_point(name: str) -> None:
    """Test hook: die here, uncleanly (no finally blocks, no atexit), when asked to."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    """temp file in the same directory -> fsync -> os.replace -> fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _crash_point("alias_temp_written")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def _digest(directory: Path) -> str:
    """sha256 over a directory's file names and contents, version.json excluded and JSON timestamps
    (``created_at``) ignored: re-saving the same weights gives the same digest."""
    h = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.name != VERSION_FILE:
            h.update(str(p.relative_to(directory)).encode() + b"\0")
            h.update(_stable_json(p.read_bytes()) if p.suffix == ".json" else p.read_bytes())
    return h.hexdigest()


def _stable_json(raw: bytes) -> bytes:
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(doc, dict):
        doc = {k: v for k, v in doc.items() if k not in ("created_at", "registered_at")}
    return json.dumps(doc, sort_keys=True).encode()


class ModelRegistry:
    """Versions, aliases and history of one model family under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        for sub in ("versions", "aliases"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ---- versions ---------------------------------------------------------------------------
    def register(self, checkpoint_dir: str | Path, metrics: dict, versions: dict) -> str:
        """Copy ``checkpoint_dir`` in as a new immutable version; returns its name (``v0001``, ...).

        Registering identical files again returns the existing version (a re-run adds nothing).
        """
        source = Path(checkpoint_dir)
        if not source.is_dir():
            raise FileNotFoundError(f"checkpoint dir {source} does not exist")
        digest = _digest(source)
        for existing in self._version_names():
            if json.loads((self.root / "versions" / existing / VERSION_FILE).read_text()).get("digest") == digest:
                return existing
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root / "versions"))
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            meta = {"digest": digest, "metrics": metrics, "versions": versions, "source": str(source),
                    "registered_at": datetime.now(UTC).isoformat()}  # fmt: skip
            (staging / VERSION_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
            _crash_point("version_copied")
            while True:  # another process may take the same number: rename fails, try the next one
                names = self._version_names()
                name = f"v{(int(names[-1][1:]) + 1) if names else 1:04d}"
                try:
                    os.rename(staging, self.root / "versions" / name)
                    break
                except OSError:
                    if not (self.root / "versions" / name).exists():
                        raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _fsync_dir(self.root / "versions")
        self._log({"event": "register", "version": name, "source": str(source)})
        return name

    def version(self, name: str) -> ModelVersion:
        path = self.root / "versions" / name
        if not (path / VERSION_FILE).is_file():
            raise KeyError(f"no version {name!r} in {self.root}")
        meta = json.loads((path / VERSION_FILE).read_text())
        return ModelVersion(name, path, meta.get("metrics", {}), meta.get("versions", {}))

    def _version_names(self) -> list[str]:
        return sorted(p.name for p in (self.root / "versions").glob("v[0-9]*") if (p / VERSION_FILE).is_file())

    # ---- aliases ----------------------------------------------------------------------------
    def _alias_state(self, alias: str) -> dict[str, Any] | None:
        path = self.root / "aliases" / f"{alias}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def get(self, alias: str = "champion") -> ModelVersion | None:
        """The version an alias points at, or None when the alias is unset."""
        state = self._alias_state(alias)
        return self.version(state["version"]) if state else None

    def set_alias(self, alias: str, version: str, reason: str) -> None:
        """Point ``alias`` at ``version`` atomically; the old target goes on the rollback stack."""
        self.version(version)  # must exist
        state = self._alias_state(alias)
        if state and state["version"] == version:
            return
        previous = ([state["version"], *state.get("previous", [])] if state else [])[:50]
        self._switch(alias, {"version": version, "previous": previous, "reason": reason,
                             "at": datetime.now(UTC).isoformat()})  # fmt: skip
        self._log({"event": "set_alias", "alias": alias, "version": version,
                   "from": state["version"] if state else None, "reason": reason})  # fmt: skip

    def rollback(self, alias: str = "champion") -> str:
        """Point ``alias`` back at its previous version; returns that version."""
        state = self._alias_state(alias)
        if not state or not state.get("previous"):
            raise LookupError(f"alias {alias!r} has no previous version to roll back to")
        target, rest = state["previous"][0], state["previous"][1:]
        reason = f"rollback from {state['version']}"
        self._switch(alias, {"version": target, "previous": rest, "reason": reason,
                             "at": datetime.now(UTC).isoformat()})  # fmt: skip
        self._log({"event": "rollback", "alias": alias, "version": target, "from": state["version"], "reason": reason})
        return target

    def _switch(self, alias: str, state: dict[str, Any]) -> None:
        _write_atomic(self.root / "aliases" / f"{alias}.json", json.dumps(state, indent=2, sort_keys=True) + "\n")

    # ---- history ----------------------------------------------------------------------------
    def _log(self, entry: dict[str, Any]) -> None:
        # Appended after the switch: a kill in between loses a history line, never the alias.
        line = json.dumps({"at": datetime.now(UTC).isoformat(), **entry}, sort_keys=True, default=str)
        with open(self.root / "history.jsonl", "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def history(self) -> list[dict]:
        """Every register / set_alias / rollback, oldest first."""
        path = self.root / "history.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def registry_for(settings: Any) -> ModelRegistry:
    """The generator registry the settings name (``model.registry_dir``, default ``{home}/models/registry``)."""
    return ModelRegistry(Path(settings.resolve(settings.model.registry_dir)))

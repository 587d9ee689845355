"""Model registry on MLflow's: immutable versions, aliases (``champion``, ``candidate``, ``current``), history.

A version is a checkpoint directory (safetensors + JSON, never pickle) logged as the artifacts
of an MLflow run (``checkpoint/``) and registered as a version of the registered model
(``settings.mlflow.generator_model`` or ``reward_model``). Its tags hold what the stages need:
``digest`` (sha256 of the files: registering the same files again returns the existing version,
so a re-run adds nothing), ``ds``, ``metrics`` and ``versions`` (JSON). Aliases are MLflow's:
serving loads ``models:/<name>@champion``.

MLflow keeps no history of an alias, so each switch is also written as a registered-model tag
``history.<n>`` (JSON: event, alias, version, from, reason, at), *before* the alias moves. The
alias switch itself is one database transaction: a process killed at any point leaves the alias
on the old version or on the new one. A history entry whose switch never happened (killed in
between) is recognised -- the next switch's recorded ``from``, or the alias itself, disagrees
with it -- and ignored; ``rollback`` replays the history into a stack and points the alias at
the version before.

``ONEREC_REGISTRY_CRASH_AT=<point>`` makes the process SIGKILL itself at a marked point
(``artifacts_logged``: the files are uploaded but no version exists; ``alias_recorded``: the
switch is in the history but the alias has not moved); tests use it to kill promotion midway.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from models.mlflow_client import client, experiment_id

CRASH_ENV = "ONEREC_REGISTRY_CRASH_AT"
ARTIFACT_DIR = "checkpoint"
HISTORY_PREFIX = "history."


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where its files are (a local folder) and what was measured."""

    version: str
    path: Path
    metrics: dict[str, Any]
    versions: dict[str, Any]
    run_id: str | None = None


def _crash_point(name: str) -> None:
    """Test hook: die here, uncleanly (no finally blocks, no atexit), when asked to."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def digest(directory: Path) -> str:
    """sha256 over a directory's file names and contents, JSON timestamps (``created_at``) ignored:
    re-saving the same weights gives the same digest."""
    h = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file():
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


def _check_alias(alias: str) -> None:
    """MLflow reads ``latest`` and ``v<n>`` as "the newest version" / "version n", never as an alias:
    asking for them would silently answer something else."""
    if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise ValueError(f"alias {alias!r} is reserved by MLflow (it names a version, not an alias)")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ModelRegistry:
    """Versions, aliases and history of one registered model (``name``) at ``tracking_uri``."""

    def __init__(self, name: str, tracking_uri: str, artifact_root: str | None = None,
                 experiment: str = "onerec_registry", cache_dir: str | Path | None = None) -> None:  # fmt: skip
        self.name, self.tracking_uri, self.artifact_root = name, tracking_uri, artifact_root
        self.experiment = experiment
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "onerec-mlflow-cache"
        self.client = client(tracking_uri)

    def uri(self, alias: str = "champion") -> str:
        """``models:/<name>@<alias>``: how MLflow (and its UI) names the aliased version."""
        return f"models:/{self.name}@{alias}"

    # ---- versions ---------------------------------------------------------------------------
    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            try:
                self.client.create_registered_model(self.name, description="onerec daily model (jobs.model_stages)")
            except MlflowException:  # created by another process in between
                self.client.get_registered_model(self.name)

    def register(self, checkpoint_dir: str | Path, metrics: dict, versions: dict, run_id: str | None = None) -> str:
        """Log ``checkpoint_dir`` as artifacts (of ``run_id``, or of a new run) and register it as a new
        version; returns its number. Identical files return the existing version (a re-run adds nothing)."""
        source = Path(checkpoint_dir)
        if not source.is_dir():
            raise FileNotFoundError(f"checkpoint dir {source} does not exist")
        self._ensure_model()
        dig = digest(source)
        for mv in self.client.search_model_versions(f"name = '{self.name}' and tag.digest = '{dig}'"):
            return str(mv.version)
        own_run = run_id is None
        if own_run:
            exp = experiment_id(self.client, self.experiment, self.artifact_root)
            run_id = self.client.create_run(
                exp, run_name=f"register {self.name}", tags={"onerec.kind": "register"}
            ).info.run_id
        self.client.log_artifacts(run_id, str(source), ARTIFACT_DIR)
        _crash_point("artifacts_logged")
        artifact_uri = self.client.get_run(run_id).info.artifact_uri
        tags = {"digest": dig, "ds": str(versions.get("ds", "")),
                "metrics": json.dumps(metrics, sort_keys=True, default=str),
                "versions": json.dumps(versions, sort_keys=True, default=str)}  # fmt: skip
        mv = self.client.create_model_version(self.name, f"{artifact_uri}/{ARTIFACT_DIR}", run_id=run_id, tags=tags)
        if own_run:
            self.client.set_terminated(run_id)
        self._log({"event": "register", "version": str(mv.version), "source": str(source)})
        return str(mv.version)

    def version(self, name: str | int) -> ModelVersion:
        """A version by number, its files on local disk."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(self.name, str(name))
        except MlflowException as err:
            raise KeyError(f"no version {name!r} of {self.name} in {self.tracking_uri}") from err
        tags = mv.tags or {}
        return ModelVersion(str(mv.version), self._local(mv), json.loads(tags.get("metrics", "{}")),
                            json.loads(tags.get("versions", "{}")), mv.run_id)  # fmt: skip

    def versions(self) -> list[str]:
        """Every version number, oldest first."""
        found = self.client.search_model_versions(f"name = '{self.name}'")
        return [str(v) for v in sorted(int(mv.version) for mv in found)]

    def _local(self, mv: Any) -> Path:
        """The version's folder: the artifact path itself on a local store, else a cached download
        (versions are immutable, so a complete download is reused)."""
        parsed = urlparse(mv.source)
        if parsed.scheme == "file":
            return Path(unquote(parsed.path))
        target = self.cache_dir / self.name / str(mv.version)
        if not target.is_dir():
            import mlflow.artifacts

            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{mv.version}.", dir=target.parent))
            try:
                got = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp),
                                                               tracking_uri=self.tracking_uri))  # fmt: skip
                os.replace(got, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    # ---- aliases ----------------------------------------------------------------------------
    def _alias_version(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        _check_alias(alias)

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def get(self, alias: str = "champion") -> ModelVersion | None:
        """The version an alias points at, or None when the alias (or the model) is unset."""
        current = self._alias_version(alias)
        return self.version(current) if current else None

    def set_alias(self, alias: str, version: str, reason: str) -> None:
        """Point ``alias`` at ``version`` (one transaction); the switch is recorded first."""
        _check_alias(alias)
        self.version(version)  # must exist
        current = self._alias_version(alias)
        if current == str(version):
            return
        self._log({"event": "set_alias", "alias": alias, "version": str(version), "from": current, "reason": reason})
        _crash_point("alias_recorded")
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def rollback(self, alias: str = "champion") -> str:
        """Point ``alias`` back at its previous version; returns that version."""
        stack = self._stack(alias)
        if len(stack) < 2:
            raise LookupError(f"alias {alias!r} of {self.name} has no previous version to roll back to")
        current, target = stack[-1], stack[-2]
        reason = f"rollback from {current}"
        self._log({"event": "rollback", "alias": alias, "version": target, "from": current, "reason": reason})
        self.client.set_registered_model_alias(self.name, alias, target)
        return target

    def _stack(self, alias: str) -> list[str]:
        """The alias's targets, oldest first, replayed from the (consistent) history."""
        stack: list[str] = []
        for event in self.history():
            if event.get("alias") != alias:
                continue
            if event["event"] == "set_alias":
                stack.append(event["version"])
            elif event["event"] == "rollback" and stack:
                stack.pop()
        return stack

    # ---- history ----------------------------------------------------------------------------
    def _raw_history(self) -> list[dict]:
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.name).tags or {}
        except MlflowException:
            return []
        keys = sorted((k for k in tags if k.startswith(HISTORY_PREFIX)), key=lambda k: int(k[len(HISTORY_PREFIX) :]))
        return [json.loads(tags[k]) for k in keys]

    def _log(self, entry: dict[str, Any]) -> None:
        self._ensure_model()
        n = len(self._raw_history()) + 1
        line = json.dumps({"at": _now(), **entry}, sort_keys=True, default=str)
        self.client.set_registered_model_tag(self.name, f"{HISTORY_PREFIX}{n:06d}", line)

    def history(self) -> list[dict]:
        """Every register / set_alias / rollback, oldest first. An alias switch that a killed process
        recorded but never made is left out: the next switch's ``from`` (the alias as it really was)
        differs from it, or, for the last one, the alias itself does."""
        kept: list[dict | None] = []
        last: dict[str, int] = {}  # alias -> index in ``kept`` of its latest switch
        for event in self._raw_history():
            alias = event.get("alias")
            if alias:
                j = last.get(alias)
                if j is not None and kept[j] is not None and kept[j]["version"] != event.get("from"):
                    kept[j] = None
                last[alias] = len(kept)
            kept.append(event)
        for alias, j in last.items():
            if kept[j] is not None and kept[j]["version"] != self._alias_version(alias):
                kept[j] = None
        return [e for e in kept if e is not None]


def registry_for(settings: Any, family: str = "generator") -> ModelRegistry:
    """The registered model the settings name: ``generator`` (``mlflow.generator_model``) or
    ``reward`` (``mlflow.reward_model``), at ``mlflow.tracking_uri``."""
    m = settings.mlflow
    name = {"generator": m.generator_model, "reward": m.reward_model}[family]
    root = settings.resolve(m.artifact_root) if m.artifact_root else None
    return ModelRegistry(name, settings.resolve(m.tracking_uri), root, m.experiment,
                         settings.resolve(m.cache_dir))  # fmt: skip

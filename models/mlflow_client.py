"""One MLflow client per tracking URI, quiet and offline: no telemetry, no INFO chatter, no network.

MLflow (>= 3.2) sends anonymous usage telemetry unless ``MLFLOW_DISABLE_TELEMETRY`` (or
``DO_NOT_TRACK``) is set, and logs database migrations at INFO; both are switched off here,
before ``mlflow`` is first imported, so every process that tracks a run or reads the registry
(Airflow tasks, the serving CLI, tests) behaves alike. A process that sets them itself wins
(``setdefault``).

Everything goes through ``MlflowClient`` with an explicit tracking URI, never the fluent API's
process-global "active run": an Airflow worker runs many tasks, and a global would leak
between them.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # mlflow.telemetry: no usage events leave the machine
    "DO_NOT_TRACK": "true",  # the cross-tool opt-out, read by mlflow's telemetry as well
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",  # a task's metrics are written before it returns
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # no INFO lines (database set-up, "created version ...")
}
QUIET_LOGGERS = ("mlflow", "alembic", "alembic.runtime.migration")


def quiet() -> None:
    """Environment and log levels for a silent, offline MLflow (idempotent)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@functools.lru_cache(maxsize=8)
def client(tracking_uri: str) -> MlflowClient:
    """The client for ``tracking_uri`` (its model registry at the same URI). A ``sqlite:///`` file's
    folder is created; MLflow creates the tables on first use (under a file lock, so two tasks
    starting at once do not both migrate)."""
    quiet()
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    quiet()  # mlflow configures its own loggers at import: lower them before the store is opened
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment_id(mlflow_client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """The experiment ``name``, created on first use. ``artifact_root`` (a local folder or a URI) is
    where its artifacts go; empty/None leaves it to the server (``--artifacts-destination``)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if artifact_root:
        location = artifact_root if "://" in artifact_root else Path(artifact_root).resolve().as_uri()
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it in between
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


_BAD = re.compile(r"[^/\w.\- :]")


def metric_key(name: str) -> str:
    """An MLflow-legal metric/param name: ``recall@10`` -> ``recall_at_10`` (MLflow refuses ``@``)."""
    return _BAD.sub("_", name.replace("@", "_at_"))


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested dict as ``{"test.recall_at_10": 0.31, ...}`` (bools, None and text dropped)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{metric_key(str(key))}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and value == value:  # NaN dropped
            out[name] = float(value)
    return out

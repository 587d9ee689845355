"""Daily model stages as MLflow runs: params, metrics, per-step curves and artifacts.

One run per stage and day (``train 2026-10-05``, ``align 2026-10-05``, ...) in the experiment
``settings.mlflow.experiment``, tagged ``onerec.stage`` and ``onerec.ds``. A re-run of a day adds a
run (runs are a log of what happened); the registry's versions are what must not repeat, and
``ModelRegistry.register`` sees to that. Metric names are made MLflow-legal (``recall@10`` ->
``recall_at_10``); nested results are flattened (``test.recall_at_10``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models.mlflow_client import client, experiment_id, flatten, metric_key

MAX_PARAM = 6000  # MLflow refuses param values over 6,000 characters


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_PARAM]


def log_run(tracking_uri: str, experiment: str, artifact_root: str | None, stage: str, ds: str, *,
            params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
            steps: Iterable[dict[str, Any]] = (), artifacts: Iterable[str | Path] = (),
            status: str = "FINISHED") -> str:  # fmt: skip
    """Record one finished stage as a run; returns its id.

    ``metrics``: nested dict, numeric leaves logged at step 0; ``steps``: rows with a ``step`` key
    (else their position), each numeric field a point of its curve; ``artifacts``: files (or
    folders) logged as they are.
    """
    from mlflow.entities import Metric, Param

    c = client(tracking_uri)
    exp = experiment_id(c, experiment, artifact_root)
    run = c.create_run(exp, run_name=f"{stage} {ds}", tags={"onerec.stage": stage, "onerec.ds": ds})
    run_id, now = run.info.run_id, int(time.time() * 1000)
    batch: list[Metric] = [Metric(k, v, now, 0) for k, v in flatten(metrics or {}).items()]
    for i, row in enumerate(steps):
        step = int(row.get("step", i))
        batch += [Metric(k, v, now, step) for k, v in flatten({k: v for k, v in row.items() if k != "step"}).items()]
    ps = [Param(metric_key(k), _param(v)) for k, v in (params or {}).items() if v is not None]
    for start in range(0, len(ps), 100):  # log_batch takes <= 100 params, <= 1000 metrics a call
        c.log_batch(run_id, params=ps[start : start + 100])
    for start in range(0, len(batch), 1000):
        c.log_batch(run_id, metrics=batch[start : start + 1000])
    for path in map(Path, artifacts):
        if path.is_dir():
            c.log_artifacts(run_id, str(path), path.name)
        elif path.is_file():
            c.log_artifact(run_id, str(path))
    c.set_terminated(run_id, status)
    return run_id


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines log (``train_log.jsonl``); [] when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tracker(settings: Any):
    """``log_run`` bound to the settings' tracking URI, experiment and artifact root."""
    m = settings.mlflow
    root = settings.resolve(m.artifact_root) if m.artifact_root else None
    uri = settings.resolve(m.tracking_uri)

    def log(stage: str, ds: str, **kwargs: Any) -> str:
        return log_run(uri, m.experiment, root, stage, ds, **kwargs)

    return log

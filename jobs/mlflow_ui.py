"""The MLflow UI over the config's tracking store, on loopback: runs, metric curves, model versions, aliases.

    python -m jobs.mlflow_ui [--config local] [--port 5000]      (make mlflow-ui)

Serves ``settings.mlflow.tracking_uri`` (runs and the model registry) with ``mlflow ui``, bound
to ``mlflow.ui_host`` (127.0.0.1 by default: put an authenticating proxy in front before
exposing it). Artifacts the UI uploads go beside the run artifacts (``mlflow.artifact_root``),
never into the current directory. Telemetry is off (``models.mlflow_client.QUIET_ENV``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from conf.settings import Settings
from models.mlflow_client import QUIET_ENV


def command(cfg: Settings, port: int | None = None, host: str | None = None) -> list[str]:
    """``mlflow ui`` with the config's stores, host and port."""
    m = cfg.mlflow
    uri = cfg.resolve(m.tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--registry-store-uri", uri,
           "--host", host or m.ui_host, "--port", str(port or m.ui_port),
           # One in-process worker: no supervisor that kills a worker slow to import on a busy box.
           "--workers", "1"]  # fmt: skip
    if m.artifact_root:
        root = cfg.resolve(m.artifact_root)
        cmd += ["--artifacts-destination", root if "://" in root else Path(root).as_uri()]
    return cmd


# The server's background job runner (huey consumers for GenAI evaluation jobs) is not needed to
# browse runs and models; off, the UI is one process.
SERVER_ENV = {**QUIET_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def environment() -> dict[str, str]:
    """This process's environment with MLflow's telemetry and job runner off."""
    return {**os.environ, **{k: os.environ.get(k, v) for k, v in SERVER_ENV.items()}}


def main(argv: list[str] | None = None) -> None:
    from jobs.cli import base_parser, settings_from_args

    parser = base_parser(__doc__)
    parser.add_argument("--port", type=int, help="port (default: mlflow.ui_port)")
    args = parser.parse_args(argv)
    cfg = settings_from_args(args)
    cmd = command(cfg, args.port)
    print(
        f"MLflow UI of {cfg.resolve(cfg.mlflow.tracking_uri)} on http://{cfg.mlflow.ui_host}:{args.port or cfg.mlflow.ui_port}"
    )
    os.execve(cmd[0], cmd, environment())


if __name__ == "__main__":
    main()

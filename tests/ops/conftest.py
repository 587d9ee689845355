"""Fixtures of the operational tests: a private PostgreSQL and one day of the real DAG run on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conf.settings import REPO_ROOT
from tests.ops import postgres

# The stages the ops tests look at; the rest of onerec_daily is marked succeeded (dag.test's
# mark_success_pattern), which keeps one DAG day to about a minute here.
OPS_TASKS = ("ingest", "validate_bronze", "sequences", "report")


@dataclass
class DagDay:
    """What one subprocess run of onerec_daily left behind."""

    home: Path
    ds: str
    db: str  # 'postgresql' or 'sqlite'
    result: dict
    server: postgres.PostgresServer | None
    skipped_postgres: str | None  # why the run fell back to SQLite


def run_dag_day(home: Path, ds: str, db_url: str, only=OPS_TASKS, timeout: float = 600) -> dict:
    """``python -m tests.ops.dag_day`` in a fresh process; its JSON result (raises with the log on failure)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ONEREC_HOME": str(home)}
    cmd = [sys.executable, "-m", "tests.ops.dag_day", "--home", str(home), "--ds", ds, "--db", db_url]
    cmd += ["--only", ",".join(only)]
    out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise AssertionError(f"dag_day failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}")
    return json.loads(lines[-1])


@pytest.fixture(scope="session")
def dag_day(tmp_path_factory, tiny_cfg) -> DagDay:
    """The first sample day through onerec_daily with a Postgres metadata DB (SQLite if none starts)."""
    home = tmp_path_factory.mktemp("ops-day")
    ds = tiny_cfg.sample.start_date.isoformat()
    server, why = None, None
    try:
        server = postgres.start()
    except postgres.PostgresUnavailable as exc:
        why = str(exc)
    if server:
        server.create_database("airflow")
        url = server.url("airflow")
    else:
        url = f"sqlite:///{home}/airflow/airflow.db"
    try:
        result = run_dag_day(home, ds, url)
        yield DagDay(home, ds, "postgresql" if server else "sqlite", result, server, why)
    finally:
        if server:
            server.stop()

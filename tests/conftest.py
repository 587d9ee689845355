"""Shared fixtures: one Spark session per test process, state under a temp ONEREC_HOME."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest

# Everything the tests write lives under one temp folder, never ./var.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="onerec-test-"))
os.environ.setdefault("ONEREC_HOME", str(_SESSION_HOME))
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parent.parent / "dags")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def tiny_cfg():
    """The ``tiny`` config with all state under the session's temp home."""
    from conf import load_settings

    return load_settings("tiny", overrides=[f"home={_SESSION_HOME}"])


@pytest.fixture(scope="session")
def spark(tiny_cfg):
    """One local Spark session (Delta on, UI off) for the whole test process."""
    from jobs.spark import get_spark

    session = get_spark(tiny_cfg)
    yield session
    session.stop()


@pytest.fixture
def lake_cfg(tiny_cfg, tmp_path):
    """A config whose state root is this test's own temp folder (fresh tables)."""
    return tiny_cfg.model_copy(update={"home": str(tmp_path)})

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


# The item side made cheap for DAG runs in tests: hashing text encoder, a few alignment epochs.
# The MiniLM path is covered by tests/jobs/test_item_embeddings.py. conf/cluster-loopback.yaml
# sets the same values, so its day is compared with this run's (tests/cluster).
CHEAP_ITEM_SIDE = (
    "item.embeddings.text_encoder=hashing",
    "item.alignment.epochs=3",
    "item.semantic_ids.compare_plain=false",
)


@pytest.fixture(scope="session")
def daily_run(tiny_cfg, spark):
    """The first two sample days through onerec_daily (real Airflow, dag.test on SQLite) in the session's lake.

    One run serves three checks: tests/dags/test_daily_e2e.py (every table, re-runs, models;
    day 2 against the day-1 lake), the day-1 run report in a real browser (tests/ops/test_report_browser.py), and the local side
    of the cluster test: the lake as day 1 left it is copied to ``lake-day1`` (``day1_cfg``
    reads it), to be compared with the same day on the loopback cluster (tests/cluster).
    """
    import json
    import shutil
    from datetime import timedelta

    from dags.runner import ensure_sample, prepare_airflow, run_days

    prepare_airflow(tiny_cfg)
    ensure_sample(tiny_cfg)
    manifest = json.loads((Path(tiny_cfg.resolve(tiny_cfg.source.path)) / "MANIFEST.json").read_text())
    start = tiny_cfg.sample.start_date
    days = [start, start + timedelta(days=1)]
    run_conf = {"config": "tiny", "set": [f"home={tiny_cfg.home}", *CHEAP_ITEM_SIDE]}
    results = run_days(tiny_cfg, days[:1], run_conf)
    day1_lake = tiny_cfg.home_path / "lake-day1"
    shutil.copytree(tiny_cfg.resolve(tiny_cfg.lake_root), day1_lake)
    day1_cfg = tiny_cfg.model_copy(update={"lake_root": str(day1_lake)})
    results += run_days(tiny_cfg, days[1:], run_conf)
    runs = Path(tiny_cfg.resolve(tiny_cfg.reports_dir)) / "runs"
    promotions = [json.loads((runs / d.isoformat() / "promotion.json").read_text()) for d in days]
    return {"days": days, "results": results, "run_conf": run_conf, "manifest": manifest,
            "promotions": promotions, "day1_cfg": day1_cfg}  # fmt: skip


# Worker groups under ``make test`` (pytest-xdist, ``-n 2``): tests that share an expensive fixture
# run in one worker process, which builds it once -- the two DAG days of ``daily_run`` (the e2e
# checks, the report in a browser, the local side of the cluster test) and the Feast lake of
# tests/features. Every other module is a group of its own (its module fixtures built once, its
# tests in file order). The controller sees node ids only, hence paths; the collection hook below
# refuses a ``daily_run`` user outside them, so a new one cannot silently rebuild the DAG days.
DAILY_RUN_PATHS = ("tests/dags/test_daily_e2e.py", "tests/ops/test_report_browser.py", "tests/cluster/")
FEATURE_LAKE_PATH = "tests/features/"


def worker_group(nodeid: str) -> str:
    """The xdist work unit of a test (by its node id, relative to the repository)."""
    path = nodeid.split("::", 1)[0]
    if path.startswith(DAILY_RUN_PATHS):
        return "daily_run"
    return FEATURE_LAKE_PATH if path.startswith(FEATURE_LAKE_PATH) else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Schedule whole :func:`worker_group` units (xdist's ``loadscope`` with our grouping)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test that uses ``daily_run`` outside :data:`DAILY_RUN_PATHS` (it would rebuild it)."""
    stray = [i.nodeid for i in items if "daily_run" in i.fixturenames and worker_group(i.nodeid) != "daily_run"]
    if stray:
        raise pytest.UsageError(f"tests using daily_run outside DAILY_RUN_PATHS (tests/conftest.py): {stray}")

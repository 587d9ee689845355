"""The daily and the weekly DAG never write the same table at the same time: every writer shares one pool.

Under conf/cluster.yaml that pool is ``lake_writer``, which infra creates with one slot, so
the scheduler runs at most one writing task of either DAG at any moment.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
import yaml

from conf.settings import REPO_ROOT

DAGS = ("onerec_daily", "onerec_codebook_weekly")


def _bag(monkeypatch, config: str):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("ONEREC_CONFIG", config)
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def _writers(bag) -> dict[str, list[tuple[str, str, str]]]:
    """Asset URI -> [(dag_id, task_id, pool)] of every task producing it."""
    out: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for dag_id in DAGS:
        for task in bag.dags[dag_id].tasks:
            for outlet in task.outlets:
                out[outlet.uri].append((dag_id, task.task_id, task.pool))
    return out


@pytest.mark.parametrize("config", ["cluster", "cluster-loopback"])
def test_every_writer_of_a_shared_table_is_in_the_one_slot_pool(monkeypatch, config):
    writers = _writers(_bag(monkeypatch, config))
    shared = {uri: ws for uri, ws in writers.items() if len({d for d, _, _ in ws}) == 2}
    # the weekly rebuild rewrites what the daily DAG also writes
    assert {"onerec://gold/item_pairs", "onerec://gold/item_embeddings", "onerec://gold/item_sids"} <= set(shared)
    assert "onerec://online/item_features" in shared
    for uri, ws in writers.items():
        if uri.startswith("onerec://"):
            assert {pool for _, _, pool in ws} == {"lake_writer"}, (uri, ws)


def test_the_feast_registry_writers_share_the_pool_and_readers_do_not(monkeypatch):
    bag = _bag(monkeypatch, "cluster")
    for dag_id in DAGS:
        tasks = {t.task_id: t for t in bag.dags[dag_id].tasks}
        assert tasks["feast_apply"].pool == "lake_writer"
        # validations only read: they keep running beside writers
        assert all(t.pool != "lake_writer" for tid, t in tasks.items() if tid.startswith("validate_")), dag_id
    daily = {t.task_id: t for t in bag.dags["onerec_daily"].tasks}
    assert daily["train"].pool == "gpu"  # the GPU pool is untouched


def test_the_pool_has_one_slot_where_infra_creates_it():
    compose = yaml.safe_load((REPO_ROOT / "infra" / "compose" / "docker-compose.yaml").read_text())
    script = " ".join(compose["services"]["airflow-init"]["command"])
    assert re.search(r"airflow pools set lake_writer 1 ", script)
    assert re.search(r"airflow pools set lake_writer 1 ", (REPO_ROOT / "infra" / "README.md").read_text())


def test_locally_the_default_pool_serves_dag_test(monkeypatch):
    writers = _writers(_bag(monkeypatch, "local"))
    assert {pool for ws in writers.values() for _, _, pool in ws} <= {"default_pool"}

"""The DAG folder imports cleanly, fast, with the expected wiring and task settings."""

import time

import pytest

from conf.settings import REPO_ROOT

ITEM_CHAIN = [
    "item_pairs",
    "validate_item_pairs",
    "item_alignment",
    "item_embeddings",
    "validate_item_embeddings",
    "semantic_ids",
    "validate_item_sids",
    "lifelong",
    "validate_lifelong",
]
DAILY_EDGES = [
    ("ingest", "validate_bronze"),
    ("validate_bronze", "sequences"),
    ("sequences", "validate_sequences"),
    ("validate_sequences", "item_pairs"),
    *zip(ITEM_CHAIN, ITEM_CHAIN[1:], strict=False),
    ("validate_bronze", "item_stats"),
    ("item_stats", "validate_item_stats"),
    # The item views are materialised with the user views: feast waits for every item table.
    ("validate_lifelong", "feast_apply"),
    ("validate_item_stats", "feast_apply"),
    ("feast_apply", "feast_materialize"),
    ("feast_materialize", "training_examples"),
    ("training_examples", "validate_training_examples"),
    # Models: train needs the examples (and, through them, the SIDs); the reward model only bronze.
    ("validate_training_examples", "train"),
    ("validate_bronze", "reward_refresh"),
    ("train", "align"),
    ("reward_refresh", "align"),
    ("align", "evaluate"),
    ("evaluate", "promote"),
    ("promote", "report"),
]
GPU_TASKS = {"train", "align"}
WEEKLY_CHAIN = [
    "item_pairs",
    "validate_item_pairs",
    "item_alignment",
    "validate_item_embeddings",
    "codebook",
    "validate_codebook",
    "feast_apply",
    "feast_materialize",
    "maintenance",
    "report",
]
WEEKLY_EDGES = list(zip(WEEKLY_CHAIN, WEEKLY_CHAIN[1:], strict=False))
# Tasks that write something (retried on failure); validations fail fast instead.
PRODUCING = {
    "onerec_daily": {
        "ingest",
        "sequences",
        "item_pairs",
        "item_alignment",
        "item_embeddings",
        "semantic_ids",
        "lifelong",
        "item_stats",
        "feast_apply",
        "feast_materialize",
        "training_examples",
        "train",
        "reward_refresh",
        "align",
        "evaluate",
        "report",
    },
    "onerec_codebook_weekly": {
        "item_pairs",
        "item_alignment",
        "codebook",
        "feast_apply",
        "feast_materialize",
        "maintenance",
        "report",
    },
}


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


@pytest.fixture(scope="module")
def bag():
    return _bag()


def test_dagbag_imports_without_errors_quickly(bag):
    t0 = time.perf_counter()
    again = _bag()
    parse_seconds = time.perf_counter() - t0
    assert again.import_errors == {}
    assert set(again.dag_ids) == {"onerec_daily", "onerec_codebook_weekly"}
    # Airflow's own limit (core.dagbag_import_timeout): a slower file is an import error in production.
    assert parse_seconds < 30, f"DAG folder took {parse_seconds:.1f}s to parse"


@pytest.mark.parametrize(
    ("dag_id", "edges", "schedule"),
    [("onerec_daily", DAILY_EDGES, "@daily"), ("onerec_codebook_weekly", WEEKLY_EDGES, "@weekly")],
)
def test_dag_wiring_schedule_and_retries(bag, dag_id, edges, schedule):
    dag = bag.dags[dag_id]
    got = sorted((t.task_id, down) for t in dag.tasks for down in t.downstream_task_ids)
    assert got == sorted(edges)
    assert "onerec" in dag.tags
    assert dag.max_active_runs == 1
    assert dag.schedule == schedule
    for t in dag.tasks:
        assert (t.retries > 0) == (t.task_id in PRODUCING[dag_id]), t.task_id
        assert t.doc_md or t.doc or t.python_callable.__doc__


def test_item_tables_are_assets(bag):
    """Downstream DAGs can schedule on each item table the daily DAG writes."""
    dag = bag.dags["onerec_daily"]
    outlets = {t.task_id: {a.uri for a in t.outlets} for t in dag.tasks}
    assert outlets["item_pairs"] == {"onerec://gold/item_pairs"}
    assert outlets["item_embeddings"] == {"onerec://gold/item_embeddings"}
    assert outlets["semantic_ids"] == {"onerec://gold/item_sids"}
    assert outlets["lifelong"] == {"onerec://gold/user_lifelong_compressed"}
    assert outlets["item_stats"] == {"onerec://gold/item_stats"}
    weekly = {t.task_id: {a.uri for a in t.outlets} for t in bag.dags["onerec_codebook_weekly"].tasks}
    assert weekly["codebook"] == {"onerec://gold/item_sids", "onerec://gold/item_sid_mapping"}


def test_gpu_tasks_go_to_the_configured_pool_and_queue(bag):
    from conf.settings import load_settings

    expected = load_settings().airflow
    dag = bag.dags["onerec_daily"]
    for task in dag.tasks:
        if task.task_id in GPU_TASKS:
            assert (task.pool, task.queue) == (expected.gpu_pool, expected.gpu_queue), task.task_id
        else:
            assert task.pool == "default_pool", task.task_id
    cluster = load_settings("cluster").airflow
    assert (cluster.gpu_pool, cluster.gpu_queue) == ("gpu", "gpu")

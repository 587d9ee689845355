"""The DAG folder imports cleanly, fast, with the expected wiring and task settings."""

import time

from conf.settings import REPO_ROOT

EXPECTED_EDGES = [
    ("ingest", "validate_bronze"),
    ("validate_bronze", "sequences"),
    ("sequences", "validate_sequences"),
    ("validate_sequences", "feast_apply"),
    ("feast_apply", "feast_materialize"),
    ("feast_materialize", "training_examples"),
    ("training_examples", "validate_training_examples"),
    ("validate_training_examples", "report"),
]


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_dagbag_imports_without_errors_quickly():
    _bag()  # warm imports
    t0 = time.perf_counter()
    bag = _bag()
    parse_seconds = time.perf_counter() - t0
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"onerec_daily"}
    assert parse_seconds < 5, f"DAG folder took {parse_seconds:.1f}s to parse"


def test_daily_dag_wiring_schedule_and_retries():
    dag = _bag().dags["onerec_daily"]
    edges = sorted((up, down) for t in dag.tasks for down in t.downstream_task_ids for up in [t.task_id])
    assert edges == sorted(EXPECTED_EDGES)
    assert "onerec" in dag.tags
    assert dag.max_active_runs == 1
    producing = {"ingest", "sequences", "feast_apply", "feast_materialize", "training_examples"}
    for t in dag.tasks:
        assert (t.retries > 0) == (t.task_id in producing | {"report"}), t.task_id
        assert t.doc_md or t.doc or t.python_callable.__doc__

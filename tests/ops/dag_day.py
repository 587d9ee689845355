"""Run one day of the real ``onerec_daily`` through ``dag.test()`` against a given metadata DB.

    python -m tests.ops.dag_day --home DIR --ds 2026-10-01 --db postgresql+psycopg2://... [--only a,b]

A separate process because Airflow binds its metadata DB when it is first imported:
the test process already runs on SQLite. ``--only`` runs just the named tasks and
marks every other one succeeded without running it (``dag.test``'s
``mark_success_pattern``), to keep a test to the stages it is about. Prints one JSON line: the run's state and each
task's state.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from datetime import UTC, date, datetime


def skip_all_but(task_ids: list[str]) -> str:
    """A ``mark_success_pattern`` (matched with fullmatch) for every task id except ``task_ids``."""
    return "(?!(?:" + "|".join(re.escape(t) for t in task_ids) + ")$).*"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--ds", type=date.fromisoformat, required=True)
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the Airflow metadata DB")
    parser.add_argument("--only", default=None, help="comma-separated task ids to run; the others are marked succeeded")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from conf import load_settings
    from dags.runner import DAG_ID, ensure_sample, prepare_airflow

    overrides = [f"home={args.home}", f"airflow.sql_alchemy_conn={args.db}"]
    cfg = load_settings("tiny", overrides=overrides)
    prepare_airflow(cfg)  # exports AIRFLOW__DATABASE__SQL_ALCHEMY_CONN before airflow is imported
    ensure_sample(cfg)

    from airflow.dag_processing.dagbag import DagBag

    from conf.settings import REPO_ROOT

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[DAG_ID]
    logical = datetime(args.ds.year, args.ds.month, args.ds.day, tzinfo=UTC)
    run = dag.test(
        logical_date=logical,
        run_conf={"config": "tiny", "set": overrides},
        mark_success_pattern=skip_all_but(args.only.split(",")) if args.only else None,
    )
    from airflow.settings import engine

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print(json.dumps({"state": str(run.state), "tasks": states, "db": engine.url.get_backend_name()}), flush=True)


if __name__ == "__main__":
    main()

"""What both DAGs share: the start date, retry policy and the Asset of a lake table (no DAG here)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset

# Far back on purpose: dag.test()/backfill of a day before start_date creates no task instances
# and "succeeds" doing nothing, and public datasets replay old days (MovieLens 1997-98,
# Amazon sequences from source.base_date 2020). catchup=False keeps the scheduler to the latest run.
START_DATE = datetime(1990, 1, 1)


def default_args(retry_delay: timedelta) -> dict:
    """Producers retry twice with exponential backoff from ``retry_delay``; validations override to 0."""
    return {"owner": "onerec", "retries": 2, "retry_delay": retry_delay, "retry_exponential_backoff": True}


# Tasks that write shared state without a table outlet: the Feast registry.
WRITES_WITHOUT_OUTLET = frozenset({"feast_apply"})


def lake_writers(dag, pool: str):
    """Put every task of ``dag`` that writes a lake table or the online store into ``pool``.

    A writer is a task with an ``onerec://`` outlet (its table's Asset) or one of
    :data:`WRITES_WITHOUT_OUTLET`. Both DAGs call this with ``airflow.lake_pool``: with one
    slot (conf/cluster.yaml, created by infra) the daily and the weekly DAG never write
    the same table at the same time. Returns the DAG.
    """
    for task in dag.tasks:
        outlets = [getattr(o, "uri", "") for o in task.outlets]
        if task.task_id in WRITES_WITHOUT_OUTLET or any(u.startswith("onerec://") for u in outlets):
            task.pool = pool
    return dag


def table_asset(table: str) -> Asset:
    """The Asset of a lake table, ``onerec://<layer>/<name>``, for producers and downstream schedules."""
    from conf.settings import DEFAULT_TABLES

    spec = DEFAULT_TABLES[table]
    return Asset(f"onerec://{spec.layer}/{spec.name}")

"""onerec_daily on a real PostgreSQL metadata DB (not only SQLite).

A private server on loopback (tests/ops/postgres.py) is migrated by ``airflow db migrate``
and one sample day of the real DAG runs against it through ``dag.test()`` in its own
process; ingest, validate_bronze, sequences and report run, every other task is marked
succeeded. Then the metadata is read back from Postgres itself.
"""

from __future__ import annotations

import pytest

from tests.ops.conftest import OPS_TASKS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_day(dag_day):
    if dag_day.db != "postgresql":
        pytest.skip(f"PostgreSQL unavailable ({dag_day.skipped_postgres}); .ci/run installs `postgresql`")
    return dag_day


def test_the_day_succeeds_on_postgres(pg_day):
    assert pg_day.result["db"] == "postgresql"
    assert pg_day.result["state"] == "success", pg_day.result
    for task in OPS_TASKS:
        assert pg_day.result["tasks"][task] == "success", task


def test_the_metadata_lives_in_postgres(pg_day):
    """The run and its task instances are rows of the Postgres DB, with the DAG's real task ids."""
    import psycopg2

    s = pg_day.server
    conn = psycopg2.connect(host="127.0.0.1", port=s.port, user=s.user, password=s.password, dbname="airflow")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT state, logical_date::date FROM dag_run WHERE dag_id = 'onerec_daily'")
            runs = cur.fetchall()
            cur.execute("SELECT task_id, state FROM task_instance WHERE dag_id = 'onerec_daily'")
            tasks = dict(cur.fetchall())
            cur.execute("SELECT version_num FROM alembic_version")
            (migration,) = cur.fetchone()
    finally:
        conn.close()
    assert [(state, str(day)) for state, day in runs] == [("success", pg_day.ds)]
    assert set(pg_day.result["tasks"]) == set(tasks), "task instances differ between the run and the DB"
    assert all(state == "success" for state in tasks.values()), tasks
    assert migration, "airflow db migrate did not stamp the schema"


def test_the_tasks_wrote_their_tables(pg_day):
    lake = pg_day.home / "lake"
    for table in (
        "bronze/events",
        "quarantine/quarantine",
        "silver/user_events",
        "silver/user_state",
        "gold/user_features",
    ):
        assert (lake / table / "_delta_log").is_dir(), table
    assert (pg_day.home / "reports" / "runs" / pg_day.ds / "index.html").is_file()

"""onerec_daily on a loopback cluster through Celery equals the suite's local run (tests/cluster/run.py does the work).

One sample day with conf/cluster-loopback.yaml through a real Airflow deployment
(api-server, scheduler, dag-processor, one Celery worker; Redis broker, Postgres metadata
DB) on a Spark standalone master + 2 workers (pyspark's spark-class), every Delta table on
s3a:// in moto's S3 server, hadoop-aws 3.5.0 from Maven Central. The Celery worker starts
one Spark application before it forks its task processes (jobs/worker_preload.py), so the
day costs about what one dag.test() process costs. The local side is the suite's own run of
the same day (``daily_run``, tests/conftest.py: dag.test on local[1], SQLite, a local lake),
whose settings differ from the loopback config only in where things run (checked below):
every table must hold the same rows. The same comparison with a ``local[2]`` run of the
loopback config itself, and two days, is ``python -m tests.cluster.run [--no-celery]``.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from conf.settings import DEFAULT_TABLES, load_settings
from tests.cluster.services import CONFIG

# Part of `make test` (run last, tests/cluster/conftest.py); a machine without one of the servers
# skips it with what is missing. CELERY_DAY_TIMEOUT bounds the Celery day alone (run_day), the
# marker the whole module.
CELERY_DAY_TIMEOUT = 1500
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]

# Where a run happens, not what it computes: the only sections the two configs may differ in.
DEPLOYMENT = ("home", "lake_root", "spark", "airflow", "feast")

# Written by a sample day (item_sid_mapping only appears with a weekly rebuild).
WRITTEN = sorted(set(DEFAULT_TABLES) - {"item_sid_mapping"})


def missing_servers() -> list[str]:
    """What this machine lacks to start the loopback cluster (empty: everything is there)."""
    from tests.cluster import postgres

    missing = [f"{b} (.ci/run installs it)" for b in ("java", "redis-server") if shutil.which(b) is None]
    if shutil.which("moto_server", path=str(Path(sys.executable).parent)) is None and not shutil.which("moto_server"):
        missing.append("moto_server (requirements: moto[server])")
    try:
        postgres.find_bindir()
        postgres._run_as()
    except postgres.PostgresUnavailable as exc:
        missing.append(f"PostgreSQL: {exc}")
    return missing


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory, request):
    from tests.cluster.run import run

    missing = missing_servers()
    if missing:
        pytest.skip("loopback cluster not startable here: " + "; ".join(missing))
    local = request.getfixturevalue("daily_run")  # the suite's local day (already run by tests/dags)
    root = tmp_path_factory.mktemp("cluster")
    t0 = time.time()
    result = run(root, days=1, celery=True, compare=True, celery_timeout=CELERY_DAY_TIMEOUT,
                 reference=local["day1_cfg"])  # fmt: skip
    result["root"] = root
    # The figures the suite's budget is decided on (pytest -s shows them).
    print(f"\ncluster test: {time.time() - t0:.0f} s in all; {result['timings_s']}")
    return result


def test_the_local_run_has_the_cluster_configs_pipeline_settings(daily_run):
    """Only where things run may differ: data, sequences, item side, models, validation are the same."""
    cluster = load_settings(CONFIG).model_dump(exclude=set(DEPLOYMENT))
    local = load_settings(daily_run["run_conf"]["config"], daily_run["run_conf"]["set"]).model_dump(
        exclude=set(DEPLOYMENT)
    )
    assert cluster == local
    assert len(cluster) >= 8  # the comparison is not empty


def test_every_table_lives_in_the_object_store(cluster_run):
    assert cluster_run["cluster_lake"] == "s3a://onerec-lake/lake"
    for table in WRITTEN:
        assert not cluster_run["cluster"][table].get("absent"), f"{table} was not written to s3a://"
        assert cluster_run["cluster"][table]["rows"] > 0, table
    # Delta logs and data files really are objects in the bucket (not a local folder)
    assert cluster_run["s3_objects"] >= 2 * len(WRITTEN)


def test_the_tables_equal_the_local_run(cluster_run):
    assert cluster_run["differ"] == [], {t: (cluster_run["cluster"][t], cluster_run["local"][t])
                                         for t in cluster_run["differ"]}  # fmt: skip
    assert cluster_run["equal"]
    assert cluster_run["local_lake"].startswith("/") and cluster_run["local_lake"].endswith("lake-day1")


def test_the_work_ran_on_both_standalone_workers(cluster_run):
    logs = cluster_run["root"] / "logs"
    master = (logs / "spark-master.log").read_text(errors="replace")
    assert len(re.findall(r"Registering worker 127\.0\.0\.1:\d+ with 1 cores", master)) == 2
    assert "Registered app onerec" in master
    for k in (0, 1):
        worker = (logs / f"spark-worker-{k}.log").read_text(errors="replace")
        assert "Asked to launch executor" in worker, f"worker {k} ran no executor"


def test_a_day_ran_through_the_scheduler_and_a_celery_worker(cluster_run):
    day = cluster_run["celery_run"]
    assert day["state"] == "success", day
    assert day["run_type"] == "manual"
    # the metadata lives in Postgres: the run is its one row there, on a schema `airflow db migrate` stamped
    assert day["db_runs"] == [[day["run_id"], "success", cluster_run["days"][0]]]
    assert day["db_migration"]
    tasks = day["tasks"]
    assert len(tasks) >= 25 and all(t["state"] == "success" for t in tasks.values()), tasks
    # run by the Celery worker (its hostname recorded), writers in the one-slot pool
    assert all(t["hostname"] for t in tasks.values())
    for writer in ("ingest", "sequences", "item_pairs", "item_embeddings", "semantic_ids", "feast_materialize"):
        assert tasks[writer]["pool"] == "lake_writer", writer
    assert tasks["validate_bronze"]["pool"] == "default_pool"


def test_the_celery_tasks_shared_the_workers_spark_application(cluster_run):
    """One application for the whole day: the worker started it before forking its task processes."""
    logs = cluster_run["root"] / "logs"
    worker = (logs / "airflow-celery-worker.log").read_text(errors="replace")
    assert "worker preload:" in worker and "'spark_s':" in worker, worker[-3000:]
    master = (logs / "spark-master.log").read_text(errors="replace")
    assert master.count("Registered app onerec") == 1, "a task started its own Spark application"

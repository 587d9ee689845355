"""onerec_daily on a loopback cluster equals a local[2] run (tests/cluster/run.py does the work).

Two sample days with conf/cluster-loopback.yaml: a Spark standalone master + 2 workers
(pyspark's spark-class), every Delta table on s3a:// in moto's S3 server, hadoop-aws
3.5.0 from Maven Central. Day 1 runs through dag.test() (the Spark driver in the runner
process), day 2 through a real Airflow deployment (api-server, scheduler, dag-processor,
one Celery worker; Redis broker, Postgres metadata DB). The same two days with the same
config on local[2] and a local lake must leave the same rows in every table.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from conf.settings import DEFAULT_TABLES
from tests.cluster.services import ServiceError

# Opt-in: on 2 cores the run is ~15 min (3 pipeline days, one of them a Spark driver per task),
# more than the suite's budget. `make cluster-test` (and .ci/run with ONEREC_CLUSTER_TEST=1) runs it.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("ONEREC_CLUSTER_TEST"), reason="set ONEREC_CLUSTER_TEST=1 (make cluster-test)"
    ),
]

# Written by the two sample days (item_sid_mapping only appears with a weekly rebuild).
WRITTEN = sorted(set(DEFAULT_TABLES) - {"item_sid_mapping"})


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    from tests.cluster.run import run

    if shutil.which("java") is None:
        pytest.skip("no java: Spark cannot start")
    root = tmp_path_factory.mktemp("cluster")
    try:
        result = run(root, days=2, celery=True)
    except ServiceError as exc:
        if "redis" not in str(exc).lower() and "postgres" not in str(exc).lower():
            raise
        # Without Redis or Postgres (.ci/run installs both) the Spark + S3 part still runs.
        result = run(tmp_path_factory.mktemp("cluster-no-celery"), days=2, celery=False)
        result["celery_skipped"] = str(exc)
    result["root"] = root
    return result


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
    assert cluster_run["local_lake"].startswith("/")


def test_the_work_ran_on_both_standalone_workers(cluster_run):
    logs = cluster_run["root"] / "logs"
    master = (logs / "spark-master.log").read_text(errors="replace")
    assert len(re.findall(r"Registering worker 127\.0\.0\.1:\d+ with 1 cores", master)) == 2
    assert "Registered app onerec" in master
    for k in (0, 1):
        worker = (logs / f"spark-worker-{k}.log").read_text(errors="replace")
        assert "Asked to launch executor" in worker, f"worker {k} ran no executor"


def test_a_day_ran_through_the_scheduler_and_a_celery_worker(cluster_run):
    if "celery_skipped" in cluster_run:
        pytest.skip(f"Celery part not run: {cluster_run['celery_skipped']}")
    day = cluster_run["celery_run"]
    assert day["state"] == "success", day
    assert day["run_type"] == "manual"
    tasks = day["tasks"]
    assert len(tasks) >= 25 and all(t["state"] == "success" for t in tasks.values()), tasks
    # run by the Celery worker (its hostname recorded), writers in the one-slot pool
    assert all(t["hostname"] for t in tasks.values())
    for writer in ("ingest", "sequences", "item_pairs", "item_embeddings", "semantic_ids", "feast_materialize"):
        assert tasks[writer]["pool"] == "lake_writer", writer
    assert tasks["validate_bronze"]["pool"] == "default_pool"

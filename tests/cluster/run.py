"""onerec_daily on a loopback cluster, checked against a ``local[2]`` run of the same days.

    python -m tests.cluster.run                 # 2 days: Spark cluster + S3 lake; day 2 through Celery
    python -m tests.cluster.run --no-celery     # both days through dag.test() on the cluster
    make cluster-test                           # 1 day through Celery vs the suite's local run (pytest)

1. Starts (tests/cluster/services.py) a Spark standalone master + 2 workers, moto's S3 server
   with the lake's bucket and, for the Celery day, Redis and PostgreSQL.
2. Runs the days with ``conf/cluster-loopback.yaml`` through ``python -m dags.runner`` (one
   process: the Spark driver talks to the standalone master; every Delta table on ``s3a://``).
   With Celery (the default) only day 1 goes that way; day 2 is triggered in a real Airflow
   deployment: api-server, scheduler, dag-processor and one ``airflow celery worker``
   (tests/cluster/celery_day.py), on the same Postgres metadata DB.
3. Runs the same days with the same config on ``local[2]`` and a local lake.
4. Compares order-free checksums of every table (tests/cluster/checksums.py).

Prints one JSON line (timings, checksums, the day states) and exits non-zero on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from conf.settings import REPO_ROOT, Settings, load_settings
from tests.cluster import services
from tests.cluster.checksums import column_diff, lake_checksums
from tests.cluster.services import CONFIG, Loopback, base_env


def local_overrides(home: Path) -> list[str]:
    """The loopback config on ``local[2]`` with a local lake, SQLite metadata and SQLite online store."""
    return [f"home={home}", "spark.master=local[2]", f"lake_root={home}/lake",
            "airflow.sql_alchemy_conn=sqlite:///{home}/airflow/airflow.db", "airflow.executor=LocalExecutor",
            "feast.online_store=sqlite"]  # fmt: skip


def run_days(overrides: list[str], first: date, last: date, log: Path, timeout: float = 900) -> float:
    """``python -m dags.runner backfill`` over [first, last] in a fresh process; its wall seconds."""
    cmd = [sys.executable, "-m", "dags.runner", "backfill", "--config", CONFIG, "--start", first.isoformat(),
           "--end", last.isoformat()]  # fmt: skip
    for item in overrides:
        cmd += ["--set", item]
    home = next(o.split("=", 1)[1] for o in overrides if o.startswith("home="))
    env = {**base_env(), "ONEREC_HOME": home}
    t0 = time.time()
    with open(log, "wb") as fh:
        out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout,
                             check=False)  # fmt: skip
    if out.returncode:
        raise AssertionError(f"{' '.join(cmd[:6])} ... failed ({out.returncode}); log {log}:\n"
                             f"{log.read_text(errors='replace')[-6000:] if log.exists() else '(no log)'}")  # fmt: skip
    return time.time() - t0


def run(root: Path, days: int = 2, celery: bool = True, compare: bool = True, preload: str = "spark",
        celery_timeout: float = 2400, reference: Settings | None = None) -> dict:  # fmt: skip
    """Everything in the module docstring; returns the result dict (raises on a failed run).

    ``reference``: a lake that already holds the same days, run locally with the same pipeline
    settings (the test suite's own DAG run); compared instead of running step 3.
    """
    from tests.cluster.celery_day import CeleryDeployment

    cfg0 = load_settings(CONFIG)
    first = cfg0.sample.start_date
    last = first + timedelta(days=days - 1)
    result: dict = {"days": [first.isoformat(), last.isoformat()], "celery": celery, "timings_s": {},
                    "preload": preload if celery else None}  # fmt: skip
    timings = result["timings_s"]
    cluster = Loopback(root=root)
    try:
        t0 = time.time()
        cluster.start_spark(workers=2, cores=1, memory="1g")
        cluster.start_s3()
        # Redis is Feast's online store in the loopback config (and Celery's broker): started
        # whenever it is installed; only a run without Celery may fall back to Feast on SQLite.
        if celery or shutil.which("redis-server"):
            cluster.start_redis()
        if celery:
            cluster.start_postgres()
        timings["start_services"] = round(time.time() - t0, 1)

        cluster_home, local_home = root / "cluster", root / "local"
        c_over = [f"home={cluster_home}", *cluster.overrides()]
        if not celery:
            c_over.append("airflow.sql_alchemy_conn=sqlite:///{home}/airflow/airflow.db")
        if not cluster.redis_port:
            c_over.append("feast.online_store=sqlite")
        dag_test_last = last - timedelta(days=1) if celery else last
        if dag_test_last >= first:  # with --days 1 and Celery, the one day goes through Celery
            timings["cluster_dag_test"] = round(run_days(c_over, first, dag_test_last, root / "cluster-runner.log"), 1)
        if celery:
            deployment = CeleryDeployment(cluster, cluster_home, c_over, preload=preload)
            try:
                t0 = time.time()
                deployment.start()
                timings["celery_start"] = round(time.time() - t0, 1)
                t0 = time.time()
                result["celery_run"] = deployment.run_day(last, timeout=celery_timeout)
                timings["celery_day"] = round(time.time() - t0, 1)
            finally:
                deployment.stop()
        timings["cluster_total"] = round(sum(v for k, v in timings.items() if k != "start_services"), 1)
        result["s3_objects"] = len(cluster.s3_keys("lake/"))
        c_cfg = load_settings(CONFIG, c_over)
        result["cluster_lake"] = c_cfg.resolve(c_cfg.lake_root)
        with _env(services.S3_ENV):  # while the S3 server still holds the cluster's lake
            result["cluster"] = lake_checksums(c_cfg)

        if not compare:
            return result
        if reference is None:
            l_over = local_overrides(local_home)
            timings["local2_dag_test"] = round(run_days(l_over, first, last, root / "local-runner.log"), 1)
            l_cfg = load_settings(CONFIG, l_over)
        else:
            l_cfg = reference
        result["local_lake"] = l_cfg.resolve(l_cfg.lake_root)
        result["local"] = lake_checksums(l_cfg)
        result["equal"] = result["cluster"] == result["local"]
        result["differ"] = sorted(t for t in result["local"] if result["cluster"][t] != result["local"][t])
        if result["differ"]:  # which columns, while the S3 server still holds the cluster's lake
            with _env(services.S3_ENV):
                result["differ_columns"] = {t: column_diff(c_cfg, l_cfg, t) for t in result["differ"]
                                            if not result["cluster"][t].get("absent")
                                            and not result["local"][t].get("absent")}  # fmt: skip
        return result
    finally:
        cluster.stop()


class _env:
    """Set environment variables for a block (delta-rs reads S3 credentials from the environment)."""

    def __init__(self, values: dict[str, str]):
        self.values, self.saved = values, {}

    def __enter__(self):
        import os

        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        import os

        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--no-celery", action="store_true", help="every day through dag.test() (no Celery part)")
    parser.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the local[2] run (the cluster lake's checksums are still printed)",
    )
    parser.add_argument(
        "--preload",
        choices=["spark", "imports", "none"],
        default="spark",
        help="what the Celery worker does before it forks its tasks (jobs/worker_preload.py): "
        "import the stages and start the one Spark application they share (default), only "
        "import, or nothing (each task imports and starts its own application)",
    )
    parser.add_argument("--root", default=None, help="working folder (default: a new temp folder, kept)")
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, kill PID) unwinds like Ctrl-C, so the servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(args.root or tempfile.mkdtemp(prefix="onerec-cluster-"))
    root.mkdir(parents=True, exist_ok=True)
    preload = "" if args.preload == "none" else args.preload
    result = run(root, days=args.days, celery=not args.no_celery, compare=not args.no_compare, preload=preload)
    print(json.dumps(result, default=str), flush=True)
    print(f"logs under {root}; tables equal: {result.get('equal')}; timings: {result['timings_s']}", file=sys.stderr)
    if not result.get("equal", True):
        raise SystemExit(f"tables differ between the cluster and local[2]: {result['differ']}")


if __name__ == "__main__":
    main()

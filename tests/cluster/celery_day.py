"""One day of onerec_daily through a real Airflow 3 deployment with the CeleryExecutor.

Processes, as in infra/compose: ``airflow api-server`` (Airflow 3's task processes report
to its execution API), ``airflow scheduler``, ``airflow dag-processor`` and one
``airflow celery worker``; Redis is the broker, the Postgres of the loopback cluster the
metadata DB and the Celery result backend. The run is created with ``airflow dags
trigger`` (a manual run for the day's logical date with the config in its conf); the
scheduler queues its tasks to Celery, the worker runs them, each task in its own
process (its own Spark driver on the standalone master). Cron scheduling is off
(``use_job_schedule=False``) so unpausing the DAG adds no run of today.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from conf.settings import REPO_ROOT
from dags.runner import airflow_env
from tests.cluster.services import CONFIG, Loopback, ServiceError, _tail, base_env, free_port, http_ok

DAG_ID = "onerec_daily"


class CeleryDeployment:
    """api-server + scheduler + dag-processor + celery worker on the loopback cluster's Redis and Postgres."""

    def __init__(self, cluster: Loopback, home: Path, overrides: list[str], preload: str = "spark"):
        from conf.settings import load_settings

        if cluster.postgres is None or not cluster.redis_port:
            raise ServiceError("the Celery deployment needs the cluster's Postgres and Redis")
        self.cluster, self.home, self.overrides, self.preload = cluster, home, overrides, preload
        self.cfg = load_settings(CONFIG, overrides)
        self.api_port = free_port()
        env = {**base_env(), **airflow_env(self.cfg), "ONEREC_CONFIG": CONFIG, "ONEREC_HOME": str(home)}
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{cluster.redis_port}/0",
            # Results in Redis, not Postgres: celery 5.7's database backend hands a failed task's
            # stored exception back as bytes, and the scheduler dies on it (TypeError in
            # exception_to_python), so one failing task would take the whole deployment down.
            "AIRFLOW__CELERY__RESULT_BACKEND": f"redis://127.0.0.1:{cluster.redis_port}/1",
            # The first execution-API call of a task can take tens of seconds on a busy 2-core
            # machine (the api-server warms up); the default 5 s timeout would fail the task.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
            # The supervisor waits up to this long between checks of its task process: a task that
            # closes its sockets a moment before it is reaped was seen finished 5 s late (default 5),
            # 5 s between two tasks. At 1 s the supervisor heartbeats the API once a second instead.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            # Every component signs / checks task tokens with the same secret.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # Parse the DAG files once: re-parsing every 30 s takes CPU from the tasks on 2 cores.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__API__WORKERS": "1",
        })  # fmt: skip
        self.env = env

    def worker_env(self) -> dict[str, str]:
        """The Celery worker's environment: warmed once before it forks its tasks (jobs/worker_preload.py).

        ``ONEREC_WORKER_PRELOAD`` (``self.preload``): ``spark`` imports the stages and starts one
        Spark application in the worker, which every task process (a fork) uses; ``imports``
        only imports; ``""`` leaves every task to import and start its own application. The
        session is built from ``load_settings()``, so the run's overrides go in as
        ``ONEREC__SECTION__KEY`` variables (the run conf repeats them for the tasks).
        """
        env = dict(self.env)
        if self.preload:
            env["ONEREC_WORKER_PRELOAD"] = self.preload
            for item in self.overrides:
                key, value = item.split("=", 1)
                if key != "home":  # ONEREC_HOME is set
                    env["ONEREC__" + key.upper().replace(".", "__")] = value
        return env

    def _airflow(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
        if out.returncode:
            raise ServiceError(f"airflow {' '.join(args[:3])} failed ({out.returncode}):\n{out.stderr[-4000:]}")
        return out.stdout

    def start(self) -> None:
        """The four processes; returns when the API answers and the DAG is parsed into the DB."""
        from dags.runner import ensure_sample

        c = self.cluster
        (self.home / "airflow").mkdir(parents=True, exist_ok=True)
        self._airflow("db", "migrate", timeout=600)  # idempotent: a no-op after the runner's days
        ensure_sample(self.cfg)
        proc, log = c._spawn("airflow-api-server", [sys.executable, "-m", "airflow", "api-server", "--port",
                                                     str(self.api_port), "--host", "127.0.0.1"], self.env)  # fmt: skip
        c._spawn("airflow-dag-processor", [sys.executable, "-m", "airflow", "dag-processor"], self.env)
        c._spawn("airflow-scheduler", [sys.executable, "-m", "airflow", "scheduler"], self.env)
        c._spawn("airflow-celery-worker", [sys.executable, "-m", "airflow", "celery", "worker", "--concurrency", "1",
                                           "--without-mingle", "--without-gossip", "--skip-serve-logs"],
                 self.worker_env())  # fmt: skip
        deadline = time.time() + 300
        while not http_ok(f"http://127.0.0.1:{self.api_port}/api/v2/version"):
            self._check_alive()
            if time.time() > deadline:
                raise ServiceError(f"api-server not answering:\n{_tail(log)}")
            time.sleep(1)
        while DAG_ID not in self._serialized_dags():
            self._check_alive()
            if time.time() > deadline:
                raise ServiceError(f"{DAG_ID} was not parsed:\n{_tail(c.root / 'logs' / 'airflow-dag-processor.log')}")
            time.sleep(2)

    def _check_alive(self) -> None:
        for name, proc in self.cluster.procs:
            if name.startswith("airflow-") and proc.poll() is not None:
                raise ServiceError(
                    f"{name} exited ({proc.returncode}):\n{_tail(self.cluster.root / 'logs' / f'{name}.log')}"
                )

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        pg = self.cluster.postgres
        conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password, dbname="airflow")
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def _serialized_dags(self) -> set[str]:
        try:
            return {r[0] for r in self._query("SELECT dag_id FROM serialized_dag")}
        except Exception:  # noqa: BLE001 - the table appears with the first parse
            return set()

    def run_day(self, day: date, timeout: float = 2400) -> dict:
        """Trigger the day, wait for the run to finish; its state and each task's state and hostname."""
        # The one-slot pool of the lake writers, as infra's airflow-init creates it.
        self._airflow("pools", "set", self.cfg.airflow.lake_pool, "1", "lake writers, one at a time")
        self._airflow("dags", "unpause", DAG_ID)
        conf = json.dumps({"config": CONFIG, "set": self.overrides})
        run_id = f"celery__{day.isoformat()}"
        self._airflow("dags", "trigger", DAG_ID, "--logical-date", f"{day.isoformat()}T00:00:00+00:00",
                      "--run-id", run_id, "--conf", conf)  # fmt: skip
        deadline = time.time() + timeout
        state = None
        while time.time() < deadline:
            rows = self._query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (DAG_ID, run_id))
            state = rows[0][0] if rows else None
            if state in ("success", "failed"):
                break
            self._check_alive()
            time.sleep(3)
        tasks = self._query(
            "SELECT task_id, state, hostname, queue, pool, duration FROM task_instance"
            " WHERE dag_id = %s AND run_id = %s ORDER BY start_date",
            (DAG_ID, run_id),
        )
        run_row = self._query("SELECT run_type, conf::text FROM dag_run WHERE run_id = %s", (run_id,))
        # What the metadata DB holds: every run of the DAG, and the schema `airflow db migrate` stamped.
        runs = self._query("SELECT run_id, state, logical_date::date::text FROM dag_run WHERE dag_id = %s", (DAG_ID,))
        migration = self._query("SELECT version_num FROM alembic_version")
        return {"run_id": run_id, "state": state, "run_type": run_row[0][0] if run_row else None,
                "db_runs": [list(r) for r in runs], "db_migration": migration[0][0] if migration else None,
                "tasks": {t: {"state": s, "hostname": h, "queue": q, "pool": p,
                              "duration_s": round(d, 1) if d is not None else None} for t, s, h, q, p, d in tasks},
                "executor_log": _tail(self.cluster.root / "logs" / "airflow-celery-worker.log", 2000)
                if state != "success" else ""}  # fmt: skip

    def stop(self) -> None:
        """Stop the Airflow processes (the cluster stops the rest)."""
        import os

        for name, proc in list(self.cluster.procs):
            if name.startswith("airflow-") and proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        for name, proc in list(self.cluster.procs):
            if name.startswith("airflow-"):
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
        self.cluster.procs = [(n, p) for n, p in self.cluster.procs if not n.startswith("airflow-")]

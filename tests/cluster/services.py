"""The servers of ``conf/cluster-loopback.yaml``, started from the project's own files on free loopback ports.

* Spark standalone: a master and two workers (1 core, 1 GiB each) from the pyspark wheel's
  ``bin/spark-class`` (the wheel has no ``sbin/start-*.sh``).
* An S3 API server: ``moto_server`` (PyPI ``moto[server]``) with the lake's bucket.
* Redis (Celery broker and Feast online store) and PostgreSQL (Airflow metadata DB), only
  when asked for (the Celery part); tests/cluster/postgres.py starts the latter.

Every process is a child of the caller, logs into ``root/logs`` and is stopped by
:meth:`Loopback.stop`. :meth:`Loopback.overrides` are the ``--set`` values that point
the config at the real ports.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from conf.settings import REPO_ROOT, load_settings

CONFIG = "cluster-loopback"
BUCKET = "onerec-lake"
# moto accepts any key; S3A and delta-rs read them from the environment like real credentials.
S3_ENV = {"AWS_ACCESS_KEY_ID": "loopback", "AWS_SECRET_ACCESS_KEY": "loopback", "AWS_REGION": "us-east-1"}


class ServiceError(RuntimeError):
    """A loopback server did not come up (the message holds the tail of its log)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{proc.args[:3]} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise ServiceError(f"{proc.args[:3]} not listening on {port} after {timeout:.0f}s:\n{_tail(log)}")


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def base_env() -> dict[str, str]:
    """Environment of every cluster process: the repo importable, S3 credentials, loopback only."""
    env = {**os.environ, **S3_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    env["PYSPARK_PYTHON"] = sys.executable
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


@dataclass
class Loopback:
    """The running servers (ports) and how to point the config at them."""

    root: Path
    spark_port: int = 0
    s3_port: int = 0
    redis_port: int = 0
    postgres: object | None = None  # tests.cluster.postgres.PostgresServer
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    @property
    def master(self) -> str:
        return f"spark://127.0.0.1:{self.spark_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def overrides(self) -> list[str]:
        """``--set`` values for conf/cluster-loopback.yaml on these ports."""
        extra = dict(load_settings(CONFIG).spark.extra_conf)
        extra["spark.hadoop.fs.s3a.endpoint"] = self.s3_endpoint
        # extra_conf's keys hold dots, so it is overridden as a whole (JSON is YAML).
        out = [f"spark.master={self.master}", f"spark.extra_conf={json.dumps(extra)}"]
        if self.redis_port:
            out.append(f"feast.redis_connection=127.0.0.1:{self.redis_port}")
        if self.postgres is not None:
            out.append(f"airflow.sql_alchemy_conn={self.postgres.url('airflow')}")
        return out

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                    start_new_session=True)  # fmt: skip
        self.procs.append((name, proc))
        return proc, log

    # ---- Spark -----------------------------------------------------------------------------
    def start_spark(self, workers: int = 2, cores: int = 1, memory: str = "1g") -> None:
        """Master on a free port, then ``workers`` workers registered with it."""
        spark_class = str(spark_home() / "bin" / "spark-class")
        env = {**base_env(), "SPARK_HOME": str(spark_home()), "SPARK_NO_DAEMONIZE": "1"}
        self.spark_port = free_port()
        master_cmd = [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                      "--port", str(self.spark_port), "--webui-port", str(free_port())]  # fmt: skip
        # No REST submission server: it would take the fixed port 6066.
        master_env = {**env, "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
        proc, log = self._spawn("spark-master", master_cmd, master_env)
        _wait_port(self.spark_port, proc, log)
        for k in range(workers):
            work = self.root / f"spark-worker-{k}"
            work.mkdir(parents=True, exist_ok=True)
            cmd = [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores),
                   "--memory", memory, "--work-dir", str(work), "--webui-port", str(free_port()),
                   self.master]  # fmt: skip
            self._spawn(f"spark-worker-{k}", cmd, env)
        self._wait_workers(workers, log)

    def _wait_workers(self, workers: int, master_log: Path, timeout: float = 120.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            registered = master_log.read_text(errors="replace").count("Registering worker")
            if registered >= workers:
                return
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise ServiceError(
                        f"{name} exited with {proc.returncode}:\n{_tail(self.root / 'logs' / f'{name}.log')}"
                    )
            time.sleep(0.3)
        raise ServiceError(f"only some of {workers} workers registered:\n{_tail(master_log)}")

    # ---- S3 --------------------------------------------------------------------------------
    def start_s3(self) -> None:
        """moto's S3 server and the lake's bucket."""
        self.s3_port = free_port()
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        if binary is None:
            raise ServiceError("moto_server not found (pip install 'moto[server]')")
        proc, log = self._spawn("moto", [binary, "-H", "127.0.0.1", "-p", str(self.s3_port)], base_env())
        _wait_port(self.s3_port, proc, log)
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name=S3_ENV["AWS_REGION"],
                          aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        deadline = time.time() + 60
        while True:  # the port opens a moment before the app answers
            try:
                s3.create_bucket(Bucket=BUCKET)
                return
            except Exception as exc:  # noqa: BLE001 - botocore's connection errors, retried until the deadline
                if time.time() > deadline or proc.poll() is not None:
                    raise ServiceError(f"moto did not create the bucket: {exc}\n{_tail(log)}") from exc
                time.sleep(0.5)

    def s3_keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in the lake's bucket."""
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name=S3_ENV["AWS_REGION"],
                          aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    # ---- Redis + Postgres (Celery) ---------------------------------------------------------
    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server not installed (.ci/run installs it)")
        self.redis_port = free_port()
        cmd = [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        proc, log = self._spawn("redis", cmd, base_env())
        _wait_port(self.redis_port, proc, log)

    def start_postgres(self) -> None:
        from tests.cluster import postgres

        try:
            self.postgres = postgres.start()
        except postgres.PostgresUnavailable as exc:
            raise ServiceError(str(exc)) from exc
        self.postgres.create_database("airflow")

    # ---- teardown --------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every process started here (its whole process group), then Postgres."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        self.procs.clear()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            return resp.status < 500
    except OSError:
        return False


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 0

"""Warm an ``airflow celery worker`` once, before it forks its task processes (opt-in).

Airflow 3's Celery worker runs a task as: the worker's pool process -> ``supervise()`` ->
``os.fork()`` -> the task runner. Every task process is a fork, so whatever the worker holds
before the fork is already in it. Without this, each task process imports the stages
(GX, torch, MLflow, Feast, pyspark: ~25 s of CPU on a quiet core) and starts its own Spark
application (a driver JVM, executors on the workers, Ivy jars shipped: ~30-60 s) before its
first line of work: 124-170 s per Spark task on the loopback cluster at load 7.

``ONEREC_WORKER_PRELOAD`` (read by ``airflow_local_settings.py`` in every Airflow process; acted
on only by ``airflow celery worker``, at Celery's ``worker_init``, in its main process before the
pool forks):

* ``imports``: import every module of ``jobs``, ``expectations``, ``models`` and ``features``.
* ``spark``: the same, then start the Spark session of ``load_settings()`` (``ONEREC_CONFIG``,
  ``ONEREC__SECTION__KEY`` variables, ``ONEREC_HOME``): one driver for the worker's lifetime,
  which every task process forked later uses through its own py4j connection. Only with one
  task at a time (``--concurrency 1``): tasks share the session's SQL conf (``jobs.delta``'s
  commit tags), as they do in one ``dag.test()`` process. With more, only the imports.

A task whose run conf asks for another master or other packages than the warm session is
refused by ``jobs.spark.check_session`` (as in any process with a session), never silently
served by the wrong cluster. Nothing here runs unless the variable is set.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import threading
import time
from collections import deque

log = logging.getLogger(__name__)

ENV = "ONEREC_WORKER_PRELOAD"
PACKAGES = ("jobs", "expectations", "models", "features")
# Entry points / UIs, not imported by any stage.
SKIP = ("jobs.cli", "jobs.mlflow_ui", "jobs.loaders.__main__", "jobs.worker_preload")

# What a forked child must keep referenced: the parent's py4j connections. Dropping them would run
# their __del__, which shuts the (shared) socket down under the parent and its next children.
_INHERITED: list = []


def install() -> None:
    """Hook :func:`on_worker_init` to Celery's ``worker_init`` when ``ONEREC_WORKER_PRELOAD`` is set."""
    if os.environ.get(ENV, "") not in ("imports", "spark"):
        return
    from celery.signals import worker_init

    worker_init.connect(on_worker_init, weak=False)


def on_worker_init(sender=None, **_kwargs) -> None:
    """Celery's ``worker_init`` (main process, before the pool): imports, then maybe the shared session."""
    mode = os.environ.get(ENV, "")
    concurrency = getattr(sender, "concurrency", 1)
    preload(spark=mode == "spark" and concurrency == 1)
    if mode == "spark" and concurrency != 1:
        log.warning("%s=spark needs --concurrency 1 (tasks share the session); imports only", ENV)


def preload(spark: bool) -> dict:
    """Import the stage modules; with ``spark`` start the session forked tasks will share. Timings."""
    t0 = time.time()
    failed = import_stage_modules()
    out = {"imports_s": round(time.time() - t0, 1), "import_failures": failed}
    if spark:
        from conf.settings import load_settings
        from jobs.spark import get_spark

        t1 = time.time()
        session = get_spark(load_settings())
        share_with_forks()
        out["spark_s"] = round(time.time() - t1, 1)
        out["master"] = session.sparkContext.master
    log.info("worker preload: %s", out)
    return out


def import_stage_modules() -> dict[str, str]:
    """Import every module of :data:`PACKAGES` (except :data:`SKIP`); ``{module: error}`` of those that fail."""
    failed: dict[str, str] = {}
    for package in PACKAGES:
        try:
            pkg = importlib.import_module(package)
        except Exception as exc:  # noqa: BLE001 - a preload never stops the worker; the task would report it
            failed[package] = repr(exc)
            continue
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            if info.name.startswith(SKIP):
                continue
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # noqa: BLE001
                failed[info.name] = repr(exc)
    if failed:
        log.warning("worker preload: not imported %s", failed)
    return failed


def share_with_forks() -> None:
    """Let every process forked from now on use this process's Spark driver through its own connection.

    A fork inherits the py4j client with the parent's open sockets. Two processes reading one
    socket would mix their answers, and a task killed in the middle of a call would leave an
    answer behind for the next one, so each child opens its own connection (a new thread on
    the JVM side) and makes the session active on it. The child also stops py4j from deleting
    the parent's Java objects when it drops its copies of them (the parent and its later
    children still use them); the objects the child creates are collected as usual.
    """
    os.register_at_fork(after_in_child=_reconnect_in_child)


def _reconnect_in_child() -> None:
    try:
        from py4j.finalizer import ThreadSafeFinalizer
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        sc = SparkContext._active_spark_context
        if sc is None or sc._gateway is None:
            return
        gateway = sc._gateway
        client = gateway._gateway_client
        _INHERITED.append((client.deque, client.thread_connection))
        client.deque = deque()
        client.thread_connection = threading.local()
        # The weak references whose callbacks would tell the JVM to drop the parent's objects.
        ThreadSafeFinalizer.finalizers.clear()
        if hasattr(gateway, "_create_finalizer_worker"):  # ClientServer: a thread sends the deletions
            client.finalizer_deque = gateway._create_finalizer_worker()
        session = SparkSession._instantiatedSession
        if session is not None:
            SparkSession._get_j_spark_session_class(sc._jvm).setActiveSession(session._jsparkSession)
    except Exception:  # noqa: BLE001 - an at-fork hook must not raise; the task then starts its own session
        log.exception("worker preload: could not attach the forked process to the shared Spark session")

"""Airflow's local-settings hook: every Airflow process imports it at start-up (it is on PYTHONPATH).

Two things, both inert unless their condition holds:

1. A compatibility shim. ``apache-airflow-providers-celery`` 3.26.0 (the
CeleryExecutor and ``airflow celery worker``) does ``from celery.backends.database import
retry``, a decorator that celery 5.7 removed (its DatabaseBackend now retries by itself), so
with the resolved celery 5.7.0 the scheduler and the worker fail on import. Until the
provider drops the import (or requirements pin ``celery<5.7``), the old decorator is put
back, only where the CeleryExecutor is configured and only if celery lacks it.
2. ``ONEREC_WORKER_PRELOAD`` (``imports`` or ``spark``): an ``airflow celery worker`` imports the
   stages, and may start the Spark session, once before it forks its task processes
   (``jobs/worker_preload.py``; tests/cluster/celery_day.py sets it).
"""

from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger(__name__)


def _restore_celery_database_retry() -> None:
    if "celery" not in os.environ.get("AIRFLOW__CORE__EXECUTOR", "").lower():
        return
    try:
        import celery.backends.database as database
    except ImportError:
        return
    if hasattr(database, "retry"):
        return
    from sqlalchemy.exc import DatabaseError, InvalidRequestError
    from sqlalchemy.orm.exc import StaleDataError

    def retry(fun):
        """celery 5.6's ``celery.backends.database.retry``: up to ``max_retries`` (3) tries on DB errors."""

        @functools.wraps(fun)
        def _inner(*args, **kwargs):
            max_retries = kwargs.pop("max_retries", 3)
            for attempt in range(max_retries):
                try:
                    return fun(*args, **kwargs)
                except (DatabaseError, InvalidRequestError, StaleDataError):
                    log.warning("%s failed; %d retries left", fun.__name__, max_retries - attempt - 1, exc_info=True)
                    if attempt + 1 >= max_retries:
                        raise
            return None

        return _inner

    database.retry = retry


_restore_celery_database_retry()

if os.environ.get("ONEREC_WORKER_PRELOAD"):
    from jobs import worker_preload

    worker_preload.install()

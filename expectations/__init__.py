"""Data-quality contracts for the lake tables, written as Great Expectations 1.x code.

* :mod:`expectations.derived`  -- helper columns (array lengths, ordering flags) GX cannot express natively
* :mod:`expectations.suites`   -- one suite per table, generated from ``jobs.schemas`` and the ``TableSpec``
* :mod:`expectations.context`  -- the file-mode GX context under ``<home>/gx`` and its Data Docs site
* :mod:`expectations.report`   -- the plain-Python outcome (:class:`ValidationReport`, :class:`DataQualityError`)
* :mod:`expectations.validate` -- read a partition, run its checkpoint, raise on critical failures (and the CLI)

Nothing here imports Great Expectations at module import time: Airflow parses DAG
files that import this package, and ``import great_expectations`` takes seconds.
"""

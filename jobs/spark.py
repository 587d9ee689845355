"""The only Spark session factory of the project.

The session is created once per process (Airflow's in-process ``dags test``,
pytest, a CLI) and reused: Spark takes seconds to start, and the Delta jars must
be on ``spark.jars.packages`` before the first SparkContext exists.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from conf.settings import Settings

log = logging.getLogger(__name__)


def get_spark(cfg: Settings):  # -> pyspark.sql.SparkSession
    """Return the process's Spark session, building it from ``cfg.spark`` on first use."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Python workers must be this interpreter (the venv's pandas/pyarrow/torch), not
    # whatever `python3` is first on PATH. A cluster sets its own in extra_conf.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    home = cfg.home_path
    local_dir = home / "spark" / "tmp"
    local_dir.mkdir(parents=True, exist_ok=True)
    ivy = Path(os.path.expanduser(cfg.spark.ivy_dir))
    ivy.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.master(cfg.spark.master)
        .appName(cfg.spark.app_name)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        .config("spark.driver.memory", cfg.spark.driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.jars.ivy", str(ivy))
        .config("spark.local.dir", str(local_dir))
        .config("spark.sql.warehouse.dir", str(home / "spark" / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={home / 'spark'}")
        # Deletion vectors let MERGE mark changed rows instead of rewriting whole files,
        # which keeps the daily sequence update proportional to the day's events.
        .config("spark.databricks.delta.properties.defaults.enableDeletionVectors", "true")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        # Delta replays its log with 50 partitions by default: pure overhead on small tables.
        .config("spark.databricks.delta.snapshotPartitions", str(max(1, cfg.spark.shuffle_partitions)))
        .config("spark.default.parallelism", str(max(1, cfg.spark.shuffle_partitions)))
    )
    for key, value in cfg.spark.extra_conf.items():
        builder = builder.config(key, value)
    spark = configure_spark_with_delta_pip(builder, extra_packages=list(cfg.spark.extra_packages)).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session started: master=%s version=%s", cfg.spark.master, spark.version)
    return spark

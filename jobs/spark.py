"""The only Spark session factory of the project.

The session is created once per process (Airflow's in-process ``dags test``,
pytest, a CLI) and reused: Spark takes seconds to start, and the Delta jars must
be on ``spark.jars.packages`` before the first SparkContext exists. A session that
cannot serve the config (another cluster, or without the jars the config needs, such
as hadoop-aws for an ``s3a://`` lake) is refused with the reason, never reused silently.
"""

from __future__ import annotations

import hashlib
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
        check_session(active, cfg)
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
        # The change data feed lets validation read the rows a day's run wrote to a table that
        # is not partitioned by day (user_state, items, item_embeddings) instead of the table.
        .config("spark.databricks.delta.properties.defaults.enableChangeDataFeed", "true")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        # Delta replays its log with 50 partitions by default: pure overhead on small tables.
        .config("spark.databricks.delta.snapshotPartitions", str(max(1, cfg.spark.shuffle_partitions)))
        .config("spark.default.parallelism", str(max(1, cfg.spark.shuffle_partitions)))
        # VACUUM lists the table's folders in a job of this many tasks (Spark's default 10,000):
        # 93 s of empty tasks per table on local[2] against 3.9 s at 4 (one small table, load ~5).
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", str(max(1, cfg.spark.shuffle_partitions)))
    )
    for key, value in cfg.spark.extra_conf.items():
        builder = builder.config(key, value)
    builder = configure_spark_with_delta_pip(builder, extra_packages=list(cfg.spark.extra_packages))
    packages = builder._options.get("spark.jars.packages", "")  # what delta-pip asked for, + ours
    builder = builder.config(PACKAGES_KEY, packages)
    cache = _jar_list(ivy, packages, cfg.spark.extra_conf.get("spark.jars.excludes", ""))
    jars = _cached_jars(cache)
    if jars:  # resolved before: skip Ivy (seconds per process; every Celery task starts a driver)
        builder._options.pop("spark.jars.packages", None)
        builder = builder.config("spark.jars", ",".join(jars))
    spark = builder.getOrCreate()
    if not jars:
        _save_jars(cache, spark.sparkContext.getConf().get("spark.jars", ""))
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session started: master=%s version=%s", cfg.spark.master, spark.version)
    return spark


# The packages a session was built for, whether Ivy resolved them or the cached jar list served them.
PACKAGES_KEY = "spark.onerec.packages"


def _jar_list(ivy: Path, packages: str, excludes: str) -> Path:
    key = hashlib.sha256(f"{packages}|{excludes}".encode()).hexdigest()[:16]
    return ivy / "onerec-jars" / f"{key}.txt"


def _cached_jars(cache: Path) -> list[str]:
    """The jar files Ivy resolved for these packages before, if every one is still there."""
    if not cache.is_file():
        return []
    jars = [line.strip() for line in cache.read_text().splitlines() if line.strip()]
    if not jars or not all(Path(j.removeprefix("file://")).is_file() for j in jars):
        return []
    return jars


def _save_jars(cache: Path, jars: str) -> None:
    files = [j for j in jars.split(",") if j.startswith("file:")]
    if not files:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text("\n".join(files) + "\n")
    os.replace(tmp, cache)  # atomic: processes starting at once never read half a list


class SparkSessionMismatch(RuntimeError):
    """The process already runs a Spark session that cannot serve this config."""


def _is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def check_session(spark, cfg: Settings) -> None:
    """Raise :class:`SparkSessionMismatch` when ``spark`` can't serve ``cfg``; warn on lesser differences.

    A SparkContext's master and jars are fixed when it starts, so a session on another
    master (a ``spark://`` cluster vs ``local[N]``) or without the config's packages would
    run the job somewhere else or fail later on a missing class. Two ``local[N]`` masters
    only differ in parallelism (same results), and other ``extra_conf`` values may be
    runtime settings: those are logged, not refused.
    """
    conf = spark.sparkContext.getConf()
    have = conf.get("spark.master", "")
    want = cfg.spark.master
    if have != want:
        if not (_is_local(have) and _is_local(want)):
            raise SparkSessionMismatch(
                f"this process already runs a Spark session on master {have!r}, but the config asks for {want!r}; "
                "a SparkContext cannot change its master: run the config in its own process (or stop the session)"
            )
        log.warning("reusing the active Spark session on %s although the config asks for %s", have, want)
    packages = conf.get(PACKAGES_KEY, None) or conf.get("spark.jars.packages", "") or ""
    loaded = {p.strip() for p in packages.split(",") if p.strip()}
    missing = [p for p in cfg.spark.extra_packages if p not in loaded]
    if missing:
        raise SparkSessionMismatch(
            f"the active Spark session was started without {missing} (it has {sorted(loaded)}); "
            "packages load only when the SparkContext starts: run the config in its own process"
        )
    differ = [k for k, v in cfg.spark.extra_conf.items() if conf.get(k, None) != str(v)]
    if differ:
        log.warning("reusing the active Spark session whose %s differ from the config's extra_conf", differ)

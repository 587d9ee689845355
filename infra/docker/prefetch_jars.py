"""Image build step: fetch the Spark jars once, so no driver needs Maven Central at run time.

1. Resolves the Delta Lake packages that ``jobs/spark.py`` puts on ``spark.jars.packages``
   (``configure_spark_with_delta_pip``) into the Ivy cache it uses (``spark.ivy_dir`` of
   ``conf/settings.py``); a later resolution of the same coordinates is served from it.
2. Resolves ``org.apache.hadoop:hadoop-aws`` at the Hadoop version pyspark bundles and copies
   it, with the AWS SDK bundle, into ``$SPARK_HOME/jars``: the ``s3a://`` lake of
   ``conf/cluster.yaml`` needs ``S3AFileSystem`` on the driver *and* executor classpath,
   and ``jobs/spark.py`` has no way to add packages of its own.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

# The Ivy cache of jobs/spark.py: conf.settings.SparkSettings.ivy_dir (a test keeps them equal).
IVY_DIR = "~/.cache/onerec/ivy"
# Jars (Ivy file names "<org>_<artifact>-<version>.jar") that S3A needs besides Spark's own.
S3A_JARS = ("org.apache.hadoop_hadoop-aws-", "software.amazon.awssdk_bundle-", "org.wildfly.openssl_wildfly-openssl-")


def hadoop_version(spark_home: Path) -> str:
    for jar in sorted((spark_home / "jars").glob("hadoop-client-api-*.jar")):
        match = re.fullmatch(r"hadoop-client-api-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    raise SystemExit(f"no hadoop-client-api jar under {spark_home}/jars")


def main() -> None:
    import pyspark
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    spark_home = Path(os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__))
    ivy = Path(os.path.expanduser(IVY_DIR))
    ivy.mkdir(parents=True, exist_ok=True)
    hv = hadoop_version(spark_home)
    builder = (
        SparkSession.builder.master("local[1]")
        .appName("prefetch-jars")
        .config("spark.jars.ivy", str(ivy))
        .config("spark.ui.enabled", "false")
    )
    spark = configure_spark_with_delta_pip(builder, extra_packages=[f"org.apache.hadoop:hadoop-aws:{hv}"]).getOrCreate()
    print("spark", spark.version, "hadoop", hv, "ivy", ivy)
    spark.stop()
    copied = []
    for jar in sorted((ivy / "jars").glob("*.jar")):
        if jar.name.startswith(S3A_JARS):
            shutil.copy2(jar, spark_home / "jars" / jar.name)
            copied.append(jar.name)
    if not any(name.startswith(S3A_JARS[0]) for name in copied):
        raise SystemExit(f"hadoop-aws {hv} was not resolved into {ivy}/jars")
    print("added to", spark_home / "jars", ":", ", ".join(copied))


if __name__ == "__main__":
    main()

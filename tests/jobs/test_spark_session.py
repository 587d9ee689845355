"""get_spark honours the config: an active session that cannot serve it is refused; delta-rs gets the lake's S3 options."""

import json

import pytest

from conf import load_settings
from jobs.spark import SparkSessionMismatch, check_session, get_spark


def test_the_active_session_is_reused_for_the_same_master(spark, tiny_cfg):
    assert get_spark(tiny_cfg) is spark


def test_a_local_session_is_not_reused_for_a_cluster_master(spark, tiny_cfg):
    cluster = tiny_cfg.model_copy(update={"spark": tiny_cfg.spark.model_copy(update={"master": "spark://h:7077"})})
    with pytest.raises(SparkSessionMismatch, match=r"master 'local\[1\]'.*'spark://h:7077'"):
        get_spark(cluster)


def test_a_session_without_the_configs_packages_is_refused(spark, tiny_cfg):
    pkgs = ("org.apache.hadoop:hadoop-aws:3.5.0",)
    s3 = tiny_cfg.model_copy(update={"spark": tiny_cfg.spark.model_copy(update={"extra_packages": pkgs})})
    with pytest.raises(SparkSessionMismatch, match="hadoop-aws"):
        check_session(spark, s3)


def test_another_local_parallelism_is_reused_with_a_warning(spark, tiny_cfg, caplog):
    other = tiny_cfg.model_copy(update={"spark": tiny_cfg.spark.model_copy(update={"master": "local[2]"})})
    assert get_spark(other) is spark
    assert "local[2]" in caplog.text


def test_storage_options_follow_the_s3a_settings():
    s3a = {
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
    }
    cfg = load_settings("cluster-loopback", [f"spark.extra_conf={json.dumps(s3a)}"])
    options = cfg.lake_storage_options()
    assert options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert options["AWS_ALLOW_HTTP"] == "true" and options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "false"
    assert options["AWS_REGION"] == "eu-west-1"
    assert not any("SECRET" in k or "KEY_ID" in k for k in options), "credentials come from the environment"


def test_a_local_lake_needs_no_storage_options():
    assert load_settings("tiny").lake_storage_options() is None
    assert load_settings("cluster").lake_storage_options() == {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}

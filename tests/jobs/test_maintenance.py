"""jobs/maintenance.py on a small table: fewer files, no deletion vectors left, same rows; VACUUM keeps
what the retention asks for."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from pyspark.sql import functions as F

from jobs import delta, maintenance

DS = date(2026, 10, 7)


def _state_table(spark, cfg) -> str:
    """user_items written in six appends (six+ files) and then MERGEd (deletion vectors)."""
    path = cfg.table_path("user_items")
    for k in range(6):
        rows = [(f"i{k}-{j}", f"u{j}", date(2026, 10, 1)) for j in range(20)]
        df = spark.createDataFrame(rows, "item_id string, user_id string, first_date date")
        df.write.format("delta").mode("append").save(path)
    update = spark.createDataFrame(
        [("i0-1", "u1", date(2026, 9, 1))], "item_id string, user_id string, first_date date"
    )
    delta.merge_upsert(spark, update, path, ["item_id", "user_id"])
    return path


def _rows(spark, path):
    return sorted(tuple(r) for r in delta.read(spark, path).collect())


def test_optimize_compacts_purges_and_keeps_the_rows_vacuum_respects_retention(spark, lake_cfg):
    path = _state_table(spark, lake_cfg)
    rows, files = _rows(spark, path), maintenance.detail(spark, path)["files"]
    assert files >= 7
    report = maintenance.run(lake_cfg, DS, spark, tables=["user_items", "user_state"])

    (fig, absent) = report["tables"]
    assert absent == {"table": "user_state", "skipped": "does not exist"}
    assert fig["files_before"] == files and fig["files_after"] == 1 < files
    assert fig["zorder_by"] == ["item_id", "user_id"]
    assert _rows(spark, path) == rows
    # no deletion vectors left in the live files
    assert spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["numFiles"] == 1
    live = delta.read(spark, path).select(F.input_file_name()).distinct().count()
    assert live == 1
    # default retention (7 days): the replaced files stay, the old version is still readable
    assert fig["stored_files_after"] == fig["stored_files_before"] + fig["optimize_files_added"] > 1
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 20
    # Delta 4 ignores VACUUM RETAIN n HOURS (n > 0): the table property carries the retention
    props = maintenance.table_properties(spark, path)
    assert props[maintenance.FILE_RETENTION] == "interval 168 hours"
    assert maintenance.LOG_RETENTION not in props  # Delta's 30 days already cover a week
    assert fig["retention_set"] == {maintenance.FILE_RETENTION: "interval 168 hours"}
    version = spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first()["version"]
    rerun = maintenance.run(lake_cfg, DS, spark, tables=["user_items"])["tables"][0]
    assert rerun["retention_set"] == {}  # idempotent: no ALTER when the property already says it
    ops = [
        r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").where(f"version > {version}").collect()
    ]
    assert "SET TBLPROPERTIES" not in ops and _rows(spark, path) == rows
    # a day replayed after maintenance (MERGE on the keys) still lands, the property stays
    again_rows = spark.createDataFrame(
        [("i0-1", "u1", date(2026, 9, 1))], "item_id string, user_id string, first_date date"
    )
    delta.merge_upsert(spark, again_rows, path, ["item_id", "user_id"])
    assert _rows(spark, path) == rows
    assert maintenance.table_properties(spark, path)[maintenance.FILE_RETENTION] == "interval 168 hours"
    saved = json.loads(
        (Path(lake_cfg.resolve(lake_cfg.reports_dir)) / "runs" / DS.isoformat() / "maintenance.json").read_text()
    )
    assert saved["tables"][0]["files_after"] == 1

    # zero retention: only the live file stays on disk; the content is still the same
    zero = lake_cfg.model_copy(
        update={"maintenance": lake_cfg.maintenance.model_copy(update={"vacuum_retention_hours": 0.0})}
    )
    again = maintenance.run(zero, DS, spark, tables=["user_items"])["tables"][0]
    assert again["stored_files_after"] == again["files_after"] == 1
    assert again["retention_set"] == {maintenance.FILE_RETENTION: "interval 0 hours"}
    assert maintenance.table_properties(spark, path)[maintenance.FILE_RETENTION] == "interval 0 hours"
    assert _rows(spark, path) == rows
    assert spark.conf.get(maintenance.RETENTION_CHECK) != "false"  # the safety check is back on


def test_retention_properties_follow_the_config():
    assert maintenance.interval(168.0) == "interval 168 hours"
    assert maintenance.interval(0) == "interval 0 hours"
    assert maintenance.interval(1.5) == "interval 5400 seconds"
    assert maintenance.retention_properties(24) == {maintenance.FILE_RETENTION: "interval 24 hours"}
    # longer than the log's 30 days: the log is kept as long as the files (time travel needs both)
    assert maintenance.retention_properties(2160) == {
        maintenance.FILE_RETENTION: "interval 2160 hours",
        maintenance.LOG_RETENTION: "interval 2160 hours",
    }


def test_user_state_keeps_each_users_latest_row_and_the_same_current_states(spark, lake_cfg):
    """user_state appends a row per user and active day; maintenance deletes the superseded ones."""
    from jobs.user_history import build_chunks, current_state, states_by_day
    from tests.jobs.test_sequences import RULE, _events

    path = lake_cfg.table_path("user_state")
    states = states_by_day(build_chunks(_events(spark), RULE), 3, 2).localCheckpoint()
    delta.overwrite(states, path, lake_cfg.table("user_state").partition_by)
    rows, users = states.count(), states.select("user_id").distinct().count()
    assert rows > users  # users active on several days
    want = sorted(map(str, current_state(states).collect()))

    fig = maintenance.run(lake_cfg, DS, spark, tables=["user_state"])["tables"][0]

    after = delta.read(spark, path)
    assert fig["superseded_rows_deleted"] == rows - users and fig["partitions"] == "all"
    assert after.count() == users and sorted(map(str, after.select(*states.columns).collect())) == want
    assert maintenance.run(lake_cfg, DS, spark, tables=["user_state"])["tables"][0]["superseded_rows_deleted"] == 0

"""GX suites run as checkpoints on small Delta tables written here.

Each test writes only the table it needs under its own ``lake_cfg`` home, so the
GX context, Data Docs and lake are fresh per test. Broken fixtures break exactly
one invariant and the tests assert that exactly that expectation is critical,
which also proves the other rules raise no false alarms on well-formed rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs import delta, schemas

DS = date(2026, 10, 3)
T0 = datetime(2026, 10, 3, 8, 0, 0)


def _write(spark, cfg, table: str, rows: list[dict[str, Any]]) -> None:
    df = spark.createDataFrame(rows, getattr(schemas, table.upper()))
    delta.overwrite(df, cfg.table_path(table), cfg.table(table).partition_by)


def _event(i: int, day: date = DS, **overrides: Any) -> dict[str, Any]:
    row = {
        "event_id": f"e{day:%m%d}-{i}",
        "user_id": f"u{i % 3}",
        "item_id": f"i{i}",
        "ts": datetime.combine(day, T0.time()) + timedelta(minutes=i),
        "rating": 4.0,
        "play_seconds": 30.0,
        "item_duration_seconds": 60.0,
        **{flag: 0 for flag in schemas.FLAG_NAMES},
        "source_file": "events.csv",
        "source_line": i,
        "event_date": day,
    }
    return {**row, **overrides}


def _history_event(minute: int, item: str) -> dict[str, Any]:
    return {
        "ts": T0 + timedelta(minutes=minute),
        "item_id": item,
        "event_date": DS,
        "rating": 5.0,
        "play_seconds": 10.0,
        "item_duration_seconds": 20.0,
        "flags": 1,
        "positive": True,
    }


def _user_features(user: str, n_short: int) -> dict[str, Any]:
    ts = [int(T0.timestamp()) + 60 * k for k in range(n_short)]
    items = [f"i{k}" for k in range(n_short)]
    return {
        "user_id": user,
        "event_timestamp": datetime.combine(DS + timedelta(days=1), datetime.min.time()),
        "n_events": n_short,
        "n_positive": 1,
        "active_days": 1,
        "tenure_days": 0,
        "attributes": {"age": "30"},
        "short_item_ids": items,
        "short_ts": ts,
        "short_rating": [4.0] * n_short,
        "short_play_seconds": [10.0] * n_short,
        "short_duration_seconds": [20.0] * n_short,
        "short_flags": [0] * n_short,
        "positive_item_ids": items[:1],
        "positive_ts": ts[:1],
        "ds": DS,
    }


def _critical_columns(err) -> set[str]:
    return {f["column"] for f in err.value.report.critical}


@pytest.fixture
def validate():
    from expectations.validate import validate as run

    return run


# ---- suites (no Spark) -------------------------------------------------------


def test_every_table_has_a_tagged_suite_matching_its_schema(tiny_cfg):
    from expectations.derived import derived_columns
    from expectations.suites import SEVERITIES, build_suite

    for table, schema in schemas.BY_TABLE.items():
        suite = build_suite(table, tiny_cfg)
        assert suite.name == f"{tiny_cfg.table(table).layer}_{table}"
        assert all(e.meta["severity"] in SEVERITIES for e in suite.expectations), table
        (column_set,) = [e for e in suite.expectations if e.expectation_type == "expect_table_columns_to_match_set"]
        assert set(column_set.column_set) == {f.name for f in schema} | {d.name for d in derived_columns(table)}
    compound = [
        e for e in build_suite("user_features", tiny_cfg).expectations if "column_list" in e.configuration.kwargs
    ]
    assert [e.column_list for e in compound] == [["user_id", "ds"]]


# ---- events ------------------------------------------------------------------

GOOD, NEGATIVE_PLAY, DUPLICATE_ID, EMPTY = (DS + timedelta(days=k) for k in (0, 1, 2, 9))


@pytest.fixture(scope="module")
def events_cfg(spark, tiny_cfg, tmp_path_factory):
    """One events table, one partition per scenario (like ``lake_cfg``, shared by this module).

    A Delta write costs seconds on a small machine, so the events scenarios share one.
    """
    cfg = tiny_cfg.model_copy(update={"home": str(tmp_path_factory.mktemp("events-lake"))})
    rows = [_event(i, GOOD) for i in range(5)]
    rows += [
        _event(0, NEGATIVE_PLAY),
        _event(1, NEGATIVE_PLAY, play_seconds=-5.0),
        _event(2, NEGATIVE_PLAY, play_seconds=-1.0),
    ]
    rows += [
        _event(0, DUPLICATE_ID),
        _event(1, DUPLICATE_ID),
        _event(2, DUPLICATE_ID, event_id=_event(1, DUPLICATE_ID)["event_id"]),
    ]
    _write(spark, cfg, "events", rows)
    return cfg


def test_good_partition_passes_twice_and_writes_data_docs(spark, events_cfg, validate, capsys):
    from expectations.validate import main

    report = validate(spark, events_cfg, "events", GOOD)
    # Again, through the CLI: stored suite/checkpoint are updated in place, not duplicated.
    code = main(["--table", "events", "--ds", GOOD.isoformat(), "--config", "tiny", "--set", f"home={events_cfg.home}"])

    assert report.success and report.failures == []
    assert report.row_count == 5  # only the ds partition
    assert report.suite == "bronze_events"
    assert code == 0 and "bronze_events ds=2026-10-03: PASSED (5 rows)" in capsys.readouterr().out
    index = Path(events_cfg.resolve(events_cfg.reports_dir)) / "data_docs" / "index.html"
    assert index.is_file() and report.data_docs_path == str(index)
    assert len(list((events_cfg.home_path / "gx" / "checkpoints").iterdir())) == 1


def test_negative_play_seconds_is_a_warning_with_observed_values(spark, events_cfg, validate):
    report = validate(spark, events_cfg, "events", NEGATIVE_PLAY)  # warnings do not raise

    assert not report.success and report.critical == []
    assert report.row_count == 3
    (failure,) = report.failures
    assert failure["severity"] == "warning"
    assert failure["column"] == "play_seconds"
    assert failure["expectation"] == "expect_column_values_to_be_between"
    assert failure["observed"]["unexpected_count"] == 2
    assert sorted(failure["observed"]["partial_unexpected_list"]) == [-5.0, -1.0]
    assert sorted(r["event_id"] for r in failure["observed"]["rows"]) == ["e1004-1", "e1004-2"]


def test_duplicate_event_id_raises(spark, events_cfg, validate):
    from expectations.report import DataQualityError

    with pytest.raises(DataQualityError, match="event_id") as err:
        validate(spark, events_cfg, "events", DUPLICATE_ID)

    message = str(err.value)
    assert message.startswith("bronze_events ds=2026-10-05: column event_id expect_column_values_to_be_unique failed")
    assert _critical_columns(err) == {"event_id"}


def test_empty_partition_is_a_warning(spark, events_cfg, validate):
    report = validate(spark, events_cfg, "events", EMPTY)

    assert report.row_count == 0 and report.critical == []
    assert [f["expectation"] for f in report.failures] == ["expect_table_row_count_to_be_between"]


def test_a_bulk_range_is_validated_as_one_frame(spark, events_cfg, validate):
    """A bulk backfill writes every day of its range in one pass: with ``since`` the checkpoint reads
    the range's partitions, so a broken earlier day fails the validation of the last one."""
    from expectations.report import DataQualityError

    assert validate(spark, events_cfg, "events", EMPTY).row_count == 0  # the last day alone: nothing
    with pytest.raises(DataQualityError, match=r"ds=2026-10-03\.\.2026-10-12: .*event_id") as err:
        validate(spark, events_cfg, "events", EMPTY, since=GOOD)
    assert err.value.report.row_count == 11  # 5 + 3 + 3 rows of the three written days
    assert err.value.report.since == GOOD

    report = validate(spark, events_cfg, "events", NEGATIVE_PLAY, since=GOOD)  # the duplicate's day is after
    assert (report.row_count, len(report.critical), len(report.warnings)) == (8, 0, 1)
    assert report.to_dict()["since"] == GOOD.isoformat()


def test_the_daily_validation_after_a_bulk_pass_covers_its_range(spark, events_cfg):
    """``stages.validate`` on END with the runner's ``bulk`` conf reads START..END; without it, END alone."""
    import json

    from expectations.report import DataQualityError
    from jobs import stages

    conf = {"config": "tiny", "set": [f"home={events_cfg.home}"]}
    assert stages.validate(["events"], EMPTY.isoformat(), conf)["events"]["rows"] == 0
    bulk = {**conf, "bulk": {"start": GOOD.isoformat(), "end": EMPTY.isoformat()}}
    with pytest.raises(DataQualityError, match="event_id"):
        stages.validate(["events"], EMPTY.isoformat(), bulk)
    written = json.loads(next(Path(events_cfg.home, "reports").rglob("validation_events.json")).read_text())
    assert written["events"]["rows"] == 11 and written["events"]["since"] == GOOD.isoformat()


def test_cli_exits_1_on_critical_failure(monkeypatch, capsys):
    import expectations.validate as module
    from expectations.report import DataQualityError, ValidationReport

    failure = {"expectation": "expect_x", "column": "c", "severity": "critical", "observed": {}, "expected": {}}
    report = ValidationReport("events", "bronze_events", DS, False, 1, [failure])

    def broken(*_args, **_kwargs):
        raise DataQualityError(report)

    monkeypatch.setattr(module, "validate", broken)
    monkeypatch.setattr("jobs.spark.get_spark", lambda cfg: None)

    assert module.main(["--table", "events", "--ds", DS.isoformat(), "--config", "tiny"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_stage_keeps_every_verdict_when_a_critical_failure_stops_it(monkeypatch, tmp_path):
    """The stage JSON (what the run summary and report read) is written before the task fails."""
    import json

    import expectations.validate as module
    from expectations.report import DataQualityError, ValidationReport
    from jobs import stages

    warning = {"expectation": "expect_w", "column": "c", "severity": "warning", "observed": {}, "expected": {}}
    critical = {**warning, "expectation": "expect_x", "severity": "critical"}

    def fake(spark, cfg, table, ds, since=None):
        if table == "items":
            raise DataQualityError(ValidationReport("items", "bronze_items", ds, False, 4, [critical, warning]))
        return ValidationReport(table, f"bronze_{table}", ds, False, 3, [warning])

    monkeypatch.setattr(module, "validate", fake)
    monkeypatch.setattr("jobs.spark.get_spark", lambda cfg: None)
    conf = {"config": "tiny", "set": [f"home={tmp_path}"]}
    with pytest.raises(DataQualityError):
        stages.validate(["events", "items", "users"], DS.isoformat(), conf)

    written = json.loads(next((tmp_path / "reports").rglob("validation_events_items_users.json")).read_text())
    assert written == {
        "events": {"success": False, "rows": 3, "failures": 1, "critical": 0, "warnings": 1},
        "items": {"success": False, "rows": 4, "failures": 2, "critical": 1, "warnings": 1},
    }  # users never ran: the critical failure stopped the task


# ---- sequences -----------------------------------------------------------------


def test_short_sequence_over_cap_raises_naming_the_length_column(spark, lake_cfg, validate):
    from expectations.report import DataQualityError

    cap = lake_cfg.sequences.short_term_len
    _write(spark, lake_cfg, "user_features", [_user_features("u1", cap), _user_features("u2", cap + 1)])

    with pytest.raises(DataQualityError, match="_len_short_item_ids") as err:
        validate(spark, lake_cfg, "user_features", DS)

    assert _critical_columns(err) == {"_len_short_item_ids"}
    (failure,) = err.value.report.critical
    assert failure["observed"]["partial_unexpected_list"] == [cap + 1]


def test_unsorted_day_chunk_raises(spark, lake_cfg, validate):
    from expectations.report import DataQualityError

    def chunk(name: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        return {"user_id": name, "event_date": DS, "events": events, "n_events": len(events), "n_positive": 3}

    in_order = [_history_event(1, "a"), _history_event(1, "b"), _history_event(2, "a")]
    swapped = [in_order[1], in_order[0], in_order[2]]  # same ts, item_id out of order
    _write(spark, lake_cfg, "user_events", [chunk("ok", in_order), chunk("bad", swapped)])

    with pytest.raises(DataQualityError, match="_events_sorted") as err:
        validate(spark, lake_cfg, "user_events", DS)

    assert _critical_columns(err) == {"_events_sorted"}
    (failure,) = err.value.report.critical
    assert failure["observed"]["unexpected_count"] == 1
    assert "bad" in str(err.value)  # the failing row's key is named


def test_user_state_with_recent_window_over_its_bound_raises(spark, lake_cfg, validate):
    from expectations.report import DataQualityError
    from jobs.user_history import recent_len

    n = recent_len(lake_cfg)
    day_before = DS - timedelta(days=1)

    def state(name: str, before: int) -> dict[str, Any]:
        old = [{**_history_event(k, f"i{k:04d}"), "ts": T0 - timedelta(days=1, minutes=-k), "event_date": day_before}
               for k in range(before)]  # fmt: skip
        recent = [*old, _history_event(1, "a")]
        return {"user_id": name, "recent": recent, "positives": [], "n_events": before + 1, "n_positive": 0,
                "active_days": 2, "first_date": day_before, "last_date": DS, "first_ts": recent[0]["ts"],
                "last_ts": recent[-1]["ts"]}  # fmt: skip

    _write(spark, lake_cfg, "user_state", [state("ok", n), state("bad", n + 1)])

    with pytest.raises(DataQualityError, match="_recent_before_last") as err:
        validate(spark, lake_cfg, "user_state", DS)

    assert _critical_columns(err) == {"_recent_before_last"}
    assert "bad" in str(err.value)


def test_an_unpartitioned_table_is_validated_on_the_rows_its_day_wrote(spark, lake_cfg, validate):
    """users: day 1 writes a broken (duplicated) user, day 2 MERGEs two other users. Day 2 validates
    its two rows only (passes, row count 2); day 1 still finds its broken rows; untagged writes:
    the whole table."""
    from expectations.report import DataQualityError

    day1, day2 = DS - timedelta(days=1), DS

    def user(name: str, day: date) -> dict[str, Any]:
        return {"user_id": name, "attributes": {"age": "30"}, "content_hash": f"h-{name}-{day}",
                "source_file": "users.csv", "updated_ds": day}  # fmt: skip

    path, schema = lake_cfg.table_path("users"), schemas.USERS
    with delta.commit_tag(spark, delta.day_tag(day1)):
        rows = [user("a", day1), user("broken", day1), user("broken", day1), user("c", day1)]
        delta.overwrite(spark.createDataFrame(rows, schema), path)
    with delta.commit_tag(spark, delta.day_tag(day2)):
        delta.merge_upsert(spark, spark.createDataFrame([user("a", day2), user("d", day2)], schema),
                           path, keys=["user_id"])  # fmt: skip

    report = validate(spark, lake_cfg, "users", day2)
    assert report.success and report.row_count == 2  # a (updated) and d (new), not the 5-row table
    with pytest.raises(DataQualityError, match="broken"):
        validate(spark, lake_cfg, "users", day1)
    assert validate(spark, lake_cfg, "users", DS + timedelta(days=1)).row_count == 0  # wrote nothing

    untagged = lake_cfg.model_copy(update={"home": str(Path(lake_cfg.home) / "untagged")})
    delta.overwrite(spark.createDataFrame([user("a", day1), user("d", day1)], schema),
                    untagged.table_path("users"))  # fmt: skip
    assert validate(spark, untagged, "users", day2).row_count == 2  # whole table


def test_spark_engine_finds_the_same_failures_as_pandas(spark, events_cfg, validate):
    """Large partitions validate on Spark; the verdicts must not depend on the engine."""
    on_spark = events_cfg.model_copy(
        update={"validation": events_cfg.validation.model_copy(update={"engine": "spark"})}
    )
    for cfg, engine in ((events_cfg, "pandas"), (on_spark, "spark")):  # auto: tiny partitions go to pandas
        good = validate(spark, cfg, "events", GOOD)
        warned = validate(spark, cfg, "events", NEGATIVE_PLAY)
        assert good.engine == warned.engine == engine
        assert good.success and good.row_count == 5
        assert [(f["column"], f["severity"]) for f in warned.failures] == [("play_seconds", "warning")]
        assert sorted(warned.failures[0]["observed"]["partial_unexpected_list"]) == [-5.0, -1.0]


def test_pandas_engine_never_collects_above_its_bounds(spark, events_cfg, validate):
    """``engine: pandas`` is honoured only within pandas_max_rows / pandas_max_values; beyond, Spark."""
    v = events_cfg.validation
    forced = events_cfg.model_copy(update={"validation": v.model_copy(update={"engine": "pandas"})})
    assert validate(spark, forced, "events", GOOD).engine == "pandas"
    for bound in ({"pandas_max_rows": 4}, {"pandas_max_values": 5 * 10}):  # 5 rows x 15+ columns > 50
        small = forced.model_copy(update={"validation": forced.validation.model_copy(update=bound)})
        report = validate(spark, small, "events", GOOD)
        assert report.engine == "spark" and report.success and report.row_count == 5

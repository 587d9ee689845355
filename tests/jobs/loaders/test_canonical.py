"""The canonical loader: CSV / JSON lines / parquet, day folders, items and users."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

import pytest

from jobs.loaders import get_loader
from jobs.raw_contract import INTERACTION_FIELDS, ITEM_FIELDS, USER_FIELDS, raw_schema

from .conftest import collect, write

BASE = date(2020, 1, 1)
HEADER = "user_id,item_id,timestamp,rating,like"


@pytest.fixture(scope="module")
def loader():
    return get_loader("canonical")


def test_csv_rows_quotes_and_wrong_field_count(spark, tmp_path, loader):
    path = write(
        tmp_path / "interactions" / "part-0.csv",
        f"{HEADER}\n"
        "u1,i1,2026-10-01T10:00:00Z,4,1\n"
        'u2,"i,2",1790856000,,0\n'  # quoted separator; empty rating
        "\n"  # blank line 4: not a record, but it is counted
        "u3,i3\n"
        '"u""4",i4,1790856000000,5,1,extra\n',
    )
    df = loader.read_events(spark, str(tmp_path), None, BASE)
    assert df.schema == raw_schema(INTERACTION_FIELDS)
    rows = collect(df)
    assert [r["source_line"] for r in rows] == [2, 3, 5, 6]
    assert {r["source_file"] for r in rows} == {str(path)}
    assert [(r["user_id"], r["item_id"], r["timestamp"], r["rating"], r["like"]) for r in rows] == [
        ("u1", "i1", "2026-10-01T10:00:00Z", "4", "1"),
        ("u2", "i,2", "1790856000", None, "0"),
        ("u3", "i3", None, None, None),
        ('u"4', "i4", "1790856000000", "5", "1"),
    ]
    assert [r["schema_error"] for r in rows] == [
        None,
        None,
        "line has 2 fields, expected 5",
        "line has 6 fields, expected 5",
    ]
    assert rows[1]["raw"] == 'u2,"i,2",1790856000,,0'
    assert rows[0]["play_seconds"] is None  # a column the file does not have


def test_csv_schema_drift_keeps_every_row(spark, tmp_path, loader, caplog):
    good = write(tmp_path / "interactions" / "a.csv", "user_id,item_id,timestamp\nu1,i1,1\n")
    drift = write(tmp_path / "interactions" / "b.csv", "user_id,item_id,ts,colour\nu1,i1,1,red\nu2,i2,2,blue\nu3\n")
    with caplog.at_level(logging.WARNING, logger="jobs.loaders"):
        rows = collect(loader.read_events(spark, str(tmp_path), None, BASE))
    assert len(rows) == 4
    assert rows[0]["source_file"] == str(good) and rows[0]["schema_error"] is None
    message = f"schema drift: missing column timestamp in {drift}"
    assert [(r["source_line"], r["schema_error"]) for r in rows[1:]] == [(2, message), (3, message), (4, message)]
    assert [r["user_id"] for r in rows[1:]] == ["u1", "u2", "u3"]
    assert "ts, colour" in caplog.text and str(drift) in caplog.text


def test_jsonl_non_object_lines_are_kept(spark, tmp_path, loader):
    lines = [
        '{"user_id": "u1", "item_id": 7, "timestamp": 1790856000, "like": true, "colour": "red"}',
        "[1, 2]",
        "not json at all",
        "",
        '{"user_id": "u2", "item_id": "i2", "timestamp": "2026-10-01T00:00:00Z", "rating": 4.5}',
        "null",
    ]
    path = write(tmp_path / "interactions" / "day.jsonl", "\n".join(lines) + "\n")
    df = loader.read_events(spark, str(tmp_path), None, BASE)
    assert df.schema == raw_schema(INTERACTION_FIELDS)
    rows = collect(df)
    assert [(r["source_line"], r["schema_error"]) for r in rows] == [
        (1, None),
        (2, "line is not a JSON object"),
        (3, "line is not a JSON object"),
        (5, None),
        (6, "line is not a JSON object"),
    ]
    # JSON numbers and booleans are passed through as their JSON text.
    assert (rows[0]["item_id"], rows[0]["timestamp"], rows[0]["like"]) == ("7", "1790856000", "true")
    assert rows[3]["rating"] == "4.5"
    assert rows[1]["raw"] == "[1, 2]" and rows[1]["source_file"] == str(path)


def test_json_extension_and_drift(spark, tmp_path, loader):
    path = write(tmp_path / "interactions" / "x.json", '{"user_id": "u1", "timestamp": 1}\n{"user_id": "u2"}\n')
    rows = collect(loader.read_events(spark, str(tmp_path), None, BASE))
    assert [r["schema_error"] for r in rows] == [f"schema drift: missing column item_id in {path}"] * 2


def test_parquet_rows_in_file_order(spark, tmp_path, loader):
    out = tmp_path / "interactions"
    ts = datetime(2026, 10, 1, 12, 30, tzinfo=UTC)
    data = [("u1", "i1", ts, 4.0, 1), ("u2", "i2", ts, None, 0), ("u3", "i3", None, 2.5, 1)]
    frame = spark.createDataFrame(data, "user_id string, item_id string, timestamp timestamp, rating double, like int")
    frame.coalesce(1).write.parquet(str(out))
    (path,) = out.glob("*.parquet")
    df = loader.read_events(spark, str(tmp_path), None, BASE)
    assert df.schema == raw_schema(INTERACTION_FIELDS)
    rows = collect(df)
    assert [(r["source_file"], r["source_line"]) for r in rows] == [(str(path), n) for n in (1, 2, 3)]
    assert [(r["user_id"], r["timestamp"], r["rating"], r["like"]) for r in rows] == [
        ("u1", "2026-10-01T12:30:00.000000Z", "4.0", "1"),
        ("u2", "2026-10-01T12:30:00.000000Z", None, "0"),
        ("u3", None, "2.5", "1"),
    ]
    assert json.loads(rows[1]["raw"]) == {
        "user_id": "u2",
        "item_id": "i2",
        "timestamp": "2026-10-01T12:30:00.000Z",
        "rating": None,
        "like": 0,
    }
    assert all(r["schema_error"] is None for r in rows)


def test_parquet_missing_column_is_drift(spark, tmp_path, loader):
    spark.createDataFrame([("u1", "i1")], "user_id string, item_id string").coalesce(1).write.parquet(
        str(tmp_path / "interactions")
    )
    (row,) = collect(loader.read_events(spark, str(tmp_path), None, BASE))
    assert row["schema_error"].startswith("schema drift: missing column timestamp in ")
    assert row["user_id"] == "u1" and row["source_line"] == 1


def test_unreadable_parquet_becomes_one_row_naming_the_file(spark, tmp_path, loader):
    """A corrupt file is quarantined whole (jobs/loaders/_screen.py) instead of failing the day."""
    path = write(tmp_path / "interactions" / "bad.parquet", "this is not parquet")
    (row,) = collect(loader.read_events(spark, str(tmp_path), None, BASE))
    assert row["source_file"] == str(path) and row["source_line"] == 0 and row["user_id"] is None
    assert row["schema_error"] == "unreadable file: not a parquet file (no PAR1 magic)"
    assert path.exists()


def test_daily_folders_select_one_day(spark, tmp_path, loader, caplog):
    day1 = write(tmp_path / "interactions" / "ds=2026-10-01" / "part-0.csv", f"{HEADER}\nu1,i1,1790812800,,\n")
    day2 = write(
        tmp_path / "interactions" / "ds=2026-10-02" / "part-0.csv",
        f"{HEADER}\nu2,i2,1790899200,,\nu3,i3,1790899201,,\n",
    )
    write(tmp_path / "interactions" / "ds=2026-10-03" / "_SUCCESS", "")  # a day folder with no data
    rows = collect(loader.read_events(spark, str(tmp_path), date(2026, 10, 2), BASE))
    assert [(r["source_file"], r["source_line"], r["user_id"]) for r in rows] == [
        (str(day2), 2, "u2"),
        (str(day2), 3, "u3"),
    ]
    everything = collect(loader.read_events(spark, str(tmp_path), None, BASE))
    assert [r["source_file"] for r in everything] == [str(day1), str(day2), str(day2)]
    with caplog.at_level(logging.WARNING, logger="jobs.loaders"):
        assert loader.read_events(spark, str(tmp_path), date(2026, 10, 9), BASE).count() == 0
    assert "ds=2026-10-09" in caplog.text
    assert loader.event_dates(spark, str(tmp_path), BASE) == [date(2026, 10, 1), date(2026, 10, 2)]


def test_event_dates_from_timestamps(spark, tmp_path, loader):
    write(
        tmp_path / "interactions.csv",
        "user_id,item_id,timestamp\n"
        "u,i,1790812800\n"  # seconds: 2026-10-01
        "u,i,1790899200123\n"  # milliseconds: 2026-10-02
        "u,i,2026-10-05T23:59:59Z\n"
        "u,i,2026-10-05T22:00:00-03:00\n"  # 2026-10-06 in UTC
        "u,i,not a time\n"
        "u,i\n",
    )
    days = loader.event_dates(spark, str(tmp_path), BASE)
    assert days == [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 5), date(2026, 10, 6)]


def test_missing_interactions_raise(spark, tmp_path, loader):
    with pytest.raises(FileNotFoundError, match="interactions"):
        loader.read_events(spark, str(tmp_path), None, BASE)
    assert loader.read_items(spark, str(tmp_path)) is None
    assert loader.read_users(spark, str(tmp_path)) is None


def test_items_jsonl_and_csv(spark, tmp_path, loader):
    jsonl = write(
        tmp_path / "items" / "items.jsonl",
        json.dumps(
            {
                "item_id": "i1",
                "title": "Tea",
                "categories": ["Drinks", "Hot"],
                "attributes": {"brand": "B", "year": 2020},
                "image_path": None,
            }
        )
        + "\n42\n",
    )
    csv = write(
        tmp_path / "items" / "more.csv",
        'item_id,title,categories,attributes,shelf\ni2,"Cake, lemon",Food|Sweet,"{""brand"":""C""}",top\n',
    )
    df = loader.read_items(spark, str(tmp_path))
    assert df.schema == raw_schema(ITEM_FIELDS)
    rows = collect(df)
    assert [(r["source_file"], r["source_line"]) for r in rows] == [(str(jsonl), 1), (str(jsonl), 2), (str(csv), 2)]
    assert (rows[0]["item_id"], rows[0]["title"], rows[0]["image_path"]) == ("i1", "Tea", None)
    assert json.loads(rows[0]["categories"]) == ["Drinks", "Hot"]
    assert json.loads(rows[0]["attributes"]) == {"brand": "B", "year": 2020}
    assert rows[1]["schema_error"] == "line is not a JSON object"
    assert (rows[2]["item_id"], rows[2]["title"], rows[2]["categories"]) == ("i2", "Cake, lemon", "Food|Sweet")
    assert rows[2]["attributes"] == '{"brand":"C"}'


def test_users_csv_and_jsonl_fold_columns_into_attributes(spark, tmp_path, loader):
    write(tmp_path / "users.csv", "user_id,age,gender\nu1,25,F\nu2,,M\n")
    write(tmp_path / "users" / "late.jsonl", '{"user_id": "u3", "age": 31, "region": "EU", "x": null}\n')
    df = loader.read_users(spark, str(tmp_path))
    assert df.schema == raw_schema(USER_FIELDS)
    rows = {r["user_id"]: r for r in collect(df)}
    assert rows["u1"]["attributes"] == '{"age":"25","gender":"F"}'
    assert rows["u2"]["attributes"] == '{"gender":"M"}'
    assert json.loads(rows["u3"]["attributes"]) == {"age": "31", "region": "EU"}
    assert rows["u1"]["source_line"] == 2 and rows["u3"]["source_line"] == 1
    assert all(r["schema_error"] is None for r in rows.values())


def test_users_without_user_id_column(spark, tmp_path, loader):
    path = write(tmp_path / "users.csv", "id,age\n1,25\n")
    (row,) = collect(loader.read_users(spark, str(tmp_path)))
    assert row["schema_error"] == f"schema drift: missing column user_id in {path}"
    assert row["attributes"] == '{"id":"1","age":"25"}'

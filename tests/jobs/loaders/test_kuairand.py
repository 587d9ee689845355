"""KuaiRand: public log columns mapped onto the contract."""

from __future__ import annotations

import json
from datetime import date

from jobs.loaders import get_loader
from jobs.raw_contract import INTERACTION_FIELDS, ITEM_FIELDS, USER_FIELDS, raw_schema

from .conftest import collect, write

BASE = date(2020, 1, 1)
LOG_HEADER = (
    "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,"
    "long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab"
)


def test_kuairand_logs_items_users(spark, tmp_path):
    loader = get_loader("kuairand")
    log = write(
        tmp_path / "data" / "log_standard_4_08_to_4_21_tiny.csv",
        f"{LOG_HEADER}\n"
        "0,3409,20220408,1000,1649383200123,1,1,0,0,1,0,1,12345,30000,0,0,0,0,1\n"
        "0,3410,20220409,900,1649462400000,0,0,0,0,0,1,0,abc,,0,0,0,0,1\n"
        "1,3411,20220409\n",
    )
    events = loader.read_events(spark, str(tmp_path), None, BASE)
    assert events.schema == raw_schema(INTERACTION_FIELDS)
    rows = collect(events)
    assert [r["source_line"] for r in rows] == [2, 3, 4] and rows[0]["source_file"] == str(log)
    fields = ("user_id", "item_id", "timestamp", "play_seconds", "item_duration_seconds", "like", "share", "dislike")
    assert [tuple(r[f] for f in fields) for r in rows] == [
        ("0", "3409", "1649383200123", "12.345", "30.0", "1", "1", "0"),
        ("0", "3410", "1649462400000", "abc", None, "0", "0", "1"),  # non-numeric passes through
        ("1", "3411", None, None, None, None, None, None),
    ]
    assert rows[0]["rating"] is None
    assert [r["schema_error"] for r in rows] == [None, None, "line has 3 fields, expected 19"]
    assert loader.event_dates(spark, str(tmp_path), BASE) == [date(2022, 4, 8), date(2022, 4, 9)]

    write(
        tmp_path / "data" / "video_features_basic_tiny.csv",
        'video_id,author_id,video_type,upload_dt,tag\n3409,77,NORMAL,2022-01-05,"28,11"\n3410,78,AD,2022-01-06,\n',
    )
    items = loader.read_items(spark, str(tmp_path))
    assert items.schema == raw_schema(ITEM_FIELDS)
    rows = collect(items)
    assert [(r["item_id"], r["categories"]) for r in rows] == [("3409", "28,11"), ("3410", None)]
    assert json.loads(rows[0]["attributes"]) == {"author_id": "77", "video_type": "NORMAL", "upload_dt": "2022-01-05"}

    write(
        tmp_path / "data" / "user_features_tiny.csv", "user_id,user_active_degree,follow_user_num\n0,high_active,12\n"
    )
    users = loader.read_users(spark, str(tmp_path))
    assert users.schema == raw_schema(USER_FIELDS)
    (user,) = collect(users)
    assert (user["user_id"], user["attributes"]) == ("0", '{"user_active_degree":"high_active","follow_user_num":"12"}')


def test_kuairand_missing_time_column(spark, tmp_path):
    write(tmp_path / "log_x.csv", "user_id,video_id,play_time_ms\n1,2,3000\n")
    (row,) = collect(get_loader("kuairand").read_events(spark, str(tmp_path), None, BASE))
    assert row["schema_error"] == "missing required column time_ms in header"
    assert (row["user_id"], row["item_id"], row["play_seconds"]) == ("1", "2", "3.0")
    assert get_loader("kuairand").read_items(spark, str(tmp_path)) is None

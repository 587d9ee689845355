"""Amazon sequence and JSON formats: order becomes time, one raw row per interaction."""

from __future__ import annotations

import json
from datetime import date

import pytest

from jobs.loaders import get_loader
from jobs.raw_contract import INTERACTION_FIELDS, ITEM_FIELDS, raw_schema

from .conftest import collect, write

BASE = date(2020, 1, 30)
SEQ = "1 10 11 12\n2 13\n\n3\n4 x 14\n"


def _seq_rows(rows):
    return [(r["source_line"], r["user_id"], r["item_id"], r["timestamp"], r["raw"], r["schema_error"]) for r in rows]


EXPECTED_SEQ = [
    (1, "1", "10", "2020-01-30T00:00:00Z", "line 1 pos 1: 1 10", None),
    (2, "1", "11", "2020-01-31T00:00:00Z", "line 1 pos 2: 1 11", None),
    (3, "1", "12", "2020-02-01T00:00:00Z", "line 1 pos 3: 1 12", None),
    (4, "2", "13", "2020-01-30T00:00:00Z", "line 2 pos 1: 2 13", None),
    (5, "3", None, None, "line 4: 3", "line 4 has no items"),
    (6, "4", "x", "2020-01-30T00:00:00Z", "line 5 pos 1: 4 x", None),  # ingest rejects 'x'
    (7, "4", "14", "2020-01-31T00:00:00Z", "line 5 pos 2: 4 14", None),
]


def test_amazon_seq_order_becomes_time(spark, tmp_path):
    loader = get_loader("amazon_seq")
    path = write(tmp_path / "Beauty.txt", SEQ)
    df = loader.read_events(spark, str(tmp_path), None, BASE)
    assert df.schema == raw_schema(INTERACTION_FIELDS)
    rows = collect(df)
    assert _seq_rows(rows) == EXPECTED_SEQ
    assert {r["source_file"] for r in rows} == {str(path)}
    assert loader.read_items(spark, str(tmp_path)) is None and loader.read_users(spark, str(tmp_path)) is None
    assert loader.event_dates(spark, str(tmp_path), BASE) == [date(2020, 1, 30), date(2020, 1, 31), date(2020, 2, 1)]


def test_amazon_seq_numbering_with_many_splits(spark, tmp_path, small_splits):
    path = write(tmp_path / "seq.txt", SEQ)
    rows = collect(get_loader("amazon_seq").read_events(spark, str(path), None, BASE))  # root may be the file
    assert _seq_rows(rows) == EXPECTED_SEQ


def test_amazon_json_pair(spark, tmp_path):
    loader = get_loader("amazon_json")
    inter = write(tmp_path / "Sci.inter.json", json.dumps({"0": [5, 6, 7], "1": [], "2": [5]}))
    item = write(
        tmp_path / "Sci.item.json",
        json.dumps(
            {
                "5": {"title": "Caliper", "description": "Steel", "brand": "Mitutoyo", "categories": "Ind,Tools"},
                "6": {"title": "Tape", "description": "", "brand": "", "categories": "Ind"},
                "7": "broken",
            },
            indent=2,
        ),
    )
    write(tmp_path / "Sci.index.json", "{}")  # other JSON files are ignored

    df = loader.read_events(spark, str(tmp_path), None, BASE)
    assert df.schema == raw_schema(INTERACTION_FIELDS)
    rows = collect(df)
    assert [
        (r["source_line"], r["user_id"], r["item_id"], r["timestamp"], r["raw"], r["schema_error"]) for r in rows
    ] == [
        (1, "0", "5", "2020-01-30T00:00:00Z", "user 0 pos 1: 0 5", None),
        (2, "0", "6", "2020-01-31T00:00:00Z", "user 0 pos 2: 0 6", None),
        (3, "0", "7", "2020-02-01T00:00:00Z", "user 0 pos 3: 0 7", None),
        (4, "1", None, None, "user 1: []", "user 1 has no items"),
        (5, "2", "5", "2020-01-30T00:00:00Z", "user 2 pos 1: 2 5", None),
    ]
    assert {r["source_file"] for r in rows} == {str(inter)}
    assert loader.event_dates(spark, str(tmp_path), BASE) == [date(2020, 1, 30), date(2020, 1, 31), date(2020, 2, 1)]

    items = loader.read_items(spark, str(tmp_path))
    assert items.schema == raw_schema(ITEM_FIELDS)
    rows = collect(items)
    assert [(r["source_line"], r["item_id"], r["title"], r["categories"], r["attributes"]) for r in rows] == [
        (1, "5", "Caliper", "Ind,Tools", '{"brand":"Mitutoyo"}'),
        (2, "6", "Tape", "Ind", '{"brand":""}'),
        (3, "7", None, None, None),
    ]
    assert rows[0]["description"] == "Steel" and rows[0]["source_file"] == str(item)
    assert rows[2]["schema_error"] == "item entry is not a JSON object"
    assert json.loads(rows[0]["raw"]) == {
        "5": {"title": "Caliper", "description": "Steel", "brand": "Mitutoyo", "categories": "Ind,Tools"}
    }
    assert loader.read_users(spark, str(tmp_path)) is None


def test_amazon_json_unparseable_file_raises(spark, tmp_path):
    path = write(tmp_path / "Bad.inter.json", '{"0": [1, 2')
    with pytest.raises(ValueError, match=str(path)):
        get_loader("amazon_json").read_events(spark, str(tmp_path), None, BASE)
    write(path, "[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        get_loader("amazon_json").read_events(spark, str(tmp_path), None, BASE)

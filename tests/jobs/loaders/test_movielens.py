"""MovieLens: the original GroupLens files and RecBole's atomic copy."""

from __future__ import annotations

import json
from datetime import date

from jobs.loaders import get_loader
from jobs.raw_contract import INTERACTION_FIELDS, ITEM_FIELDS, USER_FIELDS, raw_schema

from .conftest import collect, write

BASE = date(2020, 1, 1)


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def test_movielens_original_files(spark, tmp_path):
    loader = get_loader("movielens")
    data = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\n")
    item = write(
        tmp_path / "u.item",
        # Latin-1 bytes on disk, as in the GroupLens release; genres 3, 4, 5 = Animation, Children's, Comedy.
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{_flags(3, 4, 5)}\n"
        f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{_flags(8)}\n"
        f"3|Broken|01-Jan-1995\n",
        encoding="latin-1",
    )
    write(tmp_path / "u.user", "1|24|M|technician|85711\n2|53|F\n")

    events = loader.read_events(spark, str(tmp_path), None, BASE)
    assert events.schema == raw_schema(INTERACTION_FIELDS)
    rows = collect(events)
    assert [(r["source_line"], r["user_id"], r["item_id"], r["rating"], r["timestamp"]) for r in rows] == [
        (1, "196", "242", "3", "881250949"),
        (2, "186", "302", "3", "891717742"),
        (3, "22", "377", None, None),
    ]
    assert rows[2]["schema_error"] == "line has 2 fields, expected 4"
    assert rows[0]["source_file"] == str(data) and rows[0]["raw"] == "196\t242\t3\t881250949"

    items = loader.read_items(spark, str(tmp_path))
    assert items.schema == raw_schema(ITEM_FIELDS)
    rows = collect(items)
    assert [r["source_line"] for r in rows] == [1, 2, 3] and rows[0]["source_file"] == str(item)
    assert (rows[0]["title"], rows[0]["categories"]) == ("Toy Story (1995)", "Animation|Children's|Comedy")
    assert json.loads(rows[0]["attributes"]) == {
        "release_date": "01-Jan-1995",
        "imdb_url": "http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)",
    }
    assert (rows[1]["title"], rows[1]["categories"]) == ("Misérables, Les (1995)", "Drama")
    assert rows[2]["schema_error"] == "line has 3 fields, expected 24"

    users = loader.read_users(spark, str(tmp_path))
    assert users.schema == raw_schema(USER_FIELDS)
    rows = collect(users)
    assert rows[0]["attributes"] == '{"age":"24","gender":"M","occupation":"technician","zip_code":"85711"}'
    assert rows[1]["schema_error"] == "line has 3 fields, expected 5"


def test_movielens_atomic_files(spark, tmp_path):
    loader = get_loader("movielens_atomic")
    inter = write(
        tmp_path / "ml.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n"
        "186\t302\t3\n"
        "\n"
        "22\t377\t1\t878887116\n",
    )
    write(
        tmp_path / "ml.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n"
        "2\tGoldenEye\t\tAction\n",
    )
    write(
        tmp_path / "ml.user",
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t24\tM\ttechnician\t85711\n",
    )

    events = loader.read_events(spark, str(tmp_path), None, BASE)
    assert events.schema == raw_schema(INTERACTION_FIELDS)
    rows = collect(events)
    assert [(r["source_line"], r["user_id"], r["timestamp"], r["schema_error"]) for r in rows] == [
        (2, "196", "881250949", None),
        (3, "186", None, "line has 3 fields, expected 4"),
        (5, "22", "878887116", None),
    ]
    assert rows[0]["source_file"] == str(inter) and rows[0]["rating"] == "3"
    assert loader.event_dates(spark, str(tmp_path), BASE) == [date(1997, 11, 7), date(1997, 12, 4)]

    rows = collect(loader.read_items(spark, str(tmp_path)))
    assert [(r["item_id"], r["title"], r["categories"], r["attributes"]) for r in rows] == [
        ("1", "Toy Story", "Animation|Children's|Comedy", '{"release_year":"1995"}'),
        ("2", "GoldenEye", "Action", "{}"),
    ]
    (user,) = collect(loader.read_users(spark, str(tmp_path)))
    assert user["user_id"] == "1"
    assert json.loads(user["attributes"]) == {
        "age": "24",
        "gender": "M",
        "occupation": "technician",
        "zip_code": "85711",
    }


def test_movielens_atomic_missing_header_column(spark, tmp_path):
    write(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\t2\t3\n")
    rows = collect(get_loader("movielens_atomic").read_events(spark, str(tmp_path), None, BASE))
    assert [r["schema_error"] for r in rows] == ["missing required column timestamp in header"] * 2
    assert [r["item_id"] for r in rows] == ["2", "2"]
    assert get_loader("movielens_atomic").read_users(spark, str(tmp_path)) is None

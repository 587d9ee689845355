"""Ingest's pure transforms: typing, every rejection class, duplicates, accounting."""

from datetime import date

from jobs.ingest_rules import accepted_events, accepted_items, quarantined, validate_events, validate_items
from jobs.raw_contract import INTERACTION_FIELDS, ITEM_FIELDS, raw_schema

DS = date(2026, 10, 3)
LANDING = "/data/interactions/ds=2026-10-03/part-0.csv"


def _row(line, user="u1", item="i1", ts="2026-10-03T10:00:00Z", file=LANDING, error=None, **signals):
    values = {f: None for f in INTERACTION_FIELDS}
    values.update(user_id=user, item_id=item, timestamp=ts, **signals)
    return (*[values[f] for f in INTERACTION_FIELDS], file, line, f"raw {line}", error)


def _validate(spark, rows):
    raw = spark.createDataFrame(rows, raw_schema(INTERACTION_FIELDS))
    return validate_events(raw, DS, 0.0, 5.0, 20.0)


def test_every_bad_class_is_quarantined_with_a_reason(spark):
    rows = [
        _row(2),  # good
        _row(3, user=""),
        _row(4, item=None),
        _row(5, ts="not-a-time"),
        _row(6, play_seconds="-5", item_duration_seconds="10"),
        _row(7, rating="9"),
        _row(8, rating="abc"),
        _row(9, like="maybe"),
        _row(10, ts="2026-10-02T23:00:00Z"),  # in the ds folder but another day
        _row(11, error="line has 2 fields, expected 11"),
        _row(12),  # exact duplicate of line 2
        _row(13, item="i2", ts="1791021600"),  # unix seconds 2026-10-03 10:00 UTC
        _row(14, item="i3", ts="1791021600000", like="true"),  # unix ms
    ]
    checked = _validate(spark, rows).cache()
    good = {r.source_line: r for r in accepted_events(checked).collect()}
    bad = {r.source_line: r.reason for r in quarantined(checked, "events").collect()}
    assert sorted(good) == [2, 13, 14]
    assert len(good) + len(bad) == len(rows)
    assert "missing user_id" in bad[3]
    assert "missing item_id" in bad[4]
    assert "bad timestamp" in bad[5] and "not-a-time" in bad[5]
    assert "negative value: play_seconds='-5'" in bad[6]
    assert "rating outside [0, 5]" in bad[7]
    assert "bad number: rating='abc'" in bad[8]
    assert "bad flag: like='maybe'" in bad[9]
    assert bad[10] == "outside landing day: event date 2026-10-02 in folder ds=2026-10-03"
    assert bad[11].startswith("schema: line has 2 fields")
    assert bad[12] == f"duplicate event: first seen at {LANDING}:2"
    assert good[14].like == 1 and good[13].ts == good[14].ts
    assert good[2].event_id != good[13].event_id


def test_whole_file_rows_of_other_days_are_out_of_scope(spark):
    whole = "/data/ml.inter"
    rows = [
        _row(2, file=whole),
        _row(3, file=whole, ts="2026-10-04T10:00:00Z"),  # tomorrow's run takes it
        _row(4, file=whole, ts="bad"),  # undated: quarantined (insert-once downstream)
    ]
    checked = _validate(spark, rows)
    assert [r.source_line for r in accepted_events(checked).collect()] == [2]
    assert [r.source_line for r in quarantined(checked, "events").collect()] == [4]


def test_items_parse_categories_attributes_and_supersede_duplicates(spark):
    def item(line, item_id, categories=None, attributes=None, title="t"):
        values = {f: None for f in ITEM_FIELDS}
        values.update(item_id=item_id, title=title, categories=categories, attributes=attributes)
        return (*[values[f] for f in ITEM_FIELDS], "items.jsonl", line, "raw", None)

    raw = spark.createDataFrame(
        [
            item(1, "i1", '["a","b"]', '{"author":"x"}'),
            item(2, "i2", "a|b|c"),
            item(3, "i3", "Tools,Electrical"),
            item(4, "i4", attributes="{not json"),
            item(5, "i1", '["a"]', title="newer"),
        ],
        raw_schema(ITEM_FIELDS),
    )
    checked = validate_items(raw).cache()
    good = {r.item_id: r for r in accepted_items(checked, DS).collect()}
    bad = {r.source_line: r.reason for r in quarantined(checked, "items").collect()}
    assert good["i1"].title == "newer" and good["i1"].categories == ["a"]
    assert good["i2"].categories == ["a", "b", "c"]
    assert good["i3"].categories == ["Tools", "Electrical"]
    assert bad == {1: "duplicate item_id: superseded by line 5", 4: "attributes is not a JSON object"}

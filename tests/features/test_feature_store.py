"""jobs.feature_store on a small lake: Delta log honoured, point-in-time joins, SQLite online store.

The ``lake`` fixture (conftest.py) wrote the tables, replaced a partition, MERGEd
corrections, applied the repo and materialised both days.
"""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from jobs import feature_store
from tests.features.conftest import D1, D2, DELETED_USER, EXPECTED_TITLES, EXPECTED_USERS


def _entity_rows(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    users, items, stamps = zip(*rows, strict=True)
    return pd.DataFrame({"user_id": users, "item_id": items, "event_timestamp": pd.to_datetime(list(stamps), utc=True)})


def _by_row(out: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    out = out.assign(at=pd.to_datetime(out["event_timestamp"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S"))
    return {(r.user_id, r.at): r for r in out.itertuples()}


# Entity rows of both retrieval tests, fetched in one point-in-time query (each costs seconds).
CURRENT_ROWS = [("u1", "i1"), ("u2", "i1"), (DELETED_USER, "i2"), ("u4", "i5")]
AFTER_D2 = "2026-10-03T12:00:00"
U1_STAMPS = {
    "2026-10-01T12:00:00": None,  # before any snapshot
    "2026-10-02T00:00:00": D1,  # D1's row became true at this instant
    "2026-10-02T12:00:00": D1,  # between the snapshots: never D2's
    "2026-10-02T23:59:59": D1,
    "2026-10-03T00:00:00": D2,
    "2027-10-04T00:00:00": None,  # D2 + 1 year + a day: past the 365-day TTL
}


@pytest.fixture(scope="module")
def retrieved(lake) -> tuple[int, dict[tuple[str, str], pd.Series]]:
    """(rows returned, rows by (user, timestamp)) from ``historical`` over all the entity rows above."""
    rows = [(u, i, AFTER_D2) for u, i in CURRENT_ROWS] + [("u1", "i1", ts) for ts in U1_STAMPS]
    out = feature_store.historical(lake.cfg, _entity_rows(rows))
    return len(out) - len(rows), _by_row(out)


def test_config_variants(tiny_cfg):
    local = feature_store.store_config(tiny_cfg)
    assert local["online_store"] == {"type": "sqlite", "path": str(tiny_cfg.home_path / "feast" / "online_store.db")}
    assert local["registry"]["registry_type"] == "file" and local["offline_store"] == {"type": "spark"}
    prod = tiny_cfg.model_copy(
        update={
            "feast": tiny_cfg.feast.model_copy(
                update={
                    "online_store": "redis",
                    "redis_connection": "redis:6379",
                    "registry": "postgresql+psycopg2://feast@postgres:5432/feast",
                }
            )
        }
    )
    cfg = feature_store.store_config(prod)
    assert cfg["online_store"] == {"type": "redis", "connection_string": "redis:6379"}
    assert cfg["registry"]["registry_type"] == "sql"
    assert cfg["registry"]["path"] == "postgresql+psycopg2://feast@postgres:5432/feast"


def test_window_selects_exactly_the_day():
    start, end = feature_store.window(date(2026, 10, 2))
    assert (start.isoformat(), end.isoformat()) == ("2026-10-02T00:00:01+00:00", "2026-10-03T00:00:00+00:00")
    start, _ = feature_store.window(date(2026, 10, 2), full=True)
    assert start.year < 2026


def test_apply_twice_is_idempotent(lake):
    import features.entities
    import features.services
    import features.sources
    import features.views

    assert any(c["name"] == "user_sequences" and c["change"] == "CREATE" for c in lake.applied["changes"])
    # A later run is a new process with newly built objects (not the ones apply touched).
    for module in (features.entities, features.sources, features.views, features.services):
        importlib.reload(module)
    again = feature_store.apply(lake.cfg)
    assert again["changes"] == [] and again["infra_changes"] == [], again
    assert feature_store.plan(lake.cfg)["changes"] == []


def test_materialize_reports_rows_of_the_day(lake):
    assert lake.materialized[D1]["views"]["user_profile"]["rows"] == 2  # u1, u2
    assert lake.materialized[D2]["views"]["user_sequences"]["rows"] == 2  # u1, u4 (u3 was replaced away)
    assert lake.materialized[D2]["views"]["item_content"]["rows"] == 2  # i1 (changed), i5


def test_historical_and_online_see_only_current_delta_rows(lake, retrieved):
    """Rows removed by replaceWhere or replaced by MERGE never come back (the file store's bug)."""
    import pyarrow.parquet as pq

    # The superseded rows are still in the parquet files: a reader ignoring the log would see them.
    files = Path(lake.cfg.table_path("user_features")).glob("ds=*/*.parquet")
    raw = [u for f in files for u in pq.read_table(f, columns=["user_id"]).column("user_id").to_pylist()]
    assert DELETED_USER in raw and len(raw) > len(EXPECTED_USERS)

    extra_rows, got = retrieved
    assert extra_rows == 0
    for user, ds in [("u1", D2), ("u2", D1), ("u4", D2)]:
        row = got[(user, AFTER_D2)]
        assert row.user_profile__n_events == EXPECTED_USERS[(user, ds)][0]
        assert list(row.user_sequences__positive_item_ids) == EXPECTED_USERS[(user, ds)][1][::2]
    assert pd.isna(got[(DELETED_USER, AFTER_D2)].user_profile__n_events)
    assert got[("u1", AFTER_D2)].item_content__title == EXPECTED_TITLES["i1"]

    store = feature_store.get_store(lake.cfg)
    online = store.get_online_features(
        features=["user_profile:n_events", "user_sequences:positive_item_ids"],
        entity_rows=[{"user_id": u} for u in ("u1", "u2", "u4", DELETED_USER)],
    ).to_dict()
    assert online["n_events"] == [4, 9, 1, None]
    assert online["positive_item_ids"][0] == EXPECTED_USERS[("u1", D2)][1][::2]
    items = store.get_online_features(
        features=["item_content:title"], entity_rows=[{"item_id": i} for i in EXPECTED_TITLES]
    ).to_dict()
    assert items["title"] == list(EXPECTED_TITLES.values())


def test_point_in_time_join_never_returns_a_later_value(retrieved):
    """u1 has snapshots at D1 (valid from 10-02 00:00) and D2 (from 10-03 00:00)."""
    _, out = retrieved
    for ts, ds in U1_STAMPS.items():
        row = out[("u1", ts)]
        if ds is None:
            assert pd.isna(row.user_profile__n_events), ts
            continue
        n_events, items = EXPECTED_USERS[("u1", ds)]
        assert (row.user_profile__n_events, list(row.user_sequences__positive_item_ids)) == (n_events, items[::2]), ts
    # bronze.items keeps only the current version (valid from 10-03): earlier rows get null, not the future.
    assert out[("u1", "2026-10-02T12:00:00")].item_content__title is None
    assert out[("u1", "2026-10-03T00:00:00")].item_content__title == EXPECTED_TITLES["i1"]


def test_check_online_agrees_then_names_a_mismatch(lake):
    from features.sources import (
        ITEM_EMBEDDINGS_VIEW,
        ITEM_SIDS_VIEW,
        ITEM_STATS_VIEW,
        ITEMS_VIEW,
        USER_FEATURES_VIEW,
        USER_LIFELONG_VIEW,
    )

    day1 = feature_store.check_online(lake.cfg, D1)["checked"]
    assert day1[USER_FEATURES_VIEW] == 2 and day1[ITEMS_VIEW] == 1  # u1 u2; i2
    assert day1[ITEM_SIDS_VIEW] == day1[ITEM_EMBEDDINGS_VIEW] == 2  # i1 i2 written on D1
    report = feature_store.check_online(lake.cfg, D2)
    assert report["checked"] == {
        USER_FEATURES_VIEW: 2,
        USER_LIFELONG_VIEW: 1,
        ITEMS_VIEW: 2,
        ITEM_SIDS_VIEW: 1,
        ITEM_EMBEDDINGS_VIEW: 1,
        ITEM_STATS_VIEW: 2,
    }
    assert report["features"][USER_FEATURES_VIEW] == 13 and report["features"][ITEMS_VIEW] == 5  # no lifelong ids
    assert report["features"][ITEM_STATS_VIEW] == 6

    store = feature_store.get_store(lake.cfg)
    row = {"user_id": ["u4"], "n_positive": [1], "active_days": [1], "tenure_days": [0]}
    row |= {"attributes": ['{"age":"22"}'], "event_timestamp": [pd.Timestamp("2026-10-03", tz="UTC")]}
    store.write_to_online_store("user_profile", pd.DataFrame({**row, "n_events": [99]}))
    try:
        with pytest.raises(feature_store.OnlineMismatch) as err:
            feature_store.check_online(lake.cfg, D2)
        assert "user_id='u4' feature user_profile:n_events: online=99 lake=1" in str(err.value)
    finally:
        store.write_to_online_store("user_profile", pd.DataFrame({**row, "n_events": [1]}))


def test_item_views_serve_the_newest_semantic_id_and_stats(lake):
    """Item SIDs written on D1 stay online after D2's materialisation (TTL: until replaced)."""
    from tests.features.conftest import EXPECTED_CODES, EXPECTED_STATS

    assert lake.materialized[D2]["views"]["item_sids"]["rows"] == 1  # i5, coded on D2
    store = feature_store.get_store(lake.cfg)
    online = store.get_online_features(
        features=["item_sids:codes", "item_stats:n_users", "item_embeddings:embedding_source"],
        entity_rows=[{"item_id": i} for i in EXPECTED_CODES],
    ).to_dict()
    assert online["codes"] == list(EXPECTED_CODES.values())
    assert online["n_users"] == [EXPECTED_STATS.get(i, (None, None))[1] for i in EXPECTED_CODES]
    assert online["embedding_source"] == ["cold"] * 3


def test_another_store_applied_in_the_same_process_starts_with_nothing_online(lake, tmp_path):
    """The declared views are module objects: applying a second store (another config, as a test
    process or a preloaded worker does) must not hand it the first store's materialised days."""
    feature_store.apply(lake.cfg)  # carries the lake's intervals over (its days are online)
    assert feature_store.materialized_through(lake.cfg) == D2
    other = lake.cfg.model_copy(update={"home": str(tmp_path / "other")})
    feature_store.apply(other)
    assert feature_store.materialized_through(other) is None
    assert feature_store.materialized_through(lake.cfg) == D2

"""The production variant: Redis online store + SQL registry, against a real redis-server."""

from __future__ import annotations

import pytest

from features.sources import ITEM_SIDS_VIEW, ITEMS_VIEW, USER_FEATURES_VIEW
from jobs import feature_store
from tests.features.conftest import D1, D2, DELETED_USER, EXPECTED_CODES, EXPECTED_TITLES


@pytest.fixture(scope="module")
def redis_cfg(lake, redis_connection):
    feast = lake.cfg.feast.model_copy(
        update={
            "online_store": "redis",
            "redis_connection": redis_connection,
            "registry": "sqlite:///{home}/feast/registry.sqlite",
        }
    )
    return lake.cfg.model_copy(update={"feast": feast})


def test_redis_apply_materialize_check(redis_cfg):
    assert feature_store.store_config(redis_cfg)["registry"]["registry_type"] == "sql"
    first = feature_store.apply(redis_cfg)
    assert any(c["name"] == "onerec_serve_v1" for c in first["changes"])
    assert feature_store.apply(redis_cfg)["changes"] == []
    for ds in (D1, D2):
        feature_store.materialize(redis_cfg, ds)
    checked = feature_store.check_online(redis_cfg, D2)["checked"]
    assert checked[USER_FEATURES_VIEW] == 2 and checked[ITEMS_VIEW] == 2 and checked[ITEM_SIDS_VIEW] == 1

    store = feature_store.get_store(redis_cfg)
    assert store.config.online_store.type == "redis"
    users = store.get_online_features(
        features=store.get_feature_service("onerec_serve_v1"),
        entity_rows=[{"user_id": u} for u in ("u1", "u2", DELETED_USER)],
    ).to_dict()
    assert users["n_events"] == [4, 9, None]
    assert users["short_item_ids"][0] == ["i2", "i4", "i5"]
    items = store.get_online_features(
        features=["item_content:title"], entity_rows=[{"item_id": i} for i in EXPECTED_TITLES]
    ).to_dict()
    assert items["title"] == list(EXPECTED_TITLES.values())
    codes = store.get_online_features(
        features=["item_sids:codes"], entity_rows=[{"item_id": i} for i in EXPECTED_CODES]
    ).to_dict()
    assert codes["codes"] == list(EXPECTED_CODES.values())

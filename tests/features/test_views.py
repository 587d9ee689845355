"""The Feast definitions agree with jobs/schemas.py, and importing them runs nothing."""

from __future__ import annotations

import pytest
from feast import FeatureView

from features.fields import feast_type
from jobs.feature_store import definitions
from jobs.schemas import BY_TABLE


@pytest.fixture(scope="module")
def repo(tiny_cfg):
    return definitions(tiny_cfg)


def test_definitions_are_complete(repo):
    assert {e.name for e in repo.entities} >= {"user", "item"}
    assert {fv.name for fv in repo.feature_views} == set(VIEWS)
    services = {"onerec_train_v1", "onerec_serve_v1", "onerec_train_v2", "onerec_serve_v2", "onerec_item_v1"}
    services |= {"onerec_train_v3", "onerec_serve_v3"}
    assert {s.name for s in repo.feature_services} == services
    assert {e.join_key for e in repo.entities if e.name in ("user", "item")} == {"user_id", "item_id"}


VIEWS = [
    "user_profile",
    "user_sequences",
    "user_short_signals",
    "user_lifelong",
    "item_content",
    "item_sids",
    "item_embeddings",
    "item_stats",
]


@pytest.mark.parametrize("view", VIEWS)
def test_view_fields_are_schema_columns_with_compatible_types(repo, view):
    fv: FeatureView = next(v for v in repo.feature_views if v.name == view)
    schema = BY_TABLE[fv.batch_source.tags["lake_table"]]
    columns = {f.name: f.dataType for f in schema.fields}
    for field in fv.features:
        assert field.name in columns, f"{view}.{field.name} is not a column of {fv.batch_source.tags['lake_table']}"
        assert field.dtype == feast_type(columns[field.name]), (
            f"{view}.{field.name}: {field.dtype} vs {columns[field.name]}"
        )
    for key in fv.join_keys:
        assert columns[key].simpleString() == "string"
    assert fv.batch_source.timestamp_field == "event_timestamp"


def test_user_views_keep_a_user_state_until_the_user_acts_again(repo):
    ttl = {fv.name: fv.ttl.days for fv in repo.feature_views}
    assert ttl["user_profile"] == ttl["user_sequences"] == ttl["user_lifelong"] == ttl["user_short_signals"] == 365
    # A semantic ID must stay decodable as long as the item's content is served.
    assert ttl["item_content"] == ttl["item_sids"] == ttl["item_embeddings"] >= 365
    assert ttl["item_stats"] == 365


def test_sources_name_no_path(repo):
    """Paths come from the config at run time (jobs.feature_store.bind_sources), never from definitions."""
    for src in repo.data_sources:
        assert not src.path and not src.query and src.table.startswith("onerec_")


def test_train_and_serve_v3_read_the_same_features_in_the_same_order(repo):
    """Training-serving parity starts at the definitions: one list of views, one order."""
    by_name = {s.name: s for s in repo.feature_services}

    def features(name: str) -> list[str]:
        return [f"{p.name}:{f.name}" for p in by_name[name].feature_view_projections for f in p.features]

    assert features("onerec_train_v3") == features("onerec_serve_v3")
    views = [p.name for p in by_name["onerec_serve_v3"].feature_view_projections]
    assert views == ["user_profile", "user_sequences", "user_short_signals", "user_lifelong"]


def test_nullable_float_arrays_reach_feast_as_nan_not_zero():
    """Feast's protobuf lists turn a null element into 0.0 (an invented rating): the view says NaN."""
    from features.sources import user_features_sql

    sql = user_features_sql("t")
    assert "transform(`short_rating`, x -> coalesce(x, CAST('NaN' AS DOUBLE))) AS `short_rating`" in sql
    assert "`short_flags`" in sql and "transform(`short_flags`" not in sql

"""One feature path: a training row for day d+1 carries exactly what the server reads after day d.

The ``lake`` fixture materialised D1 then D2; training examples with targets on D3 = D2 + 1 get
their features by point-in-time retrieval of ``onerec_train_v3`` (jobs/training_features.py). For
every user, those features must equal ``get_online_features`` of ``onerec_serve_v3`` -- same
values, same arrays in the same order, a missing rating the same NaN -- and the model's pathway
arrays built from either must be identical.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from tests.features.conftest import D2

D3 = D2 + timedelta(days=1)
USERS = ["u1", "u2", "u4", "u_new"]  # u2: last active D1; u_new: no features at all


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple | np.ndarray) and isinstance(b, list | tuple | np.ndarray):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def rows(lake, spark):
    """gold.training_features[next_day, D3] for USERS, targets at 09:00 + i minutes on D3."""
    from jobs import delta, training_features
    from jobs.schemas import TRAINING_EXAMPLES

    cfg = lake.cfg.model_copy(update={"training_examples": lake.cfg.training_examples.model_copy(
        update={"protocols": ("next_day",)})})  # fmt: skip
    nine = int(datetime(D3.year, D3.month, D3.day, 9).timestamp())
    examples = [(u, "target", [], [], "i1", ["i1"], nine + 60 * i, "next_day", D3) for i, u in enumerate(USERS)]
    delta.overwrite(spark.createDataFrame(examples, TRAINING_EXAMPLES), cfg.table_path("training_examples"),
                    ["protocol", "ds"])  # fmt: skip
    report = training_features.run(cfg, D3, spark)
    assert report["rows"]["next_day"] == {"rows": 4, "with_features": 3}
    table = delta.read(spark, cfg.table_path("training_features")).where("ds = DATE'2026-10-03'")
    return {r["user_id"]: r.asDict() for r in table.collect()}


def test_training_row_for_next_day_equals_online_features(lake, rows):
    from jobs import feature_store

    store = feature_store.get_store(lake.cfg)
    service = store.get_feature_service("onerec_serve_v3")
    names = [f.name for p in service.feature_view_projections for f in p.features]
    online = store.get_online_features(features=service, entity_rows=[{"user_id": u} for u in USERS]).to_dict()
    for i, user in enumerate(USERS):
        row = rows[user]
        assert row["feature_service"] == "onerec_train_v3"
        for name in names:
            assert _same(row[name], online[name][i]), (user, name, row[name], online[name][i])
    assert rows["u1"]["item_ids"] == ["i2", "i5"]  # the compressed lifelong representatives
    assert rows["u1"]["short_item_ids"] == ["i2", "i4", "i5"]  # D2's re-run, not the replaced row
    assert math.isnan(rows["u1"]["short_rating"][0]) and rows["u1"]["short_rating"][1:] == [4.0, 5.0]
    assert rows["u2"]["n_events"] == 9  # its D1 row (MERGEd correction), still its state on D3
    assert rows["u_new"]["n_events"] is None and rows["u_new"]["short_item_ids"] is None


def test_pathway_arrays_from_training_row_and_online_are_identical(lake, rows):
    """The model side of parity: one function turns either into the same tensors."""
    from jobs import feature_store
    from models.config import preset
    from models.pathways import FEATURES, pathway_arrays

    store = feature_store.get_store(lake.cfg)
    online = store.get_online_features(features=store.get_feature_service("onerec_serve_v3"),
                                       entity_rows=[{"user_id": u} for u in USERS]).to_dict()  # fmt: skip
    cfg = preset("tiny").onerec
    cfg.user_attr_names, cfg.user_count_features = ("age",), ("n_events", "tenure_days")
    cfg.user_attr_sizes = (cfg.attr_buckets + 1, cfg.count_buckets + 1, cfg.count_buckets + 1)
    index = {f"i{k}": k for k in range(1, 6)}
    now = [rows[u]["target_ts"] for u in USERS]
    offline = pathway_arrays({f: [rows[u][f] for u in USERS] for f in FEATURES}, USERS, now, cfg, index)
    served = pathway_arrays(online, USERS, now, cfg, index)
    for key, value in offline.items():
        np.testing.assert_array_equal(value, served[key], err_msg=key)
    assert offline["life_items"][0, -2:].tolist() == [2, 5] and not offline["life_items"][1:].any()
    assert offline["user_attrs"][3].tolist() == [0, 0, 0]  # no features: the static inputs are masked

"""Item embeddings: content blocks, behaviour fallback, only new/changed items re-embedded, re-runs idempotent."""

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import delta, item_embeddings
from jobs.schemas import EVENTS, ITEM_PAIRS, ITEMS
from jobs.text_encoder import ContentParams, content_vectors

DS = date(2026, 10, 5)


@pytest.fixture(scope="module", autouse=True)
def no_adaptive_execution(spark):
    """AQE re-plans every stage: pure overhead on frames of a few rows (5x slower here)."""
    before = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    yield
    spark.conf.set("spark.sql.adaptive.enabled", before)


SMALL = ContentParams(text_encoder="hashing", text_dim=64, attribute_dim=8, attribute_buckets=64, image_dim=8)


def _item(item_id, title, cats=("cooking",), attrs=None, image=None, h=None):
    return (item_id, title, f"about {title}", list(cats), attrs or {"lang": "en"}, None, image, h or title, "f", DS)


ITEM_ROWS = [
    _item("c1", "pasta with garlic"),
    _item("c2", "garlic bread basics"),
    _item("c3", "tomato pasta sauce", image=[0.1] * 20),
    _item("f1", "football tactics", cats=("sports",)),
    _item("f2", "football training drills", cats=("sports",)),
]
# i1, i2 appear only in events (ID-only); i1 has pairs, i2 has none.
PAIRS = [("c1", "c2", 1.0), ("c2", "c3", 0.8), ("f1", "f2", 1.0), ("i1", "c1", 0.5), ("c3", "i1", 0.4)]


def test_content_vectors_blocks_are_unit_or_zero():
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "content_hash": ["h", "h", ""],
            "title": ["Pasta night", None, None],
            "description": ["garlic and oil", None, None],
            "categories": [np.array(["cooking"]), None, None],
            "attributes": [{"lang": "en"}, [("author", "x")], None],
            "image_vector": [None, np.arange(12, dtype=float), None],
        }
    )
    out = content_vectors(frame, SMALL)
    assert list(out["has_text"]) == [True, False, False] and out["content_vector"][2] is None
    for row, blocks in ((0, (1, 1, 0)), (1, (0, 1, 1))):
        v = np.asarray(out["content_vector"][row])
        assert v.shape == (SMALL.width,) and np.isfinite(v).all()
        norms = [np.linalg.norm(b) for b in np.split(v, [SMALL.text_dim, SMALL.text_dim + SMALL.attribute_dim])]
        np.testing.assert_allclose(norms, blocks, atol=1e-5)


def test_behaviour_svd_and_fold_in():
    pairs = pd.DataFrame(PAIRS, columns=["item_id", "other_item_id", "score"])
    ids, vecs, sigma = item_embeddings.behaviour_svd(pairs, 4, 0)
    assert vecs.shape == (len(ids), 4) and np.isfinite(vecs).all() and (sigma >= 0).all()
    known = {k: v for k, v in zip(ids, vecs, strict=True) if k != "i1"}
    folded = item_embeddings.fold_in(pairs, ["i1"], known, sigma)
    full = dict(zip(ids, vecs, strict=True))["i1"]
    cos = folded["i1"] @ full / (np.linalg.norm(folded["i1"]) * np.linalg.norm(full))
    assert cos > 0.9  # folding an item back in recovers its own SVD vector's direction


def _cfg(lake_cfg):
    item = lake_cfg.item
    emb = item.embeddings.model_copy(
        update={"text_encoder": "hashing", "text_dim": 64, "attribute_dim": 8, "attribute_buckets": 64,
                "image_dim": 8, "dim": 4}
    )  # fmt: skip
    align = item.alignment.model_copy(update={"epochs": 3, "hidden": 16, "holdout": 0.0, "val_share": 0.0})
    return lake_cfg.model_copy(update={"item": item.model_copy(update={"embeddings": emb, "alignment": align})})


def _write_inputs(spark, cfg, items):
    delta.overwrite(spark.createDataFrame(items, ITEMS), cfg.table_path("items"))
    ts = datetime(2026, 10, 5, 9, tzinfo=UTC)
    ev = [(f"e{k}", "u1", i, ts, None, None, None, 0, 0, 0, 0, 0, "f", k, DS) for k, i in enumerate(["i1", "i2"])]
    delta.overwrite(spark.createDataFrame(ev, EVENTS), cfg.table_path("events"), ("event_date",))
    pairs = [(a, b, s, 2, DS) for a, b, s in PAIRS]
    delta.overwrite(spark.createDataFrame(pairs, ITEM_PAIRS), cfg.table_path("item_pairs"), ("ds",))


def test_run_embeds_every_item_then_only_new_or_changed(spark, lake_cfg):
    cfg = _cfg(lake_cfg)
    _write_inputs(spark, cfg, ITEM_ROWS)
    first = item_embeddings.run(cfg, DS, spark, mode="full")
    assert first["embedded"] == 7 and first["by_source"] == {"content": 5, "behaviour": 1, "cold": 1}
    table = delta.read(spark, cfg.table_path("item_embeddings")).collect()
    rows = {r.item_id: r for r in table}
    for r in rows.values():
        v = np.asarray(r.embedding)
        assert v.shape == (4,) and np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-4
    assert rows["i1"].embedding_source == "behaviour" and rows["i1"].content_vector is None
    assert rows["i2"].embedding_source == "cold" and rows["i2"].behaviour_vector is None
    assert len(rows["c1"].content_vector) == 64 + 8 + 8

    # Day 2 of the same model: one item's content changes, one item is new.
    changed = [r for r in ITEM_ROWS if r[0] != "c2"] + [_item("c2", "garlic bread v2"), _item("n1", "pizza dough")]
    _write_inputs(spark, cfg, changed)
    second = item_embeddings.run(cfg, DS, spark, mode="incremental")
    assert second["embedded"] == 2 and second["model_version"] == first["model_version"]
    after = delta.read(spark, cfg.table_path("item_embeddings"))
    untouched = after.where(~F.col("item_id").isin("c2", "n1"))
    assertDataFrameEqual(untouched, [r for r in table if r.item_id != "c2"])
    assert after.where(F.col("item_id") == "n1").count() == 1

    before = after.collect()
    assert item_embeddings.run(cfg, DS, spark, mode="incremental")["embedded"] == 0
    assertDataFrameEqual(delta.read(spark, cfg.table_path("item_embeddings")), before)


@pytest.mark.slow
def test_minilm_text_encoder_is_local_and_semantic():
    from jobs.text_encoder import get_text_encoder

    enc = get_text_encoder("minilm", None, 384, 8, 1)
    v = enc.encode(["how to cook pasta", "an easy spaghetti recipe", "football match highlights"])
    assert v.shape == (3, 384) and np.isfinite(v).all()
    assert v[0] @ v[1] > v[0] @ v[2]


def test_spark_basis_and_fold_in_equal_the_in_memory_reference(spark):
    """core_basis on a graph within the bound is behaviour_svd; fold_in_spark is fold_in (same degrees)."""
    from jobs import behaviour_vectors as bv

    pairs = pd.DataFrame(PAIRS, columns=["item_id", "other_item_id", "score"])
    ids, vecs, sigma = item_embeddings.behaviour_svd(pairs, 4, 0)
    sym = bv.symmetric_edges(spark.createDataFrame(pairs))
    core_ids, core_vecs, core_sigma = bv.core_basis(spark, sym, 100, 4, 0)
    assert list(core_ids) == list(ids)
    np.testing.assert_allclose(core_vecs, vecs, atol=1e-5)
    np.testing.assert_allclose(core_sigma, sigma, atol=1e-6)
    assert len(bv.core_basis(spark, sym, 3, 4, 0)[0]) == 3  # the bound holds

    known = {k: v for k, v in zip(ids, vecs, strict=True) if k not in ("i1", "f2")}
    want = item_embeddings.fold_in(pairs, ["i1", "f2"], known, sigma)
    known_df = bv.vectors_frame(spark, np.array(list(known)), np.stack(list(known.values())))
    targets = spark.createDataFrame([("i1",), ("f2",)], "item_id string")
    got = {
        r.item_id: np.asarray(r.behaviour_vector)
        for r in bv.fold_in_spark(bv.normalised_edges(sym), known_df, targets, sigma).collect()
    }
    assert set(got) == {k for k, v in want.items() if np.linalg.norm(v) > 1e-9}
    for k in got:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5)

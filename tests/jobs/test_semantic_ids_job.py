"""semantic_ids job: unique tuples in range, encode keeps old IDs, re-runs idempotent, old->new mapping."""

import json
from datetime import date, timedelta

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import delta, semantic_ids
from jobs.schemas import ITEM_EMBEDDINGS

DS = date(2026, 10, 5)
LEVELS, K = 2, 4


@pytest.fixture(scope="module", autouse=True)
def no_adaptive_execution(spark):
    """AQE re-plans every stage: pure overhead on frames of a few rows (5x slower here)."""
    before = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    yield
    spark.conf.set("spark.sql.adaptive.enabled", before)


def _embeddings(spark, n, seed=0, start=0, version="v1"):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, 8))
    x = centres[rng.integers(0, 6, n)] + 0.3 * rng.standard_normal((n, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = [(f"i{start + k:03d}", None, None, [float(v) for v in x[k]], "content", "h", version, DS) for k in range(n)]
    return spark.createDataFrame(rows, ITEM_EMBEDDINGS)


def _cfg(lake_cfg):
    s = lake_cfg.item.semantic_ids.model_copy(update={"levels": LEVELS, "codes_per_level": K, "iterations": 5})
    return lake_cfg.model_copy(update={"item": lake_cfg.item.model_copy(update={"semantic_ids": s})})


def _sids(spark, cfg, version):
    return {
        r.item_id: tuple(r.codes)
        for r in delta.read(spark, cfg.table_path("item_sids")).where(F.col("codebook_version") == version).collect()
    }


def test_full_then_encode_keeps_ids_and_reruns_change_nothing(spark, lake_cfg):
    cfg = _cfg(lake_cfg)
    emb_path = cfg.table_path("item_embeddings")
    delta.overwrite(_embeddings(spark, 60), emb_path)
    first = semantic_ids.run(cfg, DS, spark)  # auto: no codebook yet -> full
    assert first["mode"] == "full" and first["items"] == 60
    version = first["codebook_version"]
    sids = _sids(spark, cfg, version)
    assert len(sids) == 60 and len(set(sids.values())) == 60  # unique tuples
    codes = np.array(list(sids.values()))
    assert codes.shape == (60, LEVELS + 1) and (codes[:, :LEVELS] >= 0).all() and (codes[:, :LEVELS] < K).all()
    assert (codes[:, -1] >= 0).all() and (codes[:, -1] > 0).any()  # 60 items on 16 prefixes: dedup codes used
    metrics = json.loads((semantic_ids.codebook_root(cfg) / version / "metrics.json").read_text())
    for variant in ("balanced", "plain"):
        assert {"utilisation", "collision_rate_before", "collision_rate_after", "reconstruction_error",
                "cluster_size_max", "cluster_size_mean"} <= set(metrics[variant])  # fmt: skip
        assert metrics[variant]["collision_rate_after"] == 0.0
    assert max(metrics["balanced"]["cluster_size_max"]) <= max(metrics["plain"]["cluster_size_max"])

    # A new item arrives: encode (auto: same embedding version) adds it, old IDs stay.
    delta.merge_upsert(spark, _embeddings(spark, 1, seed=9, start=100), emb_path, keys=("item_id",))
    second = semantic_ids.run(cfg, DS + timedelta(days=1), spark)
    assert second["mode"] == "encode" and second["new_items"] == 1
    after = _sids(spark, cfg, version)
    assert {k: after[k] for k in sids} == sids and "i100" in after and len(set(after.values())) == 61

    before = delta.read(spark, cfg.table_path("item_sids")).collect()
    assert semantic_ids.run(cfg, DS + timedelta(days=1), spark)["new_items"] == 0
    assertDataFrameEqual(delta.read(spark, cfg.table_path("item_sids")), before)

    # A full re-run of the same day refits (its inputs changed), then a second one has nothing to do.
    assert semantic_ids.run(cfg, DS, spark, mode="full")["mode"] == "full"
    refit = _sids(spark, cfg, version)
    assert len(refit) == 61 and len(set(refit.values())) == 61
    again = delta.read(spark, cfg.table_path("item_sids")).collect()
    assert semantic_ids.run(cfg, DS, spark, mode="full").get("skipped")
    assertDataFrameEqual(delta.read(spark, cfg.table_path("item_sids")), again)


def test_new_codebook_version_writes_old_to_new_mapping(spark, lake_cfg):
    cfg = _cfg(lake_cfg)
    emb_path = cfg.table_path("item_embeddings")
    delta.overwrite(_embeddings(spark, 40), emb_path)
    v1 = semantic_ids.run(cfg, DS, spark)["codebook_version"]
    delta.overwrite(_embeddings(spark, 40, seed=3, version="v2"), emb_path)  # a new embedding model
    second = semantic_ids.run(cfg, DS + timedelta(days=7), spark)
    assert second["mode"] == "full" and second["previous"] == v1
    mapping = delta.read(spark, cfg.table_path("item_sid_mapping")).collect()
    assert len(mapping) == 40 and {(r.old_version, r.new_version) for r in mapping} == {
        (v1, second["codebook_version"])
    }
    old, new = _sids(spark, cfg, v1), _sids(spark, cfg, second["codebook_version"])
    assert all(tuple(r.old_codes) == old[r.item_id] and tuple(r.new_codes) == new[r.item_id] for r in mapping)


def test_choose_k_follows_sqrt_n_within_bounds(lake_cfg):
    s = lake_cfg.item.semantic_ids
    assert semantic_ids.choose_k(400, s) == 32 and semantic_ids.choose_k(12_000, s) == 128
    assert semantic_ids.choose_k(10, s) == s.min_codes_per_level
    assert semantic_ids.choose_k(10**9, s) == s.max_codes_per_level


def test_spark_dedup_equals_resolve_collisions_and_assign_new(spark):
    from models.rq_kmeans import assign_new, resolve_collisions

    rng = np.random.default_rng(1)
    codes = rng.integers(0, 3, (80, 2)).astype(np.int32)  # 80 items on 9 prefixes: many collisions
    ids = [f"i{k:02d}" if k % 3 else f"I{k}" for k in range(80)]  # mixed case: code-point order
    df = spark.createDataFrame(
        [(i, [int(c) for c in r]) for i, r in zip(ids, codes, strict=True)], "item_id string, codes array<int>"
    )
    got = {r.item_id: tuple(r.codes) for r in semantic_ids.with_dedup(df, 2).collect()}
    want = resolve_collisions(codes, ids)
    assert got == {i: tuple(int(c) for c in r) for i, r in zip(ids, want, strict=True)}

    existing = dict(zip([tuple(int(c) for c in r) for r in want[:50]], ids[:50], strict=True))  # 30 items retire
    current = spark.createDataFrame([(i, list(t)) for t, i in existing.items()], "item_id string, codes array<int>")
    new_codes = rng.integers(0, 3, (20, 2)).astype(np.int32)
    new_ids = [f"n{k:02d}" for k in range(20)]
    new = spark.createDataFrame([(i, [int(c) for c in r]) for i, r in zip(new_ids, new_codes, strict=True)], df.schema)
    got = {
        r.item_id: tuple(r.codes)
        for r in semantic_ids.with_dedup(new, 2, semantic_ids.next_free_codes(current, 2)).collect()
    }
    want = assign_new(existing, new_codes, new_ids)
    assert got == {i: tuple(int(c) for c in r) for i, r in zip(new_ids, want, strict=True)}


def test_full_fit_on_a_sample_encodes_the_rest_in_spark(spark, lake_cfg):
    cfg = _cfg(lake_cfg)
    s = cfg.item.semantic_ids.model_copy(update={"fit_sample_size": 25})
    cfg = cfg.model_copy(update={"item": cfg.item.model_copy(update={"semantic_ids": s})})
    delta.overwrite(_embeddings(spark, 90), cfg.table_path("item_embeddings"))
    report = semantic_ids.run(cfg, DS, spark, mode="full")
    assert report["items"] == 90 and report["fit_sample_items"] == 25
    metrics = json.loads((semantic_ids.codebook_root(cfg) / report["codebook_version"] / "metrics.json").read_text())
    assert metrics["fit_sample_size"] == 25 and metrics["fit_sample_items"] == 25 and metrics["n_items"] == 90
    assert metrics["balanced"]["n_items"] == 25  # quality figures are the sample's
    sids = _sids(spark, cfg, report["codebook_version"])
    assert len(sids) == 90 and len(set(sids.values())) == 90
    # The 65 items outside the sample have their nearest-centroid codes.
    from models import codebook_io
    from models.rq_kmeans import encode

    codebook, _ = codebook_io.load(semantic_ids.codebook_root(cfg) / report["codebook_version"])
    rows = delta.read(spark, cfg.table_path("item_embeddings")).orderBy("item_id").collect()
    enc = encode(np.array([r.embedding for r in rows], np.float32), codebook)
    agree = sum(tuple(int(c) for c in e) == sids[r.item_id][:LEVELS] for r, e in zip(rows, enc, strict=True))
    assert agree >= 65  # every non-sample item, plus sample items whose balanced code is the nearest
    assert semantic_ids.run(cfg, DS, spark, mode="full").get("skipped")  # same inputs: no new fit

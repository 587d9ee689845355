"""Nothing of catalogue size is collected to the driver by the item stages (issue 13).

The item stages run on a synthetic catalogue 30x every driver-side sample bound, and no stage
may send the driver task results (``resultSize``, read from Spark's status store) worth a
quarter of the catalogue's embedding column alone. A ``toPandas``/``collect`` of the
embeddings, content vectors or pairs -- the old driver-side path -- exceeds it on its own; the
bounded samples and Delta's own bookkeeping stay below. Per stage, because every task result
also carries its metrics (a few KB per task and operator, whatever the data): summed over the
~100 stages of the run that overhead would hide the data at any catalogue size a test can afford.
"""

from datetime import date

import pytest
from pyspark.sql import functions as F

from bench.item_driver_memory import bounded_settings, collected_bytes, write_synthetic_catalogue
from jobs import delta, item_embeddings, semantic_ids

DS = date(2026, 10, 5)
N_ITEMS, BOUND, DIM = 3000, 100, 32


@pytest.fixture
def no_broadcast_joins(spark):
    """A broadcast join collects its build side to the driver: off, so only the stages' own collects count."""
    before = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    yield
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", before)


def test_item_stages_collect_a_bounded_amount(spark, lake_cfg, no_broadcast_joins):
    cfg = bounded_settings(lake_cfg, BOUND, dim=DIM)
    write_synthetic_catalogue(spark, cfg, N_ITEMS)
    with collected_bytes(spark) as got:
        emb = item_embeddings.run(cfg, DS, spark, mode="full")
        sid = semantic_ids.run(cfg, DS, spark, mode="full")
    assert got["first_seen"] == got["first"], "Spark dropped stages from its list: raise spark.ui.retainedStages"
    embedding_column = N_ITEMS * DIM * 4
    assert got["largest"][0][0] < embedding_column / 4, (embedding_column, got["bytes"], got["largest"])
    assert emb["embedded"] == N_ITEMS and emb["behaviour_basis_items"] == BOUND
    assert emb["aligner_sample"]["items"] <= BOUND and emb["aligner_sample"]["pairs"] <= 3 * BOUND
    assert sid["items"] == N_ITEMS and sid["fit_sample_items"] == BOUND
    sids = delta.read(spark, cfg.table_path("item_sids"))
    assert sids.count() == N_ITEMS and sids.select("codes").distinct().count() == N_ITEMS
    table = delta.read(spark, cfg.table_path("item_embeddings"))
    # Folded in beyond the core. Known limit (session note 2026-12-06): a one-hop fold-in reaches only
    # items with a partner in the core (245 of 3,000 here); the others keep content-only embeddings.
    assert table.where(F.col("behaviour_vector").isNotNull()).count() > BOUND
    assert table.where(F.col("embedding").isNotNull()).count() == N_ITEMS

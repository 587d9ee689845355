"""GX rules of the item tables: a bad embedding or semantic ID is stopped with a clear message.

Each test writes one small table under its own ``lake_cfg`` home and breaks exactly one
invariant; the critical failures must be exactly that rule's column.
"""

from __future__ import annotations

import json
import math
from datetime import date

import pytest

from jobs import delta, schemas

DS = date(2026, 10, 3)


def _embedding_row(item: str, vector: list[float]) -> dict:
    return {
        "item_id": item,
        "content_vector": None,
        "behaviour_vector": None,
        "embedding": vector,
        "embedding_source": "cold",
        "content_hash": "",
        "model_version": "v20261003-00000000",
        "ds": DS,
    }


def _unit(dim: int, k: int) -> list[float]:
    return [1.0 if i == k else 0.0 for i in range(dim)]


def _write(spark, cfg, table: str, rows: list[dict]) -> None:
    df = spark.createDataFrame(rows, getattr(schemas, table.upper()))
    delta.overwrite(df, cfg.table_path(table), cfg.table(table).partition_by)


def _validate(spark, cfg, table: str):
    from expectations.report import DataQualityError
    from expectations.validate import validate

    with pytest.raises(DataQualityError) as err:
        validate(spark, cfg, table, DS)
    return err.value, {f["column"] for f in err.value.report.critical}


@pytest.mark.parametrize(
    ("bad", "column"),
    [
        ("nan", "_embedding_finite"),
        ("wrong_dim", "_len_embedding"),
        ("not_unit", "_embedding_norm"),
    ],
)
def test_bad_embedding_is_rejected_naming_the_rule(spark, lake_cfg, bad, column):
    from expectations.validate import validate

    dim = lake_cfg.item.embeddings.dim
    good = [_embedding_row(f"i{k}", _unit(dim, k)) for k in range(3)]
    vector = {
        "nan": [math.nan] + _unit(dim, 1)[1:],
        "wrong_dim": _unit(dim + 1, 0),
        "not_unit": [3.0] * dim,
    }[bad]
    _write(spark, lake_cfg, "item_embeddings", [*good, _embedding_row("bad", vector)])

    error, critical = _validate(spark, lake_cfg, "item_embeddings")
    assert column in critical
    # The norm of a NaN or mis-sized vector is off too; no other rule fires.
    assert critical <= {column, "_embedding_norm"}
    message = str(error)
    assert "gold_item_embeddings" in message and column in message
    assert "bad" in json.dumps(error.report.to_dict(), default=str)  # the failing row's key is named

    _write(spark, lake_cfg, "item_embeddings", good)
    assert validate(spark, lake_cfg, "item_embeddings", DS).success


def _sid_rows(codes: list[list[int]], version: str = "v20261003") -> list[dict]:
    return [{"item_id": f"i{n}", "codes": c, "codebook_version": version, "ds": DS} for n, c in enumerate(codes)]


@pytest.fixture
def codebook(lake_cfg):
    """A codebook.json for version v20261003 with K = 4 per level (what the rules read)."""
    from jobs.semantic_ids import codebook_root
    from models import codebook_io

    vdir = codebook_root(lake_cfg) / "v20261003"
    vdir.mkdir(parents=True)
    manifest = {"version": "v20261003", "levels": 3, "k_per_level": [4, 4, 4], "dim": 2, "tensors": {}}
    (vdir / codebook_io.MANIFEST_FILE).write_text(json.dumps(manifest))
    return lake_cfg


def test_semantic_id_rules_range_uniqueness_and_utilisation(spark, codebook, monkeypatch):
    from expectations.validate import table_facts, validate

    # read_manifest checks the tensor file too; the rules need only k_per_level.
    monkeypatch.setattr("models.codebook_io.read_manifest", lambda d: json.loads((d / "codebook.json").read_text()))
    assert table_facts(codebook, "item_sids", DS) == {"codebook_version": "v20261003", "k_per_level": [4, 4, 4]}
    good = [[a, b, (a + b) % 4, 0] for a in range(4) for b in range(4)]
    _write(spark, codebook, "item_sids", _sid_rows(good))
    assert validate(spark, codebook, "item_sids", DS).success

    cases = {
        "_code_l1": [*good, [0, 4, 0, 0]],  # level-1 code outside K = 4
        "_codes_key": [*good, good[0]],  # two items, one semantic ID
        "_codes_min": [*good, [0, 0, 0, -1]],
    }
    for column, rows in cases.items():
        _write(spark, codebook, "item_sids", _sid_rows(rows))
        _, critical = _validate(spark, codebook, "item_sids")
        assert any(column in c for c in critical), (column, critical)

    # Level 2 collapsed onto one code: 1 of 4 codes in use (< min_utilisation 0.5 here).
    cfg = codebook.model_copy(
        update={
            "item": codebook.item.model_copy(
                update={"semantic_ids": codebook.item.semantic_ids.model_copy(update={"min_utilisation": 0.5})}
            )
        }
    )
    collapsed = [[a, b, 0, n] for n, (a, b) in enumerate((a, b) for a in range(4) for b in range(4))]
    _write(spark, cfg, "item_sids", _sid_rows(collapsed))
    _, critical = _validate(spark, cfg, "item_sids")
    assert critical == {"_code_l2"}

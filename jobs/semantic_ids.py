"""Semantic IDs: an RQ-KMeans codebook over ``gold.item_embeddings.embedding`` -> ``gold.item_sids``.

    python -m jobs.semantic_ids --ds 2026-10-03 [--mode auto|full|encode]

* ``full`` fits a new codebook version ``v<YYYYMMDD of ds>`` (models/rq_kmeans.py: ``levels`` x
  ``K``, balanced by default), assigns every item its balanced training codes plus a dedup code
  (``resolve_collisions``: rank by ``item_id`` among items sharing all ``L`` codes), and writes
  partition ``codebook_version = v`` of ``gold.item_sids``. When an older version exists,
  ``gold.item_sid_mapping`` (partition ``new_version = v``) maps each item's old tuple to its new
  one, so a model trained on old IDs can be moved over. The codebook goes to
  ``<home>/artifacts/codebooks/<v>/`` (``centroids.safetensors`` + ``codebook.json``, see
  models/codebook_io.py) with ``metrics.json``: utilisation per level, collision rate before and
  after the dedup code, reconstruction error, max/mean cluster size -- for the balanced codebook
  *and*, fitted on the same vectors, a plain one, so every version records what balancing bought.
* ``encode`` (daily) gives items that have no ID in the current version one, from the current
  codebook (nearest centroid per level, then ``assign_new``: next free dedup code), inserted
  with a MERGE that never touches existing rows: existing IDs never change.
* ``auto`` = ``full`` when there is no codebook yet or the embeddings came from another model
  version than the codebook was fitted on (a new embedding space needs a new codebook), else
  ``encode``.

``K`` per level: ``codes_per_level`` from the config, or (default) the smallest power of two
``>= sqrt(n_items)``, clipped to ``[min_codes_per_level, max_codes_per_level]``. With 3 levels
that leaves ``K^3 >= n^1.5`` tuples for ``n`` items while a first-level code still holds
``<= sqrt(n)`` items; for OneRec's ~10^8 items it hits the cap, 8192, the paper's ``K``.
Residual levels are global, not per parent, so the tuples in use are far fewer than ``K^3``:
on the bundled sample (400 items, MiniLM + alignment) 3 x 16 left 50% of items sharing their
full tuple with another, 3 x 32 8.7%, 3 x 64 0.5% (balanced; plain: 27.5%, 5.2%, 3.0%).

The numeric work runs on the driver (numpy/faiss) after collecting the embeddings: a catalogue
of a few million items x 64 floats is a few hundred MB (x 384: ~1.5 GB per million), which the
driver holds; reads and writes go through Delta. Re-runs are idempotent: ``full`` skips the fit
when the version's codebook was fitted on identical inputs and config, ``encode`` finds
no item without an ID.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from datetime import date
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import SemanticIdSettings, Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import ITEM_EMBEDDINGS, ITEM_SID_MAPPING, ITEM_SIDS
from jobs.stage_report import write_stage_json
from models import codebook_io
from models.rq_kmeans import RQKMeansConfig, assign_new, encode, fit, metrics, resolve_collisions

log = logging.getLogger(__name__)
_VERSION = re.compile(r"^v\d{8}$")


def codebook_root(cfg: Settings) -> Path:
    return cfg.artifacts_path / "codebooks"


def version_for(ds: date) -> str:
    return f"v{ds:%Y%m%d}"


def codebook_versions(root: Path, before_or_on: date) -> list[str]:
    """Complete codebook versions (``codebook.json`` present) not after the given day, oldest first."""
    if not root.is_dir():
        return []
    done = [p.name for p in root.iterdir() if _VERSION.match(p.name) and (p / codebook_io.MANIFEST_FILE).is_file()]
    return sorted(v for v in done if v <= version_for(before_or_on))


def choose_k(n: int, s: SemanticIdSettings) -> int:
    """Codes per level: the configured value, or the smallest power of two >= sqrt(n), clipped."""
    if s.codes_per_level:
        return s.codes_per_level
    k = 2 ** math.ceil(math.log2(max(1.0, math.sqrt(n))))
    return int(min(max(k, s.min_codes_per_level), s.max_codes_per_level))


def rq_config(s: SemanticIdSettings, k: int, balanced: bool) -> RQKMeansConfig:
    return RQKMeansConfig(
        levels=s.levels,
        codes_per_level=k,
        iterations=s.iterations,
        balanced=balanced,
        seed=s.seed,
        balance_iterations=s.balance_iterations,
    )


def collect_embeddings(emb: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(item_ids sorted, float32 (n, d))`` on the driver; rows in ``item_id`` order for determinism."""
    rows = emb.select("item_id", "embedding").orderBy("item_id").toPandas()
    ids = rows["item_id"].to_numpy(str)
    x = np.stack(rows["embedding"].to_numpy()).astype(np.float32) if len(rows) else np.zeros((0, 0), np.float32)
    return ids, x


def fit_codebook(x: np.ndarray, ids: np.ndarray, s: SemanticIdSettings):
    """``(codebook, codes (n, L+1), metrics)``: the configured fit, plus the other variant for comparison."""
    k = choose_k(len(x), s)
    codebook = fit(x, rq_config(s, k, s.balanced))
    codes = resolve_collisions(codebook.train_codes, ids)
    report = {"chosen": "balanced" if s.balanced else "plain", "k_rule": "config" if s.codes_per_level else "sqrt"}
    report[report["chosen"]] = metrics(x, codebook.train_codes, codebook)
    if s.compare_plain:
        other = fit(x, rq_config(s, k, not s.balanced))
        report["plain" if s.balanced else "balanced"] = metrics(x, other.train_codes, other)
    return codebook, codes, report


def sids_frame(spark: SparkSession, ids, codes: np.ndarray, version: str, ds: date) -> DataFrame:
    rows = [(str(i), [int(c) for c in row], version, ds) for i, row in zip(ids, codes, strict=True)]
    return spark.createDataFrame(rows, ITEM_SIDS)


def build_mapping(old: DataFrame, new: DataFrame) -> DataFrame:
    """Items in both versions: ``(item_id, old_version, old_codes, new_version, new_codes)``."""
    o = old.select("item_id", F.col("codebook_version").alias("old_version"), F.col("codes").alias("old_codes"))
    n = new.select("item_id", F.col("codebook_version").alias("new_version"), F.col("codes").alias("new_codes"))
    return o.join(n, "item_id").select(*[F.col(f.name).cast(f.dataType) for f in ITEM_SID_MAPPING.fields])


def _run_full(spark: SparkSession, cfg: Settings, ds: date, emb: DataFrame, emb_version: str | None) -> dict:
    s, root = cfg.item.semantic_ids, codebook_root(cfg)
    version, out = version_for(ds), cfg.table_path("item_sids")
    ids, x = collect_embeddings(emb)
    fingerprint = codebook_io.input_fingerprint(x, ids)
    vdir = root / version
    wanted = dataclasses.asdict(rq_config(s, choose_k(len(x), s), s.balanced))
    if (vdir / codebook_io.MANIFEST_FILE).is_file():
        done = codebook_io.read_manifest(vdir)
        if done["input_fingerprint"] == fingerprint and done["config"] == wanted:
            log.info("semantic_ids ds=%s: codebook %s already fitted on these inputs; nothing to do", ds, version)
            return {"codebook_version": version, "items": int(len(ids)), "skipped": True}
    codebook, codes, report = fit_codebook(x, ids, s)
    report["embedding_version"] = emb_version
    spec = cfg.table("item_sids")
    new = sids_frame(spark, ids, codes, version, ds)
    delta.overwrite_partition(new, out, spec.partition_by, f"codebook_version = '{version}'")
    previous = [v for v in codebook_versions(root, ds) if v < version]
    if previous:
        sids = delta.read(spark, out)
        old = sids.where(F.col("codebook_version") == previous[-1])
        mapping = build_mapping(old, sids.where(F.col("codebook_version") == version))
        m_spec = cfg.table("item_sid_mapping")
        where = f"new_version = '{version}'"
        delta.overwrite_partition(mapping, cfg.table_path("item_sid_mapping"), m_spec.partition_by, where)
    codebook_io.save(codebook, vdir, version=version, fingerprint=fingerprint, metrics=report)
    (vdir / "metrics.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    chosen = report[report["chosen"]]
    log.info(
        "semantic_ids ds=%s: fitted %s (%d x %s) on %d items -> %s; utilisation %s, collisions %.3f -> %.3f",
        ds, version, s.levels, codebook.k_per_level, len(ids), out, chosen["utilisation"],
        chosen["collision_rate_before"], chosen["collision_rate_after"],
    )  # fmt: skip
    return {"codebook_version": version, "items": int(len(ids)), "previous": previous[-1] if previous else None,
            "codebook": dataclasses.asdict(codebook.config), "metrics": report}  # fmt: skip


def _run_encode(spark: SparkSession, cfg: Settings, ds: date, emb: DataFrame, version: str) -> dict:
    out = cfg.table_path("item_sids")
    codebook, manifest = codebook_io.load(codebook_root(cfg) / version)
    current = delta.read(spark, out, ITEM_SIDS).where(F.col("codebook_version") == version)
    ids, x = collect_embeddings(emb.join(current.select("item_id"), "item_id", "left_anti"))
    if len(ids) == 0:
        log.info("semantic_ids ds=%s: every item has an ID in %s; %s unchanged", ds, version, out)
        return {"codebook_version": version, "new_items": 0}
    if x.shape[1] != codebook.dim:
        raise ValueError(f"embeddings are {x.shape[1]}-d but codebook {version} is {codebook.dim}-d: run --mode full")
    existing = {tuple(int(c) for c in r["codes"]): r["item_id"] for r in current.select("item_id", "codes").collect()}
    codes = assign_new(existing, encode(x, codebook), ids)
    rows = sids_frame(spark, ids, codes, version, ds)
    delta.merge_upsert(spark, rows, out, keys=("codebook_version", "item_id"), insert_only=True)
    log.info("semantic_ids ds=%s: encoded %d new items with codebook %s into %s", ds, len(ids), version, out)
    return {"codebook_version": version, "new_items": int(len(ids)), "new_with_dedup": int((codes[:, -1] > 0).sum())}


def run(cfg: Settings, ds: date, spark: SparkSession | None = None, mode: str = "auto") -> dict:
    """Fit a codebook (``full``), or encode items without an ID (``encode``); see the module docstring."""
    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    emb = delta.read(spark, cfg.table_path("item_embeddings"), ITEM_EMBEDDINGS)
    emb_version = emb.agg(F.max("model_version")).collect()[0][0]
    versions = codebook_versions(codebook_root(cfg), ds)
    if mode == "auto":
        fitted_on = (
            codebook_io.read_manifest(codebook_root(cfg) / versions[-1])["metrics"].get("embedding_version")
            if versions
            else None
        )
        mode = "encode" if versions and fitted_on == emb_version else "full"
    if mode == "encode" and not versions:
        log.info("semantic_ids ds=%s: no codebook yet, fitting one", ds)
        mode = "full"
    if emb_version is None:
        report = {"codebook_version": None, "items": 0}
        log.info("semantic_ids ds=%s: %s is empty, nothing to encode", ds, cfg.table_path("item_embeddings"))
    elif mode == "full":
        report = _run_full(spark, cfg, ds, emb, emb_version)
    else:
        report = _run_encode(spark, cfg, ds, emb, versions[-1])
    report.update(ds=ds.isoformat(), mode=mode, table=cfg.table_path("item_sids"))
    write_stage_json(cfg, ds, "semantic_ids", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day, YYYY-MM-DD")
    parser.add_argument("--mode", choices=("auto", "full", "encode"), default="auto")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.ds, mode=args.mode), indent=2, default=str))


if __name__ == "__main__":
    main()

"""Semantic IDs: an RQ-KMeans codebook over ``gold.item_embeddings.embedding`` -> ``gold.item_sids``.

    python -m jobs.semantic_ids --ds 2026-10-03 [--mode auto|full|encode]

* ``full`` fits a new codebook version ``v<YYYYMMDD of ds>`` (models/rq_kmeans.py: ``levels`` x
  ``K``, balanced by default) on a bounded sample of the embeddings (``fit_sample_size`` items,
  see below); the sample's items keep their balanced training codes, every other item gets its
  nearest centroids per level in the executors (models/sid_encode.py, codebook broadcast), and
  a dedup code is appended in Spark (rank by ``item_id`` among items sharing all ``L`` codes, a
  window over the prefix), then partition ``codebook_version = v`` of ``gold.item_sids`` is
  written. When an older version exists,
  ``gold.item_sid_mapping`` (partition ``new_version = v``) maps each item's old tuple to its new
  one, so a model trained on old IDs can be moved over. The codebook goes to
  ``<home>/artifacts/codebooks/<v>/`` (``centroids.safetensors`` + ``codebook.json``, see
  models/codebook_io.py) with ``metrics.json``: utilisation per level, collision rate before and
  after the dedup code, reconstruction error, max/mean cluster size -- over the fit sample, for
  the balanced codebook *and*, fitted on the same vectors, a plain one, so every version records
  what balancing bought -- and ``n_items``, ``fit_sample_size`` (the bound), ``fit_sample_items``
  (the sample used).
* ``encode`` (daily) gives items that have no ID in the current version one, from the current
  codebook (nearest centroid per level in the executors, then, in Spark, ``assign_new``'s rule:
  the prefix's largest dedup code + 1, new items of a prefix in ``item_id`` order), inserted
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

Nothing of catalogue size reaches the driver: it holds the fit sample and the codebook only.
``fit_sample_size`` (default 1,000,000) is sized for an 8 GiB driver: a sample of ``n`` items x
``d`` floats arrives as Arrow (``4 n d`` bytes), becomes one float32 matrix (``4 n d``), and each
fit keeps a residual copy (``4 n d``; two fits with ``compare_plain``) plus a 128 MiB distance
block and ``O(n)`` labels, so the Python side peaks near ``5 x 4 n d`` = 1.3 GB at 10^6 x 64
(the default ``dim``); the JVM side holds the sample's rows once while Spark hands them over
(~0.3 GB), within a 4 GiB heap. Wider embeddings want a proportionally smaller sample (10^6 x
384 would need ~7.5 GB: set ~150k). A sample of 10^6 is ~120 items per cluster at OneRec's
``K`` = 8192, enough for k-means; the codebook is a model of the embedding distribution, not
of each item. Reads and writes go through Delta. Re-runs are idempotent: ``full`` skips the fit
when the version's codebook was fitted on identical inputs (the sample's vectors plus an
order-free hash of every ``(item_id, embedding)``, computed in Spark) and config, ``encode``
finds no item without an ID.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
from datetime import date
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from conf.settings import SemanticIdSettings, Settings
from jobs import arrow_frames, delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import ITEM_EMBEDDINGS, ITEM_SID_MAPPING, ITEM_SIDS
from jobs.stage_report import write_stage_json
from models import codebook_io, sid_encode
from models.rq_kmeans import RQKMeansConfig, fit, metrics

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


def collect_sample(emb: DataFrame, size: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``size`` items, ``(item_ids sorted, float32 (n, d))``, through Arrow: the fit sample.

    The sample is the ``size`` items with the smallest ``xxhash64(item_id)`` (ties: ``item_id``):
    deterministic, spread over the catalogue, and mostly the same items from one refit to the
    next. Spark's top-``size`` (``TakeOrderedAndProject``) sends at most ``size`` rows per
    partition to the driver, never the catalogue. Rows come back in ``item_id`` order.
    """
    sample = emb.select("item_id", "embedding").orderBy(F.xxhash64("item_id"), "item_id").limit(size)
    table = sample.toArrow().sort_by("item_id")
    ids = arrow_frames.string_column(table, "item_id")
    return ids, arrow_frames.vector_matrix(table, "embedding", "gold.item_embeddings sample")


def catalogue_digest(emb: DataFrame) -> tuple[int, str]:
    """``(items, digest)``: count and order-free sum of ``xxhash64(item_id, embedding)``, in Spark.

    The fit sees a sample, but a refit must still notice any changed or added item (the
    version's IDs cover every item), so the skip test hashes the whole table without moving it.
    """
    row = emb.agg(
        F.count("*").alias("n"), F.sum(F.xxhash64("item_id", "embedding").cast("decimal(38,0)")).alias("h")
    ).collect()[0]
    return int(row["n"]), str(row["h"] or 0)


def fit_codebook(x: np.ndarray, ids: np.ndarray, s: SemanticIdSettings, k: int | None = None):
    """``(codebook, metrics)`` fitted on the sample ``x``: the configured fit, plus the other variant
    for comparison. ``codebook.train_codes`` are the sample's (balanced) codes. ``k`` defaults to
    the rule for ``len(x)`` items (pass the catalogue's size when ``x`` is a sample of it)."""
    k = k or choose_k(len(x), s)
    codebook = fit(x, rq_config(s, k, s.balanced))
    report = {"chosen": "balanced" if s.balanced else "plain", "k_rule": "config" if s.codes_per_level else "sqrt"}
    report[report["chosen"]] = metrics(x, codebook.train_codes, codebook)
    if s.compare_plain:
        other = fit(x, rq_config(s, k, not s.balanced))
        report["plain" if s.balanced else "balanced"] = metrics(x, other.train_codes, other)
    return codebook, report


def encode_in_spark(spark: SparkSession, emb: DataFrame, centroids) -> DataFrame:
    """``(item_id, codes array<int> (L))``: nearest centroids per level, computed in the executors.

    The centroids (``levels x K x dim`` float32, a few MB) go out once as a broadcast; the
    executors run models/sid_encode.py (numpy only).
    """
    bc = spark.sparkContext.broadcast([np.asarray(c, np.float32) for c in centroids])
    return emb.select("item_id", "embedding").mapInPandas(
        sid_encode.encode_partitions(lambda: bc.value), "item_id string, codes array<int>"
    )


def _prefix(levels: int) -> list:
    return [F.col("codes")[i] for i in range(levels)]


def with_dedup(codes: DataFrame, levels: int, next_free: DataFrame | None = None) -> DataFrame:
    """Append the dedup code in Spark: ``next_free`` of the prefix + rank by ``item_id`` in the prefix.

    Without ``next_free`` (a full fit) this is ``rq_kmeans.resolve_collisions``: rank among the
    items sharing all ``L`` codes, by ``item_id`` (Spark compares strings by UTF-8 bytes, which is
    code-point order, as Python does). With it (daily encoding), ``rq_kmeans.assign_new``: new
    items of a prefix are numbered from that prefix's largest dedup code ever used + 1.
    """
    keyed = codes.select("item_id", "codes", *[c.alias(f"_c{i}") for i, c in enumerate(_prefix(levels))])
    keys = [f"_c{i}" for i in range(levels)]
    base = F.lit(0)
    if next_free is not None:
        keyed = keyed.join(next_free, keys, "left")
        base = F.coalesce(F.col("_next"), F.lit(0))
    rank = F.row_number().over(Window.partitionBy(*keys).orderBy("item_id")) - 1
    return keyed.select("item_id", F.concat("codes", F.array((base + rank).cast("int"))).alias("codes"))


def next_free_codes(current: DataFrame, levels: int) -> DataFrame:
    """Per prefix in use: ``_next`` = its largest dedup code + 1 (retired tuples stay taken)."""
    prefix = [c.alias(f"_c{i}") for i, c in enumerate(_prefix(levels))]
    return current.groupBy(*prefix).agg((F.max(F.col("codes")[levels]) + 1).alias("_next"))


def sids_rows(codes: DataFrame, version: str, ds: date) -> DataFrame:
    """``(item_id, codes)`` -> rows of ``gold.item_sids`` for ``version``."""
    out = codes.select("item_id", "codes", F.lit(version).alias("codebook_version"), F.lit(ds).cast("date").alias("ds"))
    return out.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_SIDS.fields])


def sample_codes_frame(spark: SparkSession, ids: np.ndarray, codes: np.ndarray) -> DataFrame:
    """The fit sample's own (balanced) codes as a DataFrame: bounded by ``fit_sample_size``."""
    rows = [(str(i), [int(c) for c in row]) for i, row in zip(ids, codes, strict=True)]
    return spark.createDataFrame(rows, "item_id string, codes array<int>")


def build_mapping(old: DataFrame, new: DataFrame) -> DataFrame:
    """Items in both versions: ``(item_id, old_version, old_codes, new_version, new_codes)``."""
    o = old.select("item_id", F.col("codebook_version").alias("old_version"), F.col("codes").alias("old_codes"))
    n = new.select("item_id", F.col("codebook_version").alias("new_version"), F.col("codes").alias("new_codes"))
    return o.join(n, "item_id").select(*[F.col(f.name).cast(f.dataType) for f in ITEM_SID_MAPPING.fields])


def _run_full(spark: SparkSession, cfg: Settings, ds: date, emb: DataFrame, emb_version: str | None) -> dict:
    s, root = cfg.item.semantic_ids, codebook_root(cfg)
    version, out = version_for(ds), cfg.table_path("item_sids")
    emb = emb.select("item_id", "embedding")
    n_items, digest = catalogue_digest(emb)
    ids, x = collect_sample(emb, s.fit_sample_size)
    fingerprint = hashlib.sha256(f"{codebook_io.input_fingerprint(x, ids)}|{n_items}|{digest}".encode()).hexdigest()
    vdir = root / version
    k = choose_k(n_items, s)
    wanted = dataclasses.asdict(rq_config(s, k, s.balanced))
    if (vdir / codebook_io.MANIFEST_FILE).is_file():
        done = codebook_io.read_manifest(vdir)
        if done["input_fingerprint"] == fingerprint and done["config"] == wanted:
            log.info("semantic_ids ds=%s: codebook %s already fitted on these inputs; nothing to do", ds, version)
            return {"codebook_version": version, "items": n_items, "skipped": True}
    codebook, report = fit_codebook(x, ids, s, k)
    report.update(embedding_version=emb_version, n_items=n_items, fit_sample_size=s.fit_sample_size)
    report["fit_sample_items"] = int(len(ids))
    # The sample keeps its balanced training codes; every other item is encoded in the executors.
    sample = sample_codes_frame(spark, ids, codebook.train_codes)
    rest = encode_in_spark(spark, emb.join(sample.select("item_id"), "item_id", "left_anti"), codebook.centroids)
    codes = with_dedup(sample.unionByName(rest), s.levels)
    spec = cfg.table("item_sids")
    delta.overwrite_partition(sids_rows(codes, version, ds), out, spec.partition_by, f"codebook_version = '{version}'")
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
        "semantic_ids ds=%s: fitted %s (%d x %s) on %d of %d items -> %s; utilisation %s, collisions %.3f -> %.3f",
        ds, version, s.levels, codebook.k_per_level, len(ids), n_items, out, chosen["utilisation"],
        chosen["collision_rate_before"], chosen["collision_rate_after"],
    )  # fmt: skip
    return {"codebook_version": version, "items": n_items, "fit_sample_items": int(len(ids)),
            "previous": previous[-1] if previous else None,
            "codebook": dataclasses.asdict(codebook.config), "metrics": report}  # fmt: skip


def _run_encode(spark: SparkSession, cfg: Settings, ds: date, emb: DataFrame, version: str) -> dict:
    out = cfg.table_path("item_sids")
    codebook, _ = codebook_io.load(codebook_root(cfg) / version)
    levels = codebook.levels
    current = delta.read(spark, out, ITEM_SIDS).where(F.col("codebook_version") == version)
    new = emb.select("item_id", "embedding").join(current.select("item_id"), "item_id", "left_anti")
    sizes = new.groupBy(F.size("embedding").alias("d")).agg(F.min("item_id").alias("item_id")).collect()
    if not sizes:
        log.info("semantic_ids ds=%s: every item has an ID in %s; %s unchanged", ds, version, out)
        return {"codebook_version": version, "new_items": 0}
    wrong = [r for r in sizes if r["d"] != codebook.dim]
    if wrong:
        raise ValueError(
            f"embeddings are {wrong[0]['d']}-d (e.g. item {wrong[0]['item_id']!r}) but codebook {version} is"
            f" {codebook.dim}-d: run --mode full"
        )
    codes = with_dedup(encode_in_spark(spark, new, codebook.centroids), levels, next_free_codes(current, levels))
    rows = sids_rows(codes, version, ds).persist()
    try:
        counts = rows.agg(F.count("*").alias("n"), F.sum((F.col("codes")[levels] > 0).cast("int")).alias("d")).collect()
        delta.merge_upsert(spark, rows, out, keys=("codebook_version", "item_id"), insert_only=True)
    finally:
        rows.unpersist()
    n_new, n_dedup = int(counts[0]["n"]), int(counts[0]["d"] or 0)
    log.info("semantic_ids ds=%s: encoded %d new items with codebook %s into %s", ds, n_new, version, out)
    return {"codebook_version": version, "new_items": n_new, "new_with_dedup": n_dedup}


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

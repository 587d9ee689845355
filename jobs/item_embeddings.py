"""Per-item vectors: content (text, attributes, image), behaviour (item-pair graph), aligned embedding.

    python -m jobs.item_embeddings --ds 2026-10-03 [--mode auto|incremental|full]

Catalogue = ``bronze.items`` plus items seen only in ``bronze.events`` (ID-only datasets such as
Amazon Beauty have no item rows at all). For each item, ``gold.item_embeddings`` (MERGE on
``item_id``) holds:

* ``content_vector``: ``[text | attributes | image]`` from jobs/text_encoder.py, computed inside
  Spark with ``mapInPandas`` (the encoder loads once per Python worker); null without content.
* ``behaviour_vector``: the item's row of the top-``dim`` eigenvectors of the normalised
  item-pair graph ``A^ = D^-1/2 A D^-1/2`` (``A`` = ``gold.item_pairs[ds]`` scores), scaled by
  ``sqrt(lambda)``; null for items without pairs. Full runs decompose the graph's core (the
  ``behaviour_sample_items`` best-connected items: the whole graph when it is no bigger) on the
  driver and *fold out* every other item in Spark (``b_n = sum_j A^_nj b_j / lambda``, the LSI
  fold-in); daily runs fold new items into the stored basis the same way, so old vectors stay
  put. Why a core and not the whole graph: jobs/behaviour_vectors.py.
* ``embedding`` (what semantic IDs and lifelong compression use), with ``embedding_source``:
  ``content`` = the aligned content vector (models/item_alignment.py; the fusion MLP is trained
  in full runs on a bounded sample of the day's item pairs -- ``alignment.max_pairs`` pairs
  among ``alignment.max_items`` items, recorded in the manifest -- and applied inside Spark,
  loaded by path in each Python worker); ``behaviour`` = for items
  without content, the behaviour vector -- mapped into the aligned space by a ridge regression
  fitted on items that have both, when the catalogue has content at all; ``cold`` = a fixed
  pseudo-random unit vector (hash of the id) for an item with neither, replaced once it has pairs.

Modes: ``full`` (weekly, or whenever no model exists yet) trains a new model version
``v<YYYYMMDD of ds>-<config fingerprint>`` under ``<home>/artifacts/item_embeddings/``
(aligner safetensors + JSON, spectrum and ridge map as safetensors, ``manifest.json`` with the
alignment's held-out Recall@10, raw vs aligned) and re-embeds every item. ``incremental``
(daily) uses the newest version of the same config not after ``ds`` and embeds only new items,
items whose ``content_hash`` changed and cold items that now have pairs. ``auto`` (the default)
is ``full`` when there is no version yet or the newest is ``full_refresh_days`` old, else
``incremental``. Nothing of catalogue size reaches the driver: it holds the aligner's sample,
the behaviour core and the model; vectors move between stages as Spark columns, never as
Python lists. A re-run changes nothing: the MERGE updates a row only when its version,
content hash or source differs, and a version's artifacts, once written, are reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import arrow_frames, delta
from jobs import behaviour_vectors as bv
from jobs.behaviour_vectors import behaviour_svd, fold_in  # noqa: F401  (re-exported: the in-memory reference)
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.schemas import EVENTS, ITEM_EMBEDDINGS, ITEM_PAIRS, ITEMS
from jobs.stage_report import write_stage_json
from jobs.text_encoder import CONTENT_SCHEMA, ContentParams, cached_model, content_partitions

log = logging.getLogger(__name__)
NO_CONTENT_HASH = ""
MANIFEST, BEHAVIOUR_FILE, ALIGNER_DIR = "manifest.json", "behaviour.safetensors", "aligner"
_VERSION = re.compile(r"^v\d{8}-[0-9a-f]{8}$")


# ---- transforms -------------------------------------------------------------------------------


def build_catalogue(items: DataFrame, event_item_ids: DataFrame) -> DataFrame:
    """bronze.items rows + ID-only items (``item_id`` from events, no content, hash ``''``)."""
    cols = ["item_id", "content_hash", "title", "description", "categories", "attributes", "image_vector"]
    known = items.select(*cols)
    ids_only = event_item_ids.select("item_id").distinct().join(known.select("item_id"), "item_id", "left_anti")
    types = {f.name: f.dataType for f in ITEMS.fields}
    filler = [F.lit(NO_CONTENT_HASH).alias("content_hash")] + [F.lit(None).cast(types[c]).alias(c) for c in cols[2:]]
    return known.unionByName(ids_only.select("item_id", *filler))


def select_to_embed(catalogue: DataFrame, existing: DataFrame, pair_items: DataFrame) -> DataFrame:
    """Catalogue rows that are new, changed (``content_hash``) or cold in ``existing`` but now in pairs."""
    current = existing.select("item_id", "content_hash")
    changed = catalogue.join(current, ["item_id", "content_hash"], "left_anti")
    warmed = (
        existing.where(F.col("embedding_source") == "cold").select("item_id").join(pair_items, "item_id", "left_semi")
    )
    return changed.unionByName(catalogue.join(warmed, "item_id", "left_semi")).dropDuplicates(["item_id"])


def with_content(catalogue: DataFrame, params: ContentParams) -> DataFrame:
    """``CONTENT_SCHEMA`` rows, encoded inside Spark (one model per Python worker)."""
    return catalogue.mapInPandas(content_partitions(params), CONTENT_SCHEMA)


def with_aligned(content: DataFrame, aligner_dir: str, threads: int) -> DataFrame:
    """Adds ``aligned`` (the trained fusion model applied inside Spark) to rows with content."""

    def fn(batches):
        import torch

        from models import item_alignment

        torch.set_num_threads(max(1, threads))
        model = cached_model(("aligner", aligner_dir), lambda: item_alignment.load(aligner_dir)[0])
        for frame in batches:
            x = np.stack(frame["content_vector"].to_numpy()) if len(frame) else np.zeros((0, model.cfg.in_dim))
            z = item_alignment.embed(model, x.astype(np.float32))
            yield pd.DataFrame({"item_id": frame["item_id"].values, "aligned": list(z)})

    rows = content.where(F.col("content_vector").isNotNull()).select("item_id", "content_vector")
    return content.join(rows.mapInPandas(fn, "item_id string, aligned array<float>"), "item_id", "left")


# ---- behaviour -> aligned space, cold items ---------------------------------------------------


def ridge_map(b: np.ndarray, z: np.ndarray, lam: float = 1e-2) -> np.ndarray:
    """``W`` minimising ``||b W - z||^2 + lam ||W||^2`` (behaviour -> aligned space)."""
    return np.linalg.solve(b.T @ b + lam * np.eye(b.shape[1]), b.T @ z).astype(np.float32)


def cold_vector(item_id: str, dim: int) -> np.ndarray:
    """A fixed unit vector per id (blake2b-seeded), for items with neither content nor pairs."""
    seed = int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)


# ---- model versions ----------------------------------------------------------------------------


def artifacts_root(cfg: Settings) -> Path:
    return cfg.artifacts_path / "item_embeddings"


def config_fingerprint(cfg: Settings) -> str:
    """8 hex digits over the embedding + alignment settings: a changed config never reuses a model."""
    knobs = {"embeddings": cfg.item.embeddings.model_dump(), "alignment": cfg.item.alignment.model_dump()}
    return hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:8]


def version_for(ds: date, fingerprint: str) -> str:
    return f"v{ds:%Y%m%d}-{fingerprint}"


def version_date(version: str) -> date:
    return date(int(version[1:5]), int(version[5:7]), int(version[7:9]))


def current_version(root: Path, ds: date, fingerprint: str) -> str | None:
    """Newest complete version of this config not after ``ds`` (a backfill uses that day's model)."""
    if not root.is_dir():
        return None
    done = [p.name for p in root.iterdir() if _VERSION.match(p.name) and (p / MANIFEST).is_file()]
    done = [v for v in done if v.endswith(f"-{fingerprint}") and version_date(v) <= ds]
    return max(done) if done else None


def content_params(cfg: Settings) -> ContentParams:
    e = cfg.item.embeddings
    return ContentParams(
        text_encoder=e.text_encoder,
        text_model_path=e.text_model_path,
        text_dim=e.text_dim,
        batch_size=e.batch_size,
        threads=e.worker_threads,
        attribute_dim=e.attribute_dim,
        attribute_buckets=e.attribute_buckets,
        image_dim=e.image_dim,
        seed=e.seed,
    )


def alignment_config(cfg: Settings):
    from models.item_alignment import AlignmentConfig

    a, e = cfg.item.alignment, cfg.item.embeddings
    knobs = a.model_dump(exclude={"max_pairs", "max_items"})
    dims = {"text_dim": e.text_dim, "attribute_dim": e.attribute_dim, "image_dim": e.image_dim, "out_dim": e.dim}
    return AlignmentConfig(**knobs, **dims, seed=e.seed)


def aligner_sample(pairs: DataFrame, max_pairs: int, max_items: int) -> tuple[pd.DataFrame, list[str]]:
    """The aligner's bounded training set: ``(pairs, items)``, at most ``max_pairs`` x ``max_items``.

    The ``max_pairs`` strongest pairs (score, then ids: deterministic; Spark's top-n sends at most
    that many rows to the driver), then the first ``max_items`` items in that order and the
    pairs among them.
    """
    top = pairs.orderBy(F.desc("score"), "item_id", "other_item_id").limit(max_pairs).toArrow().to_pandas()
    top = top.sort_values(["score", "item_id", "other_item_id"], ascending=[False, True, True], kind="stable")
    items = pd.unique(top[["item_id", "other_item_id"]].to_numpy().ravel())[:max_items]
    keep = set(items)
    top = top[top["item_id"].isin(keep) & top["other_item_id"].isin(keep)].reset_index(drop=True)
    return top, [str(i) for i in items]


def _fit_aligner(cfg: Settings, x: np.ndarray, pairs: np.ndarray, acfg) -> tuple:
    """``item_alignment.fit_and_evaluate`` with torch on ``model.threads`` threads, as the model stages use.

    The summation order of CPU training follows the thread count, and the trained weights with
    it (last bits, enough to move a 6th significant digit of an embedding). Without this the
    count was whatever the process had: ``model.threads`` in one ``dag.test()`` process (the
    model stages set it first), torch's default (the cores) in a task process of its own (Celery).
    """
    import torch

    from models import item_alignment

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.model.threads))
    try:
        return item_alignment.fit_and_evaluate(x, pairs, acfg)
    finally:
        torch.set_num_threads(before)


def train_version(
    spark: SparkSession, cfg: Settings, vdir: Path, content: DataFrame, pairs: DataFrame, beh: dict
) -> dict:
    """Train the aligner on a bounded sample of pairs and items (driver), fit the ridge map on the
    behaviour basis, write the version's files. ``beh``: ``{"vectors": {id: vector}, "sigma"}``
    of the basis (bounded by ``behaviour_sample_items``)."""
    from safetensors.numpy import save_file

    from models import item_alignment

    acfg, a = alignment_config(cfg), cfg.item.alignment
    pairs, item_ids = aligner_sample(pairs, a.max_pairs, a.max_items)
    has = content.where(F.col("content_vector").isNotNull()).select("item_id", "content_vector")
    if len(pairs):
        has = has.join(
            spark.createDataFrame(pd.DataFrame({"item_id": item_ids}), "item_id string"), "item_id", "left_semi"
        )
    else:  # no behaviour yet: a content-only model (reconstruction), replaced by the next full run
        has = has.orderBy("item_id").limit(min(20_000, a.max_items))
    table = has.orderBy("item_id").toArrow()
    ids = arrow_frames.string_column(table, "item_id")
    sample = {"max_pairs": a.max_pairs, "max_items": a.max_items, "pairs": int(len(pairs)), "items": int(len(ids))}
    manifest = {"version": vdir.name, "has_aligner": len(ids) > 0, "has_ridge": False, "n_pairs": int(len(pairs))}
    manifest["aligner_sample"] = sample
    tensors = {"sigma": beh["sigma"]}
    if len(ids):
        x = arrow_frames.vector_matrix(table, "content_vector", "content vectors")
        index = {k: i for i, k in enumerate(ids)}
        both = pairs[pairs["item_id"].isin(index) & pairs["other_item_id"].isin(index)]
        p = np.array([[index[a], index[b]] for a, b in zip(both["item_id"], both["other_item_id"], strict=True)])
        model, report = _fit_aligner(cfg, x, p.reshape(-1, 2), acfg)
        item_alignment.save(model, vdir / ALIGNER_DIR, metrics=report)
        manifest["alignment"] = report
        shared = [k for k in ids if k in beh["vectors"]]
        if len(shared) >= 2:
            z = item_alignment.embed(model, x[[index[k] for k in shared]])
            tensors["ridge"] = ridge_map(np.stack([beh["vectors"][k] for k in shared]), z)
            manifest["has_ridge"] = True
    vdir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(vdir / BEHAVIOUR_FILE))
    (vdir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")  # last: marks it complete
    return manifest


def fallback_partitions(ridge: np.ndarray | None, dim: int):
    """``mapInPandas``: ``(item_id, behaviour_vector)`` -> ``(item_id, _emb, _src)`` for items without
    aligned content: the behaviour vector through the ridge map (unit), else a cold vector."""

    def fn(batches):
        for frame in batches:
            emb, src = [], []
            for item, b in zip(frame["item_id"], frame["behaviour_vector"], strict=True):
                b = None if b is None else np.asarray(b, dtype=np.float32)
                v = None if b is None else _unit(b @ ridge) if ridge is not None else _unit(b)
                usable = v is not None and np.linalg.norm(v) > 0.5
                emb.append(v if usable else cold_vector(str(item), dim))
                src.append("behaviour" if usable else "cold")
            yield pd.DataFrame({"item_id": frame["item_id"].values, "_emb": emb, "_src": src})

    return fn


def assemble(
    content: DataFrame, beh: DataFrame, ridge: np.ndarray | None, version: str, ds: date, dim: int
) -> DataFrame:
    """Rows in the ``gold.item_embeddings`` schema: aligned content, else behaviour, else cold (in Spark).

    ``content``: ``CONTENT_SCHEMA`` + ``aligned``; ``beh``: ``(item_id, behaviour_vector)``.
    """
    joined = content.join(beh, "item_id", "left")
    side = (
        joined.where(F.col("aligned").isNull())
        .select("item_id", "behaviour_vector")
        .mapInPandas(fallback_partitions(ridge, dim), "item_id string, _emb array<float>, _src string")
    )
    out = joined.join(side, "item_id", "left").select(
        "item_id",
        "content_vector",
        "behaviour_vector",
        F.coalesce("aligned", "_emb").alias("embedding"),
        F.when(F.col("aligned").isNotNull(), F.lit("content")).otherwise(F.col("_src")).alias("embedding_source"),
        "content_hash",
        F.lit(version).alias("model_version"),
        F.lit(ds).cast("date").alias("ds"),
    )
    return out.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_EMBEDDINGS.fields])


# ---- job ---------------------------------------------------------------------------------------


def _read_pairs(spark: SparkSession, cfg: Settings, ds: date) -> DataFrame:
    pairs = delta.read(spark, cfg.table_path("item_pairs"), ITEM_PAIRS).where(F.col("ds") == F.lit(ds).cast("date"))
    return pairs.select("item_id", "other_item_id", "score")


def _behaviour(spark, cfg, mode, sym, todo, existing, vdir) -> tuple[DataFrame, dict]:
    """``(vectors of the todo items (Spark), basis)``; see jobs/behaviour_vectors.py.

    Full: decompose the graph's core (``behaviour_sample_items``), fold the other items out in
    Spark. Incremental: fold the todo items into the version's fixed basis (their paired items'
    stored vectors). ``basis`` = ``{"vectors": {id: vector} (the core only), "sigma", "items"}``.
    """
    from safetensors.numpy import load_file

    e = cfg.item.embeddings
    norm = bv.normalised_edges(sym)
    todo_ids = todo.select("item_id")
    if mode == "full":
        ids, vecs, sigma = bv.core_basis(spark, sym, e.behaviour_sample_items, e.dim, e.seed)
        core = bv.vectors_frame(spark, ids, vecs)
        rest = todo_ids.join(spark.createDataFrame([(str(i),) for i in ids], "item_id string"), "item_id", "left_anti")
        vectors = core.join(todo_ids, "item_id", "left_semi").unionByName(bv.fold_in_spark(norm, core, rest, sigma))
        usable = np.linalg.norm(vecs, axis=1) > 1e-9
        basis = {"vectors": dict(zip(ids[usable].tolist(), vecs[usable], strict=True)), "sigma": sigma}
        return vectors, {**basis, "items": int(len(ids))}
    sigma = load_file(str(vdir / BEHAVIOUR_FILE))["sigma"]
    known = existing.where(F.col("behaviour_vector").isNotNull()).join(todo_ids, "item_id", "left_anti")
    vectors = bv.fold_in_spark(norm, known.select("item_id", "behaviour_vector"), todo_ids, sigma)
    return vectors, {"vectors": {}, "sigma": sigma, "items": 0}


def run(cfg: Settings, ds: date, spark: SparkSession | None = None, mode: str = "auto") -> dict:
    """Embed the catalogue as of ``ds`` (``full``) or its new/changed items (``incremental``); MERGE.

    ``auto``: full when there is no model version yet or the newest one is ``full_refresh_days`` old.
    """
    from safetensors.numpy import load_file

    from jobs.spark import get_spark

    spark = spark or get_spark(cfg)
    root, out_path = artifacts_root(cfg), cfg.table_path("item_embeddings")
    fingerprint = config_fingerprint(cfg)
    version = current_version(root, ds, fingerprint)
    if mode == "auto":
        age = None if version is None else (ds - version_date(version)).days
        mode = "incremental" if age is not None and age < cfg.item.embeddings.full_refresh_days else "full"
    if mode == "incremental" and version is None:
        log.info("item_embeddings ds=%s: no model version yet under %s, running full", ds, root)
        mode = "full"
    version = version_for(ds, fingerprint) if mode == "full" else version
    vdir = root / version
    events = delta.read(spark, cfg.table_path("events"), EVENTS)
    day = F.lit(ds).cast("date")
    events = events.where(F.col("event_date") <= day if mode == "full" else F.col("event_date") == day)
    catalogue = build_catalogue(delta.read(spark, cfg.table_path("items"), ITEMS), events.select("item_id"))
    pairs = _read_pairs(spark, cfg, ds)
    sym = bv.symmetric_edges(pairs).persist()
    existing = delta.read(spark, out_path, ITEM_EMBEDDINGS)
    todo = catalogue
    if mode == "incremental":
        todo = select_to_embed(catalogue, existing, sym.select(F.col("a").alias("item_id")).distinct())
    # Counted before the text encoder: a day without new, changed or newly-warm items starts no
    # Python worker for it.
    todo = todo.persist()
    n_todo = todo.count()
    content = with_content(todo, content_params(cfg)).persist()
    report = {"ds": ds.isoformat(), "mode": mode, "model_version": version, "table": out_path, "embedded": 0}
    if n_todo:
        beh, basis = _behaviour(spark, cfg, mode, sym, content, existing, vdir)
        beh = beh.persist()
        if not (vdir / MANIFEST).is_file():
            train_version(spark, cfg, vdir, content, pairs, basis)
        manifest = json.loads((vdir / MANIFEST).read_text())
        ridge = load_file(str(vdir / BEHAVIOUR_FILE)).get("ridge")
        if manifest["has_aligner"]:
            content = with_aligned(content, str(vdir / ALIGNER_DIR), cfg.item.embeddings.worker_threads)
        else:
            content = content.withColumn("aligned", F.lit(None).cast("array<float>"))
        rows = assemble(content, beh, ridge, version, ds, cfg.item.embeddings.dim).persist()
        by_source = {r["embedding_source"]: int(r["count"]) for r in rows.groupBy("embedding_source").count().collect()}
        changed = (
            "s.model_version > t.model_version OR (s.model_version = t.model_version"
            " AND (t.content_hash <> s.content_hash OR t.embedding_source <> s.embedding_source))"
        )
        delta.merge_upsert(spark, rows, out_path, keys=("item_id",), update_condition=changed)
        rows.unpersist()
        beh.unpersist()
        report.update(embedded=n_todo, by_source=by_source, alignment=manifest.get("alignment"))
        report.update(aligner_sample=manifest.get("aligner_sample"), behaviour_basis_items=basis["items"])
    sym.unpersist()
    content.unpersist()
    todo.unpersist()
    log.info(
        "item_embeddings ds=%s mode=%s version=%s: embedded %d items into %s",
        ds, mode, version, report["embedded"], out_path,
    )  # fmt: skip
    write_stage_json(cfg, ds, "item_embeddings", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="day to embed, YYYY-MM-DD")
    parser.add_argument("--mode", choices=("auto", "incremental", "full"), default="auto")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run(settings_from_args(args), args.ds, mode=args.mode), indent=2, default=str))


if __name__ == "__main__":
    main()

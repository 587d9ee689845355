"""Per-item vectors: content (text, attributes, image), behaviour (item-pair graph), aligned embedding.

    python -m jobs.item_embeddings --ds 2026-10-03 [--mode auto|incremental|full]

Catalogue = ``bronze.items`` plus items seen only in ``bronze.events`` (ID-only datasets such as
Amazon Beauty have no item rows at all). For each item, ``gold.item_embeddings`` (MERGE on
``item_id``) holds:

* ``content_vector``: ``[text | attributes | image]`` from jobs/text_encoder.py, computed inside
  Spark with ``mapInPandas`` (the encoder loads once per Python worker); null without content.
* ``behaviour_vector``: the item's row of the top-``dim`` eigenvectors of the normalised
  item-pair graph ``A^ = D^-1/2 A D^-1/2`` (``A`` = ``gold.item_pairs[ds]`` scores; a truncated
  spectral decomposition, i.e. SVD of a symmetric matrix), scaled by ``sqrt(lambda)``; null for
  items without pairs. Full runs decompose the graph; daily runs *fold in* new items
  (``b_new = sum_j A^_nj b_j / lambda``, the LSI fold-in), so old vectors stay put.
* ``embedding`` (what semantic IDs and lifelong compression use), with ``embedding_source``:
  ``content`` = the aligned content vector (models/item_alignment.py; the fusion MLP is trained
  on the day's item pairs in full runs and applied inside Spark); ``behaviour`` = for items
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
``incremental``. A re-run changes nothing: the MERGE updates a row only when its version,
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
from jobs import delta
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


# ---- behaviour vectors (driver, numpy) -----------------------------------------------------------


def normalised_graph(pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, rows, cols, weights)`` of ``D^-1/2 A D^-1/2`` with ``A`` symmetric (max of both directions)."""
    ids = np.unique(np.concatenate([pairs["item_id"].to_numpy(str), pairs["other_item_id"].to_numpy(str)]))
    i = np.searchsorted(ids, pairs["item_id"].to_numpy(str))
    j = np.searchsorted(ids, pairs["other_item_id"].to_numpy(str))
    w = pairs["score"].to_numpy(np.float64)
    sym = pd.DataFrame({"a": np.concatenate([i, j]), "b": np.concatenate([j, i]), "w": np.concatenate([w, w])})
    sym = sym.groupby(["a", "b"], sort=True)["w"].max().reset_index()
    deg = np.bincount(sym["a"], weights=sym["w"], minlength=len(ids))
    weights = sym["w"].to_numpy() / np.sqrt(deg[sym["a"]] * deg[sym["b"]])
    return ids, sym["a"].to_numpy(), sym["b"].to_numpy(), weights


def behaviour_svd(pairs: pd.DataFrame, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, vectors (n, dim), sigma (dim,))``: ``U sqrt(lambda)`` of the normalised graph, zero-padded.

    The graph is symmetric, so this is its eigendecomposition, keeping the largest *algebraic*
    eigenvalues (the smooth, cluster-revealing directions; a plain SVD would also keep large
    negative ones, whose vectors flip sign between neighbours and break the fold-in).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import eigsh

    ids, rows, cols, w = normalised_graph(pairs)
    n = len(ids)
    vecs, sigma = np.zeros((n, dim), np.float32), np.zeros(dim, np.float32)
    k = min(dim, n - 1)
    if k >= 1:
        a = csr_matrix((w, (rows, cols)), shape=(n, n))
        if n <= 4 * dim + 64:
            lam, u = np.linalg.eigh(a.toarray())
        else:
            lam, u = eigsh(a, k=k, which="LA", v0=np.random.default_rng(seed).standard_normal(n))
        top = np.argsort(-lam, kind="stable")[:k]
        lam, u = np.maximum(lam[top], 0.0), u[:, top]
        u *= np.where(u[np.abs(u).argmax(axis=0), np.arange(k)] < 0, -1.0, 1.0)  # fixed signs
        vecs[:, :k], sigma[:k] = u * np.sqrt(lam), lam
    return ids, vecs, sigma


def fold_in(pairs: pd.DataFrame, new_ids: list[str], known: dict[str, np.ndarray], sigma: np.ndarray) -> dict:
    """LSI fold-in of ``new_ids`` against fixed ``known`` vectors: ``b = sum_j A^_nj b_j / lambda``."""
    ids, rows, cols, w = normalised_graph(pairs)
    out, want = {}, set(new_ids)
    inv = np.divide(1.0, sigma, out=np.zeros_like(sigma), where=sigma > 1e-6)
    for a in np.unique(rows):
        if ids[a] not in want:
            continue
        sel = (rows == a) & np.isin(ids[cols], list(known))
        if sel.any():
            b = sum(wt * known[ids[c]] for c, wt in zip(cols[sel], w[sel], strict=True))
            out[str(ids[a])] = (b * inv).astype(np.float32)
    return out


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
    knobs = a.model_dump(exclude={"max_pairs"})
    dims = {"text_dim": e.text_dim, "attribute_dim": e.attribute_dim, "image_dim": e.image_dim, "out_dim": e.dim}
    return AlignmentConfig(**knobs, **dims, seed=e.seed)


def train_version(
    spark: SparkSession, cfg: Settings, vdir: Path, content: DataFrame, pairs: pd.DataFrame, beh: dict
) -> dict:
    """Train the aligner on the pairs' items (driver), fit the ridge map, write the version's files."""
    from safetensors.numpy import save_file

    from models import item_alignment

    acfg = alignment_config(cfg)
    pairs = pairs.sort_values(["score", "item_id", "other_item_id"], ascending=[False, True, True])
    pairs = pairs.head(cfg.item.alignment.max_pairs)
    has = content.where(F.col("content_vector").isNotNull()).select("item_id", "content_vector")
    if len(pairs):
        ids = pd.DataFrame({"item_id": pd.unique(pairs[["item_id", "other_item_id"]].to_numpy().ravel())})
        has = has.join(spark.createDataFrame(ids, "item_id string"), "item_id", "left_semi")
    else:  # no behaviour yet: a content-only model (reconstruction), replaced by the next full run
        has = has.orderBy("item_id").limit(20_000)
    rows = has.orderBy("item_id").toPandas()
    manifest = {"version": vdir.name, "has_aligner": len(rows) > 0, "has_ridge": False, "n_pairs": int(len(pairs))}
    tensors = {"sigma": beh["sigma"]}
    if len(rows):
        x = np.stack(rows["content_vector"].to_numpy()).astype(np.float32)
        index = {k: i for i, k in enumerate(rows["item_id"])}
        both = pairs[pairs["item_id"].isin(index) & pairs["other_item_id"].isin(index)]
        p = np.array([[index[a], index[b]] for a, b in zip(both["item_id"], both["other_item_id"], strict=True)])
        model, report = item_alignment.fit_and_evaluate(x, p.reshape(-1, 2), acfg)
        item_alignment.save(model, vdir / ALIGNER_DIR, metrics=report)
        manifest["alignment"] = report
        shared = [k for k in rows["item_id"] if k in beh["vectors"]]
        if len(shared) >= 2:
            z = item_alignment.embed(model, x[[index[k] for k in shared]])
            tensors["ridge"] = ridge_map(np.stack([beh["vectors"][k] for k in shared]), z)
            manifest["has_ridge"] = True
    vdir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(vdir / BEHAVIOUR_FILE))
    (vdir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")  # last: marks it complete
    return manifest


def assemble(
    spark: SparkSession, content: DataFrame, beh: dict, ridge: np.ndarray | None, version: str, ds: date, dim: int
) -> DataFrame:
    """Rows in the ``gold.item_embeddings`` schema: aligned content, else behaviour, else cold."""
    beh_vecs = beh["vectors"]
    fallback = [r["item_id"] for r in content.where(F.col("aligned").isNull()).select("item_id").collect()]
    emb, src = [], []
    for item in fallback:
        b = beh_vecs.get(item)
        v = None if b is None else _unit(b @ ridge) if ridge is not None else _unit(b)
        usable = v is not None and np.linalg.norm(v) > 0.5
        # Plain Python floats: without Arrow, createDataFrame rejects numpy scalars in array<float>.
        emb.append(np.asarray(v if usable else cold_vector(item, dim), dtype=np.float64).tolist())
        src.append("behaviour" if usable else "cold")
    side = pd.DataFrame({"item_id": fallback, "_emb": emb, "_src": src})
    side_df = spark.createDataFrame(side, "item_id string, _emb array<float>, _src string")
    vectors = [np.asarray(v, dtype=np.float64).tolist() for v in beh_vecs.values()]
    bdf = pd.DataFrame({"item_id": list(beh_vecs), "behaviour_vector": vectors})
    beh_df = spark.createDataFrame(bdf, "item_id string, behaviour_vector array<float>")
    out = content.join(beh_df, "item_id", "left").join(side_df, "item_id", "left")
    out = out.select(
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


def _read_pairs(spark: SparkSession, cfg: Settings, ds: date) -> pd.DataFrame:
    pairs = delta.read(spark, cfg.table_path("item_pairs"), ITEM_PAIRS).where(F.col("ds") == F.lit(ds).cast("date"))
    return pairs.select("item_id", "other_item_id", "score").toPandas()


def _behaviour(spark, cfg, mode, pairs, todo_ids, existing, vdir) -> dict:
    """Full: SVD of the graph. Incremental: fold new items into the version's fixed basis."""
    from safetensors.numpy import load_file

    dim, seed = cfg.item.embeddings.dim, cfg.item.embeddings.seed
    if mode == "full":
        if not len(pairs):
            return {"vectors": {}, "sigma": np.zeros(dim, np.float32)}
        ids, vecs, sigma = behaviour_svd(pairs, dim, seed)
        return {"vectors": _usable(dict(zip(ids.tolist(), vecs, strict=True))), "sigma": sigma}
    sigma = load_file(str(vdir / BEHAVIOUR_FILE))["sigma"]
    todo = set(todo_ids)
    near = pairs[pairs["item_id"].isin(todo) | pairs["other_item_id"].isin(todo)]
    if not len(near):
        return {"vectors": {}, "sigma": sigma}
    ids = pd.DataFrame({"item_id": pd.unique(near[["item_id", "other_item_id"]].to_numpy().ravel())})
    known_rows = (
        existing.where(F.col("behaviour_vector").isNotNull())
        .join(spark.createDataFrame(ids, "item_id string"), "item_id", "left_semi")
        .select("item_id", "behaviour_vector")
        .collect()
    )
    known = {
        r["item_id"]: np.asarray(r["behaviour_vector"], np.float32) for r in known_rows if r["item_id"] not in todo
    }
    return {"vectors": _usable(fold_in(near, sorted(todo), known, sigma)), "sigma": sigma}


def _usable(vectors: dict) -> dict:
    """Drop all-zero vectors (an item in a graph component the top eigenvectors miss): no signal."""
    return {k: v for k, v in vectors.items() if np.linalg.norm(v) > 1e-9}


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
    existing = delta.read(spark, out_path, ITEM_EMBEDDINGS)
    todo = catalogue
    if mode == "incremental":
        pair_ids = pd.DataFrame({"item_id": pd.unique(pairs[["item_id", "other_item_id"]].to_numpy().ravel())})
        todo = select_to_embed(catalogue, existing, spark.createDataFrame(pair_ids, "item_id string"))
    content = with_content(todo, content_params(cfg)).persist()
    todo_ids = [r["item_id"] for r in content.select("item_id").collect()]
    report = {"ds": ds.isoformat(), "mode": mode, "model_version": version, "table": out_path, "embedded": 0}
    if todo_ids:
        beh = _behaviour(spark, cfg, mode, pairs, todo_ids, existing, vdir)
        if not (vdir / MANIFEST).is_file():
            train_version(spark, cfg, vdir, content, pairs, beh)
        manifest = json.loads((vdir / MANIFEST).read_text())
        ridge = load_file(str(vdir / BEHAVIOUR_FILE)).get("ridge")
        if manifest["has_aligner"]:
            content = with_aligned(content, str(vdir / ALIGNER_DIR), cfg.item.embeddings.worker_threads)
        else:
            content = content.withColumn("aligned", F.lit(None).cast("array<float>"))
        rows = assemble(spark, content, beh, ridge, version, ds, cfg.item.embeddings.dim).persist()
        by_source = {r["embedding_source"]: int(r["count"]) for r in rows.groupBy("embedding_source").count().collect()}
        changed = (
            "s.model_version > t.model_version OR (s.model_version = t.model_version"
            " AND (t.content_hash <> s.content_hash OR t.embedding_source <> s.embedding_source))"
        )
        delta.merge_upsert(spark, rows, out_path, keys=("item_id",), update_condition=changed)
        rows.unpersist()
        report.update(embedded=len(todo_ids), by_source=by_source, alignment=manifest.get("alignment"))
    content.unpersist()
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

"""Driver memory of the item stages at 1x and 10x a synthetic catalogue: bounded by the sample sizes.

    python -m bench.item_driver_memory [--items 5000] [--bound 5000] [--scales 1 10]

Each scale runs in its own process (a fresh driver: peak RSS never shrinks within one): it
writes a synthetic catalogue of ``items x scale`` items (``bronze.items``, ``gold.item_pairs``,
``--pairs`` partners per item within one of 20 topics) under a temp home, then runs
``item_embeddings`` (full, ``hashing`` text encoder) and ``semantic_ids`` (full) with every
driver-side sample bound (``item.semantic_ids.fit_sample_size``,
``item.embeddings.behaviour_sample_items``, ``item.alignment.max_items``; ``max_pairs`` = 3x) set
to ``--bound``. Figures per scale:

* ``python_peak_mb``: peak RSS of the Python driver above its level before the stages
  (sampled every 20 ms with psutil);
* ``jvm_heap_peak_mb``: peak heap used by the driver JVM (``Runtime``, same sampling);
* ``collected_mb``: bytes of task results sent to the driver (Spark's ``resultSize``), all
  stages of the run;
* the peer figures: ``catalogue_vectors_mb`` (raw float32 size of every item's content vector +
  embedding) and ``old_path_*``: the same measurements for the old collect-to-driver path,
  ``toPandas`` of ``gold.item_embeddings`` + ``np.stack`` (what semantic_ids used to do first).

Output: one JSON line per scale and a table; ``--out`` writes the JSON list.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

DS = date(2026, 10, 5)
TOPICS = 20


def bounded_settings(cfg, bound: int, dim: int = 16):
    """``cfg`` with the hashing encoder, small vectors and every driver-side sample set to ``bound``."""
    item = cfg.item
    emb = item.embeddings.model_copy(
        update={"text_encoder": "hashing", "text_dim": 64, "attribute_dim": 8, "attribute_buckets": 64,
                "image_dim": 8, "dim": dim, "behaviour_sample_items": bound}
    )  # fmt: skip
    align = item.alignment.model_copy(
        update={"epochs": 2, "hidden": 16, "holdout": 0.1, "val_share": 0.0, "max_items": bound,
                "max_pairs": 3 * bound, "max_eval_pairs": 200}
    )  # fmt: skip
    sids = item.semantic_ids.model_copy(
        update={"levels": 2, "codes_per_level": 8, "iterations": 3, "balance_iterations": 3,
                "compare_plain": False, "fit_sample_size": bound}
    )  # fmt: skip
    new_item = item.model_copy(update={"embeddings": emb, "alignment": align, "semantic_ids": sids})
    return cfg.model_copy(update={"item": new_item})


def write_synthetic_catalogue(spark, cfg, n_items: int, pairs_per_item: int = 4, ds: date = DS) -> None:
    """``bronze.items`` (title/attributes by topic) and ``gold.item_pairs[ds]`` (partners in the same
    topic), generated in Spark so the catalogue never passes through Python."""
    from pyspark.sql import functions as F

    from jobs import delta
    from jobs.schemas import ITEM_PAIRS, ITEMS

    base = spark.range(n_items).select(
        F.format_string("it%08d", "id").alias("item_id"), "id", (F.col("id") % TOPICS).alias("topic")
    )
    title = F.concat_ws(" ", F.concat(F.lit("topic"), "topic"), F.concat(F.lit("word"), F.col("id") % 97))
    items = base.select(
        "item_id",
        title.alias("title"),
        F.concat(F.lit("about topic "), "topic", F.lit(" and thing "), F.col("id") % 13).alias("description"),
        F.array(F.concat(F.lit("cat"), "topic")).alias("categories"),
        F.create_map(F.lit("brand"), F.concat(F.lit("b"), F.col("id") % 17)).alias("attributes"),
        F.lit(None).alias("image_path"),
        F.lit(None).alias("image_vector"),
        F.md5(title).alias("content_hash"),
        F.lit("synthetic").alias("source_file"),
        F.lit(ds).alias("updated_ds"),
    )
    delta.overwrite(items.select(*[F.col(f.name).cast(f.dataType) for f in ITEMS]), cfg.table_path("items"))
    k = spark.range(1, pairs_per_item + 1).select(F.col("id").alias("k"))
    pairs = base.crossJoin(k).select(
        "item_id",
        F.format_string("it%08d", (F.col("id") + F.col("k") * TOPICS) % n_items).alias("other_item_id"),
        (1.0 / F.col("k")).alias("score"),
        F.lit(1).alias("co_count"),
        F.lit(ds).alias("ds"),
    )
    pairs = pairs.where(F.col("item_id") != F.col("other_item_id"))
    out = pairs.select(*[F.col(f.name).cast(f.dataType) for f in ITEM_PAIRS])
    delta.overwrite(out, cfg.table_path("item_pairs"), ("ds",))


def _stage_results(spark) -> dict[int, int]:
    """``stage id -> bytes of task results sent to the driver`` for the stages Spark still lists."""
    store = spark.sparkContext._jsc.sc().statusStore()
    quantiles = getattr(store, "stageList$default$4")()
    stages = store.stageList(None, False, False, quantiles, None).iterator()
    out: dict[int, int] = {}
    while stages.hasNext():
        s = stages.next()
        out[int(s.stageId())] = out.get(int(s.stageId()), 0) + int(s.resultSize())
    return out


@contextmanager
def collected_bytes(spark):
    """Measures the task-result bytes of every stage run inside the block: yields a dict whose
    ``bytes`` (total), ``stages`` (count) and ``largest`` (``[(bytes, stage name)]``) fill on exit.

    Spark's ``resultSize`` is what each task sent back to the driver: a ``collect``/``toPandas``
    of the catalogue shows up here, a write or a shuffle does not. Broadcast joins also collect
    their build side, so callers measuring a job's own collects turn
    ``spark.sql.autoBroadcastJoinThreshold`` off first.
    """
    before = _stage_results(spark)
    first = max(before, default=-1) + 1
    result: dict = {}
    yield result
    after = _stage_results(spark)
    new = {k: v for k, v in after.items() if k >= first}
    store = spark.sparkContext._jsc.sc().statusStore()
    names = {k: str(store.lastStageAttempt(k).name()) for k in sorted(new, key=new.get, reverse=True)[:5]}
    result.update(bytes=sum(new.values()), stages=len(new), first_seen=min(new, default=first), first=first)
    result["largest"] = [(new[k], names[k]) for k in names]


class PeakSampler:
    """Background sampling (every ``interval`` s) of the Python RSS and the driver JVM's used heap."""

    def __init__(self, spark, interval: float = 0.02) -> None:
        import psutil

        self._proc, self._rt = psutil.Process(), spark._jvm.java.lang.Runtime.getRuntime()
        self._interval, self._stop = interval, threading.Event()
        self.base_rss, self.peak_rss, self.peak_heap = self._proc.memory_info().rss, 0, 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _heap(self) -> int:
        return int(self._rt.totalMemory() - self._rt.freeMemory())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            try:
                self.peak_heap = max(self.peak_heap, self._heap())
            except Exception:  # py4j busy at shutdown: skip the sample
                pass
            time.sleep(self._interval)

    def __enter__(self) -> PeakSampler:
        self._rt.gc()
        self.base_rss = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure_one(n_items: int, bound: int, pairs_per_item: int) -> dict:
    """One scale in this process: write the catalogue, run the stages, return the figures."""
    import numpy as np

    from conf import load_settings
    from jobs import delta, item_embeddings, semantic_ids
    from jobs.spark import get_spark

    home = tempfile.mkdtemp(prefix="onerec-drvmem-")
    cfg = bounded_settings(load_settings("local", overrides=[f"home={home}"]), bound)
    spark = get_spark(cfg)
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    write_synthetic_catalogue(spark, cfg, n_items, pairs_per_item)
    t0 = time.perf_counter()
    with PeakSampler(spark) as peak, collected_bytes(spark) as got:
        emb = item_embeddings.run(cfg, DS, spark, mode="full")
        sid = semantic_ids.run(cfg, DS, spark, mode="full")
    seconds = time.perf_counter() - t0
    e = cfg.item.embeddings
    width = e.text_dim + e.attribute_dim + e.image_dim + e.dim
    with PeakSampler(spark) as old_peak, collected_bytes(spark) as old_got:
        rows = delta.read(spark, cfg.table_path("item_embeddings")).select("item_id", "embedding").toPandas()
        x = np.stack(rows["embedding"].to_numpy())
        del rows, x
    mb = 1 / 2**20
    return {
        "items": n_items,
        "bound": bound,
        "embedded": emb["embedded"],
        "sids": sid["items"],
        "fit_sample_items": sid.get("fit_sample_items"),
        "seconds": round(seconds, 1),
        "python_peak_mb": round((peak.peak_rss - peak.base_rss) * mb, 1),
        "jvm_heap_peak_mb": round(peak.peak_heap * mb, 1),
        "collected_mb": round(got["bytes"] * mb, 3),
        "catalogue_vectors_mb": round(n_items * width * 4 * mb, 2),
        "old_path_python_peak_mb": round((old_peak.peak_rss - old_peak.base_rss) * mb, 1),
        "old_path_collected_mb": round(old_got["bytes"] * mb, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000, help="catalogue size at scale 1")
    parser.add_argument("--bound", type=int, default=5000, help="every driver-side sample bound")
    parser.add_argument("--pairs", type=int, default=4, help="partners per item")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure_one(args.items, args.bound, args.pairs)), flush=True)
        return
    results = []
    for scale in args.scales:
        cmd = [sys.executable, "-m", "bench.item_driver_memory", "--one", "--items", str(args.items * scale),
               "--bound", str(args.bound), "--pairs", str(args.pairs)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
        line = next((s for s in proc.stdout.splitlines() if s.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"scale {scale} failed:\n{proc.stderr[-3000:]}")
        results.append({"scale": scale, **json.loads(line[len("RESULT ") :])})
        print(json.dumps(results[-1]), flush=True)
    keys = ["scale", "items", "python_peak_mb", "jvm_heap_peak_mb", "collected_mb", "catalogue_vectors_mb",
            "old_path_python_peak_mb", "old_path_collected_mb", "seconds"]  # fmt: skip
    print(" | ".join(keys))
    for r in results:
        print(" | ".join(str(r[k]) for k in keys))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

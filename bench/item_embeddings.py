"""Benchmark: item content embedding throughput inside Spark (mapInPandas) vs a plain single-process loop.

``python -m bench.item_embeddings [--sizes 2000,10000] [--encoder minilm|hashing] [--batch-size 64]``

For each size it draws synthetic catalogue rows (title + description + categories from the
sample generator's topic vocabularies, plus attributes), then times the same
``jobs.text_encoder.content_vectors`` work two ways:

* **plain**: one Python process, one loop over batches of ``--chunk`` rows, torch using every core;
* **spark**: ``DataFrame.mapInPandas(content_partitions(...))`` on the session of ``--config``
  (``local[2]`` by default: one Python worker per core, one torch thread each), written to the
  ``noop`` sink so all rows are computed and nothing is stored.

Model loading is reported apart: ``plain`` loads once before timing; Spark workers load the model
in the first job (``spark_cold``) and reuse it from their module cache in a second, identical job
(``spark_warm``). ``ratio`` = warm Spark items/s / plain items/s. Prints a table and writes JSON
to ``<reports_dir>/bench/item_embeddings.json`` (``var/reports/bench/`` by default, or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def synthetic_items(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` catalogue rows shaped like bronze.items (titles of 3-8 topic words, one-sentence descriptions)."""
    from jobs.sample_data import SHARED_WORDS, TOPICS

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        topic = TOPICS[int(rng.integers(len(TOPICS)))]
        words = list(rng.choice(topic.words, size=int(rng.integers(3, 7)), replace=False))
        words += list(rng.choice(SHARED_WORDS, size=int(rng.integers(0, 3)), replace=False))
        sub = topic.subtopics[int(rng.integers(len(topic.subtopics)))]
        w1, w2 = rng.choice(topic.words, size=2, replace=False)
        rows.append(
            {
                "item_id": f"b{i:07d}",
                "content_hash": f"h{i}",
                "title": " ".join(w.capitalize() for w in words),
                "description": f"A video about {w1} and {w2} for {sub} fans, from a {topic.name} creator.",
                "categories": [topic.name, sub],
                "attributes": {"author_id": f"a{int(rng.integers(500))}", "language": "en"},
                "image_vector": None,
            }
        )
    return pd.DataFrame(rows)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_plain(items: pd.DataFrame, params, chunk: int) -> dict[str, Any]:
    """Load once (timed apart), then loop over ``chunk``-row batches in this process."""
    import torch

    from jobs import text_encoder

    torch.set_num_threads(os.cpu_count() or 1)
    plain = dataclasses.replace(params, threads=0)  # 0: leave torch's threads alone
    t0 = time.perf_counter()
    if plain.text_encoder == "minilm":
        text_encoder.get_text_encoder("minilm", plain.text_model_path, plain.text_dim, plain.batch_size, 0)
    load_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    n = 0
    for start in range(0, len(items), chunk):
        n += len(text_encoder.content_vectors(items.iloc[start : start + chunk], plain))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"load_s": load_s, "wall_s": wall, "cpu_s": cpu, "items_per_s": n / wall, "rows": n}


def bench_spark(spark, items: pd.DataFrame, params, partitions: int) -> dict[str, Any]:
    """The job's own mapInPandas path, twice: cold (workers load the model) and warm (cached)."""
    from jobs.schemas import ITEMS
    from jobs.text_encoder import CONTENT_SCHEMA, content_partitions

    cols = ["item_id", "content_hash", "title", "description", "categories", "attributes", "image_vector"]
    schema = ", ".join(f"{c} {ITEMS[c].dataType.simpleString()}" for c in cols)
    df = spark.createDataFrame(items[cols], schema).repartition(partitions).cache()
    df.count()
    out: dict[str, Any] = {"partitions": partitions}
    for phase in ("cold", "warm"):
        t0 = time.perf_counter()
        df.mapInPandas(content_partitions(params), CONTENT_SCHEMA).write.format("noop").mode("overwrite").save()
        wall = time.perf_counter() - t0
        out[phase] = {"wall_s": wall, "items_per_s": len(items) / wall}
    df.unpersist()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.item_embeddings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,10000", help="catalogue sizes, comma-separated")
    parser.add_argument("--encoder", choices=("minilm", "hashing"), default="minilm")
    parser.add_argument("--batch-size", type=int, default=64, help="encoder batch size (both paths)")
    parser.add_argument("--chunk", type=int, default=1024, help="rows per content_vectors call in the plain loop")
    parser.add_argument("--config", default=None, help="conf name for the Spark session (default: local)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from conf import load_settings
    from jobs.item_embeddings import content_params
    from jobs.spark import get_spark

    cfg = load_settings(args.config, args.set)
    params = content_params(cfg)
    params = dataclasses.replace(params, text_encoder=args.encoder, batch_size=args.batch_size)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores", flush=True)
    spark = get_spark(cfg)
    partitions = max(1, spark.sparkContext.defaultParallelism)
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(),
        "command": " ".join(["python -m bench.item_embeddings", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "loadavg_start": load, "python": platform.python_version()},
        "spark_master": cfg.spark.master,
        "encoder": args.encoder,
        "worker_threads": params.threads,
        "runs": [],
    }
    header = f"{'n':>7} {'plain it/s':>10} {'load s':>7} {'spark cold it/s':>15} {'spark warm it/s':>15} {'ratio':>6}"
    rows = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        items = synthetic_items(n)
        plain = bench_plain(items, params, args.chunk)
        sp = bench_spark(spark, items, params, partitions)
        run = {"n": n, "plain": plain, "spark": sp, "ratio_warm": sp["warm"]["items_per_s"] / plain["items_per_s"]}
        report["runs"].append(run)
        rows.append(
            f"{n:>7} {plain['items_per_s']:>10.1f} {plain['load_s']:>7.1f} {sp['cold']['items_per_s']:>15.1f} "
            f"{sp['warm']['items_per_s']:>15.1f} {run['ratio_warm']:>6.2f}"
        )
        print(rows[-1], flush=True)
    report["machine"]["loadavg_end"] = os.getloadavg()
    report["machine"]["driver_peak_rss_mib"] = _peak_rss_mib()
    print()
    print(header)
    print("\n".join(rows))
    out = args.out or Path(cfg.resolve(cfg.reports_dir)) / "bench" / "item_embeddings.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The daily pipeline's behaviour item vectors, computed on a benchmark's training split.

``swing`` is the ID source of ``bench/quality.py`` that borrows nothing from a baseline model:
the training sequences go through the same job functions the daily DAG runs --

1. ``jobs.item_pairs.build_item_pairs`` (Swing co-engagement, Spark; the config's
   ``item.pairs`` settings), over one window that holds every training sequence whole;
2. ``jobs.behaviour_vectors.behaviour_svd`` (the spectral basis of the normalised item-pair
   graph, ``U sqrt(lambda)``, the config's ``item.embeddings.dim``/``seed``): what
   ``jobs/item_embeddings.py`` computes for the graph's core, which is the whole graph at this
   size (``behaviour_sample_items`` 10^5 > Beauty's 12k items: number for number the same);
3. then ``models.item_codes.semantic_ids`` in ``bench/quality.py`` (``models.rq_kmeans``, the
   daily ``semantic_ids`` stage's tokenizer).

Two choices, and why:

* **Order is the clock.** The Amazon files carry order only; ingest places item k on day k
  (``jobs/loaders/amazon.py``), so the config's 30-minute session gap would cut every
  consecutive pair. Here the k-th item is at second k and the session gap is off, as the daily
  stage does for those formats (``jobs.item_pairs.pair_settings``).
* **One window, the training split only.** The daily stage mines a trailing 30-day window per
  day; a leave-one-out benchmark has no days, and its item vectors must never see a valid or
  test target, so the window is each user's whole training sequence.

Items without a pair get an all-zero row, which ``item_codes.unit_rows`` turns into a seeded
random direction: the pipeline's ``cold`` vector in spirit (no shared code by construction).
pyspark is imported here only, so the default ID sources run without it (a GPU box).
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np

from models.data import Ragged

log = logging.getLogger(__name__)

BENCH_DAY = date(2000, 1, 1)  # the one window's ``ds``: a label only, no day is read


def swing_item_vectors(train: Ragged, n_items: int, config: str | None = None) -> tuple[np.ndarray, dict]:
    """``((n_items, dim) vectors, stats)``: the pipeline's Swing pairs -> spectral behaviour vectors.

    ``train``: the leave-one-out training sequences (item indices 1..n_items). Row ``i - 1`` is
    item ``i``'s vector. ``config``: the pipeline config whose ``item.pairs`` and
    ``item.embeddings`` settings apply (default: ``$ONEREC_CONFIG`` or ``local``).
    """
    from pyspark.sql import SparkSession

    from conf.settings import load_settings
    from jobs.behaviour_vectors import behaviour_svd
    from jobs.item_pairs import build_item_pairs
    from jobs.spark import get_spark

    cfg = load_settings(config)
    pair_settings = cfg.item.pairs.model_copy(update={"session_gap_minutes": None})
    ours = SparkSession.getActiveSession() is None  # stop only a session this call started
    spark = get_spark(cfg)
    rows = [
        (BENCH_DAY, f"u{u}", [str(int(i)) for i in train[u]], list(range(len(train[u]))))
        for u in range(len(train))
        if len(train[u]) > 1
    ]
    seqs = spark.createDataFrame(rows, "ds date, user_id string, items array<string>, ts array<long>")
    # Bounded by the catalogue x top_k (600k rows for Beauty): the benchmark's own driver, not a stage's.
    pairs = build_item_pairs(seqs, pair_settings).select("item_id", "other_item_id", "score").toPandas()
    if ours:  # the JVM would sit beside the training that follows, holding memory and threads
        spark.stop()
    vectors = np.zeros((n_items, cfg.item.embeddings.dim), np.float32)
    if len(pairs):
        ids, vecs, _ = behaviour_svd(pairs, cfg.item.embeddings.dim, cfg.item.embeddings.seed)
        vectors[ids.astype(np.int64) - 1] = vecs
    covered = int((np.abs(vectors).sum(axis=1) > 0).sum())
    stats = {"pairs": int(len(pairs)), "items_with_pairs": covered, "items": n_items,
             "method": pair_settings.method, "window_positions": pair_settings.window_positions}  # fmt: skip
    log.info("swing vectors: %d pair rows, %d of %d items covered", len(pairs), covered, n_items)
    return vectors, stats

"""bronze.events-shaped frames straight from the sample's behaviour model (no Spark, no files)."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd

from conf.settings import SampleSettings
from jobs.sample_data import build_world, simulate_day
from jobs.schemas import FLAG_NAMES


def sample_events(settings: SampleSettings | None = None, days: int | None = None) -> pd.DataFrame:
    """Every valid interaction of the first ``days`` sample days, with bronze.events columns."""
    settings = settings or SampleSettings()
    world = build_world(settings)
    rng = np.random.default_rng([settings.seed, 2])  # the stream jobs.sample_data.generate uses
    frames = []
    for d in range(days or settings.days):
        log = simulate_day(world, d, rng)
        day = pd.Timestamp(settings.start_date + timedelta(days=d))
        frame = pd.DataFrame({
            "user_id": [f"u{u}" for u in log.user], "item_id": [f"i{i}" for i in log.item],
            "ts": day + pd.to_timedelta(log.second, unit="s"), "rating": log.rating.astype(float),
            "play_seconds": log.play, "item_duration_seconds": world.item_duration[log.item],
            **{name: log.flags[:, k] for k, name in enumerate(FLAG_NAMES)},
        })  # fmt: skip
        frame["event_date"] = day.date()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def leave_one_out_rows(events: pd.DataFrame, ds, context_len: int = 50) -> pd.DataFrame:
    """gold.training_examples leave_one_out rows as of the end of ``ds`` (as jobs.training_examples builds them)."""
    past = events[events["event_date"] <= ds].sort_values(["user_id", "ts", "item_id"], kind="stable")
    rows = []
    for user, g in past.groupby("user_id", sort=True):
        items, ts = g["item_id"].tolist(), (g["ts"].astype("int64") // 10**9).tolist()
        if len(items) < 3:
            continue
        for split, offset in (("train", 3), ("valid", 2), ("test", 1)):
            cut = len(items) - offset
            lo = max(0, cut - context_len)
            rows.append({"user_id": user, "split": split, "context_item_ids": items[lo:cut],
                         "context_ts": ts[lo:cut], "target_item_id": items[cut], "target_item_ids": [items[cut]],
                         "target_ts": ts[cut], "protocol": "leave_one_out", "ds": ds})  # fmt: skip
    return pd.DataFrame(rows)


def feature_rows(events: pd.DataFrame, examples: pd.DataFrame, short_len: int = 20, positive_len: int = 256,
                 lifelong_reps: int = 8) -> pd.DataFrame:  # fmt: skip
    """gold.training_features-shaped rows for ``examples``: each row's ``onerec_train_v3`` features as of
    the end of the day before its target (what point-in-time retrieval returns; Spark-free stand-in --
    the retrieval itself is tested in tests/features/test_parity.py). The lifelong representatives are
    the last ``lifelong_reps`` distinct items; users without earlier events get null features."""
    ev = events.sort_values(["user_id", "ts", "item_id"], kind="stable").copy()
    ev["sec"] = ev["ts"].astype("int64") // 10**9
    ev["flags"] = sum(ev[name].astype(int) * (1 << i) for i, name in enumerate(FLAG_NAMES))
    liked = (ev["flags"] & 15) > 0
    ev["positive"] = ((ev["rating"] >= 4) | (ev["play_seconds"] >= 0.8 * ev["item_duration_seconds"]) | liked) & ~(
        (ev["flags"] & 16) > 0
    )
    by_user = dict(tuple(ev.groupby("user_id", sort=False)))
    out = []
    for row in examples.to_dict("records"):
        day = pd.Timestamp(row["target_ts"], unit="s").normalize()
        g = by_user.get(row["user_id"], ev.iloc[:0])
        g = g[g["ts"] < day]
        feats: dict = dict.fromkeys(("n_events", "n_positive", "active_days", "tenure_days", "attributes",
                                     "short_item_ids", "short_ts", "short_flags", "positive_item_ids",
                                     "short_rating", "short_play_seconds", "short_duration_seconds", "item_ids",
                                     "n_source"))  # fmt: skip
        if len(g):
            short, pos = g.tail(short_len), g[g["positive"]].tail(positive_len)
            dates = g["ts"].dt.normalize()
            reps = list(dict.fromkeys(reversed(g["item_id"].tolist())))[:lifelong_reps][::-1]
            feats.update(
                n_events=len(g), n_positive=int(g["positive"].sum()), active_days=int(dates.nunique()),
                tenure_days=int((dates.max() - dates.min()).days), attributes=json.dumps(
                    {"gender": "fm"[int(row["user_id"][1:]) % 2]}),
                short_item_ids=short["item_id"].tolist(), short_ts=short["sec"].tolist(),
                short_flags=short["flags"].tolist(), positive_item_ids=pos["item_id"].tolist(),
                short_rating=short["rating"].tolist(), short_play_seconds=short["play_seconds"].tolist(),
                short_duration_seconds=short["item_duration_seconds"].astype(float).tolist(), item_ids=reps,
                n_source=int(g["item_id"].nunique()),
            )  # fmt: skip
        keep = ("user_id", "split", "target_item_id", "target_item_ids", "target_ts", "protocol", "ds")
        out.append({**{k: row[k] for k in keep}, **feats, "event_timestamp": pd.Timestamp(row["target_ts"], unit="s",
                    tz="UTC"), "feature_service": "onerec_train_v3"})  # fmt: skip
    return pd.DataFrame(out)


def random_sids(item_ids, levels: int = 2, k: int = 8, version: str = "v20261001", ds=None, seed: int = 0):
    """gold.item_sids-shaped rows: random tuples plus a dedup code that makes each one unique."""
    rng = np.random.default_rng(seed)
    item_ids = sorted(item_ids)
    seen: dict[tuple, int] = {}
    codes = []
    for _ in item_ids:
        tup = tuple(int(c) for c in rng.integers(0, k, levels))
        codes.append([*tup, seen.get(tup, 0)])
        seen[tup] = seen.get(tup, 0) + 1
    return pd.DataFrame({"item_id": item_ids, "codes": codes, "codebook_version": version, "ds": ds})


def write_model_inputs(cfg, settings: SampleSettings, levels: int = 2, k: int = 8) -> list:
    """The tables the model stages read, Spark-free: bronze.events, gold.training_examples and
    gold.training_features (leave_one_out, every day), a real RQ-KMeans codebook (models.rq_kmeans + codebook_io) and gold.item_sids over
    cluster-shaped item vectors. Returns the sample days. (The Spark jobs that write these in the
    DAG are tested in tests/jobs; here only their output contract matters.)"""
    import pyarrow as pa
    from deltalake import write_deltalake

    events = sample_events(settings)
    days = sorted(events["event_date"].unique())
    ev = events.assign(event_id=[f"e{i}" for i in range(len(events))], source_file="sample", source_line=0)
    ev["ts"] = ev["ts"].dt.tz_localize("UTC")
    write_deltalake(cfg.table_path("events"), pa.Table.from_pandas(ev, preserve_index=False),
                    partition_by=["event_date"], mode="overwrite")  # fmt: skip
    examples = pd.concat([leave_one_out_rows(events, d) for d in days], ignore_index=True)
    write_deltalake(cfg.table_path("training_examples"), pa.Table.from_pandas(examples, preserve_index=False),
                    partition_by=["protocol", "ds"], mode="overwrite")  # fmt: skip
    features = pa.Table.from_pandas(feature_rows(events, examples), preserve_index=False)
    write_deltalake(cfg.table_path("training_features"), features, partition_by=["protocol", "ds"], mode="overwrite")
    write_codebook(cfg, settings, sorted(set(events["item_id"])), days[0], levels, k, mode="overwrite")
    # The sample's manifest, as jobs.sample_data.generate writes it: the model stages find the oracle by it.
    import json
    from pathlib import Path

    source = Path(cfg.resolve(cfg.source.path))
    source.mkdir(parents=True, exist_ok=True)
    (source / "MANIFEST.json").write_text(json.dumps({"generator": "jobs.sample_data",
                                                      "settings": settings.model_dump(mode="json")}))  # fmt: skip
    return days


def write_codebook(cfg, settings: SampleSettings, items: list[str], day, levels: int = 2, k: int = 8,
                   seed: int = 0, mode: str = "append") -> str:  # fmt: skip
    """Fit a codebook version for ``day`` over cluster-shaped item vectors; add its gold.item_sids partition."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.semantic_ids import codebook_root, version_for
    from models import codebook_io, rq_kmeans

    world = build_world(settings)
    rng = np.random.default_rng(seed)
    cluster = world.item_cluster[[int(i[1:]) for i in items]]
    dim = max(8, settings.n_clusters)
    x = np.eye(dim)[cluster] + 0.3 * rng.standard_normal((len(items), dim))
    book = rq_kmeans.fit(x.astype(np.float32), rq_kmeans.RQKMeansConfig(levels=levels, codes_per_level=k, seed=seed))
    codes = rq_kmeans.resolve_collisions(book.train_codes, items)
    version = version_for(day)
    codebook_io.save(book, codebook_root(cfg) / version, version=version)
    sids = pd.DataFrame({"item_id": items, "codes": [[int(c) for c in row] for row in codes],
                         "codebook_version": version, "ds": day})  # fmt: skip
    write_deltalake(cfg.table_path("item_sids"), pa.Table.from_pandas(sids, preserve_index=False),
                    partition_by=["codebook_version"], mode=mode)  # fmt: skip
    return version

"""A small lake for the Feast tests, built once per test session, and a throwaway redis-server.

The lake is written, then changed the way the pipeline changes it: a re-run of a
day replaces its gold partition (replaceWhere) and a late correction is MERGEd into
gold and into bronze.items. Those changes leave the replaced rows in the tables'
parquet files (only the Delta log says they are gone), which is what a reader
ignoring the log gets wrong. ``EXPECTED`` is the lake's current content.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

# Imported at collection so Feast's Spark store (which resets RuntimeWarning filters on
# import) is loaded before the per-test warning filters below apply.
import features.sources  # noqa: F401
from conf.settings import Settings

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)


def midnight_after(ds: date) -> datetime:
    """Gold's event_timestamp for ``ds`` (naive UTC: the session time zone is UTC)."""
    return datetime.combine(ds + timedelta(days=1), datetime.min.time())


def user_row(user_id: str, ds: date, items: list[str], n_events: int | None = None, attrs=None) -> dict:
    """One gold.user_features row: ``items`` is the user's whole history (oldest first)."""
    ts = [int(midnight_after(ds).timestamp()) - 3600 * (len(items) - i) for i in range(len(items))]
    return {
        "user_id": user_id,
        "event_timestamp": midnight_after(ds),
        "n_events": n_events if n_events is not None else len(items),
        "n_positive": len(items[::2]),
        "active_days": 1,
        "tenure_days": 0,
        "attributes": attrs,
        "short_item_ids": items[-3:],
        "short_ts": ts[-3:],
        "short_rating": [None, 4.0, 5.0][-len(items[-3:]) :] if items else [],
        "short_play_seconds": [1.0] * len(items[-3:]),
        "short_duration_seconds": [2.0] * len(items[-3:]),
        "short_flags": [1, 0, 3][-len(items[-3:]) :] if items else [],
        "positive_item_ids": items[::2],
        "positive_ts": ts[::2],
        "ds": ds,
    }


def item_row(item_id: str, title: str, updated_ds: date) -> dict:
    return {
        "item_id": item_id,
        "title": title,
        "description": None,
        "categories": ["music", "jazz"],
        "attributes": {"lang": "en"},
        "image_path": None,
        "image_vector": [0.5, 0.25],
        "content_hash": title,
        "source_file": "items.jsonl",
        "updated_ds": updated_ds,
    }


# What the lake holds after the changes: (user, ds) -> n_events and lifelong items.
EXPECTED_USERS = {
    ("u1", D1): (2, ["i1", "i2"]),
    ("u2", D1): (9, ["i3"]),  # MERGEd: was 1
    ("u1", D2): (4, ["i1", "i2", "i4", "i5"]),  # replaced: was 3 events
    ("u4", D2): (1, ["i1"]),  # new in the re-run of D2
}
DELETED_USER = "u3"  # active on D2 in the first run only
EXPECTED_TITLES = {"i1": "Jazz, remastered", "i2": "Blues", "i5": "Swing"}  # i1 MERGEd on D2


@dataclass
class Lake:
    cfg: Settings
    applied: dict
    materialized: dict[date, dict]


def write_lake(spark, cfg: Settings) -> None:
    """Write gold.user_features and bronze.items, then change them as a re-run and a correction do."""
    from jobs import delta
    from jobs.schemas import ITEMS, USER_FEATURES

    gold, items = cfg.table_path("user_features"), cfg.table_path("items")
    first = [
        user_row("u1", D1, ["i1", "i2"]),
        user_row("u2", D1, ["i3"], attrs={"age": "31"}),
        user_row("u1", D2, ["i1", "i2", "i4"]),
        user_row(DELETED_USER, D2, ["i2", "i5"]),
    ]
    delta.overwrite(spark.createDataFrame(first, USER_FEATURES), gold, ["ds"])
    # Re-run of D2 (late events): the partition is replaced; u3 is gone, u1 changed, u4 new.
    rerun = [user_row("u1", D2, ["i1", "i2", "i4", "i5"]), user_row("u4", D2, ["i1"], attrs={"age": "22"})]
    where = f"ds = {delta.date_literal(D2)}"
    delta.overwrite_partition(spark.createDataFrame(rerun, USER_FEATURES), gold, ["ds"], where)
    # A correction MERGEd on the table's keys.
    fix = [user_row("u2", D1, ["i3"], n_events=9, attrs={"age": "31"})]
    delta.merge_upsert(spark, spark.createDataFrame(fix, USER_FEATURES), gold, ["user_id", "ds"], partition_by=["ds"])
    catalogue = [item_row("i1", "Jazz", D1), item_row("i2", "Blues", D1)]
    delta.merge_upsert(spark, spark.createDataFrame(catalogue, ITEMS), items, ["item_id"])
    changed = [item_row("i1", "Jazz, remastered", D2), item_row("i5", "Swing", D2)]
    delta.merge_upsert(spark, spark.createDataFrame(changed, ITEMS), items, ["item_id"])
    write_item_side(spark, cfg)


# Item side: (item) -> semantic ID codes and stats as of D2; u1's compressed lifelong sequence.
EXPECTED_CODES = {"i1": [1, 0, 2, 0], "i2": [1, 0, 2, 1], "i5": [3, 1, 0, 0]}
EXPECTED_STATS = {"i1": (5, 3), "i5": (1, 1)}  # n_events, n_users


def write_item_side(spark, cfg: Settings) -> None:
    """gold.item_sids (i1, i2 coded on D1, i5 on D2), item_embeddings, item_stats and lifelong rows."""
    from jobs import delta
    from jobs.schemas import ITEM_EMBEDDINGS, ITEM_SIDS, ITEM_STATS, USER_LIFELONG_COMPRESSED

    sids = [(i, c, "v20261001", D2 if i == "i5" else D1) for i, c in EXPECTED_CODES.items()]
    delta.overwrite(spark.createDataFrame(sids, ITEM_SIDS), cfg.table_path("item_sids"), ["codebook_version"])
    unit = [0.6, 0.8]
    emb = [(i, None, None, unit, "cold", "", "v20261001-abcdef01", D2 if i == "i5" else D1) for i in EXPECTED_CODES]
    delta.overwrite(spark.createDataFrame(emb, ITEM_EMBEDDINGS), cfg.table_path("item_embeddings"))
    seen = datetime(2026, 10, 2, 8, 30)
    stats = [(i, D2, n, 1, u, n, 1.0, seen, seen) for i, (n, u) in EXPECTED_STATS.items()]
    delta.overwrite(spark.createDataFrame(stats, ITEM_STATS), cfg.table_path("item_stats"), ["ds"])
    life = [("u1", D2, ["i2", "i5"], 4)]
    delta.overwrite(
        spark.createDataFrame(life, USER_LIFELONG_COMPRESSED), cfg.table_path("user_lifelong_compressed"), ["ds"]
    )


@pytest.fixture(scope="session")
def lake(spark, tiny_cfg, tmp_path_factory) -> Lake:
    """The changed lake, applied and materialised for D1 and D2 (SQLite online store)."""
    from jobs import feature_store

    cfg = tiny_cfg.model_copy(update={"home": str(tmp_path_factory.mktemp("feast-home"))})
    write_lake(spark, cfg)
    applied = feature_store.apply(cfg)
    materialized = {ds: feature_store.materialize(cfg, ds) for ds in (D1, D2)}
    return Lake(cfg, applied, materialized)


def pytest_collection_modifyitems(items):
    """Feast warns on every Spark source use that the API is alpha: noise in these tests' output."""
    alpha = pytest.mark.filterwarnings("ignore:The spark .* is an experimental:RuntimeWarning")
    for item in items:
        if "tests/features/" in str(item.path):
            item.add_marker(alpha)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_connection() -> str:
    """``host:port`` of a redis-server started for these tests (loopback, no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install -y redis-server); Redis online store not tested")
    import redis

    port = _free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {proc.returncode}") from None
                time.sleep(0.1)
        else:
            raise RuntimeError(f"redis-server did not answer on port {port} within 10 s")
        yield f"127.0.0.1:{port}"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

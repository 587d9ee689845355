"""Online feature lookups: Feast on SQLite and on Redis, next to a direct Delta read, plus materialisation.

    python -m bench.feature_lookup [--users 20000] [--items 5000] [--requests 1000] [--batch 100]
                                   [--batch-requests 100] [--lifelong 200] [--service NAME] [--out FILE]

What is looked up is what the daily DAG's model is served: the feature service
``model.pathways.serve_service`` of the local config (``onerec_serve_v3``: the four pathways,
14 features from four views, the lifelong representatives among them), or ``--service``.

Setup (not timed): a synthetic ``gold.user_features`` day for ``--users`` users
(sequences: 20 short with their signals, ~lifelong/4 positive), a
``gold.user_lifelong_compressed`` day (each user's ``--lifelong`` representatives, capped at
``item.lifelong.max_representatives``) and ``bronze.items`` rows, written with Spark to Delta
under a temp home; ``apply``.

Timed, in one process, for each online store (SQLite; Redis when ``redis-server``
is installed, started on a free loopback port without persistence):

* **materialise**: ``jobs.feature_store.materialize(cfg, ds)`` (rows/s per view), run
  twice: the table shows the second (warm Spark), the JSON both;
* **1 user / request** and **``--batch`` users / request**: ``get_online_features``
  of the service ``.to_dict()``, random users, after a warm-up;
  p50 / p99 / mean over ``--requests`` and ``--batch-requests`` requests.

The peer, same rows and columns, same process: a direct read of the Delta tables with
the ``deltalake`` package (tables opened once, as a server would; each request is a SQL
query on the day's partitions and ``user_id``, the lifelong table joined when the service
has it, converted to Python like ``to_dict``). It reads the single day the bench writes; a
real "latest row per user" over many days would scan more. Loops are bounded and
everything is loopback. Output: a table and JSON (default
``var/reports/bench/feature_lookup.json``) with ``uptime`` before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from conf.settings import REPO_ROOT, Settings, load_settings

DS = date(2026, 10, 3)
DEFAULT_OUT = REPO_ROOT / "var" / "reports" / "bench" / "feature_lookup.json"


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load() -> str:
    """``uptime``'s load averages: on a shared machine they qualify every timing."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def write_lake(spark, cfg: Settings, n_users: int, n_items: int, lifelong: int) -> None:
    """Synthetic gold.user_features[DS], gold.user_lifelong_compressed[DS] and bronze.items (Spark SQL, no Python rows)."""
    from jobs import delta
    from jobs.schemas import ITEMS, USER_FEATURES, USER_LIFELONG_COMPRESSED

    item = f"concat('i', cast(pmod(id * 7919 + k * 104729, {n_items}) AS string))"
    ts = "1790900000 + k * 60"
    users = (
        spark.range(n_users)
        .selectExpr(
            "concat('u', cast(id AS string)) AS user_id",
            f"TIMESTAMP'{DS.isoformat()} 00:00:00' + INTERVAL 1 DAY AS event_timestamp",
            f"CAST({lifelong} AS long) AS n_events",
            f"CAST({lifelong // 4} AS long) AS n_positive",
            "CAST(1 + pmod(id, 30) AS int) AS active_days",
            "CAST(pmod(id, 400) AS int) AS tenure_days",
            "map('age', cast(18 + pmod(id, 50) AS string), 'country', 'fr') AS attributes",
            f"transform(sequence(1, {lifelong}), k -> {item}) AS lifelong_item_ids",
            f"transform(sequence(1, {lifelong}), k -> CAST({ts} AS long)) AS lifelong_ts",
            f"CAST('{DS.isoformat()}' AS date) AS ds",
        )
        .selectExpr(
            "*",
            "slice(lifelong_item_ids, -20, 20) AS short_item_ids",
            "slice(lifelong_ts, -20, 20) AS short_ts",
            "transform(sequence(1, 20), k -> CAST(NULL AS double)) AS short_rating",
            "transform(sequence(1, 20), k -> 30.0D) AS short_play_seconds",
            "transform(sequence(1, 20), k -> 60.0D) AS short_duration_seconds",
            "transform(sequence(1, 20), k -> CAST(pmod(k, 4) AS int)) AS short_flags",
            f"slice(lifelong_item_ids, 1, {lifelong // 4}) AS positive_item_ids",
            f"slice(lifelong_ts, 1, {lifelong // 4}) AS positive_ts",
        )
    )
    gold = users.select(*[users[f.name].cast(f.dataType) for f in USER_FEATURES.fields])
    delta.overwrite(gold, cfg.table_path("user_features"), ["ds"])
    kept = min(lifelong, cfg.item.lifelong.max_representatives)
    compressed = users.selectExpr(
        "user_id", "ds", f"slice(lifelong_item_ids, -{kept}, {kept}) AS item_ids", "n_events AS n_source"
    )
    delta.overwrite(
        compressed.select(*[compressed[f.name].cast(f.dataType) for f in USER_LIFELONG_COMPRESSED.fields]),
        cfg.table_path("user_lifelong_compressed"),
        ["ds"],
    )
    items = spark.range(n_items).selectExpr(
        "concat('i', cast(id AS string)) AS item_id",
        "concat('Item ', cast(id AS string)) AS title",
        "CAST(NULL AS string) AS description",
        "array('c' || cast(pmod(id, 20) AS string)) AS categories",
        "map('lang', 'en') AS attributes",
        "CAST(NULL AS string) AS image_path",
        "CAST(NULL AS array<float>) AS image_vector",
        "md5(cast(id AS string)) AS content_hash",
        "'bench' AS source_file",
        f"CAST('{DS.isoformat()}' AS date) AS updated_ds",
    )
    delta.overwrite(items.select(*[items[f.name].cast(f.dataType) for f in ITEMS.fields]), cfg.table_path("items"))


def timed(requests: list[Any], call: Callable[[Any], Any], warmup: int = 20) -> dict[str, float]:
    """Latency percentiles (ms) of ``call`` over ``requests`` (the first ``warmup`` untimed)."""
    for r in requests[:warmup]:
        call(r)
    ms = []
    for r in requests:
        t0 = time.perf_counter()
        call(r)
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    return {
        "n": len(ms),
        "p50_ms": round(ms[len(ms) // 2], 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def lookups(call: Callable[[list[str]], Any], users: list[list[str]], batches: list[list[str]]) -> dict:
    return {"1_user": timed(users, call), "batch": timed(batches, call, warmup=5)}


def service_columns(cfg: Settings, service: str) -> list[tuple[str, str, list[str]]]:
    """``(view, lake table, [feature, ...])`` of ``service``, in its order (what the server returns).

    The table is the one the view materialises from (its ``lake_table`` tag, features/views.py).
    """
    from jobs.feature_store import get_store

    store = get_store(cfg)
    projections = store.get_feature_service(service).feature_view_projections
    return [
        (p.name, store.get_feature_view(p.name).tags["lake_table"], [f.name for f in p.features]) for p in projections
    ]


def feast_lookups(cfg: Settings, service_name: str, users, batches) -> dict:
    from jobs.feature_store import get_store

    store = get_store(cfg)
    service = store.get_feature_service(service_name)

    def call(ids: list[str]) -> dict:
        return store.get_online_features(features=service, entity_rows=[{"user_id": u} for u in ids]).to_dict()

    got = call(users[0])
    missing = [k for k, v in got.items() if v[0] is None]
    assert not missing, f"user {users[0]}: {missing} missing online"
    return lookups(call, users, batches)


def delta_lookups(cfg: Settings, columns: list[tuple[str, str, list[str]]], users, batches) -> dict:
    """The same rows straight from Delta with ``deltalake`` (its DataFusion QueryBuilder).

    ``columns``: :func:`service_columns`; each feature is read from its view's lake table, the
    first table's day joined with the others' on ``user_id``.
    ``to_pyarrow_dataset()`` refuses the project's tables (deletion vectors); the
    QueryBuilder scan applies them and the log, so it returns current rows only.
    """
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    day = f"DATE '{DS.isoformat()}'"
    alias = {table: f"t{k}" for k, table in enumerate(dict.fromkeys(t for _, t, _ in columns))}
    qb = QueryBuilder()
    for table, name in alias.items():
        qb.register(name, DeltaTable(cfg.table_path(table)))
    base, *others = alias.values()
    picks = [f"{base}.user_id"] + [f"{alias[t]}.{n}" for _, t, names in columns for n in names]
    join = "".join(f" LEFT JOIN {o} ON {o}.user_id = {base}.user_id AND {o}.ds = {day}" for o in others)

    def call(ids: list[str]) -> dict:
        in_list = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
        sql = f"SELECT {', '.join(picks)} FROM {base}{join} WHERE {base}.ds = {day} AND {base}.user_id IN ({in_list})"
        return pa.table(qb.execute(sql).read_all()).to_pydict()

    got = call(users[0])
    assert got["user_id"] == users[0] and len(got) == len(picks), got.keys()
    return lookups(call, users, batches)


def redis_server() -> tuple[subprocess.Popen, str] | None:
    """A loopback redis-server on a free port (None when not installed)."""
    import socket

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, f"127.0.0.1:{port}"
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def run(args: argparse.Namespace) -> dict:
    from jobs import feature_store
    from jobs.spark import get_spark

    home = Path(args.home or tempfile.mkdtemp(prefix="bench-feast-"))
    cfg = load_settings("local", overrides=[f"home={home}", "spark.driver_memory=2g"])
    service = args.service or cfg.model.pathways.serve_service
    result: dict[str, Any] = {"args": vars(args), "service": service, "load_before": load(), "nproc": os.cpu_count()}
    result["stores"] = {}
    progress(f"home {home}; service {service}; {result['load_before']}")
    spark = get_spark(cfg)
    t0 = time.perf_counter()
    write_lake(spark, cfg, args.users, args.items, args.lifelong)
    progress(f"lake written in {time.perf_counter() - t0:.1f}s")
    rng = random.Random(7)
    ids = [f"u{i}" for i in range(args.users)]
    users = [[rng.choice(ids)] for _ in range(args.requests)]
    batches = [rng.sample(ids, args.batch) for _ in range(args.batch_requests)]

    variants = [("sqlite", cfg, None)]
    redis = redis_server()
    if redis is None:
        progress("redis-server not installed: Redis skipped")
    else:
        feast = cfg.feast.model_copy(
            update={
                "online_store": "redis",
                "redis_connection": redis[1],
                "registry": "sqlite:///{home}/feast/r.sqlite",
            }
        )
        variants.append(("redis", cfg.model_copy(update={"feast": feast}), redis[0]))
    try:
        for name, vcfg, _ in variants:
            feature_store.apply(vcfg)
            # Twice: the first pays Spark's warm-up (JIT, first Delta scans); a re-run of a
            # day writes the same values, so the second is the steady-state daily cost.
            runs = [feature_store.materialize(vcfg, DS) for _ in range(2)]
            progress(f"{name}: materialised {runs[-1]['rows']} rows in {[r['seconds'] for r in runs]}s")
            result["stores"][name] = {"materialize": runs[-1], "materialize_cold": runs[0]}
            result["stores"][name]["lookups"] = feast_lookups(vcfg, service, users, batches)
            progress(f"{name}: lookups done")
    finally:
        if redis is not None:
            redis[0].terminate()
            redis[0].wait()
    columns = service_columns(cfg, service)
    result["features"] = {"views": {v: names for v, _, names in columns}, "count": sum(len(n) for _, _, n in columns)}
    result["stores"]["delta (deltalake)"] = {"lookups": delta_lookups(cfg, columns, users, batches)}
    result["load_after"] = load()
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)
    return result


def table(result: dict) -> str:
    batch = result["args"]["batch"]
    head = f"{'store':18} {'1 user p50':>11} {'p99':>8} {f'{batch} users p50':>14} {'p99':>8}   materialise rows/s"
    features = result["features"]
    lines = [f"service {result['service']}: {features['count']} features from {len(features['views'])} views"]
    lines += [head, "-" * len(head)]
    for name, r in result["stores"].items():
        one, many = r["lookups"]["1_user"], r["lookups"]["batch"]
        mat = r.get("materialize")
        rate = "  ".join(f"{v}: {s['rows_per_s']:.0f}" for v, s in mat["views"].items()) if mat else "-"
        lines.append(
            f"{name:18} {one['p50_ms']:>9.2f}ms {one['p99_ms']:>6.2f}ms {many['p50_ms']:>12.2f}ms "
            f"{many['p99_ms']:>6.2f}ms   {rate}"
        )
    lines += [f"before: {result['load_before']}", f"after:  {result['load_after']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--lifelong", type=int, default=200, help="lifelong sequence length per user")
    parser.add_argument("--requests", type=int, default=1000, help="timed 1-user requests")
    parser.add_argument("--batch", type=int, default=100, help="users per batch request")
    parser.add_argument("--batch-requests", type=int, default=100, help="timed batch requests")
    parser.add_argument(
        "--service", help="feature service looked up (default: model.pathways.serve_service of the local config)"
    )
    parser.add_argument("--home", help="state folder to keep (default: a temp folder, removed)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    from jobs.cli import setup_logging

    setup_logging()
    result = run(args)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

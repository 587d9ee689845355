"""Serving latency and throughput on loopback: p50/p99 per request and requests/s under a bounded load.

    python -m bench.serve                                  # champion + online store of conf/local.yaml
    python -m bench.serve --checkpoint DIR --config tiny
    python -m bench.serve --synthetic                      # no pipeline state: a random tiny model, in-memory features

The app of ``serving.serve`` runs in uvicorn on 127.0.0.1 (a free port) in this process; ``--concurrency``
clients (threads with their own HTTP connection) send ``--requests`` GETs between them, users drawn
from ``--users`` (ids) round-robin, a ``--cold-share`` of them unknown. Warm-up requests are not timed.
Prints and writes JSON (``--out``): p50/p90/p99/max latency in ms, requests/s, errors.
"""

from __future__ import annotations

import json
import logging
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic(n_items: int = 400, n_users: int = 200, seed: int = 0):
    """(Recommender, user ids): a random tiny generator and in-memory features (no Feast, no lake)."""
    import dataclasses
    import itertools
    import tempfile

    import numpy as np
    import torch

    from models import checkpoint
    from models.config import tiny
    from models.continual import ItemSpace
    from models.onerec import build
    from serving.recommend import Recommender

    rng = np.random.default_rng(seed)
    k = 32
    every = np.array(list(itertools.product(range(k), range(k), range(2))))
    codes = np.concatenate([np.zeros((1, 3), dtype=np.int64), every[rng.choice(len(every), n_items, replace=False)]])
    item_ids = ["", *[f"i{n}" for n in range(1, n_items + 1)]]
    cfg = dataclasses.replace(tiny().onerec, n_items=n_items, codes_per_level=k, dedup_codes=2)
    torch.manual_seed(seed)
    directory = Path(tempfile.mkdtemp(prefix="onerec-bench-serve-")) / "synthetic"
    checkpoint.save(directory, build(cfg, codes), model_config=cfg, rng=False)
    ItemSpace(item_ids, codes, k, "synthetic").save(directory / "items")
    now = int(time.time())
    users = {}
    for u in range(n_users):
        hist = [item_ids[i] for i in rng.integers(1, n_items + 1, size=int(rng.integers(5, 60)))]
        users[str(u)] = {"short_item_ids": hist[-20:], "short_ts": [now - 60 * j for j in range(len(hist[-20:]))][::-1],
                         "positive_item_ids": hist[::2], "item_ids": hist}  # fmt: skip

    class Features:
        def user(self, user_id):
            return users.get(user_id)

        def titles(self, ids):
            return {i: f"Item {i}" for i in ids}

    rec = Recommender.from_checkpoint(directory, Features(), popular=item_ids[1:51], beam_size=20)
    return rec, list(users)


def _known_users(cfg, limit: int) -> list[str]:
    """User ids from gold.user_features (any day), for a realistic mix of histories."""
    from models.continual import read_delta

    users = read_delta(cfg.table_path("user_features"), storage_options=cfg.lake_storage_options())
    return sorted(set(users["user_id"].astype(str)))[:limit]


def run_load(base_url: str, users: list[str], requests: int, concurrency: int, k: int, cold_share: float,
             warmup: int = 20) -> dict:  # fmt: skip
    """Send ``requests`` GETs with ``concurrency`` workers; latency percentiles and throughput."""
    import httpx

    n_cold = int(round(requests * cold_share))
    targets = [f"cold-{n}" if n < n_cold else users[n % len(users)] for n in range(requests)]
    targets = targets[n_cold:] + targets[:n_cold]
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=30.0)
        return local.client

    def one(user: str) -> tuple[float, bool, bool]:
        t0 = time.perf_counter()
        r = client().get(f"/recommend/{user}", params={"k": k})
        ok = r.status_code == 200
        return (time.perf_counter() - t0) * 1000, ok, ok and r.json()["cold_start"]

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, [users[n % len(users)] for n in range(warmup)]))
        t0 = time.perf_counter()
        results = list(pool.map(one, targets))
        wall = time.perf_counter() - t0
    lat = sorted(ms for ms, _, _ in results)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)

    return {
        "requests": requests, "concurrency": concurrency, "k": k, "wall_s": round(wall, 2),
        "requests_per_s": round(requests / wall, 1), "p50_ms": pct(0.50), "p90_ms": pct(0.90),
        "p99_ms": pct(0.99), "max_ms": round(lat[-1], 2), "mean_ms": round(statistics.fmean(lat), 2),
        "errors": sum(not ok for _, ok, _ in results), "cold_start_answers": sum(c for _, _, c in results),
    }  # fmt: skip


def serve_in_thread(app) -> tuple[str, object]:
    """uvicorn on a free loopback port in a daemon thread; (base URL, server)."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main(argv: list[str] | None = None) -> dict:
    from jobs.cli import base_parser, settings_from_args, setup_logging
    from serving.serve import create_app

    parser = base_parser(__doc__)
    parser.add_argument("--synthetic", action="store_true", help="random tiny model + in-memory features")
    parser.add_argument("--checkpoint", help="checkpoint dir instead of the registry's champion")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4, help="clients in flight at once (the bounded load)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--users", type=int, default=200, help="distinct known users to cycle through")
    parser.add_argument("--cold-share", type=float, default=0.1, help="share of requests for unknown users")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="JSON result path (default var/reports/bench/serve.json)")
    args = parser.parse_args(argv)
    setup_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.synthetic:
        recommender, users = synthetic(n_users=args.users)
        out = Path(args.out or "var/reports/bench/serve.json")
        source = "synthetic"
    else:
        from serving.recommend import load

        cfg = settings_from_args(args)
        recommender = load(cfg, args.checkpoint)
        users = _known_users(cfg, args.users)
        out = Path(args.out or Path(cfg.resolve(cfg.reports_dir)) / "bench" / "serve.json")
        source = f"{recommender.version} ({cfg.feast.online_store} online store)"
    url, server = serve_in_thread(create_app(recommender))
    try:
        result = run_load(url, users, args.requests, args.concurrency, args.k, args.cold_share)
    finally:
        server.should_exit = True
    result = {"model": source, "items": len(recommender.index), "torch_threads": torch.get_num_threads(), **result}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

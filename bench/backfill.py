"""Bulk backfill vs day-by-day on the same range: events/s and total time, from one run.

    python -m bench.backfill                                   # first 4 days of the bundled sample (local config)
    python -m bench.backfill --days 7 --config tiny
    python -m bench.backfill --data DIR --format movielens_atomic --days 0 --modes bulk   # all of ML-100K, bulk only

Both modes build the data tables of the same range from the same raw folder into their own
empty lake under a temp folder: ``daily`` calls the data stages the daily DAG runs (ingest,
sequences, item_pairs, item_stats, training_examples), day after day, in one Spark session;
``bulk`` is ``jobs.backfill.run`` once. Only those stages are timed: the fixed cost of a DAG
run per day (Airflow, validations, the item side, the models: ~60-120 s a day on 2 cores)
comes on top of ``daily`` in a real replay and once on top of ``bulk``, so this understates
the gain of a whole ``make backfill``. An untimed one-day run first warms the JVM. Rows per
table of both lakes are printed side by side (the checksum equality is
tests/jobs/test_backfill.py's). Figures -> ``<out>/backfill.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

DAILY_STAGES = ("ingest", "sequences", "item_pairs", "item_stats", "training_examples")


def _cfg(base, home: Path, raw: str, fmt: str):
    return base.model_copy(
        update={"home": str(home), "source": base.source.model_copy(update={"path": raw, "format": fmt})}
    )


def run_daily(cfg, days: list[date], spark) -> dict:
    """Every data stage of each day in order; seconds per stage (summed) and in all."""
    import importlib

    modules = {name: importlib.import_module(f"jobs.{name}") for name in DAILY_STAGES}
    per_stage = dict.fromkeys(DAILY_STAGES, 0.0)
    t0 = time.time()
    for ds in days:
        for name, module in modules.items():
            t = time.time()
            module.run(cfg, ds, spark)
            per_stage[name] += time.time() - t
    return {"seconds": round(time.time() - t0, 2), "stages": {k: round(v, 2) for k, v in per_stage.items()}}


def run_bulk(cfg, days: list[date], spark) -> dict:
    """``jobs.backfill.run`` over the range; its seconds per stage and in all."""
    from jobs import backfill

    t0 = time.time()
    report = backfill.run(cfg, days[0], days[-1], spark)
    return {"seconds": round(time.time() - t0, 2), "stages": report["seconds"]}


def table_rows(cfg, spark) -> dict[str, int]:
    """Rows of every table the bulk path writes (absent: -1)."""
    from jobs import backfill, delta

    return {
        name: delta.read(spark, cfg.table_path(name)).count() if delta.exists(spark, cfg.table_path(name)) else -1
        for name in backfill.TABLES
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="local", help="config name or path (default local)")
    parser.add_argument("--data", help="dataset folder (default: the bundled sample, generated)")
    parser.add_argument("--format", default=None, help="loader of --data (default: the config's)")
    parser.add_argument("--days", type=int, default=4, help="the first N days of the dataset (0: all)")
    parser.add_argument("--modes", default="daily,bulk", help="comma list of daily, bulk (default both)")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed one-day warm-up")
    parser.add_argument("--work-dir", help="where the lakes go (default: a temp folder under $ONEREC_HOME/bench)")
    parser.add_argument("--out", help="folder for backfill.json (default reports/bench of the config)")
    parser.add_argument("--keep", action="store_true", help="keep the lakes")
    args = parser.parse_args(argv)

    from conf.settings import load_settings
    from jobs.ingest import replay_days
    from jobs.sample_data import generate
    from jobs.spark import get_spark

    base = load_settings(args.config)
    root = Path(args.work_dir or base.resolve("{home}/bench"))
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="backfill-", dir=root))
    fmt = args.format or base.source.format
    raw = os.path.abspath(args.data) if args.data else str(work / "raw")
    if not args.data:
        generate(base.sample, Path(raw))
    spark = get_spark(base)
    days = replay_days(_cfg(base, work / "probe", raw, fmt), spark)[: args.days or None]
    if not days:
        raise SystemExit("no day to run")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    load_before = os.getloadavg()
    if not args.no_warm_up:
        t = time.time()
        run_daily(_cfg(base, work / "warm-up", raw, fmt), days[:1], spark)
        print(f"warm-up (one day, untimed): {time.time() - t:.1f}s")
    results: dict = {}
    for mode in modes:
        cfg = _cfg(base, work / mode, raw, fmt)
        results[mode] = (run_daily if mode == "daily" else run_bulk)(cfg, days, spark)
        results[mode]["rows"] = table_rows(cfg, spark)
        events = results[mode]["rows"]["events"]
        results[mode]["events"] = events
        results[mode]["events_per_s"] = round(events / results[mode]["seconds"], 1)
    load_after = os.getloadavg()

    print(f"\n{len(days)} day(s) {days[0]} .. {days[-1]}, config {args.config}, data {args.data or 'bundled sample'}")
    print(f"{'mode':<8}{'total s':>10}{'events':>10}{'events/s':>12}  stages (s)")
    for mode, r in results.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
        print(f"{mode:<8}{r['seconds']:>10.1f}{r['events']:>10}{r['events_per_s']:>12.1f}  {stages}")
    if len(results) == 2:
        d, b = results["daily"], results["bulk"]
        print(f"bulk / daily total time: {b['seconds'] / d['seconds']:.2f} ({d['seconds'] / b['seconds']:.1f}x faster)")
        print(f"rows equal on every table: {d['rows'] == b['rows']}")
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (2-core box: noisy)")
    out = Path(args.out or base.resolve("{home}/reports/bench"))
    out.mkdir(parents=True, exist_ok=True)
    payload = {"days": [d.isoformat() for d in days], "config": args.config, "data": args.data, "format": fmt,
               "results": results, "load_before": load_before, "load_after": load_after}  # fmt: skip
    (out / "backfill.json").write_text(json.dumps(payload, indent=2, default=str))
    print(f"-> {out / 'backfill.json'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

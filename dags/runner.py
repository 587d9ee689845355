"""Run ``onerec_daily`` (or ``onerec_codebook_weekly``) through Airflow for one day, all days or a range.

    python -m dags.runner run                       # every day of the bundled sample
    python -m dags.runner run --ds 2026-10-05       # one day
    python -m dags.runner run --data DIR --format movielens_atomic
    python -m dags.runner backfill --start 2026-10-01 --end 2026-10-07 [--order reverse]
    python -m dags.runner run --dag onerec_codebook_weekly --ds 2026-10-07   # weekly rebuild, by hand

Each day is one ``dag.test()`` run (what ``airflow dags test`` does) against the
Airflow metadata DB of the config (SQLite under ``$ONEREC_HOME/airflow`` by
default), all in one process so the Spark session is started once. The bundled
sample is generated on first use. Exit status is non-zero if any day fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from conf.settings import REPO_ROOT, Settings

log = logging.getLogger("onerec.runner")
DAG_ID = "onerec_daily"
DAG_IDS = ("onerec_daily", "onerec_codebook_weekly")


def airflow_env(cfg: Settings) -> dict[str, str]:
    """Environment that points Airflow at this repo's DAGs and the config's metadata DB."""
    home = cfg.home_path / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": cfg.airflow.executor,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": cfg.resolve(cfg.airflow.sql_alchemy_conn)
        if "{home}" in cfg.airflow.sql_alchemy_conn
        else cfg.airflow.sql_alchemy_conn,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }


def prepare_airflow(cfg: Settings) -> None:
    """Set the Airflow environment for this process and migrate the metadata DB (idempotent)."""
    env = airflow_env(cfg)
    (cfg.home_path / "airflow").mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=os.environ.copy(),
                   stdout=subprocess.DEVNULL)  # fmt: skip
    log.info("airflow metadata DB ready (%s) in %.1fs", env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], time.time() - t0)


def ensure_sample(cfg: Settings) -> None:
    """Generate the bundled sample where the config points at it and it is missing."""
    from jobs.sample_data import generate

    root = Path(cfg.resolve(cfg.source.path))
    if cfg.source.path == "{home}/raw/sample" and not (root / "MANIFEST.json").exists():
        summary = generate(cfg.sample, root)
        log.info("generated the bundled sample under %s: %s interactions", root, summary.get("n_interactions", "?"))


def dataset_days(cfg: Settings) -> list[date]:
    """Every day with events in the configured dataset."""
    from jobs.loaders import get_loader
    from jobs.spark import get_spark

    loader = get_loader(cfg.source.format)
    return loader.event_dates(get_spark(cfg), cfg.resolve(cfg.source.path), cfg.source.base_date)


def run_days(cfg: Settings, days: list[date], run_conf: dict, dag_id: str = DAG_ID) -> list[tuple[date, str]]:
    """dag.test() each day in the given order (``dag_id``: one of ``DAG_IDS``); returns (day, state) per day."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[dag_id]
    results = []
    for i, day in enumerate(days, 1):
        t0 = time.time()
        logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
        print(f"[{i}/{len(days)}] {dag_id} ds={day} ...", flush=True)
        dag_run = dag.test(logical_date=logical, run_conf=run_conf)
        state = str(getattr(dag_run, "state", "unknown"))
        if _task_count(dag_run) == 0:  # e.g. a ds before the DAG's start_date: nothing ran
            state = "no task ran (is ds before the DAG's start_date?)"
        print(f"[{i}/{len(days)}] {dag_id} ds={day}: {state} in {time.time() - t0:.1f}s", flush=True)
        results.append((day, state))
        if "success" not in state:
            break
    return results


def _task_count(dag_run) -> int | None:
    """Task instances of a finished run (None when it cannot be read)."""
    try:
        return len(dag_run.get_task_instances())
    except Exception:  # noqa: BLE001 - a guard for the report, never a reason to fail the run
        return None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from jobs.cli import base_parser

    parser = base_parser(__doc__)
    parser.add_argument("command", choices=["run", "backfill"], help="run: one day or all days; backfill: a range")
    parser.add_argument("--ds", type=date.fromisoformat, help="run only this day")
    parser.add_argument("--start", type=date.fromisoformat, help="backfill: first day")
    parser.add_argument("--end", type=date.fromisoformat, help="backfill: last day (inclusive)")
    parser.add_argument("--order", choices=["forward", "reverse", "shuffled"], default="forward", help="backfill order")
    parser.add_argument("--limit-days", type=int, default=None, help="run only the first N days of the dataset")
    parser.add_argument("--dag", choices=DAG_IDS, default=DAG_ID, help=f"which DAG to run (default {DAG_ID})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from jobs.cli import settings_from_args, setup_logging

    args = _parse(argv)
    setup_logging()
    cfg = settings_from_args(args)
    prepare_airflow(cfg)
    ensure_sample(cfg)
    if args.command == "backfill":
        if not (args.start and args.end) or args.end < args.start:
            raise SystemExit("backfill needs --start <= --end (YYYY-MM-DD)")
        days = [args.start + timedelta(days=k) for k in range((args.end - args.start).days + 1)]
    elif args.ds:
        days = [args.ds]
    else:
        days = dataset_days(cfg)[: args.limit_days]
    if args.order == "reverse":
        days = days[::-1]
    elif args.order == "shuffled":
        random.Random(0).shuffle(days)
    overrides = list(args.set)
    if args.data:
        overrides.append(f"source.path={os.path.abspath(args.data)}")
    if args.format:
        overrides.append(f"source.format={args.format}")
    run_conf = {"config": args.config, "set": overrides}
    t0 = time.time()
    results = run_days(cfg, days, run_conf, args.dag)
    failed = [(d, s) for d, s in results if "success" not in s]
    reports = Path(cfg.resolve(cfg.reports_dir))
    print(f"\n{len(results)} day(s) in {time.time() - t0:.0f}s; lake: {cfg.resolve(cfg.lake_root)}")
    print(f"run reports: {reports / 'runs'}/<ds>/index.html; data docs: {reports / 'data_docs' / 'index.html'}")
    if failed or len(results) < len(days):
        raise SystemExit(f"{args.dag} failed on {failed[0][0] if failed else '?'}: see the task log above")


if __name__ == "__main__":
    main()

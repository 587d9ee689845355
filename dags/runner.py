"""Run ``onerec_daily`` (or ``onerec_codebook_weekly``) through Airflow for one day, all days or a range.

    python -m dags.runner run                       # every day of the bundled sample
    python -m dags.runner run --days 7 --weekly --bulk   # make run: 7 days (one bulk pass on a fresh
                                                         # lake, then onerec_daily on day 7), the weekly DAG once
    python -m dags.runner run --ds 2026-10-05       # one day
    python -m dags.runner run --data DIR --format movielens_atomic
    python -m dags.runner backfill --start 2026-10-01 --end 2026-10-07 [--order reverse]
    python -m dags.runner backfill --bulk --start 2026-10-01 --end 2026-10-30   # empty lake: one pass per stage
    python -m dags.runner run --dag onerec_codebook_weekly --ds 2026-10-07   # weekly rebuild, by hand

Each day is one ``dag.test()`` run (what ``airflow dags test`` does) against the
Airflow metadata DB of the config (SQLite under ``$ONEREC_HOME/airflow`` by
default), all in one process so the Spark session is started once. The bundled
sample is generated on first use (and again when its settings change). Exit status is
non-zero if any day fails.

The console shows one line per task and per day; the full Airflow and Spark logs go to
``$ONEREC_HOME/logs/run-<time>.log`` (``-v``: to the console). Each day's task timings go
to ``reports/runs/<ds>/timings.json`` and the day's run report. A ``run`` ends with a
summary of what it built (dags/console.py, jobs/run_summary.py).

``backfill --bulk`` (an empty lake only; it refuses a lake that holds any of its tables)
builds the range's data tables in one Spark pass per stage (jobs/backfill.py: the same tables
as a day-by-day replay), then runs ``onerec_daily`` once on the last day: its data tasks
are skipped (the pass wrote that day; run conf ``bulk``, jobs.stages._written_by_bulk), and the item side, Feast, the validations, the models
and the report run once, as of the last day.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from conf.settings import REPO_ROOT, Settings
from dags.console import QuietConsole, listen

log = logging.getLogger("onerec.runner")
DAG_ID = "onerec_daily"
WEEKLY_DAG_ID = "onerec_codebook_weekly"
DAG_IDS = (DAG_ID, WEEKLY_DAG_ID)


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
    _wait_migration(start_migration(cfg))


def start_migration(cfg: Settings) -> tuple[subprocess.Popen, float]:
    """Set the Airflow environment and start ``airflow db migrate`` in the background.

    It takes as long as a Spark start (an Airflow import), so the runner overlaps the two.
    """
    env = airflow_env(cfg)
    (cfg.home_path / "airflow").mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    proc = subprocess.Popen([sys.executable, "-m", "airflow", "db", "migrate"], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL)  # fmt: skip
    return proc, time.time()


def _wait_migration(started: tuple[subprocess.Popen, float]) -> None:
    proc, t0 = started
    if proc.wait() != 0:
        raise SystemExit(f"airflow db migrate failed (exit {proc.returncode}): see the log")
    log.info(
        "airflow metadata DB ready (%s) in %.1fs", os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], time.time() - t0
    )


def ensure_sample(cfg: Settings) -> None:
    """Generate the bundled sample where the config points at it and it is missing or stale.

    Stale: MANIFEST.json's fingerprint of the sample settings differs from the config's
    (e.g. ``--config tiny`` after a ``local`` run), so a changed config never reuses an old sample.
    """
    from jobs.sample_data import generate, settings_fingerprint

    root = Path(cfg.resolve(cfg.source.path))
    if cfg.source.path != "{home}/raw/sample":
        return
    manifest = root / "MANIFEST.json"
    wanted = settings_fingerprint(cfg.sample)
    if manifest.exists():
        found = json.loads(manifest.read_text()).get("fingerprint")
        if found == wanted:
            return
        log.info("sample settings changed (fingerprint %s -> %s): regenerating %s", found, wanted, root)
    summary = generate(cfg.sample, root)
    log.info("generated the bundled sample under %s: %s interactions", root, summary.get("interactions", "?"))


def dataset_days(cfg: Settings) -> list[date]:
    """Every day with events in the configured dataset that ingest accepts as a date.

    Days only a quarantined row would bring (a timestamp in 1900 or 2200) are left out:
    the replay goes on and ingest quarantines those rows (jobs.ingest.replay_days).
    """
    from jobs.ingest import replay_days

    return replay_days(cfg)


def run_days(
    cfg: Settings, days: list[date], run_conf: dict, dag_id: str = DAG_ID, console: QuietConsole | None = None
) -> list[tuple[date, str]]:
    """dag.test() each day in the given order (``dag_id``: one of ``DAG_IDS``); returns (day, state) per day.

    Stops at the first day that fails. ``console``: where the progress lines go (default: stdout).
    """
    from airflow.dag_processing.dagbag import DagBag

    console = console or QuietConsole(cfg.home_path / "logs", verbose=True)
    listen(console)
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[dag_id]
    results = []
    for i, day in enumerate(days, 1):
        t0 = time.time()
        logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
        console.say(f"[{i}/{len(days)}] {dag_id} ds={day}")
        dag_run = dag.test(logical_date=logical, run_conf=run_conf)
        state = str(getattr(dag_run, "state", "unknown"))
        tasks = task_timings(dag_run)
        if tasks == []:  # e.g. a ds before the DAG's start_date: nothing ran
            state = "no task ran (is ds before the DAG's start_date?)"
        wall = time.time() - t0
        tasks = tasks or []
        if tasks:
            _record_timings(cfg, day, dag_id, tasks, wall)
        if "success" not in state:
            _report_failure(console, tasks)
        console.say(f"[{i}/{len(days)}] {dag_id} ds={day}: {state} in {wall:.1f}s")
        results.append((day, state))
        if "success" not in state:
            break
    return results


def task_timings(dag_run) -> list[dict] | None:
    """Each task instance of a finished run: task_id, state, start/end (ISO) and seconds, by start.

    None when the run's task instances cannot be read (a report, never a reason to fail the run).
    """
    try:
        tis = dag_run.get_task_instances()
    except Exception:  # noqa: BLE001
        log.exception("could not read the task instances of %s", dag_run)
        return None
    rows = []
    for ti in tis:
        start, end = ti.start_date, ti.end_date
        rows.append({
            "task_id": ti.task_id,
            "state": str(ti.state).rsplit(".", 1)[-1].lower() if ti.state else "none",
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "seconds": round((end - start).total_seconds(), 3) if start and end else None,
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["start"] or "~", r["task_id"]))


def _record_timings(cfg: Settings, day: date, dag_id: str, tasks: list[dict], wall: float) -> None:
    from jobs.run_report import add_timings

    try:
        add_timings(cfg, day, dag_id, tasks, wall)
    except Exception:  # noqa: BLE001 - timings are a report, never a reason to fail the replay
        log.exception("could not record the task timings of %s ds=%s", dag_id, day)


def _report_failure(console: QuietConsole, tasks: list[dict]) -> None:
    """Name the tasks that did not succeed (the listener printed the failing task's log tail)."""
    bad = [t for t in tasks if t["state"] not in ("success", "skipped")]
    if bad:
        console.say("    not successful: " + ", ".join(f"{t['task_id']} ({t['state']})" for t in bad))
    if console.log_path:
        console.say(f"    full log: {console.log_path}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from jobs.cli import base_parser

    parser = base_parser(__doc__)
    parser.add_argument("command", choices=["run", "backfill"], help="run: one day or all days; backfill: a range")
    parser.add_argument("--ds", type=date.fromisoformat, help="run only this day")
    parser.add_argument("--start", type=date.fromisoformat, help="backfill: first day")
    parser.add_argument("--end", type=date.fromisoformat, help="backfill: last day (inclusive)")
    parser.add_argument("--order", choices=["forward", "reverse", "shuffled"], default="forward", help="backfill order")
    parser.add_argument("--bulk", action="store_true",
                        help="on an empty lake: the range's data tables in one pass per stage "
                             "(jobs/backfill.py), then onerec_daily once on the last day; with run "
                             "(make run), a lake that holds data is replayed day by day instead")  # fmt: skip
    parser.add_argument("--days", "--limit-days", dest="days", type=int, default=None,
                        help="run only the first N days of the dataset (0 or absent: all)")  # fmt: skip
    parser.add_argument("--dag", choices=DAG_IDS, default=DAG_ID, help=f"which DAG to run (default {DAG_ID})")
    parser.add_argument("--weekly", action="store_true",
                        help=f"after the days, run {WEEKLY_DAG_ID} once on the last day")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="Airflow and Spark logs on the console too")
    return parser.parse_args(argv)


def _days(args: argparse.Namespace, cfg: Settings) -> list[date]:
    if args.command == "backfill":
        if not (args.start and args.end) or args.end < args.start:
            raise SystemExit("backfill needs --start <= --end (YYYY-MM-DD)")
        days = [args.start + timedelta(days=k) for k in range((args.end - args.start).days + 1)]
    elif args.ds:
        days = [args.ds]
    else:
        days = dataset_days(cfg)[: args.days or None]
    if args.order == "reverse":
        days = days[::-1]
    elif args.order == "shuffled":
        random.Random(0).shuffle(days)
    return days


def _config_args(args: argparse.Namespace) -> str:
    """The options that point a follow-up command at the same config and data."""
    parts = [f"--config {args.config}"] if args.config else []
    parts += [f"--set {o}" for o in args.set]
    return " ".join(parts)


def _summary(cfg: Settings, days: list[date], args: argparse.Namespace) -> str:
    from jobs import run_summary
    from jobs.spark import get_spark

    return run_summary.render(run_summary.collect(get_spark(cfg), cfg, days), _config_args(args))


def _bulk(cfg: Settings, overrides: list[str], args: argparse.Namespace, console: QuietConsole) -> date:
    """The bulk data pass of ``backfill --bulk``; returns the day onerec_daily then runs once on."""
    from jobs import backfill
    from jobs.stages import settings_for_run

    if args.dag != DAG_ID:
        raise SystemExit("--bulk goes with the daily DAG")
    run_cfg = settings_for_run({"config": args.config, "set": overrides})  # --data/--format included
    console.say(f"bulk backfill {args.start} .. {args.end}: data tables in one pass per stage")
    t0 = time.time()
    try:
        report = backfill.run(run_cfg, args.start, args.end)
    except backfill.LakeNotEmptyError as err:
        raise SystemExit(str(err)) from None
    wall = time.time() - t0
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in report["seconds"].items())
    console.say(f"bulk backfill: {report['events']} events in {wall:.0f}s ({stages}); "
                f"now {DAG_ID} once on {args.end}")  # fmt: skip
    return args.end


def _lake_has_data(cfg: Settings) -> bool:
    """True when any table the bulk pass writes already exists in the config's lake."""
    from jobs import backfill
    from jobs.spark import get_spark

    return bool(backfill.existing_tables(get_spark(cfg), cfg))


def main(argv: list[str] | None = None) -> None:
    from jobs.cli import settings_from_args, setup_logging

    args = _parse(argv)
    cfg = settings_from_args(args)
    t0 = time.time()
    with QuietConsole(cfg.home_path / "logs", verbose=args.verbose) as console:
        setup_logging()  # after the redirect: the handlers write to the log file
        console.say(f"logs: {console.log_path or 'console'}")
        migration = start_migration(cfg)
        ensure_sample(cfg)
        days = _days(args, cfg)  # starts Spark while the metadata DB migrates
        _wait_migration(migration)
        if not days:
            raise SystemExit("no day to run: the dataset has no event dated inside ingest's plausible range")
        overrides = list(args.set)
        if args.data:
            overrides.append(f"source.path={os.path.abspath(args.data)}")
        if args.format:
            overrides.append(f"source.format={args.format}")
        run_conf = {"config": args.config, "set": overrides}
        if args.bulk and args.command == "run":
            # make run: the window's leading days in one pass on a fresh lake; a lake that already
            # holds data (a second make run) is replayed one DAG run per day, which changes nothing.
            args.start, args.end = min(days), max(days)
            if _lake_has_data(cfg):
                console.say("the lake already holds data: replaying day by day (--bulk needs an empty lake)")
                args.bulk = False
        if args.bulk:
            days = [_bulk(cfg, overrides, args, console)]
        console.say(f"{args.dag}: {len(days)} day(s), {min(days)} .. {max(days)}")
        # Right after a bulk pass, the daily run skips the data stages the pass wrote for END
        # (jobs.stages._written_by_bulk): the same rows again would cost a minute for nothing.
        daily_conf = {**run_conf, "bulk": {"start": str(args.start), "end": str(args.end)}} if args.bulk else run_conf
        results = run_days(cfg, days, daily_conf, args.dag, console)
        ok = len(results) == len(days) and all("success" in s for _, s in results)
        if ok and args.weekly and args.dag == DAG_ID:
            weekly = run_days(cfg, [max(days)], run_conf, WEEKLY_DAG_ID, console)
            ok = all("success" in s for _, s in weekly)
        done = [d for d, s in results if "success" in s]
        if done and (args.command == "run" or args.bulk):
            console.say(_summary(cfg, done, args))
        console.say(f"\n{len(results)} day(s) in {time.time() - t0:.0f}s; lake: {cfg.resolve(cfg.lake_root)}")
    if not ok:
        failed = [(d, s) for d, s in results if "success" not in s]
        where = f"{failed[0][0]}" if failed else "the weekly run"
        raise SystemExit(f"{args.dag} failed on {where}: see the task lines above and {console.log_path or 'the log'}")


if __name__ == "__main__":
    main()

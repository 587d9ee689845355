"""Daily cost against history length: the same day through onerec_daily after 10, 30 and 90 days.

    python -m bench.day_cost                                  # histories 10,30,90; 150 users, 200 items
    python -m bench.day_cost --histories 10,30,90,180 --users 300 --items 400   # bigger
    python -m bench.day_cost --config tiny --histories 2,4    # a smoke run (minutes)

Target (issue 12): the day's cost after 90 days of history <= 1.2 x its cost after 10 days.

One sample is generated (``jobs.sample_data``, ``max(histories) + 1`` days, ``--users`` and
``--items``); its last day ``D`` is the measured day. For each history length N, an empty lake
under its own ``ONEREC_HOME`` gets a raw folder holding copies of the sample's days ``D-N`` ..
``D-1`` (+ the same items and users files); the bulk backfill (``jobs.backfill.run``) builds
their data tables (timed: the history's build cost, events/s); then day ``D``'s folder is
copied in and ``onerec_daily`` runs on ``D`` through ``dags.runner.run_days`` (``dag.test()``
in-process, as ``make run``). Every history therefore sees the very same raw file for the day
(same bytes, same date: its sha256 is in the figures), and only the history behind it differs:
the trailing N days of one simulated world, so nothing is re-dated and no row moves to
another day. Each history runs in a child process of its own (a fresh JVM and Airflow DB):
every day pays the same cold start, and no run warms the JVM for the next one.

The measured day is the lake's first DAG run (the bulk backfill builds data tables only), so
it also trains the item alignment model, fits the first codebook and trains the generator
from scratch -- first-run costs that do not depend much on the history. ``--warm-day`` runs
onerec_daily on ``D-1`` first (its wall time is recorded, not compared), so ``D`` is a
steady-state day as in production; it doubles the DAG runs.

Printed per history: the day's wall time, each task's seconds (the runner's
``reports/runs/<D>/timings.json``), the sums of the data, item-side and model tasks, the
history's bulk build (seconds, events/s); then the ratio of the longest history to the
shortest (day wall, each group, each task) and ``uptime`` at start and end. JSON -> ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

TARGET_RATIO = 1.2
DAG_ID = "onerec_daily"
# Task groups of onerec_daily (dags/onerec_daily.py); every other task is a data task
# (ingest .. training_examples, their validations, Feast).
MODEL_TASKS = ("train", "reward_refresh", "align", "evaluate", "promote")
ITEM_TASKS = ("item_alignment", "item_embeddings", "validate_item_embeddings", "semantic_ids", "validate_item_sids")
REPORT_TASKS = ("report",)
GROUPS = ("data", "item", "model", "report")


# ---------------------------------------------------------------------------------------------
# Pure helpers (tests/bench/test_day_cost.py)
# ---------------------------------------------------------------------------------------------


def plan(histories: list[int], start: date) -> tuple[int, date]:
    """Days the sample needs (the longest history + the day) and the measured day ``D``."""
    if not histories or min(histories) < 1:
        raise ValueError(f"history lengths must be >= 1 day, got {histories}")
    n = max(histories)
    return n + 1, start + timedelta(days=n)


def history_days(day: date, n: int) -> list[date]:
    """The ``n`` days before ``day``, oldest first: the history behind it."""
    return [day - timedelta(days=k) for k in range(n, 0, -1)]


def day_folder(raw: Path, ds: date) -> Path:
    return Path(raw) / "interactions" / f"ds={ds.isoformat()}"


def sha256_dir(folder: Path) -> str:
    """One hash over a folder's files (relative names + bytes), in name order."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def copy_days(sample: Path, dest: Path, days: list[date]) -> None:
    """Copy the sample's items, users and the given days' interaction folders under ``dest``."""
    sample, dest = Path(sample), Path(dest)
    for entity in ("items", "users"):
        if not (dest / entity).exists():
            shutil.copytree(sample / entity, dest / entity)
    for ds in days:
        src = day_folder(sample, ds)
        if not src.is_dir():
            raise FileNotFoundError(f"the sample has no day {ds} ({src})")
        shutil.copytree(src, day_folder(dest, ds), dirs_exist_ok=True)


def group_of(task_id: str) -> str:
    if task_id in MODEL_TASKS:
        return "model"
    if task_id in ITEM_TASKS:
        return "item"
    if task_id in REPORT_TASKS:
        return "report"
    return "data"


def group_seconds(tasks: list[dict]) -> dict[str, float]:
    """Seconds per group (data, item, model, report) from the runner's task rows."""
    sums = dict.fromkeys(GROUPS, 0.0)
    for t in tasks:
        sums[group_of(t["task_id"])] += t.get("seconds") or 0.0
    return {k: round(v, 2) for k, v in sums.items()}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def compare(runs: dict[int, dict]) -> dict:
    """Longest history vs shortest: ratios of the day's wall time, each group and each task.

    ``runs``: history length -> a child's figures (``day.wall_s``, ``day.groups``, ``day.tasks``).
    ``growth``: the tasks sorted by how many seconds they gained, the first ones being what
    grows with history.
    """
    lo, hi = min(runs), max(runs)
    a, b = runs[lo]["day"], runs[hi]["day"]
    ta = {t["task_id"]: t.get("seconds") or 0.0 for t in a["tasks"]}
    tb = {t["task_id"]: t.get("seconds") or 0.0 for t in b["tasks"]}
    growth = sorted(
        ({"task": k, "short_s": ta.get(k, 0.0), "long_s": tb.get(k, 0.0),
          "delta_s": round(tb.get(k, 0.0) - ta.get(k, 0.0), 2), "ratio": _ratio(tb.get(k), ta.get(k))}
         for k in sorted(set(ta) | set(tb))),
        key=lambda r: -r["delta_s"],
    )  # fmt: skip
    ratio = _ratio(b["wall_s"], a["wall_s"])
    return {
        "cpu_ratio": _ratio(b.get("cpu_s"), a.get("cpu_s")),
        "short": lo,
        "long": hi,
        "wall_ratio": ratio,
        "target": TARGET_RATIO,
        "met": ratio is not None and ratio <= TARGET_RATIO,
        "over_target_pct": round((ratio / TARGET_RATIO - 1) * 100, 1) if ratio and ratio > TARGET_RATIO else 0.0,
        "group_ratios": {g: _ratio(b["groups"][g], a["groups"][g]) for g in GROUPS},
        "growth": growth,
    }


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds (user + system, reaped children included) of a process and its live descendants:
    this process, the Spark JVM and its Python workers. Under a shared load they say more than wall
    time. 0.0 where /proc is missing."""
    root = root or os.getpid()
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        # after the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based in proc(5)
        stats[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK"))
    keep, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in keep]
        keep.update(kids)
        frontier += kids
    return round(sum(stats[pid][1] for pid in keep if pid in stats), 2)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------
# One history (child process: its own ONEREC_HOME, JVM and Airflow DB)
# ---------------------------------------------------------------------------------------------


def run_history(args: argparse.Namespace) -> dict:
    """Bulk-build ``args.child`` days of history, then onerec_daily on the day; the figures."""
    from conf.settings import load_settings
    from dags.console import QuietConsole
    from dags.runner import _wait_migration, run_days, start_migration
    from jobs.cli import setup_logging
    from jobs.run_report import day_report_dir

    n, day, sample = args.child, date.fromisoformat(args.day), Path(args.sample)
    home = Path(os.environ["ONEREC_HOME"])
    raw = home / "raw"
    days = history_days(day, n)
    copy_days(sample, raw, days)
    overrides = [*args.set, f"source.path={raw}"]
    cfg = load_settings(args.config, overrides)
    run_conf = {"config": args.config, "set": overrides}
    figures: dict = {"history_days": n, "start": days[0].isoformat(), "end": days[-1].isoformat(),
                     "day": day.isoformat(), "home": str(home)}  # fmt: skip
    with QuietConsole(cfg.home_path / "logs") as console:
        setup_logging()
        migration = start_migration(cfg)
        from jobs import backfill
        from jobs.spark import get_spark

        t = time.time()
        spark = get_spark(cfg)
        figures["spark_start_s"] = round(time.time() - t, 2)
        t, cpu = time.time(), tree_cpu_seconds()
        books = backfill.run(cfg, days[0], days[-1], spark)
        bulk_s = time.time() - t
        figures["bulk"] = {"seconds": round(bulk_s, 2), "cpu_s": round(tree_cpu_seconds() - cpu, 2),
                           "events": books["events"], "events_per_s": round(books["events"] / bulk_s, 1),
                           "stages": books["seconds"]}  # fmt: skip
        console.say(f"history {n} d: bulk backfill {books['events']} events in {bulk_s:.1f}s")
        _wait_migration(migration)
        if args.warm_day:
            t = time.time()
            warm = run_days(cfg, [days[-1]], run_conf, DAG_ID, console)
            figures["warm_day"] = {"ds": days[-1].isoformat(), "wall_s": round(time.time() - t, 2),
                                   "state": warm[-1][1] if warm else "not run"}  # fmt: skip
        copy_days(sample, raw, [day])
        figures["day_sha256"] = sha256_dir(day_folder(raw, day))
        load_before, cpu = os.getloadavg(), tree_cpu_seconds()
        results = run_days(cfg, [day], run_conf, DAG_ID, console)
        load_after, day_cpu = os.getloadavg(), round(tree_cpu_seconds() - cpu, 2)
    state = results[-1][1] if results else "not run"
    timings = json.loads((day_report_dir(cfg, day) / "timings.json").read_text())[DAG_ID]
    figures["day"] = {
        "state": state,
        "wall_s": timings["wall_s"],
        "task_s": timings["task_s"],
        "cpu_s": day_cpu,
        "groups": group_seconds(timings["tasks"]),
        "tasks": [{"task_id": t["task_id"], "state": t["state"], "seconds": t["seconds"]} for t in timings["tasks"]],
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }
    return figures


# ---------------------------------------------------------------------------------------------
# The bench
# ---------------------------------------------------------------------------------------------


def _print(runs: dict[int, dict], cmp: dict) -> None:
    print(f"\n{'history':>8}{'day wall s':>12}{'day cpu s':>11}{'data s':>9}{'item s':>9}{'model s':>9}{'report s':>9}"
          f"{'bulk s':>9}{'events':>9}{'events/s':>10}  state")  # fmt: skip
    for n, r in sorted(runs.items()):
        d, g, b = r["day"], r["day"]["groups"], r["bulk"]
        print(f"{n:>8}{d['wall_s']:>12.1f}{d.get('cpu_s') or 0.0:>11.1f}{g['data']:>9.1f}{g['item']:>9.1f}{g['model']:>9.1f}{g['report']:>9.1f}"
              f"{b['seconds']:>9.1f}{b['events']:>9}{b['events_per_s']:>10.1f}  {d['state']}")  # fmt: skip
    names = [t["task_id"] for t in runs[min(runs)]["day"]["tasks"]]
    by = {n: {t["task_id"]: t["seconds"] for t in r["day"]["tasks"]} for n, r in runs.items()}
    print("\nseconds per task (" + ", ".join(f"{n} d" for n in sorted(runs)) + "):")
    for name in names:
        cells = "".join(f"{(by[n].get(name) or 0.0):>9.1f}" for n in sorted(runs))
        print(f"  {name:<28}{cells}   [{group_of(name)}]")
    lo, hi = cmp["short"], cmp["long"]
    verdict = "met" if cmp["met"] else f"MISSED by {cmp['over_target_pct']} %"
    print(f"\nhistory {hi} d / {lo} d, the same day: wall {cmp['wall_ratio']} (target <= {cmp['target']}: {verdict}), cpu {cmp['cpu_ratio']}; "
          + ", ".join(f"{g} {v}" for g, v in cmp["group_ratios"].items()))  # fmt: skip
    top = [g for g in cmp["growth"] if g["delta_s"] > 0][:6]
    print("grew most: " + ", ".join(f"{g['task']} +{g['delta_s']:.1f}s ({g['ratio']}x)" for g in top))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="local", help="config name or path (default local)")
    parser.add_argument("--histories", default="10,30,90", help="history lengths in days (default 10,30,90)")
    parser.add_argument("--users", type=int, default=150, help="sample users (default 150)")
    parser.add_argument("--items", type=int, default=200, help="sample items (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="sample seed (default: the config's)")
    parser.add_argument("--warm-day", action="store_true", help="run onerec_daily on D-1 first (not compared)")
    parser.add_argument("--set", action="append", default=[], help="section.key=value for every run")
    parser.add_argument("--work-dir", help="where the lakes go (default: a temp folder under $ONEREC_HOME/bench)")
    parser.add_argument("--out", help="JSON path (default <home>/reports/bench/day_cost.json)")
    parser.add_argument("--keep", action="store_true", help="keep the lakes")
    parser.add_argument("--resume", metavar="WORK",
                        help="a kept (or interrupted) run's folder: reuse its sample and finished histories")  # fmt: skip
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        Path(args.child_out).write_text(json.dumps(run_history(args), indent=2, default=str))
        return

    from conf.settings import load_settings
    from jobs.sample_data import generate

    histories = sorted({int(x) for x in args.histories.split(",") if x.strip()})
    base = load_settings(args.config, list(args.set))
    n_days, day = plan(histories, base.sample.start_date)
    sample_cfg = base.sample.model_copy(
        update={"days": n_days, "n_users": args.users, "n_items": args.items}
        | ({"seed": args.seed} if args.seed is not None else {})
    )
    root = Path(args.work_dir or base.resolve("{home}/bench"))
    root.mkdir(parents=True, exist_ok=True)
    work = Path(args.resume) if args.resume else Path(tempfile.mkdtemp(prefix="day-cost-", dir=root))
    up_start = uptime()
    print(f"uptime at start: {up_start}")
    t0 = time.time()
    if args.resume and (work / "sample" / "MANIFEST.json").exists():
        manifest = json.loads((work / "sample" / "MANIFEST.json").read_text())
        if manifest["settings"] != sample_cfg.model_dump(mode="json"):
            raise SystemExit(f"{work}: its sample was made with other settings: {manifest['settings']}")
    else:
        manifest = generate(sample_cfg, work / "sample")
    print(f"sample: {manifest['interactions']} interactions over {n_days} days, {args.users} users, "
          f"{args.items} items; measured day {day} ({manifest['rows_per_day'][day.isoformat()]} rows)")  # fmt: skip
    runs: dict[int, dict] = {}
    for n in histories:
        home, out = work / f"h{n}", work / f"h{n}.json"
        if args.resume and out.exists():
            runs[n] = json.loads(out.read_text())
            print(f"\n== history {n} days: reused from {out} (day wall {runs[n]['day']['wall_s']}s)")
            continue
        shutil.rmtree(home, ignore_errors=True)  # an interrupted history starts again from an empty lake
        home.mkdir()
        cmd = [sys.executable, "-m", "bench.day_cost", "--child", str(n), "--day", day.isoformat(),
               "--sample", str(work / "sample"), "--child-out", str(out), "--config", args.config]  # fmt: skip
        cmd += [f"--set={s}" for s in args.set] + (["--warm-day"] if args.warm_day else [])
        print(f"\n== history {n} days ({history_days(day, n)[0]} .. {day - timedelta(days=1)}), then {day}")
        t = time.time()
        proc = subprocess.run(cmd, env={**os.environ, "ONEREC_HOME": str(home)}, check=False)
        if proc.returncode != 0 or not out.exists():
            raise SystemExit(f"history {n}: child failed (exit {proc.returncode}); logs under {home / 'logs'}")
        runs[n] = json.loads(out.read_text())
        runs[n]["process_s"] = round(time.time() - t, 2)
    cmp = compare(runs)
    up_end = uptime()
    _print(runs, cmp)
    hashes = {r["day_sha256"] for r in runs.values()}
    print(f"the day's raw file identical in every run: {len(hashes) == 1} ({next(iter(hashes))[:16]})")
    print(f"uptime at start: {up_start}\nuptime at end:   {up_end}\nbench wall {time.time() - t0:.0f}s")
    out = Path(args.out or base.resolve("{home}/reports/bench/day_cost.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": args.config, "set": args.set, "histories": histories, "day": day.isoformat(),
               "sample": {"users": args.users, "items": args.items, "days": n_days,
                          "interactions": manifest["interactions"],
                          "day_rows": manifest["rows_per_day"][day.isoformat()]},
               "warm_day": args.warm_day, "runs": {str(k): v for k, v in runs.items()}, "compare": cmp,
               "uptime_start": up_start, "uptime_end": up_end, "wall_s": round(time.time() - t0, 1)}  # fmt: skip
    out.write_text(json.dumps(payload, indent=2, default=str))
    print(f"-> {out}")
    if not args.keep and not args.resume:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

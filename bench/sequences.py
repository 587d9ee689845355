"""What a day's incremental sequence update costs, next to a full rebuild, and Spark next to DuckDB.

    python -m bench.sequences [--events 1000000,10000000] [--days 30] [--ml100k PATH] [--out DIR]

For each size N: synthetic bronze events (bench.synthetic, bundled and seeded: the
default data never comes from outside the repository) are written as the
``bronze.events`` Delta table (setup, not timed), then the bench times

* the **full rebuild**: ``jobs.sequences.run(cfg, last_day, full_rebuild=True)``
  (``silver.user_events`` day chunks and ``silver.user_state`` from every event +
  gold features of the last day's active users);
* the **incremental day**: ``run(cfg, last_day)`` on chunks and state of days
  1..D-1 (built untimed with ``build_chunks``/``build_state``, which the job's tests
  prove equal to applying those days one by one): the day's chunk, the state append
  of the day's users + the same gold features;
* the history part of the full rebuild on its own (what DuckDB is compared with);
* **DuckDB**, same transform, same process: the same events as parquet grouped
  into per-(user, day) chunks and the per-user state (recent window, positives,
  counts), written to parquet; and a DuckDB incremental day (day D's chunk + the
  state parquet of days 1..D-1 -> a new state parquet).

Then it checks that full and incremental agree and that DuckDB counts what Spark
counts. ``--ml100k PATH`` (a RecBole ``ml-100k`` folder; off by default) replays
MovieLens-100K day by day through the incremental path and checks the final state
against a full rebuild.

Memory: peak RSS per phase of this process (DuckDB runs in it) and of the Spark
JVM, read from /proc VmHWM after resetting it (``clear_refs``), plus run-wide
maxima. CPU seconds of both processes are reported next to
wall time: on a shared machine, wall time says as much about the neighbours.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench.synthetic import EVENTS_SCHEMA, US_PER_DAY, synthetic_events
from conf.settings import REPO_ROOT, PositiveRule, Settings, TableSpec, load_settings
from jobs.schemas import FLAG_BITS, HISTORY_EVENT, USER_STATE
from jobs.user_history import current_state, recent_len

DEFAULT_SIZES = (1_000_000, 10_000_000)
DEFAULT_OUT = REPO_ROOT / "var" / "reports" / "bench"
START = date(2026, 10, 1)
MIB = 2**20
_T0 = time.perf_counter()


def progress(msg: str) -> None:
    """One progress line with the seconds since the bench started (long runs must not be silent)."""
    print(f"[{time.perf_counter() - _T0:8.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------- measurement


def _status_kib(pid: int, key: str) -> int | None:
    """A ``VmXXX:`` line of /proc/<pid>/status in KiB (None if unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, all threads (JIT and GC included for a JVM)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces; fields after ')' are fixed (utime, stime are 14, 15).
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS, so the next read is this phase's peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (psutil when installed, else a /proc scan)."""
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children()]
    except Exception:  # noqa: BLE001 - psutil missing or the process gone: fall back to /proc
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == pid:
                    out.append(int(entry.name))
        return out


def find_jvm_pid(spark) -> int | None:
    """The Spark driver JVM: asked over Py4J, else the ``java`` child of this process."""
    try:
        return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    except Exception:  # noqa: BLE001 - e.g. Spark Connect has no local JVM gateway
        pass
    for pid in _children(os.getpid()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                return pid
        except OSError:
            continue
    return None


@dataclass
class Phase:
    """One timed phase: wall and CPU time, peak memory of this process and of the JVM."""

    name: str
    wall_s: float = 0.0
    python_cpu_s: float = 0.0
    jvm_cpu_s: float | None = None
    python_rss_before_mib: float | None = None
    python_peak_rss_mib: float | None = None
    jvm_peak_rss_mib: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def python_rss_delta_mib(self) -> float | None:
        """How far this process grew above its RSS at the start (DuckDB's working memory)."""
        if self.python_peak_rss_mib is None or self.python_rss_before_mib is None:
            return None
        return self.python_peak_rss_mib - self.python_rss_before_mib

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "extra"}
        out["python_rss_delta_mib"] = self.python_rss_delta_mib
        return {**out, **self.extra}


class Meter:
    """Times phases and records per-phase peak RSS of this process and the Spark JVM."""

    def __init__(self, jvm_pid: int | None) -> None:
        self.jvm_pid = jvm_pid
        # Resetting VmHWM also lowers what getrusage reports on Linux, so lifetime peaks
        # are read once before the first reset and then kept as a running maximum.
        self.python_max_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        jvm_hwm = _status_kib(jvm_pid, "VmHWM") if jvm_pid else None
        self.jvm_max_mib = jvm_hwm / 1024 if jvm_hwm is not None else None
        self.peak_reset_works = _reset_peak(os.getpid())

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        me = os.getpid()
        ph = Phase(name)
        gc.collect()
        for pid in (me, self.jvm_pid):
            if pid is not None:
                _reset_peak(pid)
        rss = _status_kib(me, "VmRSS")
        ph.python_rss_before_mib = rss / 1024 if rss is not None else None
        jvm_cpu0 = _cpu_seconds(self.jvm_pid) if self.jvm_pid else None
        cpu0, t0 = time.process_time(), time.perf_counter()
        try:
            yield ph
        finally:
            ph.wall_s = time.perf_counter() - t0
            ph.python_cpu_s = time.process_time() - cpu0
            if jvm_cpu0 is not None:
                jvm_cpu1 = _cpu_seconds(self.jvm_pid)
                ph.jvm_cpu_s = jvm_cpu1 - jvm_cpu0 if jvm_cpu1 is not None else None
            hwm = _status_kib(me, "VmHWM")
            ph.python_peak_rss_mib = hwm / 1024 if hwm is not None else None
            jvm_hwm = _status_kib(self.jvm_pid, "VmHWM") if self.jvm_pid else None
            ph.jvm_peak_rss_mib = jvm_hwm / 1024 if jvm_hwm is not None else None
            self._track(ph)

    def _track(self, ph: Phase) -> None:
        if ph.python_peak_rss_mib is not None:
            self.python_max_mib = max(self.python_max_mib, ph.python_peak_rss_mib)
        if ph.jvm_peak_rss_mib is not None:
            self.jvm_max_mib = max(self.jvm_max_mib or 0.0, ph.jvm_peak_rss_mib)

    def lifetime(self) -> dict[str, float | None]:
        """Peaks over the whole run: this process (ru_maxrss and every phase) and the JVM (VmHWM)."""
        self.python_max_mib = max(self.python_max_mib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return {"python_max_rss_mib": self.python_max_mib, "jvm_max_rss_mib": self.jvm_max_mib}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- setup


def write_event_files(table: pa.Table, out_dir: Path) -> dict[date, Path]:
    """One flat parquet file per day, ``event_date`` kept inside: DuckDB and Spark read the same files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    days = table.column("event_date").cast(pa.int32()).to_numpy()
    order = np.argsort(days, kind="stable")
    if np.any(order != np.arange(len(order))):
        table, days = table.take(pa.array(order)), days[order]
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]]) if len(days) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(days)]
    files = {}
    for lo, hi in zip(starts, ends, strict=True):
        day = date(1970, 1, 1) + timedelta(days=int(days[lo]))
        path = out_dir / f"{day.isoformat()}.parquet"
        pq.write_table(table.slice(lo, hi - lo), path)
        files[day] = path
    return files


def write_events_table(spark, df, events_path: str) -> int:
    """Write ``df`` as ``bronze.events`` (EVENTS columns, partitioned by event_date, as ingest writes it)."""
    from pyspark.sql import functions as F

    from jobs import delta
    from jobs.schemas import EVENTS

    typed = df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in EVENTS.fields])
    delta.overwrite(typed, events_path, partition_by=("event_date",))
    return delta.read(spark, events_path).count()


def write_bronze_events(spark, source_dir: Path, events_path: str) -> int:
    """The day files -> ``bronze.events`` Delta table."""
    return write_events_table(spark, spark.read.parquet(str(source_dir)), events_path)


def bench_settings(home: Path) -> Settings:
    """The local config with every path under the bench's temp home."""
    return load_settings("local", overrides=[f"home={home}"])


def variant(cfg: Settings, suffix: str) -> Settings:
    """Same events table, own chunks, state and features tables (full and incremental side by side)."""
    tables = dict(cfg.tables)
    for name in ("user_events", "user_state", "user_features"):
        spec = tables[name]
        tables[name] = TableSpec(
            name=f"{spec.name}_{suffix}", layer=spec.layer, partition_by=spec.partition_by, keys=spec.keys
        )
    return cfg.model_copy(update={"tables": tables})


# ---------------------------------------------------------------- spark side


def warm_up(spark, home: Path) -> None:
    """Run ``jobs.sequences.run`` on a tiny two-day table (state append, features, full rebuild) before timing.

    The first state write and the first feature write of a JVM load classes and JIT-compile
    code; without this, the first timed phase pays for it and looks several times slower.
    """
    from jobs.sequences import run

    cfg = bench_settings(home)
    files = write_event_files(synthetic_events(400, 20, 30, 2, START, seed=1), home / "events_parquet")
    write_bronze_events(spark, home / "events_parquet", cfg.table_path("events"))
    for ds in sorted(files):
        run(cfg, ds, spark=spark)
    run(cfg, max(files), spark=spark, full_rebuild=True)


_DIGEST_KEYS = ("users", "events", "positives", "active_days", "recent", "checksum")


def _digest_columns() -> list:
    """Per-row terms of :func:`history_digest` over ``user_state``; every one is summed, so digests of parts add up."""
    from pyspark.sql import functions as F

    row_hash = F.xxhash64(*[f.name for f in USER_STATE.fields])
    return [
        F.lit(1).alias("users"),
        F.col("n_events").alias("events"),
        F.col("n_positive").alias("positives"),
        F.col("active_days").alias("active_days"),
        F.size("recent").alias("recent"),
        # Decimal: a long sum of 64-bit hashes would overflow (ANSI mode raises).
        row_hash.cast("decimal(38,0)").alias("checksum"),
    ]


def history_digest(df) -> dict[str, int]:
    """Order-free summary of user_state rows: counts plus a content checksum (a hash of every column)."""
    return history_digest_split(df, None)["all"]


def history_digest_split(df, users) -> dict[str, dict[str, int]]:
    """Digests of all rows and of the rows whose user_id is in ``users`` (one Spark job).

    One pass with an in/out marker instead of a semi-join per digest: the checks
    run on a busy machine and each extra job costs seconds.
    """
    from pyspark.sql import functions as F

    marked = df.withColumn("_in", F.lit(False))
    if users is not None:
        marked = df.join(users.withColumn("_in", F.lit(True)), "user_id", "left").fillna(False, subset=["_in"])
    terms = marked.select("_in", *_digest_columns())
    rows = terms.groupBy("_in").agg(*[F.sum(k).alias(k) for k in _DIGEST_KEYS]).collect()
    parts = {bool(r["_in"]): {k: int(r[k] or 0) for k in _DIGEST_KEYS} for r in rows}
    zero = dict.fromkeys(_DIGEST_KEYS, 0)
    inside, outside = parts.get(True, zero), parts.get(False, zero)
    return {"all": {k: inside[k] + outside[k] for k in _DIGEST_KEYS}, "in": inside}


def active_users(spark, cfg: Settings, ds: date):
    """user_ids with an event on ``ds`` (the users whose state the day writes)."""
    from pyspark.sql import functions as F

    from jobs import delta

    events = delta.read(spark, cfg.table_path("events"))
    return events.where(F.col("event_date") == F.lit(ds).cast("date")).select("user_id").distinct()


def write_history(spark, cfg: Settings, events, events_path: str, state_path: str) -> None:
    """Day chunks and state of ``events``, written as ``run(full_rebuild=True)`` writes them."""
    from jobs import delta
    from jobs.user_history import build_chunks, build_state

    seq = cfg.sequences
    delta.overwrite(build_chunks(events, seq.positive), events_path, ("event_date",))
    chunks = delta.read(spark, events_path)
    # One row per user: the state table as the weekly maintenance leaves it (jobs/maintenance.py).
    delta.overwrite(build_state(chunks, recent_len(cfg), seq.positive_len), state_path, ("last_date",))


def prepare_history_until(spark, cfg: Settings, last: date) -> None:
    """user_events and user_state of the days before ``last`` (untimed set-up of the incremental run)."""
    from pyspark.sql import functions as F

    from jobs import delta

    events = delta.read(spark, cfg.table_path("events")).where(F.col("event_date") < F.lit(last).cast("date"))
    write_history(spark, cfg, events, cfg.table_path("user_events"), cfg.table_path("user_state"))


def last_write_metrics(spark, path: str) -> dict:
    """Delta's operation and metrics of the latest commit on ``path`` (the day's state write)."""
    from delta.tables import DeltaTable

    first = DeltaTable.forPath(spark, path).history(1).select("operation", "operationMetrics").first()
    wanted = (
        "numOutputRows",
        "numFiles",
        "numRemovedFiles",
        "numTargetRowsUpdated",
        "numTargetRowsInserted",
        "numTargetRowsDeleted",
        "numTargetDeletionVectorsAdded",
        "executionTimeMs",
    )
    metrics = dict(first["operationMetrics"] or {}) if first else {}
    out: dict = {"operation": first["operation"] if first else None}
    out.update({k: int(metrics[k]) for k in wanted if k in metrics})
    return out


def lifelong_assembly(spark, cfg: Settings, ds: date) -> int:
    """The lifelong sequences of ``ds``'s users as ``jobs.lifelong`` assembles them (before the
    clustering, which needs item embeddings): the one daily step that reads whole histories, no
    longer part of the sequences day. Returns the items assembled."""
    from pyspark.sql import functions as F

    from jobs.lifelong import day_lifelong_items

    seqs = day_lifelong_items(spark, cfg, ds)
    return int(seqs.agg(F.sum(F.size("lifelong_item_ids"))).first()[0] or 0)


def history_only_rebuild(spark, cfg: Settings, suffix: str) -> None:
    """Exactly the first step of ``run(full_rebuild=True)``: all events -> fresh chunks and state."""
    from jobs import delta

    events = delta.read(spark, cfg.table_path("events"))
    write_history(spark, cfg, events, cfg.table_path("user_events") + suffix, cfg.table_path("user_state") + suffix)


# ---------------------------------------------------------------- duckdb side

# Spark's sort_array orders history structs by these fields in turn, nulls first.
_EVENT_FIELDS = tuple(f.name for f in HISTORY_EVENT.fields)


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files_sql(files: list[Path]) -> str:
    return "[" + ", ".join(_sql_str(str(p)) for p in files) + "]"


def duckdb_positive_sql(rule: PositiveRule) -> str:
    """``jobs.sequences.positive_expr`` in DuckDB SQL, from the same rule object.

    Literals are cast to DOUBLE: a bare 0.8 is a DECIMAL in DuckDB, and the comparison
    must round exactly as Spark's double arithmetic does.
    """
    clauses = []
    if rule.min_rating is not None:
        clauses.append(f"coalesce(rating >= CAST({rule.min_rating!r} AS DOUBLE), false)")
    if rule.min_play_ratio is not None:
        clauses.append(
            "coalesce(item_duration_seconds > 0 AND "
            f"play_seconds >= CAST({rule.min_play_ratio!r} AS DOUBLE) * item_duration_seconds, false)"
        )
    clauses += [f'coalesce("{signal}" = 1, false)' for signal in rule.signals]
    expr = "(" + (" OR ".join(clauses) or "false") + ")"
    if rule.dislike_vetoes:
        expr += ' AND NOT coalesce("dislike" = 1, false)'
    return expr


def duckdb_flags_sql() -> str:
    """The flag bitmask of ``with_history_event`` (like=1, follow=2, comment=4, share=8, dislike=16)."""
    return " + ".join(f'CASE WHEN "{name}" = 1 THEN {bit} ELSE 0 END' for name, bit in FLAG_BITS.items())


def _events_cte(files: list[Path], rule: PositiveRule) -> str:
    """Events with the history struct's columns computed (flags, positive)."""
    return f"""
        SELECT user_id, ts, item_id, event_date, rating, play_seconds, item_duration_seconds,
               CAST({duckdb_flags_sql()} AS INTEGER) AS flags,
               {duckdb_positive_sql(rule)} AS positive
        FROM read_parquet({_files_sql(files)})"""


def _list_sql() -> str:
    """list() of history structs in Spark's sort_array order (struct fields ascending, nulls first)."""
    struct = "{" + ", ".join(f"'{f}': {f}" for f in _EVENT_FIELDS) + "}"
    order = ", ".join(f"{f} NULLS FIRST" for f in _EVENT_FIELDS)
    return f"list({struct} ORDER BY {order})"


def _cap_sql(expr: str, cap: int) -> str:
    return (
        f"CASE WHEN len({expr}) > {cap} THEN list_slice({expr}, len({expr}) - {cap} + 1, len({expr})) ELSE {expr} END"
    )


def duckdb_chunks_sql(files: list[Path], rule: PositiveRule, out: Path) -> str:
    """Events -> one sorted chunk per (user, day), as ``jobs.user_history.build_chunks``."""
    return f"""
    COPY (
      WITH ev AS ({_events_cte(files, rule)})
      SELECT user_id, event_date, {_list_sql()} AS events, count(*) AS n_events, count_if(positive) AS n_positive
      FROM ev GROUP BY user_id, event_date
    ) TO {_sql_str(str(out))} (FORMAT parquet)"""


def duckdb_state_sql(chunks: Path, n_recent: int, positive_len: int, out: Path) -> str:
    """Chunks -> one state row per user, as ``jobs.user_history.build_state``."""
    before = _cap_sql("list_filter(all_ev, lambda e: e.event_date < last_date)", n_recent)
    positives = _cap_sql("list_filter(all_ev, lambda e: e.positive)", positive_len)
    return f"""
    COPY (
      WITH u AS (
        SELECT user_id, flatten(list(events ORDER BY event_date)) AS all_ev, max(event_date) AS last_date,
               min(event_date) AS first_date, sum(n_events) AS n_events, sum(n_positive) AS n_positive,
               count(*) AS active_days
        FROM read_parquet({_sql_str(str(chunks))}) GROUP BY user_id)
      SELECT user_id,
             list_concat({before}, list_filter(all_ev, lambda e: e.event_date = last_date)) AS recent,
             {positives} AS positives, n_events, n_positive, active_days, first_date, last_date,
             all_ev[1].ts AS first_ts, all_ev[-1].ts AS last_ts
      FROM u
    ) TO {_sql_str(str(out))} (FORMAT parquet)"""


def duckdb_full_sql(
    files: list[Path], rule: PositiveRule, n_recent: int, positive_len: int, out_dir: Path
) -> list[str]:
    """Full rebuild: every event -> ``chunks_full.parquet`` -> ``state_full.parquet``."""
    chunks = out_dir / "chunks_full.parquet"
    return [duckdb_chunks_sql(files, rule, chunks), duckdb_state_sql(chunks, n_recent, positive_len,
                                                                        out_dir / "state_full.parquet")]  # fmt: skip


def duckdb_incremental_sql(
    day_files: list[Path], state: Path, rule: PositiveRule, n_recent: int, positive_len: int, out_dir: Path
) -> list[str]:
    """One day as the job applies it in order: the day's chunk file, and the old state + the day.

    Parquet has no MERGE: untouched users are copied into the new state file, which is the
    honest cost of keeping the state as plain files (the chunk is a new file of the day alone).
    """
    chunk = out_dir / "chunk_day.parquet"
    recent = _cap_sql("o.recent", n_recent)
    positives = _cap_sql("list_concat(o.positives, list_filter(d.events, lambda e: e.positive))", positive_len)
    new_pos = _cap_sql("list_filter(d.events, lambda e: e.positive)", positive_len)
    merge = f"""
    COPY (
      WITH d AS (SELECT * FROM read_parquet({_sql_str(str(chunk))})),
           o AS (SELECT * FROM read_parquet({_sql_str(str(state))}))
      SELECT coalesce(d.user_id, o.user_id) AS user_id,
             CASE WHEN d.user_id IS NULL THEN o.recent WHEN o.user_id IS NULL THEN d.events
                  ELSE list_concat({recent}, d.events) END AS recent,
             CASE WHEN d.user_id IS NULL THEN o.positives WHEN o.user_id IS NULL THEN {new_pos}
                  ELSE {positives} END AS positives,
             coalesce(o.n_events, 0) + coalesce(d.n_events, 0) AS n_events,
             coalesce(o.n_positive, 0) + coalesce(d.n_positive, 0) AS n_positive,
             coalesce(o.active_days, 0) + CAST(d.user_id IS NOT NULL AS BIGINT) AS active_days,
             coalesce(o.first_date, d.event_date) AS first_date,
             coalesce(d.event_date, o.last_date) AS last_date,
             coalesce(o.first_ts, d.events[1].ts) AS first_ts,
             CASE WHEN d.user_id IS NULL THEN o.last_ts ELSE d.events[-1].ts END AS last_ts
      FROM o FULL OUTER JOIN d USING (user_id)
    ) TO {_sql_str(str(out_dir / "state_inc.parquet"))} (FORMAT parquet)"""
    return [duckdb_chunks_sql(day_files, rule, chunk), merge]


def duckdb_digest(con, path: Path) -> dict[str, int]:
    """The counts of :func:`history_digest` for a DuckDB state parquet (no cross-engine checksum)."""
    row = con.execute(
        f"""SELECT count(*), sum(n_events), sum(n_positive), sum(active_days), sum(len(recent))
            FROM read_parquet({_sql_str(str(path))})"""
    ).fetchone()
    keys = ("users", "events", "positives", "active_days", "recent")
    return dict(zip(keys, (int(v or 0) for v in row), strict=True))


def duckdb_connect(threads: int, temp_dir: Path):
    """In-process DuckDB with ``threads`` workers, spilling (if ever) under the bench's temp dir."""
    import duckdb

    return duckdb.connect(config={"threads": threads, "temp_directory": str(temp_dir)})


# ---------------------------------------------------------------- one size


def _comparable(digest: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in digest.items() if k != "checksum"}


def bench_spark(spark, meter: Meter, cfg: Settings, last: date) -> tuple[dict, dict]:
    """Incremental day, full rebuild, history-only rebuild; then the full-vs-incremental checks."""
    from jobs import delta
    from jobs.sequences import run

    cfg_inc, cfg_full = variant(cfg, "inc"), variant(cfg, "full")
    progress("  spark: history of days 1..D-1 (set-up, untimed)")
    with meter.phase("spark_prepare_history") as prep:
        prepare_history_until(spark, cfg_inc, last)
    progress(f"  spark: incremental day {last} (timed)")
    with meter.phase("spark_incremental_day") as inc:
        inc.extra["report"] = run(cfg_inc, last, spark=spark)
    progress(f"    {inc.wall_s:.1f}s; spark: lifelong assembly of the day's users (timed, jobs.lifelong)")
    with meter.phase("spark_lifelong_assembly") as life:
        life.extra["items"] = lifelong_assembly(spark, cfg_inc, last)
    progress(f"    {life.wall_s:.1f}s; spark: full rebuild + features of {last} (timed)")
    with meter.phase("spark_full_rebuild") as full:
        full.extra["report"] = run(cfg_full, last, spark=spark, full_rebuild=True)
    progress(f"    {full.wall_s:.1f}s; spark: history-only rebuild (timed)")
    with meter.phase("spark_history_only") as hist:
        history_only_rebuild(spark, cfg, "_history_only")
    progress(f"    {hist.wall_s:.1f}s; spark: checks")
    inc.extra["state_write"] = last_write_metrics(spark, cfg_inc.table_path("user_state"))

    active = active_users(spark, cfg, last)
    full_h = delta.read(spark, cfg_full.table_path("user_state"))
    inc_h = current_state(delta.read(spark, cfg_inc.table_path("user_state")))  # the day appended a row per user
    full_d, inc_d = history_digest_split(full_h, active), history_digest_split(inc_h, active)
    (full_active, full_all), (inc_active, inc_all) = (full_d["in"], full_d["all"]), (inc_d["in"], inc_d["all"])
    checks = {
        "active_users_day": full_active["users"],
        "full_eq_incremental_active": full_active["users"] == inc_active["users"]
        and full_active["events"] == inc_active["events"],
        "full_eq_incremental_checksum": full_all == inc_all,
        "spark_full": full_all,
    }
    phases = {p.name: p for p in (prep, inc, life, full, hist)}
    return phases, checks


def bench_duckdb(
    meter: Meter, files: dict[date, Path], out_dir: Path, cfg: Settings, threads: int
) -> tuple[dict, dict]:
    """DuckDB full rebuild and incremental day over the same parquet events."""
    days = sorted(files)
    last = days[-1]
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb_connect(threads, out_dir / "spill")
    rule, n_recent, pos_len = cfg.sequences.positive, recent_len(cfg), cfg.sequences.positive_len
    prev_dir = out_dir / "prev"
    prev_dir.mkdir(exist_ok=True)
    try:
        progress("  duckdb: full rebuild (timed)")
        with meter.phase("duckdb_full") as full:
            for sql in duckdb_full_sql([files[d] for d in days], rule, n_recent, pos_len, out_dir):
                con.execute(sql)
        progress(f"    {full.wall_s:.1f}s; duckdb: state of days 1..D-1 (set-up, untimed)")
        with meter.phase("duckdb_prepare_history") as prep:
            for sql in duckdb_full_sql([files[d] for d in days[:-1]], rule, n_recent, pos_len, prev_dir):
                con.execute(sql)
        progress(f"  duckdb: incremental day {last} (timed)")
        with meter.phase("duckdb_incremental_day") as inc:
            for sql in duckdb_incremental_sql([files[last]], prev_dir / "state_full.parquet", rule, n_recent, pos_len,
                                              out_dir):  # fmt: skip
                con.execute(sql)
        progress(f"    {inc.wall_s:.1f}s")
        digest_full = duckdb_digest(con, out_dir / "state_full.parquet")
        digest_inc = duckdb_digest(con, out_dir / "state_inc.parquet")
    finally:
        con.close()
    checks = {"duckdb_full": digest_full, "duckdb_full_eq_incremental": digest_full == digest_inc}
    return {p.name: p for p in (full, prep, inc)}, checks


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def bench_size(
    spark,
    meter: Meter,
    root: Path,
    n: int,
    users: int,
    items: int,
    days: int,
    seed: int,
    threads: int,
) -> dict:
    """All figures for one size: set-up, Spark phases, DuckDB phases, checks and ratios."""
    home = root / f"n{n}"
    cfg = bench_settings(home)
    load_before = _load()
    progress(f"size {n:,} events, {users:,} users, {items:,} items, {days} days: generating (set-up)")
    with meter.phase("setup") as setup:
        table = synthetic_events(n, users, items, days, START, seed)
        files = write_event_files(table, home / "events_parquet")
        del table
        gc.collect()
        progress(f"  writing bronze.events Delta table ({len(files)} days)")
        n_written = write_bronze_events(spark, home / "events_parquet", cfg.table_path("events"))
    last = max(files)
    day_events = pq.ParquetFile(files[last]).metadata.num_rows
    progress(f"  set-up done in {setup.wall_s:.1f}s ({n_written:,} rows in Delta, {day_events:,} on {last})")

    spark_phases, spark_checks = bench_spark(spark, meter, cfg, last)
    duck_phases, duck_checks = bench_duckdb(meter, files, home / "duckdb", cfg, threads)

    full, inc, hist = (spark_phases[k] for k in ("spark_full_rebuild", "spark_incremental_day", "spark_history_only"))
    life = spark_phases["spark_lifelong_assembly"]
    dfull, dinc = duck_phases["duckdb_full"], duck_phases["duckdb_incremental_day"]
    spark_counts, duck_counts = _comparable(spark_checks["spark_full"]), duck_checks["duckdb_full"]
    return {
        "events": n,
        "users": users,
        "items": items,
        "days": days,
        "last_day": last.isoformat(),
        "last_day_events": day_events,
        "last_day_active_users": spark_checks["active_users_day"],
        "load_avg_before": load_before,
        "load_avg_after": _load(),
        "setup_s": setup.wall_s,
        "spark_full_rebuild_s": full.wall_s,
        "spark_history_only_s": hist.wall_s,
        "spark_incremental_day_s": inc.wall_s,
        "incremental_over_full": _ratio(inc.wall_s, full.wall_s),
        "incremental_target_met": inc.wall_s <= 0.10 * full.wall_s,
        # moved out of the sequences day into jobs.lifelong (it reads the day's users' whole histories)
        "spark_lifelong_assembly_s": life.wall_s,
        "lifelong_assembly_over_full": _ratio(life.wall_s, full.wall_s),
        "spark_full_events_per_s": _ratio(n, full.wall_s),
        "duckdb_full_s": dfull.wall_s,
        "duckdb_incremental_day_s": dinc.wall_s,
        "duckdb_threads": threads,
        "spark_full_over_duckdb_full": _ratio(full.wall_s, dfull.wall_s),
        "spark_history_only_over_duckdb_full": _ratio(hist.wall_s, dfull.wall_s),
        "spark_incremental_over_duckdb_incremental": _ratio(inc.wall_s, dinc.wall_s),
        "checks": {
            "full_eq_incremental_active": spark_checks["full_eq_incremental_active"],
            "full_eq_incremental_checksum": spark_checks["full_eq_incremental_checksum"],
            "duckdb_events_eq_spark": duck_counts["events"] == spark_counts["events"],
            "duckdb_counts_eq_spark": duck_counts == spark_counts,
            "duckdb_full_eq_incremental": duck_checks["duckdb_full_eq_incremental"],
            "spark_counts": spark_counts,
            "duckdb_counts": duck_counts,
        },
        "phases": {name: p.as_dict() for name, p in {"setup": setup, **spark_phases, **duck_phases}.items()},
    }


# ---------------------------------------------------------------- MovieLens-100K replay


def ml100k_bronze_via_loader(spark, root: Path):
    """Bronze events from the ``movielens_atomic`` loader, typed with ingest's own rules.

    ``jobs.ingest.run`` per day re-reads and re-validates the whole file 213 times; the
    replay times the sequences job, so ingest's parsing (timestamp, numbers, flags) and
    bronze mapping (``accepted_events``) are applied once to every row instead.
    """
    from pyspark.sql import functions as F

    from jobs.ingest_rules import accepted_events, parse_flag, parse_timestamp
    from jobs.loaders import get_loader
    from jobs.raw_contract import FLAG_FIELDS, NUMERIC_FIELDS

    raw = get_loader("movielens_atomic").read_events(spark, str(root), None, START)
    df = raw.withColumn("ts", parse_timestamp(F.col("timestamp"))).withColumn("event_date", F.to_date("ts"))
    for name in NUMERIC_FIELDS:
        df = df.withColumn(f"_{name}", F.trim(F.col(name)).try_cast("double"))
    for name in FLAG_FIELDS:
        df = df.withColumn(f"_{name}", parse_flag(F.col(name)))
    ok = F.col("schema_error").isNull() & F.col("ts").isNotNull()
    df = df.withColumn("reasons", F.when(ok, F.array().cast("array<string>")).otherwise(F.array(F.lit("unreadable"))))
    return accepted_events(df), raw.count()


def ml100k_arrow(inter: Path) -> pa.Table:
    """Fallback without the loader: the ``.inter`` file straight into the bronze schema (flags 0)."""
    raw = pacsv.read_csv(inter, parse_options=pacsv.ParseOptions(delimiter="\t"))
    raw = raw.rename_columns([c.split(":", 1)[0] for c in raw.column_names])
    n = raw.num_rows
    ts_us = (np.asarray(raw.column("timestamp").to_numpy(), dtype=np.float64) * 1_000_000).astype(np.int64)
    zeros = pa.array(np.zeros(n, dtype=np.int32))
    cols = {
        "event_id": pa.array([f"ml100k-{i}" for i in range(2, n + 2)]),
        "user_id": raw.column("user_id").cast(pa.string()),
        "item_id": raw.column("item_id").cast(pa.string()),
        "ts": pa.array(ts_us, type=pa.timestamp("us", tz="UTC")),
        "rating": raw.column("rating").cast(pa.float64()),
        "play_seconds": pa.nulls(n, pa.float64()),
        "item_duration_seconds": pa.nulls(n, pa.float64()),
        **{name: zeros for name in ("like", "follow", "comment", "share", "dislike")},
        "source_file": pa.repeat(pa.scalar(str(inter)), n),
        "source_line": pa.array(np.arange(2, n + 2, dtype=np.int64)),  # line 1 is the header
        "event_date": pa.array((ts_us // US_PER_DAY).astype(np.int32), type=pa.date32()),
    }
    return pa.Table.from_arrays([cols[f.name] for f in EVENTS_SCHEMA], schema=EVENTS_SCHEMA)


def ml100k_events(spark, root: Path, home: Path, events_path: str) -> str:
    """Write MovieLens-100K as bronze.events; returns how it was read (loader, or the fallback and why)."""

    try:
        bronze, n_raw = ml100k_bronze_via_loader(spark, root)
        n = write_events_table(spark, bronze, events_path)
        return f"loader movielens_atomic ({n:,} of {n_raw:,} raw rows accepted)"
    except Exception as exc:  # noqa: BLE001 - the loader is still in progress elsewhere; fall back, say why
        inter = next(root.glob("*.inter"))
        write_event_files(ml100k_arrow(inter), home / "events_parquet")
        n = write_bronze_events(spark, home / "events_parquet", events_path)
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return f"pyarrow read of {inter.name} ({n:,} rows; loader unusable: {reason})"


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def replay_ml100k(spark, meter: Meter, root: Path, home: Path, max_days: int | None) -> dict:
    """Apply every day of MovieLens-100K with ``run(cfg, ds)``; check the end state against a full rebuild."""
    from jobs import delta
    from jobs.sequences import run
    from jobs.user_history import build_chunks, build_state

    cfg = bench_settings(home)
    progress(f"ml-100k: bronze events from {root} (set-up)")
    source = ml100k_events(spark, root, home, cfg.table_path("events"))
    progress(f"  {source}")
    events = delta.read(spark, cfg.table_path("events"))
    days = sorted(r["event_date"] for r in events.select("event_date").distinct().collect())
    if max_days:
        days = days[:max_days]
    per_day: list[float] = []
    with meter.phase("ml100k_replay") as replay:
        for i, ds in enumerate(days, 1):
            t0 = time.perf_counter()
            run(cfg, ds, spark=spark)
            per_day.append(time.perf_counter() - t0)
            if i % 20 == 0 or i == len(days):
                progress(
                    f"  day {i}/{len(days)} {ds}: {per_day[-1]:.2f}s (mean so far {statistics.fmean(per_day):.2f}s)"
                )
    progress("  full rebuild to compare with")
    seq = cfg.sequences
    upto = events.where(events.event_date <= days[-1])
    full = history_digest(build_state(build_chunks(upto, seq.positive), recent_len(cfg), seq.positive_len))
    replayed = history_digest(current_state(delta.read(spark, cfg.table_path("user_state"))))
    tenth = max(1, len(per_day) // 10)
    return {
        "source": source,
        "days": len(days),
        "events": replayed["events"],
        "total_s": replay.wall_s,
        "mean_day_s": statistics.fmean(per_day),
        "p50_day_s": _percentile(per_day, 50),
        "p95_day_s": _percentile(per_day, 95),
        "max_day_s": max(per_day),
        # First vs last tenth of the replay: does a day get slower as state partitions and files pile up?
        "first_tenth_mean_day_s": statistics.fmean(per_day[:tenth]),
        "last_tenth_mean_day_s": statistics.fmean(per_day[-tenth:]),
        "incremental_eq_full_rebuild": replayed == full,
        "replayed": replayed,
        "full_rebuild": full,
        "per_day_s": per_day,
        "phase": replay.as_dict(),
    }


# ---------------------------------------------------------------- report


def _fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def _state_write(m: dict) -> str:
    keys = ("numOutputRows", "numFiles", "numTargetRowsUpdated", "numTargetRowsDeleted")
    return f"{m.get('operation') or 'n/a'}: " + " / ".join(_fmt(m.get(k)) for k in keys)


def _steps(phase: dict) -> str:
    """``step s, ...`` of ``jobs.sequences.run``'s own timing (its report's ``seconds``)."""
    seconds = phase.get("report", {}).get("seconds") or {}
    return ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) or "n/a"


def print_size(res: dict) -> None:
    """A readable block of figures for one size."""
    ph, ck = res["phases"], res["checks"]
    rows = [
        ("events / users / items / days", f"{res['events']:,} / {res['users']:,} / {res['items']:,} / {res['days']}"),
        ("last day events / active users", f"{res['last_day_events']:,} / {res['last_day_active_users']:,}"),
        ("load average before -> after", f"{res['load_avg_before']} -> {res['load_avg_after']}"),
        ("set-up (untimed part of the bench)", _fmt(res["setup_s"], " s")),
        ("Spark full rebuild (chunks + state + features)", _fmt(res["spark_full_rebuild_s"], " s")),
        ("  of which history alone (separate run)", _fmt(res["spark_history_only_s"], " s")),
        ("Spark full rebuild throughput", _fmt(res["spark_full_events_per_s"], " events/s", 0)),
        ("Spark incremental day (chunk + state append + features)", _fmt(res["spark_incremental_day_s"], " s")),
        (
            "incremental / full (target <= 10%)",
            f"{_fmt(100 * res['incremental_over_full'], ' %', 1)}  met: {res['incremental_target_met']}",
        ),
        (
            "lifelong assembly of the day's users (jobs.lifelong, not in the day above)",
            f"{_fmt(res.get('spark_lifelong_assembly_s'), ' s')} = "
            f"{_fmt(100 * (res.get('lifelong_assembly_over_full') or 0), ' %', 1)} of full",
        ),
        (f"DuckDB full rebuild ({res['duckdb_threads']} threads)", _fmt(res["duckdb_full_s"], " s")),
        ("DuckDB incremental day (rewrites the file)", _fmt(res["duckdb_incremental_day_s"], " s")),
        ("Spark full / DuckDB full", _fmt(res["spark_full_over_duckdb_full"], " x")),
        ("Spark history-only / DuckDB full", _fmt(res["spark_history_only_over_duckdb_full"], " x")),
        ("Spark incr. / DuckDB incr.", _fmt(res["spark_incremental_over_duckdb_incremental"], " x")),
        (
            "CPU s, Spark full: JVM + Python",
            f"{_fmt(ph['spark_full_rebuild']['jvm_cpu_s'], ' s')} + {_fmt(ph['spark_full_rebuild']['python_cpu_s'], ' s')}",
        ),
        ("CPU s, DuckDB full", _fmt(ph["duckdb_full"]["python_cpu_s"], " s")),
        (
            "peak RSS JVM: full / incremental",
            f"{_fmt(ph['spark_full_rebuild']['jvm_peak_rss_mib'], ' MiB', 0)} / {_fmt(ph['spark_incremental_day']['jvm_peak_rss_mib'], ' MiB', 0)}",
        ),
        (
            "DuckDB RSS delta: full / incremental",
            f"{_fmt(ph['duckdb_full']['python_rss_delta_mib'], ' MiB', 0)} / {_fmt(ph['duckdb_incremental_day']['python_rss_delta_mib'], ' MiB', 0)}",
        ),
        ("Spark incremental day, per step", _steps(ph["spark_incremental_day"])),
        ("Spark full rebuild, per step", _steps(ph["spark_full_rebuild"])),
        (
            "state write: rows / files / rows updated / deleted",
            _state_write(ph["spark_incremental_day"].get("state_write", {})),
        ),
        ("check: full == incremental (day's users, events)", str(ck["full_eq_incremental_active"])),
        ("check: full == incremental (whole-table checksum)", str(ck["full_eq_incremental_checksum"])),
        (
            "check: DuckDB events == Spark events",
            f"{ck['duckdb_events_eq_spark']} ({ck['duckdb_counts']['events']:,} vs {ck['spark_counts']['events']:,})",
        ),
        ("check: DuckDB users/positives/flags == Spark", str(ck["duckdb_counts_eq_spark"])),
        ("check: DuckDB full == DuckDB incremental", str(ck["duckdb_full_eq_incremental"])),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n== sequences bench: {res['events']:,} events ==")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def print_ml100k(res: dict) -> None:
    if "skipped" in res:
        print(f"\n== MovieLens-100K replay: skipped ({res['skipped']}) ==")
        return
    print(f"\n== MovieLens-100K replay: {res['days']} days, {res['events']:,} events ==")
    print(f"  source: {res['source']}")
    print(
        f"  total {res['total_s']:.1f} s; per day mean {res['mean_day_s']:.2f} s, p50 {res['p50_day_s']:.2f} s, "
        f"p95 {res['p95_day_s']:.2f} s, max {res['max_day_s']:.2f} s"
    )
    print(
        f"  first tenth mean {res['first_tenth_mean_day_s']:.2f} s/day, last tenth {res['last_tenth_mean_day_s']:.2f} s/day"
    )
    print(f"  incremental == full rebuild: {res['incremental_eq_full_rebuild']}")


# ---------------------------------------------------------------- CLI


def _sizes(text: str) -> list[int]:
    if text.strip().lower() == "none":
        return []
    try:
        sizes = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--events wants comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--events needs sizes >= 1 (or 'none' for the ML-100K replay alone)")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every default is spelled out in ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.sequences",
        description=__doc__.split("\n\n")[0],
        epilog="Example: python -m bench.sequences --events 1000000 --no-ml100k --out /tmp/bench",
    )
    add = parser.add_argument
    add("--events", type=_sizes, default=list(DEFAULT_SIZES), metavar="N[,N...]",
        help="synthetic sizes in events, comma-separated, 1e6 accepted; 'none' runs only the ML-100K replay "
        "(default: 1000000,10000000)")  # fmt: skip
    add("--days", type=int, default=30, help="days the events span; the last is the incremental day (default: 30)")
    add("--users", type=int, help="distinct users (default: N/20 at each size)")
    add("--items", type=int, help="distinct items (default: N/100 at each size)")
    add("--seed", type=int, default=0, help="seed of the synthetic events (default: 0)")
    add("--threads", type=int, default=os.cpu_count() or 1, help=f"DuckDB threads (default: cores, {os.cpu_count()})")
    add("--ml100k", type=Path, default=None, metavar="PATH",
        help="MovieLens-100K RecBole folder to replay day by day (default: none, skipped)")  # fmt: skip
    add("--no-ml100k", action="store_true", help="skip the MovieLens-100K replay")
    add("--ml100k-days", type=int, metavar="K", help="replay only the first K days (default: all 213)")
    add(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where sequences.json goes (default: {DEFAULT_OUT})",
    )
    add("--work-dir", type=Path, metavar="DIR",
        help="parent of the temp state folder (default: $ONEREC_HOME/bench, else var/bench)")  # fmt: skip
    add("--no-warm-up", dest="warm_up", action="store_false", help="skip the untimed two-day run() that warms the JVM")
    add("--keep", action="store_true", help="keep the temp tables and parquet files")
    args = parser.parse_args(argv)
    if args.days < 2:
        parser.error("--days must be >= 2 (history of days 1..D-1, then day D)")
    return args


def _work_root(args: argparse.Namespace) -> Path:
    parent = args.work_dir or (
        Path(os.environ["ONEREC_HOME"]) / "bench" if os.environ.get("ONEREC_HOME") else REPO_ROOT / "var" / "bench"
    )
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="sequences-", dir=parent))


def _machine(spark, threads: int) -> dict[str, Any]:
    import duckdb

    conf = spark.sparkContext.getConf()
    return {
        "cpus": os.cpu_count(),
        "load_avg_start": _load(),
        "python": sys.version.split()[0],
        "spark": spark.version,
        "spark_master": spark.sparkContext.master,
        "spark_shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
        "spark_driver_memory": conf.get("spark.driver.memory", None),
        "duckdb": duckdb.__version__,
        "duckdb_threads": threads,
    }


def run_bench(args: argparse.Namespace, root: Path, spark) -> dict:
    """Every size, then the ML-100K replay; returns the JSON report."""
    meter = Meter(find_jvm_pid(spark))
    report: dict[str, Any] = {"machine": _machine(spark, args.threads), "jvm_pid_found": meter.jvm_pid is not None}
    report["peak_rss_per_phase"] = meter.peak_reset_works
    if args.warm_up:
        progress("warm-up: jobs.sequences.run on a two-day table (untimed)")
        warm_up(spark, root / "warm_up")
    report["warm_up"] = args.warm_up
    report["sizes"] = []
    for n in args.events:
        users, items = args.users or max(1, n // 20), args.items or max(1, n // 100)
        res = bench_size(spark, meter, root, n, users, items, args.days, args.seed, args.threads)
        print_size(res)
        report["sizes"].append(res)
    if args.no_ml100k or args.ml100k is None:
        report["ml100k"] = {"skipped": "disabled" if args.no_ml100k else "no --ml100k PATH given"}
    elif not any(Path(args.ml100k).glob("*.inter")):
        report["ml100k"] = {"skipped": f"no *.inter file under {args.ml100k}"}
    else:
        report["ml100k"] = replay_ml100k(spark, meter, Path(args.ml100k), root / "ml100k", args.ml100k_days)
    print_ml100k(report["ml100k"])
    report["memory_lifetime"] = meter.lifetime()
    report["machine"]["load_avg_end"] = _load()
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the bench, print the figures, write ``<out>/sequences.json``."""
    from pyspark.sql import SparkSession

    from jobs.spark import get_spark

    args = parse_args(argv)
    root = _work_root(args)
    progress(f"state under {root} (load average {_load()}, {os.cpu_count()} cores)")
    owns_session = SparkSession.getActiveSession() is None
    # A session started here keeps its scratch space under the temp root, so --keep-less runs leave nothing.
    spark = get_spark(bench_settings(root / "session"))
    try:
        report = run_bench(args, root, spark)
        report["command"] = "python -m bench.sequences " + " ".join(argv if argv is not None else sys.argv[1:])
        out = Path(args.out) / "sequences.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))
        progress(f"wrote {out}")
    finally:
        if owns_session:
            spark.stop()
        if args.keep:
            progress(f"kept state under {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

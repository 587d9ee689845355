"""Fast synthetic bronze events for benchmarks (millions of rows in seconds).

Unlike ``jobs.sample_data`` (a small, realistic behaviour model written as raw CSV),
this produces already-parsed *bronze* events straight into Arrow, fully vectorised:
Zipf item popularity, heavy-tailed user activity, a diurnal clock over ``days`` days.
Engagement is independent of who watches what -- it is load, not signal.

``python -m bench.synthetic --events 10000000`` times it and reports peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

US_PER_DAY = 86_400 * 1_000_000
US_PER_HOUR = 3_600 * 1_000_000
_EPOCH = date(1970, 1, 1)
# Relative activity per UTC hour (quiet nights, evening peak), as in jobs.sample_data.
_DIURNAL = np.array([3, 2, 1, 1, 1, 1, 2, 4, 5, 5, 5, 6, 8, 7, 6, 6, 7, 9, 11, 13, 14, 13, 9, 5], dtype=float)
# Column order and types of bronze events (jobs/schemas.py EVENTS), in Arrow terms.
EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("rating", pa.float64()),
        pa.field("play_seconds", pa.float64()),
        pa.field("item_duration_seconds", pa.float64()),
        pa.field("like", pa.int32()),
        pa.field("follow", pa.int32()),
        pa.field("comment", pa.int32()),
        pa.field("share", pa.int32()),
        pa.field("dislike", pa.int32()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
    ]
)
# Base rate of each flag; scaled by how much of the video was watched.
_FLAG_RATES = {"like": 0.08, "follow": 0.005, "comment": 0.02, "share": 0.01}


def prefixed_ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    """``prefix + str(n)`` for each number, built in Arrow's C++ kernels (no Python strings)."""
    digits = pc.cast(pa.array(numbers, type=pa.int64()), pa.string())
    return pc.binary_join_element_wise(prefix, digits, "")


def fixed_width_ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    """``prefix`` + zero-padded decimal of each non-negative number, written straight into an Arrow buffer.

    Every string has the same width, so the offsets are an arithmetic sequence and the
    bytes are one (n, width) uint8 matrix filled a digit column at a time: several
    times faster than formatting numbers one by one, and the ids still sort numerically.
    """
    head = prefix.encode()
    width = len(str(int(numbers.max()))) if len(numbers) else 1
    size = len(head) + width
    buf = np.empty((len(numbers), size), dtype=np.uint8)
    buf[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    rest = numbers.astype(np.int64, copy=True)
    for pos in range(size - 1, len(head) - 1, -1):
        buf[:, pos] = rest % 10 + 48  # 48 is ord("0")
        rest //= 10
    if (len(numbers) + 1) * size >= 2**31:
        raise ValueError("ids exceed one Arrow string array (2 GiB); generate in batches")
    offsets = np.arange(0, (len(numbers) + 1) * size, size, dtype=np.int32)
    return pa.StringArray.from_buffers(len(numbers), pa.py_buffer(offsets), pa.py_buffer(buf))


def _counts_shuffled(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """``size`` i.i.d. indices with probability proportional to ``weights``.

    Drawn as multinomial counts, expanded, then shuffled: the same distribution as
    inverse-CDF sampling but without ``size`` random look-ups into a large CDF.
    """
    counts = rng.multinomial(size, weights / weights.sum())
    idx = np.repeat(np.arange(len(weights), dtype=np.int32), counts)
    rng.shuffle(idx)
    return idx


def _ids_from_dictionary(prefix: str, n_distinct: int, idx: np.ndarray) -> pa.Array:
    """Materialise ids through a small dictionary: n_distinct strings built once, then a take."""
    return prefixed_ids(prefix, np.arange(n_distinct)).take(pa.array(idx))


def _sorted_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` sorted U(0,1) draws in O(n): normalised partial sums of exponential spacings."""
    sums = np.cumsum(rng.exponential(1.0, n + 1))
    return sums[:-1] / sums[-1]


def _timestamps(rng: np.random.Generator, n: int, days: int, start: date) -> np.ndarray:
    """Sorted microsecond epochs: uniform over days, diurnal over the hours of each day.

    Sorted uniforms pushed through the (monotone) inverse CDF of the day x hour grid
    come out sorted, so a time-ordered log costs no sort.
    """
    cell_p = np.tile(_DIURNAL / _DIURNAL.sum() / days, days)
    cdf = np.concatenate([[0.0], np.cumsum(cell_p)])
    cdf[-1] = 1.0
    u = _sorted_uniforms(rng, n)
    cell = np.minimum(np.searchsorted(cdf, u, side="right") - 1, len(cell_p) - 1)
    within = np.clip((u - cdf[cell]) / cell_p[cell], 0.0, 1.0 - 1e-12)
    ts = cell.astype(np.int64) * US_PER_HOUR + (within * US_PER_HOUR).astype(np.int64)
    ts += (start - _EPOCH).days * US_PER_DAY
    return ts


def synthetic_events(n_events: int, n_users: int, n_items: int, days: int, start: date, seed: int = 0) -> pa.Table:
    """``n_events`` bronze events (schema :data:`EVENTS_SCHEMA`), time-ordered, ``source_line`` 1..n."""
    if min(n_users, n_items, days) < 1 or n_events < 0:
        raise ValueError("need n_users, n_items, days >= 1 and n_events >= 0")
    rng = np.random.default_rng(seed)
    n = n_events
    ts = _timestamps(rng, n, days, start)
    event_date = (ts // US_PER_DAY).astype(np.int32)

    # Heavy-tailed users (log-normal activity) and Zipf items over a random rank order.
    user_idx = _counts_shuffled(rng, rng.lognormal(0.0, 1.2, n_users), n)
    item_rank_weight = 1.0 / (rng.permutation(n_items) + 1.0) ** 1.05
    item_idx = _counts_shuffled(rng, item_rank_weight, n)

    durations = np.round(rng.lognormal(np.log(180.0), 0.8, n_items).clip(5, 7200))
    duration = durations[item_idx]
    ratio = np.minimum(rng.beta(2.0, 2.0, n) * 1.25, 3.0)
    play = np.round(duration * ratio, 1)
    rating = np.clip(np.round(1.0 + 4.0 * ratio / 1.25 + rng.normal(0.0, 0.7, n)), 1, 5)
    flags = {name: (rng.random(n) < rate * 2.0 * ratio).astype(np.int32) for name, rate in _FLAG_RATES.items()}
    flags["dislike"] = ((rng.random(n) < 0.04) & (ratio < 0.3)).astype(np.int32)

    columns = {
        "event_id": fixed_width_ids(f"syn{seed}-", np.arange(1, n + 1)),
        "user_id": _ids_from_dictionary("u", n_users, user_idx),
        "item_id": _ids_from_dictionary("i", n_items, item_idx),
        "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        "rating": pa.array(rating),
        "play_seconds": pa.array(play),
        "item_duration_seconds": pa.array(duration),
        **{name: pa.array(flags[name]) for name in ("like", "follow", "comment", "share", "dislike")},
        "source_file": pa.repeat(pa.scalar("synthetic"), n),
        "source_line": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "event_date": pa.array(event_date, type=pa.date32()),
    }
    return pa.Table.from_arrays([columns[f.name] for f in EVENTS_SCHEMA], schema=EVENTS_SCHEMA)


def write_parquet_by_day(table: pa.Table, out_dir: Path, keep_partition_column: bool = False) -> list[Path]:
    """Write ``out_dir/event_date=YYYY-MM-DD/part-0.parquet`` per day; return the files written.

    As in any Hive layout, ``event_date`` lives in the folder name and is left out of the
    files unless ``keep_partition_column`` (Spark and pyarrow.dataset recover it from the path).
    """
    out_dir = Path(out_dir)
    dates = table.column("event_date").cast(pa.int32()).to_numpy()
    if len(dates) > 1 and np.any(dates[1:] < dates[:-1]):
        order = np.argsort(dates, kind="stable")
        table, dates = table.take(pa.array(order)), dates[order]
    body = table if keep_partition_column else table.drop_columns(["event_date"])
    starts = np.flatnonzero(np.r_[True, dates[1:] != dates[:-1]]) if len(dates) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(dates)]
    written = []
    for lo, hi in zip(starts, ends, strict=True):
        day = date.fromordinal(_EPOCH.toordinal() + int(dates[lo]))
        path = out_dir / f"event_date={day.isoformat()}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(body.slice(lo, hi - lo), path)
        written.append(path)
    return written


def _peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    """Time ``synthetic_events`` (and optionally the Parquet write) and report peak memory."""
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="rows to generate (default 10M)")
    parser.add_argument("--users", type=int, default=1_000_000, help="distinct users (default 1M)")
    parser.add_argument("--items", type=int, default=200_000, help="distinct items (default 200k)")
    parser.add_argument("--days", type=int, default=30, help="days spanned (default 30)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 10, 1), help="first day (ISO)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write Parquet by day here")
    args = parser.parse_args(argv)
    base = _peak_rss_mib()
    t0, cpu0 = time.perf_counter(), time.process_time()
    table = synthetic_events(args.events, args.users, args.items, args.days, args.start, args.seed)
    t1 = time.perf_counter()
    # CPU time too: wall time on a shared machine says more about the neighbours than the code.
    print(
        f"{table.num_rows:,} events in {t1 - t0:.2f}s wall, {time.process_time() - cpu0:.2f}s CPU; "
        f"table {table.nbytes / 2**20:,.0f} MiB; "
        f"peak RSS {_peak_rss_mib():,.0f} MiB (before: {base:,.0f} MiB)"
    )
    if args.out:
        files = write_parquet_by_day(table, args.out)
        print(f"wrote {len(files)} day files under {args.out} in {time.perf_counter() - t1:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Day-chunked user history: pure transforms (DataFrame in, DataFrame out).

Two silver tables replace the old one-row-per-user array of every event:

``silver.user_events``, partitioned by ``event_date``: one row per (user, day) with that
day's events sorted by ``(ts, item_id)``. Why a chunk per (user, day) rather than a row
per event: everything that reads history wants a user's events in order, and a chunk is
already sorted, so a sequence is the chunks in date order flattened (``event_date`` is
the date of ``ts``, a critical bronze rule), with no sort over a user's whole history;
it is also far fewer rows (one per active user-day) for the Delta log and the joins. A
day is one partition, replaced whole (``replaceWhere``), so a re-run rewrites the same
rows and a window of days reads only its partitions.

``silver.user_state``, partitioned by ``last_date``: bounded rows, each the state of one user as
of the end of one of their active days (``last_date``). A day appends the rows of its users
(partition ``ds``) instead of MERGEing into one row per user: a MERGE rewrites, through
deletion vectors, rows spread over every file, which at 10M events cost more than rebuilding
the whole state (bench/README.md). A user's current state is their latest row
(:func:`current_state`); the weekly maintenance deletes the rows a later one supersedes
(``maintenance.superseded``). Every row kept is a true state as of its ``last_date``: applying
a day drops the rows of its users dated that day or later (a re-run, a day replayed after later
ones) and writes the rebuilt latest row instead. A row holds the ``recent`` events (the last ``recent_len`` events dated before
``last_date``, then every event of ``last_date``), the last ``positive_len`` positives,
counts, active days, first/last day and time. ``recent`` keeps the last day apart so the
state both as of ``last_date`` (short-term sequence, leave-one-out) and as of the day
before (next-day context) is there; ``recent_len`` = max(short-term length, training
context + 3) (:func:`recent_len`). Applying a day later than ``last_date`` needs the old
state and that day's chunk only (:func:`append_day`); everything else (a re-run, a day
older than the state) is rebuilt from the user's chunks (:func:`build_state`), which is
also the definition the incremental path must equal.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from conf.settings import PositiveRule, Settings
from jobs.schemas import FLAG_BITS, HISTORY_EVENT, USER_EVENTS, USER_STATE


def positive_expr(rule: PositiveRule) -> Column:
    """Column expression: is this event positive feedback under ``rule``?"""
    clauses = []
    if rule.min_rating is not None:
        clauses.append(F.col("rating") >= rule.min_rating)
    if rule.min_play_ratio is not None:
        clauses.append(
            (F.col("item_duration_seconds") > 0)
            & (F.col("play_seconds") >= F.lit(rule.min_play_ratio) * F.col("item_duration_seconds"))
        )
    clauses += [F.col(signal) == 1 for signal in rule.signals]
    any_clause = F.lit(False)
    for clause in clauses:
        any_clause = any_clause | F.coalesce(clause, F.lit(False))
    if rule.dislike_vetoes:
        any_clause = any_clause & ~F.coalesce(F.col("dislike") == 1, F.lit(False))
    return any_clause


def with_history_event(events: DataFrame, rule: PositiveRule) -> DataFrame:
    """bronze.events rows -> (user_id, event_date, ev: HISTORY_EVENT struct)."""
    flags = F.lit(0)
    for name, bit in FLAG_BITS.items():
        flags = flags + F.when(F.col(name) == 1, F.lit(bit)).otherwise(F.lit(0))
    fields = {
        "ts": F.col("ts"),
        "item_id": F.col("item_id"),
        "event_date": F.col("event_date"),
        "rating": F.col("rating"),
        "play_seconds": F.col("play_seconds"),
        "item_duration_seconds": F.col("item_duration_seconds"),
        "flags": flags,
        "positive": positive_expr(rule),
    }
    ev = F.struct(*[fields[f.name].cast(f.dataType).alias(f.name) for f in HISTORY_EVENT.fields])
    return events.select("user_id", "event_date", ev.alias("ev"))


def cap_tail(arr: Column, cap: int | Column) -> Column:
    """The last ``cap`` elements of an array (all of it when shorter)."""
    cap = F.lit(cap) if isinstance(cap, int) else cap
    return F.when(F.size(arr) > cap, F.slice(arr, F.size(arr) - cap + 1, cap)).otherwise(arr)


def recent_len(cfg: Settings) -> int:
    """Events kept before the last day in ``user_state.recent``: the short-term sequence and the
    leave-one-out context (context + the three held-out events) must fit."""
    return max(cfg.sequences.short_term_len, cfg.training_examples.context_len + 3)


def _positives(arr: Column) -> Column:
    return F.filter(arr, lambda e: F.coalesce(e["positive"], F.lit(False)))


def _select(df: DataFrame, schema) -> DataFrame:
    return df.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])


def build_chunks(events: DataFrame, rule: PositiveRule) -> DataFrame:
    """bronze.events rows (any days) -> ``user_events`` rows: one sorted chunk per (user, day)."""
    grouped = (
        with_history_event(events, rule)
        .groupBy("user_id", "event_date")
        .agg(F.sort_array(F.collect_list("ev")).alias("events"))
    )
    return _select(
        grouped.select(
            "user_id",
            "event_date",
            "events",
            F.size("events").cast("long").alias("n_events"),
            F.size(_positives(F.col("events"))).cast("long").alias("n_positive"),
        ),
        USER_EVENTS,
    )


def user_sequences(chunks: DataFrame, keys: tuple[str, ...] = ("user_id",)) -> DataFrame:
    """``(*keys, events)``: each user's chunks in date order, flattened (sorted by (ts, item_id)).

    ``keys``: ``("user_id",)``, or ``("ds", "user_id")`` for one sequence per user and window day.
    """
    grouped = chunks.groupBy(*keys).agg(F.array_sort(F.collect_list(F.struct("event_date", "events"))).alias("_c"))
    return grouped.select(*keys, F.flatten(F.transform("_c", lambda c: c["events"])).alias("events"))


def build_state(chunks: DataFrame, n_recent: int, positive_len: int) -> DataFrame:
    """``user_state`` rows from a user's chunks (all of them, or those up to a day: the state then)."""
    grouped = chunks.groupBy("user_id").agg(
        F.array_sort(F.collect_list(F.struct("event_date", "events"))).alias("_c"),
        F.sum("n_events").alias("n_events"),
        F.sum("n_positive").alias("n_positive"),
        F.count("*").alias("active_days"),
        F.min("event_date").alias("first_date"),
        F.max("event_date").alias("last_date"),
    )
    before = F.flatten(F.transform(F.slice("_c", 1, F.size("_c") - 1), lambda c: c["events"]))
    last = F.element_at("_c", -1)["events"]
    df = grouped.select(
        "*", F.flatten(F.transform("_c", lambda c: c["events"])).alias("_all"), cap_tail(before, n_recent).alias("_b")
    )
    return _select(
        df.select(
            "user_id",
            F.concat("_b", last).alias("recent"),
            cap_tail(_positives(F.col("_all")), positive_len).alias("positives"),
            "n_events",
            "n_positive",
            "active_days",
            "first_date",
            "last_date",
            F.col("_all")[0]["ts"].alias("first_ts"),
            F.element_at(last, -1)["ts"].alias("last_ts"),
        ),
        USER_STATE,
    )


def append_day(state: DataFrame, day: DataFrame, n_recent: int, positive_len: int) -> DataFrame:
    """``user_state`` rows after applying ``day`` (``user_events`` rows of one day) to ``state``.

    Only for users whose state is older than the day (``last_date`` < the day) or absent: then
    the day's events all come after the state's, and the new row needs nothing else.
    """
    s, d = state.alias("s"), day.alias("d")
    joined = d.join(s, F.col("d.user_id") == F.col("s.user_id"), "left")
    empty = F.filter(F.col("d.events"), lambda e: F.lit(False))  # a typed empty array
    old_recent = F.coalesce(F.col("s.recent"), empty)
    old_pos = F.coalesce(F.col("s.positives"), empty)
    return _select(
        joined.select(
            F.col("d.user_id").alias("user_id"),
            F.concat(cap_tail(old_recent, n_recent), F.col("d.events")).alias("recent"),
            cap_tail(F.concat(old_pos, _positives(F.col("d.events"))), positive_len).alias("positives"),
            (F.coalesce(F.col("s.n_events"), F.lit(0)) + F.col("d.n_events")).alias("n_events"),
            (F.coalesce(F.col("s.n_positive"), F.lit(0)) + F.col("d.n_positive")).alias("n_positive"),
            (F.coalesce(F.col("s.active_days"), F.lit(0)) + 1).alias("active_days"),
            F.coalesce(F.col("s.first_date"), F.col("d.event_date")).alias("first_date"),
            F.col("d.event_date").alias("last_date"),
            F.coalesce(F.col("s.first_ts"), F.col("d.events")[0]["ts"]).alias("first_ts"),
            F.element_at(F.col("d.events"), -1)["ts"].alias("last_ts"),
        ),
        USER_STATE,
    )


def current_state(state: DataFrame) -> DataFrame:
    """Each user's latest ``user_state`` row (the state as of their last active day)."""
    rest = [c for c in state.columns if c != "user_id"]
    latest = state.groupBy("user_id").agg(F.max_by(F.struct(*rest), "last_date").alias("_s"))
    return latest.select("user_id", *[F.col(f"_s.{c}").alias(c) for c in rest])


def recent_as_of_last(n: int) -> Column:
    """The last ``n`` events as of the end of ``last_date`` (state columns in scope)."""
    return cap_tail(F.col("recent"), n)


def recent_before_last(n: int) -> Column:
    """The last ``n`` events dated before ``last_date`` (state columns in scope)."""
    return cap_tail(F.filter("recent", lambda e: e["event_date"] < F.col("last_date")), n)


def _tail_through(arr: str, order: str, k: int) -> Column:
    """The last ``k`` elements of ``arr`` over a user's chunks up to and including this one.

    ``order``: the running count of those elements through the chunk (strictly increasing, or
    flat where a chunk adds none). The frame holds the chunks whose running count is within ``k``
    of this one's -- every chunk that can still hold one of the last ``k`` elements -- so a row
    costs ``k`` plus its own chunk, never the whole history before it.
    """
    frame = Window.partitionBy("user_id").orderBy(order).rangeBetween(-k, 0)
    parts = F.collect_list(F.struct(F.col("event_date"), cap_tail(F.col(arr), k).alias("a"))).over(frame)
    return cap_tail(F.flatten(F.transform(F.array_sort(parts), lambda c: c["a"])), k)


def states_by_day(chunks: DataFrame, n_recent: int, positive_len: int) -> DataFrame:
    """``user_state`` rows as of every active day of every user (one per chunk), from the chunks alone.

    Row ``(u, d)`` equals :func:`build_state` of ``u``'s chunks up to ``d`` (its ``last_date`` is
    ``d``): the bulk backfill's state and snapshots for a whole range in one pass, with date-keyed
    window frames instead of a loop over days (tests/jobs/test_backfill.py).
    """
    upto = Window.partitionBy("user_id").orderBy("event_date").rowsBetween(Window.unboundedPreceding, 0)
    by_day = Window.partitionBy("user_id").orderBy("event_date")
    df = chunks.select(
        "user_id",
        "event_date",
        "events",
        F.col("n_events").alias("_n"),
        F.col("n_positive").alias("_np"),
        _positives(F.col("events")).alias("_pos"),
    )
    df = df.select(
        "*",
        F.sum("_n").over(upto).alias("_cum"),
        F.sum("_np").over(upto).alias("_pcum"),
        F.count("*").over(upto).alias("_days"),
        F.min("event_date").over(upto).alias("_first_date"),
        F.first(F.col("events")[0]["ts"]).over(upto).alias("_first_ts"),
    )
    tails = [_tail_through("events", "_cum", n_recent).alias("_through"),
             _tail_through("_pos", "_pcum", positive_len).alias("_positives")]  # fmt: skip
    df = df.select("*", *tails)
    empty = F.filter(F.col("events"), lambda e: F.lit(False))  # a typed empty array
    before = F.coalesce(F.lag("_through", 1).over(by_day), empty)
    out = df.select(
        "*",
        F.concat(before, F.col("events")).alias("recent"),
        F.col("_positives").alias("positives"),
        F.col("_cum").alias("n_events"),
        F.col("_pcum").alias("n_positive"),
        F.col("_days").alias("active_days"),
        F.col("_first_date").alias("first_date"),
        F.col("event_date").alias("last_date"),
        F.col("_first_ts").alias("first_ts"),
        F.element_at(F.col("events"), -1)["ts"].alias("last_ts"),
    )
    cols = [F.col(f.name).cast(f.dataType) for f in USER_STATE.fields]
    return out.select(*cols)

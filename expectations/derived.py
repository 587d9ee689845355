"""Helper columns that turn array/struct invariants into plain columns GX can check.

GX 1.x has no expectation for array lengths, array ordering or cross-array
alignment, so the validated DataFrame gets extra columns (all names start with
``_``): lengths are ints, invariants are 1 (holds) / 0 (broken) / null (an input
is null, which the not-null expectations already report). The suites in
:mod:`expectations.suites` put their expectations on these columns, and expect
them in the column set, so suite and frame are generated from the same list.

Sequence families are read off the schema: every array column named
``<family>_*`` belongs to ``<family>`` (``short_item_ids``, ``short_ts``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, StructType

from jobs.schemas import BY_TABLE

# Array families of each table whose members must stay index-aligned (and, with a
# ``<family>_ts`` member, chronological). Their caps live in suites.py.
SEQUENCE_FAMILIES: dict[str, tuple[str, ...]] = {
    "user_features": ("short", "positive"),
    "training_examples": ("context",),
}
# Which split values each protocol may write (jobs/training_examples.py).
SPLITS_BY_PROTOCOL: dict[str, tuple[str, ...]] = {
    "leave_one_out": ("train", "valid", "test"),
    "next_day": ("target",),
}


@dataclass(frozen=True)
class Derived:
    """One helper column: its name, a Spark SQL expression, and the columns it reads."""

    name: str
    sql: str
    inputs: tuple[str, ...]
    doc: str


def family_members(table: str, family: str) -> tuple[str, ...]:
    """Array columns of ``table`` named ``<family>_*``, in schema order."""
    schema: StructType = BY_TABLE[table]
    return tuple(f.name for f in schema.fields if isinstance(f.dataType, ArrayType) and f.name.startswith(f"{family}_"))


def length_column(array_column: str) -> str:
    """Name of the helper holding ``size(array_column)``."""
    return f"_len_{array_column}"


def _flag(inputs: tuple[str, ...], condition: str) -> str:
    """1/0 for ``condition``; null when an input is null (reported by the not-null checks instead)."""
    any_null = " OR ".join(f"`{c}` IS NULL" for c in inputs)
    return f"CAST(CASE WHEN {any_null} THEN NULL WHEN {condition} THEN 1 ELSE 0 END AS INT)"


def _size(column: str) -> Derived:
    return Derived(length_column(column), f"CAST(size(`{column}`) AS INT)", (column,), f"size({column})")


def _non_decreasing(column: str, name: str, le: str = "{a} <= {b}") -> Derived:
    """1 when every consecutive pair satisfies ``le``.

    Short arrays are answered by an earlier CASE branch, not by ``OR``: with ANSI
    mode on (Spark 4's default) ``arr[i]`` outside the array is an error, and only
    CASE guarantees the guard is evaluated first.
    """
    pair = le.format(a=f"`{column}`[i - 1]", b=f"`{column}`[i]")
    sql = (
        f"CAST(CASE WHEN `{column}` IS NULL THEN NULL WHEN size(`{column}`) < 2 THEN 1 "
        f"WHEN forall(sequence(1, size(`{column}`) - 1), i -> {pair}) THEN 1 ELSE 0 END AS INT)"
    )
    return Derived(name, sql, (column,), f"{column} is sorted ascending")


def _family(table: str, family: str) -> list[Derived]:
    members = family_members(table, family)
    out: list[Derived] = []
    if f"{family}_item_ids" in members:
        out.append(_size(f"{family}_item_ids"))
    if len(members) > 1:
        first = members[0]
        same = " AND ".join(f"size(`{first}`) = size(`{m}`)" for m in members[1:])
        out.append(Derived(f"_{family}_aligned", _flag(members, same), members, f"all {family}_* arrays equally long"))
    if f"{family}_ts" in members:
        out.append(_non_decreasing(f"{family}_ts", f"_{family}_ts_sorted"))
    return out


def _events() -> list[Derived]:
    return [
        Derived(
            "_ts_on_event_date",
            _flag(("ts", "event_date"), "to_date(`ts`) = `event_date`"),
            ("ts", "event_date"),
            "event_date is the (session time zone) date of ts",
        )
    ]


_BY_TS_THEN_ITEM = "({a}.ts < {b}.ts OR ({a}.ts = {b}.ts AND {a}.item_id <= {b}.item_id))"


def _user_events() -> list[Derived]:
    return [
        _size("events"),
        _non_decreasing("events", "_events_sorted", _BY_TS_THEN_ITEM),
        Derived(
            "_events_on_date",
            _flag(("events", "event_date"), "forall(`events`, e -> e.event_date = `event_date`)"),
            ("events", "event_date"),
            "every event of the chunk is dated the chunk's day",
        ),
        Derived(
            "_positives_counted",
            _flag(("events", "n_positive"), "size(filter(`events`, e -> coalesce(e.positive, false))) = `n_positive`"),
            ("events", "n_positive"),
            "n_positive counts the chunk's positive events",
        ),
    ]


def _user_state() -> list[Derived]:
    return [
        _size("recent"),
        _size("positives"),
        _non_decreasing("recent", "_recent_sorted", _BY_TS_THEN_ITEM),
        _non_decreasing("positives", "_positives_sorted", _BY_TS_THEN_ITEM),
        Derived(
            "_recent_before_last",
            "CAST(size(filter(`recent`, e -> e.event_date < `last_date`)) AS INT)",
            ("recent", "last_date"),
            "events of recent dated before last_date (at most recent_len)",
        ),
        Derived(
            "_recent_ends_on_last_date",
            _flag(("recent", "last_date"), "element_at(`recent`, -1).event_date = `last_date`"),
            ("recent", "last_date"),
            "the last event of recent is on last_date",
        ),
        Derived(
            "_days_span",
            "CAST(datediff(`last_date`, `first_date`) + 1 AS BIGINT)",
            ("first_date", "last_date"),
            "days from first to last active day, both included",
        ),
    ]


def _user_features() -> list[Derived]:
    out: list[Derived] = []
    for family in SEQUENCE_FAMILIES["user_features"]:
        out += _family("user_features", family)
    end_of_ds = (
        "`event_timestamp` >= CAST(`ds` AS TIMESTAMP) AND `event_timestamp` <= CAST(date_add(`ds`, 1) AS TIMESTAMP)"
    )
    out.append(
        Derived(
            "_event_ts_in_ds",
            _flag(("event_timestamp", "ds"), end_of_ds),
            ("event_timestamp", "ds"),
            "event_timestamp falls within ds (end of day): Feast point-in-time joins rely on it",
        )
    )
    return out


def _training_examples() -> list[Derived]:
    out = _family("training_examples", "context")
    allowed = " OR ".join(
        f"(`protocol` = '{p}' AND `split` IN ({', '.join(repr(s) for s in splits)}))"
        for p, splits in SPLITS_BY_PROTOCOL.items()
    )
    out += [
        Derived(
            "_split_matches_protocol",
            _flag(("protocol", "split"), f"({allowed})"),
            ("protocol", "split"),
            "split is one the row's protocol writes",
        ),
        _size("target_item_ids"),
        Derived(
            "_context_before_target",
            _flag(("context_ts", "target_ts"), "forall(`context_ts`, t -> t <= `target_ts`)"),
            ("context_ts", "target_ts"),
            "no context event after the target (label leakage)",
        ),
        Derived(
            "_target_is_first",
            _flag(("target_item_ids", "target_item_id"), "try_element_at(`target_item_ids`, 1) = `target_item_id`"),
            ("target_item_ids", "target_item_id"),
            "the point-wise target is the session's first item",
        ),
    ]
    return out


# A float that is a number (not NaN, not +-inf); isnan() is false for infinities.
_FINITE = "(NOT isnan({x}) AND abs({x}) < double('inf'))"


def _item_pairs() -> list[Derived]:
    return [
        Derived(
            "_not_self_pair",
            _flag(("item_id", "other_item_id"), "`item_id` <> `other_item_id`"),
            ("item_id", "other_item_id"),
            "an item is never its own neighbour",
        ),
        # jobs/item_pairs.py keeps top_k partners per item and day.
        Derived(
            "_partners_of_item",
            "CAST(count(*) OVER (PARTITION BY `ds`, `item_id`) AS INT)",
            ("ds", "item_id"),
            "partners listed for the row's item",
        ),
        Derived("_score_finite", _flag(("score",), _FINITE.format(x="`score`")), ("score",), "score is a number"),
    ]


def _item_embeddings() -> list[Derived]:
    finite = "forall(`embedding`, x -> x IS NOT NULL AND " + _FINITE.format(x="x") + ")"
    return [
        _size("embedding"),
        Derived("_embedding_finite", _flag(("embedding",), finite), ("embedding",), "no NaN, inf or null element"),
        Derived(
            "_embedding_norm",
            "CAST(sqrt(aggregate(`embedding`, CAST(0 AS DOUBLE), (acc, x) -> acc + x * x)) AS DOUBLE)",
            ("embedding",),
            "L2 norm of embedding",
        ),
    ]


def _item_sids(levels: int) -> list[Derived]:
    out = [
        _size("codes"),
        # A string form of the code tuple: GX's uniqueness check counts values in Python,
        # where an array (a list) is unhashable.
        Derived(
            "_codes_key", "array_join(transform(`codes`, c -> CAST(c AS STRING)), '-')", ("codes",), "codes as text"
        ),
        Derived("_codes_min", "CAST(array_min(`codes`) AS INT)", ("codes",), "smallest code (dedup code included)"),
    ]
    # One column per codebook level: range and utilisation are per level (K may differ by level).
    out += [
        Derived(level_column(lv), f"CAST(try_element_at(`codes`, {lv + 1}) AS INT)", ("codes",), f"level-{lv} code")
        for lv in range(levels)
    ]
    return out


def level_column(level: int) -> str:
    """Name of the helper holding the level-``level`` code of ``item_sids.codes``."""
    return f"_code_l{level}"


_BUILDERS = {
    "events": _events,
    "user_events": _user_events,
    "user_state": _user_state,
    "user_features": _user_features,
    "training_examples": _training_examples,
    "item_pairs": _item_pairs,
    "item_embeddings": _item_embeddings,
    "user_lifelong_compressed": lambda: [_size("item_ids")],
}


def derived_columns(table: str, sid_levels: int = 3) -> tuple[Derived, ...]:
    """The helper columns of ``table`` (empty for tables with only flat columns).

    ``sid_levels``: codebook levels of ``item_sids`` (``cfg.item.semantic_ids.levels``).
    """
    if table == "item_sids":
        return tuple(_item_sids(sid_levels))
    builder = _BUILDERS.get(table)
    return tuple(builder()) if builder else ()


def add_derived_columns(df: DataFrame, table: str, sid_levels: int = 3) -> DataFrame:
    """``df`` plus the helper columns of ``table``.

    A helper whose input column is missing becomes a typed null instead of an
    analysis error: the column-set expectation then names the real missing column.
    """
    from pyspark.sql import functions as F

    present = set(df.columns)
    cols = []
    for d in derived_columns(table, sid_levels):
        expr = F.expr(d.sql) if set(d.inputs) <= present else F.lit(None).cast("int")
        cols.append(expr.alias(d.name))
    return df.select("*", *cols) if cols else df

"""One GX expectation suite per table, generated from its StructType and TableSpec.

Contract of :func:`build_suite`: the suite is named ``<layer>_<table>`` and holds

* from the schema (``jobs.schemas``), all critical: the column set equals the
  schema's columns plus the helper columns of :mod:`expectations.derived`; each
  column has its Spark type; non-nullable fields and keys hold no nulls; keys are
  unique (compound uniqueness for multi-column keys);
* a non-empty table/partition (warning; not for quarantine, where empty is good);
* table-specific rules (below), each tagged ``meta={"severity": ...}``.

Severity: ``critical`` where downstream stages would silently compute wrong
results (schema drift, null or duplicate keys, sequence caps, ordering, alignment,
label leakage, split/protocol domains); ``warning`` for plausibility ranges and
summary-column consistency, which are worth a look but should not stop the DAG.
Uniqueness is checked within the validated frame: one partition for partitioned
tables, so an ``event_id`` repeated on two different days is not caught here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from conf.settings import Settings
from expectations.derived import (
    SEQUENCE_FAMILIES,
    SPLITS_BY_PROTOCOL,
    derived_columns,
    length_column,
    level_column,
)
from expectations.report import CRITICAL, SEVERITIES, WARNING
from jobs.schemas import BY_TABLE, FLAG_NAMES

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations import Expectation

__all__ = ["CRITICAL", "SEVERITIES", "WARNING", "build_suite", "expected_columns", "suite_name"]

# Share of rows a plausibility range must cover before it warns (noisy sources).
MOSTLY = 0.99
# Used only when conf.settings.IngestSettings has no rating bounds.
DEFAULT_RATING_RANGE = (0.0, 10.0)


def suite_name(table: str, cfg: Settings) -> str:
    """``<layer>_<table>``, e.g. ``bronze_events``."""
    spec = cfg.table(table)
    return f"{spec.layer}_{spec.name}"


def build_suite(table: str, cfg: Settings, engine: str = "spark", facts: dict | None = None) -> ExpectationSuite:
    """The expectation suite of ``table`` (pure: builds objects, stores nothing).

    ``facts``: what the data's own artefacts say about it, for rules the config cannot give;
    for ``item_sids``, ``{"codebook_version": v, "k_per_level": [...]}`` from the codebook
    being validated (``expectations.validate`` reads it). Without them those rules are left out.

    With ``engine="pandas"`` the per-column Spark type expectations are left out: the
    frame's Spark schema is checked against ``jobs.schemas`` before it is collected
    (``expectations.validate._schema_failures``), and pandas dtypes cannot express it.
    """
    from great_expectations.core import ExpectationSuite

    if table not in BY_TABLE:
        raise KeyError(f"no schema for table {table!r}; known: {sorted(BY_TABLE)}")
    expectations = _schema_expectations(table, cfg, with_types=engine == "spark")
    # Also the source of ValidationReport.row_count. An empty quarantine is good news.
    min_rows = 0 if table == "quarantine" else 1
    expectations.append(_warn("ExpectTableRowCountToBeBetween", min_value=min_rows, max_value=None))
    if table == "item_sids":
        expectations += _item_sids(cfg, facts or {})
    else:
        expectations += _TABLE_RULES.get(table, lambda _cfg: [])(cfg)
    return ExpectationSuite(
        name=suite_name(table, cfg),
        expectations=expectations,
        meta={"table": table, "generated_by": "expectations.suites.build_suite"},
    )


def expected_columns(table: str, cfg: Settings | None = None) -> list[str]:
    """Schema columns then helper columns: exactly what the validated frame must hold."""
    levels = cfg.item.semantic_ids.levels if cfg is not None else 3
    return [f.name for f in BY_TABLE[table].fields] + [d.name for d in derived_columns(table, levels)]


# ---- building blocks -------------------------------------------------------


def _make(kind: str, severity: str, **kwargs: Any) -> Expectation:
    import great_expectations.expectations as gxe

    return getattr(gxe, kind)(meta={"severity": severity}, **kwargs)


def _crit(kind: str, **kwargs: Any) -> Expectation:
    return _make(kind, CRITICAL, **kwargs)


def _warn(kind: str, **kwargs: Any) -> Expectation:
    return _make(kind, WARNING, **kwargs)


def _is_one(column: str, severity: str = CRITICAL) -> Expectation:
    """Helper flag must be 1 (nulls are skipped: the not-null checks own them)."""
    return _make("ExpectColumnValuesToBeInSet", severity, column=column, value_set=[1])


def _schema_expectations(table: str, cfg: Settings, with_types: bool = True) -> list[Expectation]:
    schema, spec = BY_TABLE[table], cfg.table(table)
    out = [_crit("ExpectTableColumnsToMatchSet", column_set=expected_columns(table, cfg), exact_match=True)]
    # Type checks read only the frame's schema (no Spark job), so one per column is cheap.
    if with_types:
        out += [_crit("ExpectColumnValuesToBeOfType", column=f.name, type_=type(f.dataType).__name__) for f in schema]
    not_null = [f.name for f in schema if not f.nullable]
    not_null += [k for k in spec.keys if k not in not_null]
    out += [_crit("ExpectColumnValuesToNotBeNull", column=c) for c in not_null]
    if len(spec.keys) == 1:
        out.append(_crit("ExpectColumnValuesToBeUnique", column=spec.keys[0]))
    elif spec.keys:
        out.append(_crit("ExpectCompoundColumnsToBeUnique", column_list=list(spec.keys)))
    return out


# ---- table-specific rules --------------------------------------------------


def _events(cfg: Settings) -> list[Expectation]:
    lo = getattr(cfg.ingest, "rating_min", DEFAULT_RATING_RANGE[0])
    hi = getattr(cfg.ingest, "rating_max", DEFAULT_RATING_RANGE[1])
    return [
        _warn("ExpectColumnValuesToBeBetween", column="rating", min_value=lo, max_value=hi, mostly=MOSTLY),
        _warn("ExpectColumnValuesToBeBetween", column="play_seconds", min_value=0),
        _warn("ExpectColumnValuesToBeBetween", column="item_duration_seconds", min_value=0),
        *[_warn("ExpectColumnValuesToBeInSet", column=flag, value_set=[0, 1]) for flag in FLAG_NAMES],
        # A row in the wrong event_date partition is invisible to that day's sequence update.
        _is_one("_ts_on_event_date"),
    ]


def _quarantine(cfg: Settings) -> list[Expectation]:
    return [_warn("ExpectColumnValuesToBeInSet", column="source_table", value_set=["events", "items", "users"])]


def _user_events(cfg: Settings) -> list[Expectation]:
    return [
        _crit("ExpectColumnValuesToBeBetween", column=length_column("events"), min_value=1),
        # Sequences are chunks concatenated in date order: a chunk out of order or on the wrong day breaks them.
        _is_one("_events_sorted"),
        _is_one("_events_on_date"),
        _crit("ExpectColumnPairValuesToBeEqual", column_A="n_events", column_B=length_column("events")),
        _is_one("_positives_counted", WARNING),
    ]


def _user_state(cfg: Settings) -> list[Expectation]:
    from jobs.user_history import recent_len

    return [
        _crit("ExpectColumnValuesToBeBetween", column=length_column("recent"), min_value=1),
        _crit("ExpectColumnValuesToBeBetween", column="_recent_before_last", min_value=0, max_value=recent_len(cfg)),
        _crit(
            "ExpectColumnValuesToBeBetween",
            column=length_column("positives"),
            min_value=0,
            max_value=cfg.sequences.positive_len,
        ),
        _is_one("_recent_sorted"),
        _is_one("_positives_sorted"),
        _is_one("_recent_ends_on_last_date"),
        _warn("ExpectColumnPairValuesAToBeGreaterThanB", column_A="n_events", column_B="n_positive", or_equal=True),
        _warn("ExpectColumnPairValuesAToBeGreaterThanB", column_A="n_events", column_B="active_days", or_equal=True),
        _warn("ExpectColumnPairValuesAToBeGreaterThanB", column_A="_days_span", column_B="active_days", or_equal=True),
        _warn("ExpectColumnPairValuesAToBeGreaterThanB", column_A="last_ts", column_B="first_ts", or_equal=True),
    ]


def _user_features(cfg: Settings) -> list[Expectation]:
    seq = cfg.sequences
    caps = {"short": seq.short_term_len, "positive": seq.positive_len}
    out: list[Expectation] = []
    for family in SEQUENCE_FAMILIES["user_features"]:
        out += [
            _crit(
                "ExpectColumnValuesToBeBetween",
                column=length_column(f"{family}_item_ids"),
                min_value=0,
                max_value=caps[family],
            ),
            _is_one(f"_{family}_aligned"),
            _is_one(f"_{family}_ts_sorted"),
        ]
    out += [
        _is_one("_event_ts_in_ds"),
        _warn("ExpectColumnPairValuesAToBeGreaterThanB", column_A="n_events", column_B="n_positive", or_equal=True),
    ]
    return out


def _training_examples(cfg: Settings) -> list[Expectation]:
    splits = sorted({s for values in SPLITS_BY_PROTOCOL.values() for s in values})
    return [
        _crit("ExpectColumnValuesToBeInSet", column="protocol", value_set=sorted(SPLITS_BY_PROTOCOL)),
        _crit("ExpectColumnValuesToBeInSet", column="split", value_set=splits),
        _is_one("_split_matches_protocol"),
        _crit(
            "ExpectColumnValuesToBeBetween",
            column=length_column("context_item_ids"),
            min_value=0,
            max_value=cfg.training_examples.context_len,
        ),
        _is_one("_context_aligned"),
        _is_one("_context_ts_sorted"),
        _is_one("_context_before_target"),
        _crit("ExpectColumnValuesToBeBetween", column=length_column("target_item_ids"), min_value=1),
        _is_one("_target_is_first", WARNING),
    ]


def _item_pairs(cfg: Settings) -> list[Expectation]:
    return [
        _is_one("_not_self_pair", WARNING),
        _warn("ExpectColumnValuesToBeBetween", column="co_count", min_value=1),
        # Item embeddings and alignment weight pairs by score: NaN or <= 0 would poison them.
        _is_one("_score_finite"),
        _crit("ExpectColumnValuesToBeBetween", column="score", min_value=0, strict_min=True),
        _crit("ExpectColumnValuesToBeBetween", column="_partners_of_item", min_value=1, max_value=cfg.item.pairs.top_k),
    ]


# Every embedding is a unit vector (aligned, behaviour and cold alike; jobs/item_embeddings.py).
EMBEDDING_NORM_RANGE = (0.99, 1.01)


def _item_embeddings(cfg: Settings) -> list[Expectation]:
    dim = cfg.item.embeddings.dim
    lo, hi = EMBEDDING_NORM_RANGE
    return [
        # semantic_ids and lifelong compression stack these into one fixed-width matrix.
        _crit("ExpectColumnValuesToBeBetween", column=length_column("embedding"), min_value=dim, max_value=dim),
        # One NaN turns every k-means distance it touches into NaN.
        _is_one("_embedding_finite"),
        _crit("ExpectColumnValuesToBeBetween", column="_embedding_norm", min_value=lo, max_value=hi),
        _crit("ExpectColumnValuesToBeInSet", column="embedding_source", value_set=["behaviour", "cold", "content"]),
    ]


def _item_sids(cfg: Settings, facts: dict) -> list[Expectation]:
    """Rules for one codebook version's rows; range and utilisation need its ``k_per_level``."""
    s = cfg.item.semantic_ids
    n_codes = s.levels + 1  # L levels + 1 dedup code
    out = [
        _crit("ExpectColumnValuesToBeBetween", column=length_column("codes"), min_value=n_codes, max_value=n_codes),
        # Two items with one semantic ID could not be told apart when decoding.
        _crit("ExpectCompoundColumnsToBeUnique", column_list=["codebook_version", "_codes_key"]),
        _crit("ExpectColumnValuesToBeBetween", column="_codes_min", min_value=0),
    ]
    for level, k in enumerate(facts.get("k_per_level", [])[: s.levels]):
        column = level_column(level)
        out.append(_crit("ExpectColumnValuesToBeBetween", column=column, min_value=0, max_value=k - 1))
        # Utilisation: distinct codes in use / K. A collapsed level puts many items behind few codes.
        need = max(1, math.ceil(s.min_utilisation * k))
        out.append(_crit("ExpectColumnUniqueValueCountToBeBetween", column=column, min_value=need, max_value=k))
    return out


def _user_lifelong_compressed(cfg: Settings) -> list[Expectation]:
    cap = cfg.item.lifelong.max_representatives
    return [_crit("ExpectColumnValuesToBeBetween", column=length_column("item_ids"), min_value=0, max_value=cap)]


_TABLE_RULES = {
    "events": _events,
    "quarantine": _quarantine,
    "user_events": _user_events,
    "user_state": _user_state,
    "user_features": _user_features,
    "training_examples": _training_examples,
    "item_pairs": _item_pairs,
    "item_embeddings": _item_embeddings,
    "user_lifelong_compressed": _user_lifelong_compressed,
}

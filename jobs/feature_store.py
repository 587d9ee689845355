"""Feast over the lake: register definitions, materialise a day, check online values, train-time retrieval.

    python -m jobs.feature_store apply                     # idempotent; prints the plan (what changed)
    python -m jobs.feature_store plan                      # the plan only
    python -m jobs.feature_store materialize --ds 2026-10-03 [--full]
    python -m jobs.feature_store check --ds 2026-10-03 [--sample 50]
    python -m jobs.feature_store historical --entities rows.parquet --out features.parquet

The store's ``feature_store.yaml`` is generated from the config into
``<home>/feast/`` on every call (SQLite online store + file registry by default;
``feast.online_store=redis`` + a SQL registry URL in production). Sources are Spark
views that this module binds to ``cfg.table_path(...)`` through the Delta log (see
``features/sources.py``), on the session from ``jobs.spark.get_spark`` - which must
exist before Feast's Spark store looks for one, so every entrypoint creates it first.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from conf import Settings
from jobs import delta
from jobs.cli import base_parser, settings_from_args, setup_logging
from jobs.feature_store_check import OnlineMismatch, check_against_lake
from jobs.schemas import BY_TABLE

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore
    from feast.repo_contents import RepoContents
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
__all__ = ["OnlineMismatch", "apply", "check_online", "historical", "materialize", "materialize_day", "plan"]

TRAIN_SERVICE = "onerec_train_v1"
SERVE_SERVICE = "onerec_serve_v1"


# Session -> {view: Delta path it is bound to}. Binding costs Spark jobs, and a bound view
# already reads the latest version on each use, so it is bound once per session and path.
_BOUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ---- configuration -------------------------------------------------------------------
def feast_dir(cfg: Settings) -> Path:
    """``<home>/feast``: the generated yaml, the SQLite online store and the file registry."""
    return cfg.home_path / "feast"


def store_config(cfg: Settings) -> dict[str, Any]:
    """The ``feature_store.yaml`` content for ``cfg`` (absolute paths; no secrets)."""
    fc, home = cfg.feast, feast_dir(cfg)
    registry_path = cfg.resolve(fc.registry)
    registry: dict[str, Any] = {"path": registry_path, "cache_ttl_seconds": fc.registry_cache_ttl_seconds}
    # A URL means a database (SQLAlchemy): shared by every worker; a path is a local protobuf file.
    registry["registry_type"] = "sql" if "://" in registry_path else "file"
    if fc.online_store == "redis":
        online: dict[str, Any] = {"type": "redis", "connection_string": fc.redis_connection}
    else:
        online = {"type": "sqlite", "path": str(home / "online_store.db")}
    return {
        "project": fc.project,
        "provider": "local",
        "registry": registry,
        "online_store": online,
        # No spark_conf: the Spark store picks up the active session, built by jobs.spark.get_spark.
        "offline_store": {"type": "spark"},
        "entity_key_serialization_version": 3,
    }


def get_store(cfg: Settings) -> FeatureStore:
    """Write ``<home>/feast/feature_store.yaml`` from ``cfg`` and open the store it describes."""
    from feast import FeatureStore

    import features.sources  # noqa: F401  (loads Feast's Spark store and mutes its alpha warning)

    home = feast_dir(cfg)
    home.mkdir(parents=True, exist_ok=True)
    text = "# Generated from conf/ by jobs/feature_store.py; edit the config, not this file.\n"
    text += yaml.safe_dump(store_config(cfg), sort_keys=False)
    path = home / "feature_store.yaml"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return FeatureStore(repo_path=str(home))


def bind_sources(spark: SparkSession, cfg: Settings) -> dict[str, str]:
    """Define each source's Spark view over its Delta table for ``cfg``; returns view -> path.

    The views are SQL over ``delta.`path```, so every use re-reads the Delta log (latest
    version, deleted rows gone). A table that does not exist yet (no items ingested)
    becomes an empty view of its schema, so apply and materialise still work.
    """
    from features.sources import SPARK_VIEWS

    done = _BOUND.setdefault(spark, {})
    for view, (table, sql) in SPARK_VIEWS.items():
        path = cfg.table_path(table)
        if done.get(view) == path:  # already a view over this Delta table in this session
            continue
        if delta.exists(spark, path):
            relation = f"delta.`{path}`"
            done[view] = path
        else:
            log.warning("feature source %s: %s has no Delta table yet; serving it empty", view, path)
            relation = f"{view}__empty"
            spark.createDataFrame([], BY_TABLE[table]).createOrReplaceTempView(relation)
            done.pop(view, None)  # look again next time: the table may exist by then
        spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW `{view}` AS {sql(relation)}")
    return {view: cfg.table_path(table) for view, (table, _) in SPARK_VIEWS.items()}


@contextmanager
def _arrow(spark: SparkSession) -> Iterator[None]:
    """Arrow for Spark -> pandas while Feast collects rows (2x faster on list columns), then as before.

    Feast's Spark store turns every result into pandas with ``toPandas()``; the session
    is shared with other jobs in the process, so the setting is restored afterwards.
    """
    key = "spark.sql.execution.arrow.pyspark.enabled"
    before = spark.conf.get(key, "false")
    spark.conf.set(key, "true")
    try:
        yield
    finally:
        spark.conf.set(key, before)


def _session(cfg: Settings) -> SparkSession:
    """The project's Spark session with the sources bound (call before any offline Feast use)."""
    from jobs.spark import get_spark

    spark = get_spark(cfg)
    bind_sources(spark, cfg)
    return spark


def definitions(cfg: Settings) -> RepoContents:
    """Every Feast object declared in ``features/`` (the modules ``feast apply`` would read)."""
    from feast import Entity, FeatureService, FeatureView, Project
    from feast.data_source import DataSource
    from feast.feature_view import DUMMY_ENTITY
    from feast.repo_contents import RepoContents

    from features import entities, services, sources, views

    # Modules import each other's objects: keep each object once (by identity, like `feast apply`).
    objects = list({id(v): v for m in (entities, sources, views, services) for v in vars(m).values()}.values())

    def of(kind: type) -> list:
        return [o for o in objects if isinstance(o, kind)]

    return RepoContents(
        projects=[Project(name=cfg.feast.project, description="OneRec features over the gold Delta tables")],
        data_sources=of(DataSource),
        feature_views=of(FeatureView),
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        # Feast's placeholder entity for entity-less views; `feast apply` always declares it.
        entities=[*of(Entity), DUMMY_ENTITY],
        feature_services=of(FeatureService),
        permissions=[],
    )


# ---- entrypoints -----------------------------------------------------------------------
def plan(cfg: Settings) -> dict:
    """Dry run: what ``apply`` would change in the registry and the online store."""
    return _plan_or_apply(cfg, commit=False)


def apply(cfg: Settings) -> dict:
    """Register ``features/`` in the registry and create online tables; a no-op when nothing changed.

    Returns ``{"changes": [{"kind", "name", "change"}...], "infra_changes": [...], "unchanged": n}``;
    the plan is logged. Objects no longer declared are deleted (``feast apply`` semantics).
    """
    return _plan_or_apply(cfg, commit=True)


def _plan_or_apply(cfg: Settings, commit: bool) -> dict:
    from feast.diff.property_diff import TransitionType
    from feast.feature_view import DUMMY_ENTITY_NAME

    _session(cfg)
    store, repo = get_store(cfg), definitions(cfg)
    # Materialisation intervals are run state the registry keeps on each view. Declared views
    # have none, so after any materialise Feast sees every view as changed, and applying that
    # wipes the intervals (feast-dev/feast#3228). Carry them over: the plan compares definitions.
    # The declared views are module-level objects: set every one, so intervals of another store
    # applied earlier in the same process (another config, a test) never leak into this one.
    registered = {fv.name: fv for fv in store.list_feature_views()}
    for fv in repo.feature_views:
        fv.materialization_intervals = list(
            registered[fv.name].materialization_intervals if fv.name in registered else []
        )
    registry_diff, infra_diff, new_infra = store.plan(repo)
    changes, unchanged, to_delete = [], 0, []
    for d in registry_diff.feast_object_diffs:
        if d.transition_type == TransitionType.UNCHANGED or d.name == DUMMY_ENTITY_NAME:
            unchanged += 1
            continue
        changes.append({"kind": d.feast_object_type.value, "name": d.name, "change": d.transition_type.name})
        if d.transition_type == TransitionType.DELETE:
            to_delete.append(d.current_feast_object)
    infra = [
        {"kind": d.infra_object_type, "name": d.name, "change": d.transition_type.name}
        for d in infra_diff.infra_object_diffs
        if d.transition_type != TransitionType.UNCHANGED
    ]
    text = "\n".join(f"  {c['change'].lower():9} {c['kind']} {c['name']}" for c in changes + infra)
    log.info("feast plan (%s): %s", cfg.feast.project, "\n" + text if text else "no changes")
    if commit and (changes or infra):
        # What `feast apply` does: the planned diffs where the store supports them (SQLite,
        # which also records the online tables in the registry), else the full apply.
        if store._should_use_plan():
            store._apply_diffs(registry_diff, infra_diff, new_infra)
        else:
            objects = [*repo.projects, *repo.data_sources, *repo.entities, *repo.feature_views, *repo.feature_services]
            store.apply(objects, objects_to_delete=to_delete, partial=False)
    yaml_path = str(feast_dir(cfg) / "feature_store.yaml")
    summary = {"project": cfg.feast.project, "applied": commit, "yaml": yaml_path, "unchanged": unchanged}
    return summary | {"changes": changes, "infra_changes": infra}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, dtime(), tzinfo=UTC)


def window(ds: date, full: bool = False, lookback: timedelta = timedelta(days=3650)) -> tuple[datetime, datetime]:
    """The materialisation window for ``ds``: rows whose event timestamp is midnight after ``ds``.

    Feast's Spark store selects ``event_timestamp BETWEEN start AND end`` (both ends
    included), so ``start`` is one second after midnight of ``ds``: the previous day's
    rows (timestamp = ``ds`` 00:00) stay out. ``full`` widens it to ``lookback`` so
    every entity's latest state as of ``ds`` is written (recovery, a new online store).
    """
    end = _midnight(ds + timedelta(days=1))
    return (end - lookback if full else _midnight(ds) + timedelta(seconds=1)), end


def materialize(cfg: Settings, ds: date, full: bool = False) -> dict:
    """Write the rows of day ``ds`` (latest per entity in :func:`window`) into the online store.

    Returns per view the rows written, seconds and rows/s. Re-running a day writes
    the same values. Run days in order: the SQLite store keeps the last write, not
    the newest timestamp (Redis keeps the newest); ``full=True`` repairs either.
    """
    from features.views import ITEM_TTL, USER_TTL

    spark = _session(cfg)
    store = get_store(cfg)
    start, end = window(ds, full, max(USER_TTL, ITEM_TTL))
    report: dict[str, Any] = {"ds": ds.isoformat(), "start": start.isoformat(), "end": end.isoformat(), "views": {}}
    counts: dict[str, int] = {}  # per source: views sharing one write the same entities
    for fv in store.list_feature_views():
        src = fv.batch_source
        if src.name not in counts:
            counts[src.name] = _entities_in_window(spark, src, fv.entity_columns[0].name, start, end)
        n = counts[src.name]
        t0 = time.perf_counter()
        with _arrow(spark):
            store.materialize(start_date=start, end_date=end, feature_views=[fv.name])
        seconds = time.perf_counter() - t0
        report["views"][fv.name] = {"rows": n, "seconds": round(seconds, 3), "rows_per_s": round(n / seconds, 1)}
        log.info("materialised %s ds=%s: %d rows in %.1f s (%.0f rows/s)", fv.name, ds, n, seconds, n / seconds)
    report["rows"] = sum(v["rows"] for v in report["views"].values())
    report["seconds"] = round(sum(v["seconds"] for v in report["views"].values()), 3)
    report["rows_per_s"] = round(report["rows"] / max(report["seconds"], 1e-9), 1)
    return report


def materialized_through(cfg: Settings) -> date | None:
    """The latest day whose rows are online, from Feast's own materialisation intervals."""
    ends = [fv.most_recent_end_time for fv in get_store(cfg).list_feature_views() if fv.most_recent_end_time]
    if not ends:
        return None
    latest_end = max(e if e.tzinfo else e.replace(tzinfo=UTC) for e in ends).astimezone(UTC)
    return latest_end.date() - timedelta(days=1)  # a day's window ends at the midnight after it


def materialize_day(cfg: Settings, ds: date, full: bool = False) -> dict:
    """The DAG's step: materialise ``ds`` and check online == lake, unless a later day is online.

    ``full``: every entity's latest row as of ``ds`` (the views' TTL), not only ``ds``'s: the
    daily run right after a bulk backfill, whose earlier days were never materialised one by one.

    The online store holds the newest state. Re-running or backfilling an earlier day
    must not put older values back (SQLite keeps the last write), so such a run leaves
    the store as it is and says so; re-running the latest day rewrites the same values.
    """
    latest = materialized_through(cfg)
    if latest is not None and ds < latest:
        log.info("materialise ds=%s skipped: the online store already holds %s (newer)", ds, latest)
        return {"ds": ds.isoformat(), "skipped": f"online store already holds {latest.isoformat()}"}
    report = materialize(cfg, ds, full=full)
    report["check"] = check_online(cfg, ds)
    return report


def check_online(cfg: Settings, ds: date, sample: int = 50) -> dict:
    """Online == lake for the entities materialised for ``ds`` (``feature_store_check.check_against_lake``)."""
    return check_against_lake(_session(cfg), get_store(cfg), ds, sample)


def _entities_in_window(spark: SparkSession, src, key: str, start: datetime, end: datetime) -> int:
    """How many entities Feast writes for ``src`` in [start, end] (its latest row per entity)."""
    fmt = "%Y-%m-%d %H:%M:%S"
    where = f"{src.timestamp_field} BETWEEN TIMESTAMP'{start:{fmt}}' AND TIMESTAMP'{end:{fmt}}'"
    if src.date_partition_column:  # prune partitions, as Feast's own query does
        where += f" AND {src.date_partition_column} BETWEEN DATE'{start:%Y-%m-%d}' AND DATE'{end:%Y-%m-%d}'"
    query = f"SELECT count(DISTINCT {key}) AS n FROM {src.get_table_query_string()} WHERE {where}"
    return int(spark.sql(query).collect()[0]["n"])


def historical(cfg: Settings, entity_df: pd.DataFrame, service: str = TRAIN_SERVICE) -> pd.DataFrame:
    """Point-in-time features of ``service`` for each entity row (no value after its timestamp).

    ``entity_df`` has the join keys of the service's entities (``user_id``, ``item_id``
    for ``onerec_train_v1``) and ``event_timestamp`` (UTC); each row gets, per view,
    the latest value with timestamp <= its own and within the view's TTL (else null).
    Feature columns are named ``<view>__<feature>`` (user and item both have ``attributes``).
    """
    spark = _session(cfg)
    store = get_store(cfg)
    features = store.get_feature_service(service)
    with _arrow(spark):
        job = store.get_historical_features(entity_df=entity_df, features=features, full_feature_names=True)
        return job.to_df()


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("command", choices=["apply", "plan", "materialize", "check", "historical"])
    parser.add_argument("--ds", type=date.fromisoformat, help="day, YYYY-MM-DD (materialize, check)")
    parser.add_argument("--full", action="store_true", help="materialize: every entity's state as of --ds")
    parser.add_argument("--sample", type=int, default=50, help="check: entities compared per key (default 50)")
    parser.add_argument("--entities", help="historical: parquet or csv of entity rows (keys + event_timestamp)")
    parser.add_argument("--out", help="historical: parquet file to write")
    parser.add_argument("--service", default=TRAIN_SERVICE, help=f"historical: feature service ({TRAIN_SERVICE})")
    args = parser.parse_args(argv)
    if args.command in ("materialize", "check") and args.ds is None:
        parser.error(f"{args.command} needs --ds")
    if args.command == "historical" and not (args.entities and args.out):
        parser.error("historical needs --entities and --out")
    setup_logging()
    logging.getLogger("faiss").setLevel(logging.WARNING)  # imported by Feast; logs its CPU probing
    cfg = settings_from_args(args)
    if args.command == "historical":
        import pandas as pd

        reader = pd.read_csv if args.entities.endswith(".csv") else pd.read_parquet
        entities = reader(args.entities)
        entities["event_timestamp"] = pd.to_datetime(entities["event_timestamp"], utc=True)
        out = historical(cfg, entities, args.service)
        out.to_parquet(args.out)
        print(json.dumps({"rows": len(out), "columns": list(out.columns), "out": args.out}, indent=2))
        return
    run = {
        "apply": lambda: apply(cfg),
        "plan": lambda: plan(cfg),
        "materialize": lambda: materialize(cfg, args.ds, args.full),
        "check": lambda: check_online(cfg, args.ds, args.sample),
    }[args.command]
    print(json.dumps(run(), indent=2, default=str))


if __name__ == "__main__":
    main()

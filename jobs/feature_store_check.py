"""Online == lake: after materialising a day, the online store must hold exactly the lake's rows.

Used by ``jobs.feature_store.check_online`` (in ``materialize_day``, the DAG's ``feast_materialize``,
and ``python -m jobs.feature_store check --ds <day>``), which hands in the Spark session (sources
bound) and the store: this module never imports ``jobs.feature_store``, so the two form no circle. Every online feature view is checked,
user and item side alike, grouped by the Spark view (lake table) it reads.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from jobs import delta

if TYPE_CHECKING:
    from feast import FeatureStore
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


class OnlineMismatch(AssertionError):
    """Online values differ from the gold table's (raised by :func:`check_against_lake`)."""


def _short(value: Any, limit: int = 8) -> str:
    """A value for an error message: long lists cut, with their length."""
    if isinstance(value, list) and len(value) > limit:
        return f"[{', '.join(map(repr, value[:limit]))}, ... ({len(value)} items)]"
    return repr(value)


def _same(online: Any, lake: Any) -> bool:
    """Equal values; timestamps compared as instants (Feast returns them aware, Spark naive local);
    NaN equals NaN (the views write a missing signal as NaN, see features.sources)."""
    if isinstance(online, datetime) and isinstance(lake, datetime):
        return online.timestamp() == lake.timestamp()
    if isinstance(online, list) and isinstance(lake, list):
        return len(online) == len(lake) and all(_same(a, b) for a, b in zip(online, lake, strict=True))
    if isinstance(online, float) and isinstance(lake, float) and math.isnan(online) and math.isnan(lake):
        return True
    return online == lake


def _sources(store) -> dict[tuple[str, str], list[str]]:
    """``(join key, Spark view)`` -> online feature views reading it."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for fv in sorted(store.list_feature_views(), key=lambda v: v.name):
        if fv.online and fv.entity_columns:
            out[(fv.entity_columns[0].name, fv.batch_source.get_table_query_string().strip("`"))].append(fv.name)
    return dict(out)


def check_against_lake(spark: SparkSession, store: FeatureStore, ds: date, sample: int = 50) -> dict:
    """Check that online values equal the lake rows they came from, for entities materialised for ``ds``.

    For every source, samples up to ``sample`` entities whose row is stamped midnight after
    ``ds`` (users active on ``ds``, items written on ``ds``; the lowest ``xxhash64`` of the id:
    deterministic). Each online value must carry a timestamp at or after that midnight (else:
    not materialised, or stale) and equal, feature by feature, the source row with that
    timestamp. Raises :class:`OnlineMismatch` naming the entity, feature and both values;
    returns counts per source when all agree.
    """
    floor = int(datetime.combine(ds + timedelta(days=1), time(), tzinfo=UTC).timestamp())
    report: dict[str, Any] = {"ds": ds.isoformat(), "checked": {}, "features": {}}
    errors: list[str] = []
    for (key, source), views in _sources(store).items():
        prune = store.get_feature_view(views[0]).batch_source.date_partition_column
        where = f"unix_seconds(event_timestamp) = {floor}"
        if prune:
            where += f" AND {prune} = {delta.date_literal(ds + timedelta(days=1))}"
        query = f"SELECT {key} FROM {source} WHERE {where} ORDER BY xxhash64({key}), {key} LIMIT {int(sample)}"
        ids = [r[0] for r in spark.sql(query).collect()]
        report["checked"][source] = len(ids)
        report["features"][source] = 0
        if ids:
            refs = [(fv, f.name) for fv in views for f in store.get_feature_view(fv).features]
            errors += _compare(spark, store, key, source, prune, ids, refs, floor, ds)
            report["features"][source] = len(refs)
    if errors:
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise OnlineMismatch(f"online store disagrees with the lake for ds={ds}:\n  " + "\n  ".join(errors[:10]) + more)
    log.info("check_online ds=%s: %s entities per source, all features equal", ds, report["checked"])
    return report


def _compare(spark, store, key, source, prune, ids, refs, floor, ds) -> list[str]:
    """Errors for ``ids``: each online value against the lake row at the online value's timestamp."""
    online = store.get_online_features(
        features=[f"{fv}:{name}" for fv, name in refs], entity_rows=[{key: i} for i in ids]
    ).to_dict(include_event_timestamps=True)
    stamps = sorted({online[f"{name}__ts"][i] for _, name in refs for i in range(len(ids))} - {0})
    id_list = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    at = ", ".join(f"timestamp_seconds({s})" for s in stamps) or "NULL"
    cols = ", ".join(f"`{name}`" for _, name in refs)
    lake_sql = f"SELECT {key}, unix_seconds(event_timestamp) AS _ts, {cols} FROM {source} "
    lake_sql += f"WHERE {key} IN ({id_list}) AND event_timestamp IN ({at})"
    if prune and stamps:  # read only the partitions holding those timestamps
        days = {datetime.fromtimestamp(s, UTC).date().isoformat() for s in stamps}
        lake_sql += f" AND {prune} IN ({', '.join(f'DATE {d!r}' for d in sorted(days))})"
    lake = {(r[key], r["_ts"]): r.asDict() for r in spark.sql(lake_sql).collect()}
    errors = []
    for i, entity in enumerate(ids):
        for fv, name in refs:
            ts, value = online[f"{name}__ts"][i], online[name][i]
            where_ = f"{key}={entity!r} feature {fv}:{name}"
            if not ts:
                errors.append(f"{where_}: no value online (not materialised for {ds})")
            elif ts < floor:
                errors.append(f"{where_}: online value is from {datetime.fromtimestamp(ts, UTC)}, before {ds}")
            elif (entity, ts) not in lake:
                errors.append(f"{where_}: no lake row at the online timestamp {datetime.fromtimestamp(ts, UTC)}")
            elif not _same(value, lake[(entity, ts)][name]):
                errors.append(f"{where_}: online={_short(value)} lake={_short(lake[(entity, ts)][name])}")
    return errors

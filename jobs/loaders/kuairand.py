"""KuaiRand (Kuaishou short-video logs) with its public column names."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from jobs.loaders._base import BaseLoader
from jobs.loaders._delimited import CSV, delimited_rows, field, header_groups, header_or_count_error
from jobs.loaders._frames import attributes_json, contract, seconds_from_ms, union
from jobs.raw_contract import INTERACTION_FIELDS, ITEM_FIELDS, USER_FIELDS

log = logging.getLogger(__name__)

LOG_COLUMNS: tuple[str, ...] = (
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
    "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
    "comment_stay_time", "is_profile_enter", "is_rand", "tab",
)  # fmt: skip
LOG_REQUIRED: tuple[str, ...] = ("user_id", "video_id", "time_ms")
# Contract field <- log column, copied as found.
LOG_MAP: dict[str, str] = {
    "user_id": "user_id",
    "item_id": "video_id",
    "timestamp": "time_ms",  # unix milliseconds
    "like": "is_like",
    "follow": "is_follow",
    "comment": "is_comment",
    "share": "is_forward",
    "dislike": "is_hate",
}
# Contract field <- log column in milliseconds, divided by 1000.
LOG_MS_MAP: dict[str, str] = {"play_seconds": "play_time_ms", "item_duration_seconds": "duration_ms"}


def _find(root: str, pattern: str) -> list[Path]:
    # The release keeps its CSVs in data/; accept them anywhere under ROOT.
    return sorted(p for p in Path(root).rglob(pattern) if p.is_file())


class KuaiRandLoader(BaseLoader):
    """kuairand: KuaiRand CSVs (public column names) anywhere under ROOT.

    log_*.csv                   user_id, video_id, date, hourmin, time_ms, is_click, is_like, is_follow,
                                is_comment, is_forward, is_hate, long_view, play_time_ms, duration_ms, ...
                                -> item_id=video_id, timestamp=time_ms (unix ms), like/follow/comment/
                                share(=is_forward)/dislike(=is_hate), play_seconds=play_time_ms/1000,
                                item_duration_seconds=duration_ms/1000
    video_features_basic_*.csv  video_id + columns -> attributes; tag -> categories
    user_features_*.csv         user_id + columns -> attributes
    Every log row is kept, impressions with is_click=0 included (the contract has no click field).
    """

    name = "kuairand"

    def read_events(self, spark: SparkSession, root: str, ds: date | None, base_date: date) -> DataFrame:
        """Every log row (the files span weeks; ingest filters to ``ds``)."""
        files = _find(root, "log_*.csv")
        if not files:
            raise FileNotFoundError(f"no KuaiRand log_*.csv under {root}")
        frames = []
        for names, paths in header_groups(files, CSV):
            unknown = [c for c in names if c not in LOG_COLUMNS]
            if unknown:
                log.warning("%s: ignoring unknown column(s) %s", ", ".join(paths), ", ".join(unknown))
            rows = delimited_rows(spark, paths, names, CSV, header=True)
            values = {f: field(c) for f, c in LOG_MAP.items() if c in names}
            values |= {f: seconds_from_ms(field(c)) for f, c in LOG_MS_MAP.items() if c in names}
            frames.append(contract(rows, INTERACTION_FIELDS, values, header_or_count_error(LOG_REQUIRED, names)))
        return union(spark, frames, INTERACTION_FIELDS)

    def read_items(self, spark: SparkSession, root: str) -> DataFrame | None:
        """video_features_basic_*.csv, or None if absent."""
        return self._entities(spark, root, "video_features_basic_*.csv", "video_id", ITEM_FIELDS)

    def read_users(self, spark: SparkSession, root: str) -> DataFrame | None:
        """user_features_*.csv, or None if absent."""
        return self._entities(spark, root, "user_features_*.csv", "user_id", USER_FIELDS)

    @staticmethod
    def _entities(spark: SparkSession, root: str, pattern: str, key: str, fields: tuple[str, ...]) -> DataFrame | None:
        files = _find(root, pattern)
        if not files:
            return None
        frames = []
        for names, paths in header_groups(files, CSV):
            rows = delimited_rows(spark, paths, names, CSV, header=True)
            values = {fields[0]: field(key)} if key in names else {}
            used = {key}
            if "categories" in fields and "tag" in names:
                values["categories"] = field("tag")
                used.add("tag")
            values["attributes"] = attributes_json({c: field(c) for c in names if c not in used})
            frames.append(contract(rows, fields, values, header_or_count_error((key,), names)))
        return union(spark, frames, fields)

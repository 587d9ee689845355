"""Shared behaviour of the loaders (the interface itself is ``jobs.loaders.Loader``)."""

from __future__ import annotations

import inspect
from datetime import date

from pyspark.sql import DataFrame, SparkSession

from jobs.loaders._frames import utc_days


class BaseLoader:
    """Defaults: no item or user file; event days parsed from the timestamps."""

    name: str = ""
    # True when the format has order but no clock (its timestamps are synthetic, one day per
    # position): time gaps between its events mean nothing, so jobs that cut on a gap skip it.
    order_is_clock: bool = False

    def describe(self) -> str:
        """What files this loader expects (its class docstring)."""
        return inspect.getdoc(self) or self.name

    def read_events(self, spark: SparkSession, root: str, ds: date | None, base_date: date) -> DataFrame:
        raise NotImplementedError

    def read_items(self, spark: SparkSession, root: str) -> DataFrame | None:
        """The dataset's item file in ``raw_schema(ITEM_FIELDS)``, or None if it has none."""
        return None

    def read_users(self, spark: SparkSession, root: str) -> DataFrame | None:
        """The dataset's user file in ``raw_schema(USER_FIELDS)``, or None if it has none."""
        return None

    def event_dates(self, spark: SparkSession, root: str, base_date: date) -> list[date]:
        """Sorted distinct UTC days with events, from the parsed timestamps of every row."""
        return utc_days(self.read_events(spark, root, None, base_date))

"""Loaders: a dataset's own files -> Spark frames in the raw contract (jobs/raw_contract.py).

Each loader reads one format family and returns every row it finds, broken ones
included (``schema_error`` says why), with ``source_file``/``source_line`` lineage;
parsing and validation happen later, in ``jobs.ingest``. ``python -m jobs.loaders
--help`` inspects a dataset from the command line.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

from pyspark.sql import DataFrame, SparkSession


@runtime_checkable
class Loader(Protocol):
    """What ingest needs from a dataset format."""

    name: str
    order_is_clock: bool  # timestamps are synthetic (one day per position): gaps mean nothing

    def describe(self) -> str:
        """Which files the loader expects under its root, in a few lines."""
        ...

    def read_events(self, spark: SparkSession, root: str, ds: date | None, base_date: date) -> DataFrame:
        """Interactions in ``raw_schema(INTERACTION_FIELDS)``.

        ``ds``: only that day's files where the layout is split by day, else every row
        (ingest filters by parsed timestamp). ``base_date``: day 0 for formats whose
        only clock is order.
        """
        ...

    def read_items(self, spark: SparkSession, root: str) -> DataFrame | None:
        """Items in ``raw_schema(ITEM_FIELDS)``, or None if the dataset has no item file."""
        ...

    def read_users(self, spark: SparkSession, root: str) -> DataFrame | None:
        """Users in ``raw_schema(USER_FIELDS)``, or None if the dataset has no user file."""
        ...

    def event_dates(self, spark: SparkSession, root: str, base_date: date) -> list[date]:
        """Sorted distinct UTC days that have events (to replay the dataset day by day)."""
        ...


from jobs.loaders.amazon import AmazonJsonLoader, AmazonSeqLoader  # noqa: E402
from jobs.loaders.canonical import CanonicalLoader  # noqa: E402
from jobs.loaders.kuairand import KuaiRandLoader  # noqa: E402
from jobs.loaders.movielens import MovieLensLoader  # noqa: E402
from jobs.loaders.recbole import MovieLensAtomicLoader  # noqa: E402

LOADERS: dict[str, Loader] = {
    loader.name: loader
    for loader in (
        CanonicalLoader(),
        MovieLensLoader(),
        MovieLensAtomicLoader(),
        AmazonSeqLoader(),
        AmazonJsonLoader(),
        KuaiRandLoader(),
    )
}


def get_loader(name: str) -> Loader:
    """The loader called ``name``; ValueError listing the known names otherwise."""
    try:
        return LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown loader {name!r}; known loaders: {', '.join(sorted(LOADERS))}") from None


__all__ = ["LOADERS", "Loader", "get_loader"]

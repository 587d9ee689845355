"""The file-mode GX context of the pipeline: ``<home>/gx``, Data Docs under the reports folder.

Contracts:

* :func:`open_context` returns a fresh ``FileDataContext`` rooted at
  ``<cfg.home_path>/gx`` whose only Data Docs site (:data:`SITE_NAME`) writes
  ``<cfg.resolve(cfg.reports_dir)>/data_docs/index.html``; the default
  ``local_site`` under ``gx/uncommitted`` is removed so there is one place to look.
* :func:`context_lock` serialises processes that share that folder: GX rewrites
  ``great_expectations.yml`` and the Data Docs index on every run, and two Airflow
  tasks validating different tables at once would otherwise race on them.
* :func:`dataframe_batch_definition` gets or creates the Spark data source, the
  table's dataframe asset and its whole-frame batch definition (idempotent).

A fresh context per validation (about 30 ms) is cheaper than keeping one cached:
a cached context would write back a stale view of the yml another process changed.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from conf.settings import Settings

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import FileDataContext

SITE_NAME = "reports"
DATASOURCE_NAME = "onerec_spark"
PANDAS_DATASOURCE_NAME = "onerec_pandas"
BATCH_DEFINITION_NAME = "whole_frame"
_DEFAULT_SITE = "local_site"


def quiet_gx_logging() -> None:
    """GX logs every store read and render at INFO; keep warnings and errors only."""
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.WARNING)


def gx_project_root(cfg: Settings) -> Path:
    """The folder that holds ``gx/`` (GX appends ``gx`` to ``project_root_dir``)."""
    return cfg.home_path


def data_docs_dir(cfg: Settings) -> Path:
    """Where the Data Docs site lives: ``<reports_dir>/data_docs``."""
    return Path(cfg.resolve(cfg.reports_dir)) / "data_docs"


@contextmanager
def context_lock(cfg: Settings) -> Iterator[None]:
    """Exclusive advisory lock on ``<home>/gx.lock`` for the duration of a GX run."""
    root = gx_project_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "gx.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_context(cfg: Settings) -> FileDataContext:
    """A file-mode context at ``<home>/gx`` with the reports Data Docs site configured."""
    quiet_gx_logging()
    import great_expectations as gx

    context = gx.get_context(mode="file", project_root_dir=str(gx_project_root(cfg)))
    _disable_progress_bars(context)
    _configure_site(context, data_docs_dir(cfg))
    return context


def _disable_progress_bars(context: FileDataContext) -> None:
    """tqdm bars on stderr garble Airflow task logs; saved once in the yml."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # A fresh context holds a ProgressBarsConfig, one read back from the yml a plain dict.
    current = context.variables.progress_bars
    values = current if isinstance(current, dict) else vars(current) if current is not None else {}
    if values.get("globally", True) or values.get("metric_calculations", True):
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()


def _configure_site(context: FileDataContext, docs_dir: Path) -> None:
    """Point the one Data Docs site at ``docs_dir`` (writes the yml only when it changes)."""
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        # An absolute base_directory is used as is; a relative one is taken from gx/.
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": f"{docs_dir}/"},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    sites = context.list_data_docs_sites()
    if _DEFAULT_SITE in sites:
        context.delete_data_docs_site(_DEFAULT_SITE)
    current = sites.get(SITE_NAME)
    if current is None:
        context.add_data_docs_site(SITE_NAME, site)
    elif dict(current) != site:
        context.update_data_docs_site(SITE_NAME, site)


def dataframe_batch_definition(context: FileDataContext, asset_name: str, engine: str = "spark") -> BatchDefinition:
    """Get or create ``onerec_spark / <asset_name> / whole_frame``.

    The frame itself is passed at run time (``batch_parameters={"dataframe": df}``),
    so the stored definitions never go stale and re-runs reuse them.
    """
    name = PANDAS_DATASOURCE_NAME if engine == "pandas" else DATASOURCE_NAME
    try:
        source = context.data_sources.get(name)
    except (KeyError, ValueError, LookupError):
        # persist=False: the caller owns caching; GX would persist and never unpersist.
        source = (
            context.data_sources.add_pandas(name)
            if engine == "pandas"
            else context.data_sources.add_spark(name, persist=False)
        )
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION_NAME)
    except (KeyError, LookupError):
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)

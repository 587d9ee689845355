"""Shared command-line plumbing for job entrypoints (``python -m jobs.<stage>``)."""

from __future__ import annotations

import argparse
import logging
import os

from conf.settings import Settings, load_settings

_QUIET = ("py4j", "great_expectations", "airflow", "urllib3", "filelock", "sqlalchemy", "feast")


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """Parser with the options every job shares: config, overrides, dataset."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="conf/<name>.yaml or a path (default $ONEREC_CONFIG or local)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. spark.master=local[4]",
    )
    parser.add_argument("--data", default=None, help="raw dataset folder (overrides source.path)")
    parser.add_argument("--format", default=None, help="loader name for --data (see README: canonical, movielens, ...)")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Build Settings from --config/--set/--data/--format."""
    overrides = list(args.set)
    if getattr(args, "data", None):
        overrides.append(f"source.path={os.path.abspath(args.data)}")
    if getattr(args, "format", None):
        overrides.append(f"source.format={args.format}")
    return load_settings(args.config, overrides)


def setup_logging(level: int = logging.INFO) -> None:
    """One log format for all jobs; chatty libraries turned down."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)

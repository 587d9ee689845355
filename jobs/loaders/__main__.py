"""Inspect a dataset through a loader: row counts, schema errors, event days, sample rows.

python -m jobs.loaders --format movielens_atomic --root /data/ml-100k
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date

from jobs.loaders import LOADERS, get_loader


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments (kept separate so tests and --help share them)."""
    formats = "\n\n".join(loader.describe() for loader in LOADERS.values())
    parser = argparse.ArgumentParser(
        prog="python -m jobs.loaders",
        description="Read a dataset with one loader and print what the pipeline would ingest.",
        epilog=f"formats:\n\n{formats}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--format", required=True, choices=sorted(LOADERS), help="loader name")
    parser.add_argument("--root", required=True, help="dataset folder (amazon_seq also takes a file)")
    parser.add_argument("--ds", type=date.fromisoformat, default=None, help="read one day only (YYYY-MM-DD)")
    parser.add_argument(
        "--base-date",
        type=date.fromisoformat,
        default=None,
        help="day 0 for order-only formats (default: source.base_date of the config)",
    )
    parser.add_argument("--rows", type=int, default=5, help="sample rows to show per table (default 5)")
    parser.add_argument("--config", default=None, help="config name or yaml path (default $ONEREC_CONFIG or local)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from conf import load_settings
    from jobs.spark import get_spark

    cfg = load_settings(args.config)
    spark = get_spark(cfg)
    loader = get_loader(args.format)
    base_date = args.base_date or cfg.source.base_date

    tables = {
        "events": loader.read_events(spark, args.root, args.ds, base_date),
        "items": loader.read_items(spark, args.root),
        "users": loader.read_users(spark, args.root),
    }
    for name, df in tables.items():
        if df is None:
            print(f"{name}: no file")
            continue
        counts = df.selectExpr("count(*) AS n", "count(schema_error) AS errors").first()
        print(f"{name}: {counts['n']} rows, {counts['errors']} with schema_error")
        df.show(args.rows, truncate=60, vertical=False)
        errors = df.where("schema_error IS NOT NULL").groupBy("schema_error").count().orderBy("count", ascending=False)
        if counts["errors"]:
            errors.show(args.rows, truncate=100)
    days = loader.event_dates(spark, args.root, base_date)
    if days:
        print(f"event days: {len(days)}, {days[0].isoformat()} .. {days[-1].isoformat()}")
    else:
        print("event days: none")
    return 0


if __name__ == "__main__":
    sys.exit(main())

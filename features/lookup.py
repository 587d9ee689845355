"""Print what the model would see for a user or an item, read from the online store.

    python -m features.lookup --user 42
    python -m features.lookup --item i7 [--config cluster] [--set home=/path]

Users: the features the model is served (``model.pathways``: ``onerec_serve_v3``, its four pathways); items: ``onerec_item_v1`` (content, semantic ID
and statistics; an item can be known by some views and not others). One aligned
``key : value`` line per feature; sequences show their ends and their length.
Exit code 0 when found, 1 when the id has no features online, 2 when the store has
not been applied. Not a definition module: listed in ``.feastignore``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

from jobs.cli import base_parser, settings_from_args, setup_logging

SERVE_SERVICE = "onerec_serve_v1"
ITEM_SERVICE = "onerec_item_v1"


def shorten(value: Any, head: int = 3, tail: int = 5) -> str:
    """A feature value on one line: lists longer than head+tail show their ends and a count."""
    if isinstance(value, list):
        items = [str(v) for v in value]
        if len(items) > head + tail:
            items = [*items[:head], "...", *items[-tail:]]
        return f"[{', '.join(items)}] ({len(value)} item{'' if len(value) == 1 else 's'})"
    return "null" if value is None else str(value)


def render(title: str, values: dict[str, Any], as_of: int | None) -> str:
    """``title`` then aligned ``name : value`` lines, in the order given."""
    when = f", as of {datetime.fromtimestamp(as_of, UTC):%Y-%m-%d %H:%M} UTC" if as_of else ""
    width = max(len(k) for k in values)
    lines = [f"{title}{when}"] + [f"  {k.ljust(width)} : {shorten(v)}" for k, v in values.items()]
    return "\n".join(lines)


def fetch(
    store, key: str, entity_id: str, user_service: str = SERVE_SERVICE
) -> tuple[dict[str, Any], int | None] | None:
    """Online features of one entity (``key`` = ``user_id`` or ``item_id``); None when it has none."""
    features: Any = store.get_feature_service(user_service if key == "user_id" else ITEM_SERVICE)
    order = [f.name for p in features.feature_view_projections for f in p.features]
    row = store.get_online_features(features=features, entity_rows=[{key: entity_id}]).to_dict(
        include_event_timestamps=True
    )
    stamps = [v[0] for k, v in row.items() if k.endswith("__ts") and v[0]]
    if not stamps:
        return None
    values = {name: row[name][0] for name in order}  # declared order, not the response's
    return values, max(stamps)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="user id (string)")
    who.add_argument("--item", help="item id (string)")
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING)  # a tool for people: its output is the print below
    from feast.errors import FeastObjectNotFoundException

    from jobs.feature_store import get_store

    cfg = settings_from_args(args)
    key, kind, entity_id = ("user_id", "user", args.user) if args.user is not None else ("item_id", "item", args.item)
    store = get_store(cfg)
    p = cfg.model.pathways
    user_service = p.serve_service if p.from_feature_store else SERVE_SERVICE
    try:
        found = fetch(store, key, entity_id, user_service)
    except FeastObjectNotFoundException as err:
        print(f"the feature store is not set up ({err}); run: python -m jobs.feature_store apply", file=sys.stderr)
        return 2
    except Exception as err:  # unreachable store (Redis down, unreadable file): a message, not a traceback
        print(f"cannot read the {cfg.feast.online_store} online store: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if found is None:
        reason = "never active, or not materialised yet" if kind == "user" else "unknown, or not materialised yet"
        print(f"{kind} {entity_id!r} has no features online ({reason})", file=sys.stderr)
        return 1
    values, as_of = found
    source = user_service if kind == "user" else ITEM_SERVICE
    print(render(f"{kind} {entity_id!r} ({source}, {cfg.feast.online_store})", values, as_of))
    return 0


if __name__ == "__main__":
    sys.exit(main())

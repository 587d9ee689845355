"""The Jinja2 environment of the HTML reports: templates in ``jobs/templates/``, autoescape on.

Every value a template prints is escaped by Jinja2 (no hand-made ``html.escape``); the
pieces one template hands to another are wrapped in ``Markup`` by :func:`render`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent / "templates"


def fmt(value: Any, pattern: str = "{:.4f}") -> str:
    """Numbers by ``pattern`` (ints and floats), None as '-', anything else as text."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    return pattern.format(value) if isinstance(value, int | float) else str(value)


@cache
def environment() -> Environment:
    """The shared environment (autoescape for .html.j2; ``fmt`` and ``basename`` filters)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters["fmt"] = fmt
    env.filters["basename"] = lambda path: Path(str(path)).name
    return env


def render(template: str, **context: Any) -> Markup:
    """``template`` rendered with ``context``; the result is safe to embed in another template."""
    return Markup(environment().get_template(template).render(**context))

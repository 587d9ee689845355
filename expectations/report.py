"""The plain-Python outcome of a validation: no GX types leak past this module.

A :class:`ValidationReport` is JSON-friendly (``to_dict``) so Airflow can push it
to XCom. Each failure is a dict ``{expectation, column, severity, observed,
expected}``: ``observed`` holds GX's evidence (unexpected count and a few
unexpected values, or the observed value) plus ``rows``, the keys of a few failing
rows; ``expected`` holds the expectation's parameters. :class:`DataQualityError`
is raised by ``expectations.validate`` when a critical expectation fails; its
message names the suite, ds, column(s), expectation and evidence.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypedDict

CRITICAL = "critical"  # downstream results would be wrong: stop the run
WARNING = "warning"  # worth a look; logged, never raised
SEVERITIES = (CRITICAL, WARNING)
# GX result keys worth carrying; the rest (element counts, percents of non-missing...) is noise here.
_OBSERVED_KEYS = (
    "observed_value",
    "unexpected_count",
    "unexpected_percent",
    "partial_unexpected_list",
    "details",
)
_NOT_PARAMETERS = {"column", "column_list", "column_A", "column_B", "batch_id", "result_format"}
_EXAMPLES = 5
_MAX_PARAM_CHARS = 60


class Failure(TypedDict):
    expectation: str  # GX type, e.g. "expect_column_values_to_be_between"
    column: str | None  # "a" or "a, b" for pair/compound expectations; None for table-level ones
    severity: str  # "critical" | "warning"
    observed: dict[str, Any]
    expected: dict[str, Any]


def days_label(ds: date, since: date | None = None) -> str:
    """``2026-10-03``, or ``2026-10-01..2026-10-03`` when a range ``since``..``ds`` was validated."""
    return f"{since.isoformat()}..{ds.isoformat()}" if since and since < ds else ds.isoformat()


@dataclass
class ValidationReport:
    """What one checkpoint run found. ``success`` is GX's: every expectation met, warnings included."""

    table: str
    suite: str
    ds: date | None
    success: bool
    row_count: int
    failures: list[Failure] = field(default_factory=list)
    data_docs_path: str | None = None
    engine: str = "spark"  # GX execution engine the suite ran on (``pandas`` for small partitions)
    since: date | None = None  # first day of a validated range (a bulk backfill's), else one day

    @property
    def critical(self) -> list[Failure]:
        return [f for f in self.failures if f["severity"] == CRITICAL]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f["severity"] != CRITICAL]

    @property
    def where(self) -> str:
        """``bronze_events ds=2026-10-03`` (``ds=2026-10-01..2026-10-03`` for a range, or ``(whole table)``)."""
        return f"{self.suite} ds={days_label(self.ds, self.since)}" if self.ds else f"{self.suite} (whole table)"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ds"] = self.ds.isoformat() if self.ds else None
        out["since"] = self.since.isoformat() if self.since else None
        return out

    def summary(self) -> str:
        """Multi-line human summary (the CLI prints it), from ``templates/summary.txt.j2``."""
        state = "PASSED" if self.success else ("FAILED" if self.critical else "PASSED with warnings")
        failures = [{"severity": f["severity"], "text": describe(f)} for f in self.failures]
        return _template("summary.txt.j2").render(where=self.where, state=state, row_count=self.row_count,
                                                  failures=failures, data_docs_path=self.data_docs_path).rstrip("\n")  # fmt: skip


class DataQualityError(Exception):
    """A critical expectation failed; ``report`` holds every failure (warnings included)."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(f"{report.where}: " + "; ".join(describe(f) for f in report.critical))


@functools.cache
def _environment():
    """Jinja2 over ``templates/`` beside this module; HTML templates autoescaped, text ones as written."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), trim_blocks=True,
                       autoescape=select_autoescape(["html", "html.j2"]), undefined=StrictUndefined)  # fmt: skip


def _template(name: str):
    return _environment().get_template(name)


def describe(failure: Failure) -> str:
    """``column play_seconds expect_column_values_to_be_between failed: 3 unexpected values, e.g. [-5.0]``."""
    column = failure["column"]
    target = "table" if column is None else (f"columns {column}" if ", " in column else f"column {column}")
    # Scalars and short lists only: a 20-name column_set would drown the evidence.
    shown = {k: v for k, v in failure["expected"].items() if v is not None and len(repr(v)) <= _MAX_PARAM_CHARS}
    expected = ", ".join(f"{k}={v}" for k, v in shown.items())
    suffix = f" (expected {expected})" if expected else ""
    return f"{target} {failure['expectation']} failed: {_evidence(failure['observed'])}{suffix}"


def _evidence(observed: dict[str, Any]) -> str:
    if "exception" in observed:
        return f"raised {observed['exception']}"
    parts = []
    count = observed.get("unexpected_count")
    if count is not None:
        parts.append(f"{count} unexpected value{'' if count == 1 else 's'}")
        examples = observed.get("partial_unexpected_list") or []
        if examples:
            parts.append(f"e.g. {_short(examples)}")
        rows = [" ".join(f"{k}={v}" for k, v in row.items()) for row in observed.get("rows") or []]
        if rows:
            more = f" +{len(rows) - _EXAMPLES} more" if len(rows) > _EXAMPLES else ""
            parts.append(f"rows [{'; '.join(rows[:_EXAMPLES])}{more}]")
    mismatched = (observed.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict):
        parts += [f"{k} {v}" for k, v in mismatched.items()]
    if not parts and "observed_value" in observed:
        parts.append(f"observed {observed['observed_value']}")
    return ", ".join(parts) or "no details"


def _short(values: list[Any]) -> str:
    more = f" +{len(values) - _EXAMPLES} more" if len(values) > _EXAMPLES else ""
    return f"{values[:_EXAMPLES]}{more}"


def failures_from(validation_result: Any) -> list[Failure]:
    """Failed expectations of a GX ``ExpectationSuiteValidationResult`` as :class:`Failure` dicts.

    An expectation without a severity tag counts as critical (fail closed). Table-level
    failures come first: a missing column explains the column failures after it.
    """
    out: list[Failure] = []
    # GX returns results in its own order; list table-level ones (column set, row count) first.
    results = sorted(validation_result.results, key=lambda r: _columns(r.expectation_config.kwargs) is not None)
    for result in results:
        if result.success:
            continue
        config = result.expectation_config
        kwargs = dict(config.kwargs)
        observed = {k: result.result[k] for k in _OBSERVED_KEYS if k in (result.result or {})}
        message = _exception_message(result.exception_info or {})
        if message:
            observed["exception"] = message
        out.append(
            Failure(
                expectation=config.type,
                column=_columns(kwargs),
                severity=str((config.meta or {}).get("severity", CRITICAL)),
                observed=observed,
                expected={k: v for k, v in kwargs.items() if k not in _NOT_PARAMETERS},
            )
        )
    return out


def _exception_message(info: dict[str, Any]) -> str | None:
    """GX puts one info dict on the result, or one per failed metric keyed by metric id."""
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    return "; ".join(str(m) for m in messages) or None


def _columns(kwargs: dict[str, Any]) -> str | None:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_list" in kwargs:
        return ", ".join(kwargs["column_list"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return None

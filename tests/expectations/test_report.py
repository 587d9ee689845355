"""The validation summary, rendered from its template (expectations/templates/summary.txt.j2)."""

from __future__ import annotations

from datetime import date

from expectations.report import ValidationReport

BETWEEN = {"expectation": "expect_column_values_to_be_between", "column": "play_seconds", "severity": "critical",
           "observed": {"unexpected_count": 3, "partial_unexpected_list": [-5.0]}, "expected": {"min_value": 0}}  # fmt: skip
ROWS = {"expectation": "expect_table_row_count_to_be_between", "column": None, "severity": "warning",
        "observed": {"observed_value": 0}, "expected": {"min_value": 1}}  # fmt: skip


def test_summary_lines():
    failed = ValidationReport(
        "events", "bronze_events", date(2026, 10, 3), False, 10, [BETWEEN, ROWS], "docs/index.html"
    )
    assert failed.summary().splitlines() == [
        "bronze_events ds=2026-10-03: FAILED (10 rows)",
        "  [critical] column play_seconds expect_column_values_to_be_between failed: 3 unexpected values, "
        "e.g. [-5.0] (expected min_value=0)",
        "  [warning] table expect_table_row_count_to_be_between failed: observed 0 (expected min_value=1)",
        "  Data Docs: docs/index.html",
    ]
    warned = ValidationReport("events", "bronze_events", None, False, 0, [ROWS])
    assert warned.summary().splitlines()[0] == "bronze_events (whole table): PASSED with warnings (0 rows)"
    assert ValidationReport("events", "s", None, True, 5).summary() == "s (whole table): PASSED (5 rows)"


def test_text_is_not_html_escaped():
    """A text template: values such as ``<`` stay as they are (HTML templates are the escaped ones)."""
    odd = {**ROWS, "observed": {"observed_value": "<none> & 'x'"}}
    assert "observed <none> & 'x'" in ValidationReport("t", "s", None, False, 0, [odd]).summary()

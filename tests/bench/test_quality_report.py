"""bench/quality_report.py's report.html, rendered from templates/quality_report.html.j2 (autoescaped)."""

from __future__ import annotations

import re

from bench.quality_report import _html, published

METRICS = {
    "dataset": "beauty<script>alert(1)</script>", "protocol": "leave-one-out & full ranking", "profile": "quick",
    "device": "cpu", "wall_s": 12.5, "data": {"users": 80},
    "onerec": {"recall@5": 0.1, "ndcg@5": 0.05, "recall@10": 0.2, "ndcg@10": 0.1, "legal_rate": 1.0,
               "coverage@10": 0.3, "wall_s": 3.2},
    "onerec_item_head_rerank": {"recall@5": 0.1, "ndcg@5": 0.05, "recall@10": 0.19, "ndcg@10": 0.09,
                                "label": "HYBRID: <rerank>"},
    "onerec_candidates": {"sasrec": {"valid": {"recall@10": 0.3, "ndcg@10": 0.2}, "codes": 4, "wall_s": 5}},
    "stages": {"ingest": 1.5}, "published": published("beauty"),
}  # fmt: skip


def test_report_rows_and_escaping():
    page = _html(METRICS, "QUJD")
    assert "<script>" not in page and "beauty&lt;script&gt;" in page  # names from files are escaped
    rows = re.findall(r"<tr(?: class=pub)?><td>([^<]+)</td>((?:<td>[^<]*</td>)+)</tr>", page)
    cells = {name: re.findall(r"<td>([^<]*)</td>", rest) for name, rest in rows}
    assert cells["onerec"] == ["0.1000", "0.0500", "0.2000", "0.1000", "1.0000", "0.3000", "3.2"]
    assert cells["onerec_item_head_rerank (HYBRID: &lt;rerank&gt;)"][2] == "0.1900"
    assert cells["tiger (published)"][2] == "0.0648"
    assert cells["sasrec"] == ["0.3000", "0.2000", "4", "5"]  # the candidates table
    assert cells["ingest"] == ["1.5"]
    assert 'alt="validation curves" src="data:image/png;base64,QUJD"' in page
    assert "validation curves" not in _html(METRICS, None)

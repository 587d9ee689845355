"""bench.serve: the load generator reports sane percentiles against the real app on loopback (synthetic model)."""

import json


def test_serve_bench_synthetic(tmp_path):
    from bench.serve import main

    out = tmp_path / "serve.json"
    result = main(["--synthetic", "--requests", "40", "--concurrency", "2", "--users", "20", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["errors"] == 0 and result["requests"] == 40
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["requests_per_s"] > 0
    assert result["cold_start_answers"] == 4  # --cold-share 0.1

"""jobs.loaders._screen: raw files are untrusted; each bad kind is named, good ones pass (no Spark)."""

from __future__ import annotations

import bz2
import gzip

from jobs.loaders._screen import problem

GOOD = b"user_id,item_id,timestamp\nu1,i1,2026-10-01T00:00:00Z\n"


def test_good_files_pass(tmp_path):
    (tmp_path / "a.csv").write_bytes(GOOD)
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(GOOD))
    (tmp_path / "a.csv.bz2").write_bytes(bz2.compress(GOOD))
    (tmp_path / "utf8.csv").write_bytes("user_id,title\nu1,café ☕\n".encode())
    for name in ("a.csv", "a.csv.gz", "a.csv.bz2", "utf8.csv"):
        assert problem(tmp_path / name, tmp_path, "csv") is None, name


def test_a_character_cut_at_the_sniff_boundary_is_not_an_encoding_error(tmp_path):
    from jobs.loaders import _screen

    text = ("é" * (_screen.SNIFF_BYTES // 2 + 7)).encode()  # 2-byte chars; the sniff ends mid-character
    (tmp_path / "long.csv").write_bytes(b"x" + text)
    assert problem(tmp_path / "long.csv", tmp_path, "csv") is None


def test_each_bad_kind_is_named(tmp_path):
    cases = {
        "garbage.csv": (bytes(range(256)) * 8, "binary content"),
        "latin1.csv": (b"user_id,title\nu1,caf\xe9\n", "not UTF-8"),
        "utf16.jsonl": ('{"user_id": "u1"}\n'.encode("utf-16"), "binary content"),
        "cut.csv.gz": (gzip.compress(GOOD * 500)[:100], "truncated"),
        "bad.csv.bz2": (b"BZh9garbage", "corrupt"),
        "fake.parquet": (b"PAR1 but not really", "not a parquet file"),
    }
    for name, (content, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    for name, (_, words) in cases.items():
        kind = "parquet" if name.endswith(".parquet") else "csv"
        found = problem(tmp_path / name, tmp_path, kind)
        assert found and words in found, (name, found)


def test_paths_may_not_leave_the_raw_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside.csv"
    root.mkdir()
    outside.write_bytes(GOOD)
    (root / "link.csv").symlink_to(outside)
    (root / "dangling.csv").symlink_to(tmp_path / "gone.csv")
    assert "outside the raw root" in problem(root / "link.csv", root, "csv")
    assert "cannot resolve" in problem(root / "dangling.csv", root, "csv")
    (root / "sub").mkdir()
    (root / "sub" / "ok.csv").write_bytes(GOOD)
    assert problem(root / "sub" / ".." / "sub" / "ok.csv", root, "csv") is None


def test_size_limit(tmp_path):
    (tmp_path / "big.csv").write_bytes(GOOD * 10)
    assert "over the" in problem(tmp_path / "big.csv", tmp_path, "csv", max_bytes=100)

"""Exact line numbers from Spark's text scan, whatever the split into tasks."""

from __future__ import annotations

from jobs.loaders._delimited import TSV, count_error, delimited_rows, read_header, unique_names
from jobs.loaders._lines import decoded_lines, drop_internal, numbered_lines

from .conftest import collect, write


def test_numbering_is_exact_across_many_blocks_and_files(spark, tmp_path, small_splits):
    a = [f"a line {i:03d}" for i in range(1, 41)]
    a[9] = ""  # a blank line still counts as a line
    b = [f"b{i}" for i in range(1, 8)]
    pa = write(tmp_path / "dir with space" / "a #1.txt", "\n".join(a) + "\n")
    pb = write(tmp_path / "b.txt", "\r\n".join(b))  # CRLF, no final newline
    df = numbered_lines(spark, [str(pa), str(pb)])
    assert df.rdd.getNumPartitions() > 4  # the scan really is split
    rows = collect(drop_internal(df))
    got = {(r["source_file"], r["source_line"]): r["raw"] for r in rows}
    want = {(str(pa), i + 1): t for i, t in enumerate(a)} | {(str(pb), i + 1): t for i, t in enumerate(b)}
    assert got == want


def test_decoded_lines_reads_latin1(spark, tmp_path):
    path = write(tmp_path / "x.txt", "caf\xe9\nna\xefve\n", encoding="latin-1")
    rows = collect(decoded_lines(spark, str(path), "ISO-8859-1"))
    assert [(r["source_line"], r["raw"]) for r in rows] == [(1, "café"), (2, "naïve"), (3, "")]


def test_header_names_are_cleaned(tmp_path):
    path = write(tmp_path / "h.tsv", "\ufeffa\t\tb\ta\n1\t2\t3\t4\n")
    assert read_header(path, TSV) == ["a", "_c1", "b", "a_2"]
    assert unique_names(["x", "x", "x"]) == ["x", "x_2", "x_3"]


def test_split_fields_counts_fields(spark, tmp_path):
    path = write(tmp_path / "d.tsv", "1\t2\t3\n1\t\t3\n1\t2\n\n1\t2\t3\t4\n")
    rows = delimited_rows(spark, [str(path)], ["a", "b", "c"], TSV, header=False)
    out = collect(rows.select("source_file", "source_line", "_fields.*", count_error(3).alias("e")))
    assert [(r["source_line"], r["a"], r["b"], r["c"], r["e"]) for r in out] == [
        (1, "1", "2", "3", None),
        (2, "1", None, "3", None),  # an empty field is null
        (3, "1", "2", None, "line has 2 fields, expected 3"),
        (5, "1", "2", "3", "line has 4 fields, expected 3"),  # the blank line 4 is no record
    ]

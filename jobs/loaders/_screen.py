"""Raw files are untrusted: screen each one before Spark opens it.

A file that fails a check is not read at all; it becomes one quarantine row
(``source_line`` 0, ``schema_error`` = ``unreadable file: <why>``) so the day's
books still balance and the rest of the day loads. The checks:

* **inside the raw root**: the resolved path (symlinks followed) stays under the
  configured root, so a link in a landing folder cannot pull in ``/etc/passwd``;
* **a regular file of bounded size** (``max_bytes``);
* **compressed files are whole**: ``.gz``/``.bz2`` are decompressed to the end once on
  the driver (a truncated upload otherwise fails the Spark job of the whole day);
* **text is text**: the first 64 KiB (after decompression) hold no NUL byte and are
  valid UTF-8 (binary garbage, UTF-16, Latin-1 files are turned away, not loaded as
  mojibake; later bytes are only checked by the parsers);
* **parquet has its magic** at both ends (``PAR1``).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from jobs.raw_contract import raw_schema

SNIFF_BYTES = 64 * 1024
# Larger than any single landing file we expect; a bigger one is a mistake (or an attack).
MAX_FILE_BYTES = 16 * 1024**3
UNREADABLE = "unreadable file: "


def _open_packed(path: Path):
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    return None


def _text_problem(sample: bytes) -> str | None:
    if b"\x00" in sample:
        return "binary content (NUL bytes), not text"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=False)  # a character cut at the sample's end is fine
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (byte {exc.start}: {sample[exc.start : exc.start + 4]!r}); wrong encoding?"
    return None


def _packed_problem(path: Path) -> tuple[str | None, bytes]:
    """Decompress to the end; (problem, first bytes)."""
    head = b""
    try:
        with _open_packed(path) as fh:
            while chunk := fh.read(1 << 20):
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
    except (EOFError, OSError, zlib.error, ValueError) as exc:
        return f"corrupt or truncated {path.suffix[1:]} stream ({exc})", head
    return None, head


def problem(path: Path, root: Path, kind: str, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """Why ``path`` must not be read (None when it may). ``kind``: csv | json | parquet."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # dangling link, loop
        return f"cannot resolve path ({exc})"
    if not real.is_relative_to(root.resolve()):
        return f"resolves outside the raw root ({real})"
    if not real.is_file():
        return "not a regular file"
    size = real.stat().st_size
    if size > max_bytes:
        return f"{size} bytes, over the {max_bytes}-byte limit"
    if kind == "parquet":
        with open(real, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(size - 4, 0))
            tail = fh.read(4)
        return None if size >= 12 and head == tail == b"PAR1" else "not a parquet file (no PAR1 magic)"
    if _open_packed(real) is not None:
        issue, sample = _packed_problem(real)
        if issue:
            return issue
    else:
        with open(real, "rb") as fh:
            sample = fh.read(SNIFF_BYTES)
    return _text_problem(sample)


def screen(files: Sequence[Path], root: Path, kind_of) -> tuple[list[Path], dict[Path, str]]:
    """Split ``files`` into (readable, {rejected: reason}); ``kind_of(path)`` gives the kind."""
    ok, rejected = [], {}
    for path in files:
        issue = problem(path, root, kind_of(path) or "")
        if issue:
            rejected[path] = UNREADABLE + issue
        else:
            ok.append(path)
    return ok, rejected


def rejected_rows(spark: SparkSession, rejected: dict[Path, str], fields: tuple[str, ...]) -> DataFrame:
    """One contract row per rejected file (line 0, no raw text, the reason as schema_error)."""
    rows = [(*([None] * len(fields)), str(path), 0, None, reason) for path, reason in sorted(rejected.items())]
    return spark.createDataFrame(rows, raw_schema(fields))

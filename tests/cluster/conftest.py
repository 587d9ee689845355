"""The loopback cluster test runs last: it is the slowest, and its servers need the machine to themselves."""

from __future__ import annotations


def pytest_collection_modifyitems(items):
    """Move tests/cluster/ to the end of the run (pytest calls this hook with every collected item)."""
    cluster = [i for i in items if "tests/cluster/" in str(i.path)]
    if cluster:
        rest = [i for i in items if "tests/cluster/" not in str(i.path)]
        items[:] = rest + cluster

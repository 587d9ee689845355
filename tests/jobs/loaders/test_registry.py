"""The loader registry and the inspection CLI."""

from __future__ import annotations

import pytest

from jobs.loaders import LOADERS, Loader, get_loader
from jobs.loaders.__main__ import build_parser, main

from .conftest import write

NAMES = {"canonical", "movielens", "movielens_atomic", "amazon_seq", "amazon_json", "kuairand"}


def test_registry_names_and_interface():
    assert set(LOADERS) == NAMES
    for name, loader in LOADERS.items():
        assert loader.name == name
        assert isinstance(loader, Loader)
        assert name in loader.describe()


def test_unknown_loader_lists_known_names():
    with pytest.raises(ValueError, match="unknown loader 'csvx'") as err:
        get_loader("csvx")
    for name in NAMES:
        assert name in str(err.value)


def test_cli_help_lists_formats(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--format" in out and "u.data" in out and "log_*.csv" in out


def test_cli_prints_counts_and_days(spark, tmp_path, capsys):
    write(tmp_path / "s.txt", "1 10 11\n2\n")
    assert main(["--format", "amazon_seq", "--root", str(tmp_path), "--base-date", "2021-03-01", "--rows", "2"]) == 0
    out = capsys.readouterr().out
    assert "events: 3 rows, 1 with schema_error" in out
    assert "items: no file" in out and "users: no file" in out
    assert "event days: 2, 2021-03-01 .. 2021-03-02" in out

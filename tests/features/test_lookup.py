"""python -m features.lookup: readable online features, a clear message for unknown ids."""

from __future__ import annotations

from features.lookup import main, shorten


def _args(lake, *extra: str) -> list[str]:
    return ["--config", "tiny", "--set", f"home={lake.cfg.home}", *extra]


def test_shorten_keeps_the_ends_and_counts():
    assert shorten([f"i{n}" for n in range(20)]) == "[i0, i1, i2, ..., i15, i16, i17, i18, i19] (20 items)"
    assert shorten(["a"]) == "[a] (1 item)"
    assert shorten(None) == "null"


def test_lookup_prints_a_known_user_and_item(lake, capsys):
    assert main(_args(lake, "--user", "u1")) == 0
    out = capsys.readouterr().out
    assert out.startswith("user 'u1' (onerec_serve_v3, sqlite), as of 2026-10-03 00:00 UTC")
    assert "  n_events               : 4\n" in out
    assert "  item_ids               : [i2, i5] (2 items)\n" in out  # the lifelong representatives
    assert "  short_rating           : [nan, 4.0, 5.0] (3 items)\n" in out  # a missing rating stays missing
    assert main(_args(lake, "--item", "i1")) == 0
    out = capsys.readouterr().out
    assert out.startswith("item 'i1' (onerec_item_v1, sqlite)")
    assert "  title            : Jazz, remastered\n" in out
    assert "  codes            : [1, 0, 2, 0] (4 items)\n" in out
    assert "  n_users          : 3\n" in out


def test_lookup_unknown_user_is_a_message_and_exit_1(lake, capsys):
    assert main(_args(lake, "--user", "nobody")) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "user 'nobody' has no features online (never active, or not materialised yet)"
    assert "Traceback" not in captured.out + captured.err

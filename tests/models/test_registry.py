"""Model registry: versions, aliases, rollback, history; a kill mid-promotion keeps the old champion."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from models.registry import CRASH_ENV, ModelRegistry, registry_for

REPO = Path(__file__).resolve().parents[2]


def _ckpt(tmp_path: Path, name: str, payload: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "model.safetensors").write_text(payload)
    (d / "config.json").write_text("{}")
    return d


def test_register_alias_rollback_history(tmp_path):
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.get() is None and reg.history() == []
    v1 = reg.register(_ckpt(tmp_path, "a", "one"), {"ndcg@10": 0.1}, {"codebook": "v1"})
    v2 = reg.register(_ckpt(tmp_path, "b", "two"), {"ndcg@10": 0.2}, {"codebook": "v1"})
    assert (v1, v2) == ("v0001", "v0002")
    assert reg.register(_ckpt(tmp_path, "c", "two"), {}, {}) == v2  # same files: same version
    reg.set_alias("champion", v1, "first")
    reg.set_alias("champion", v2, "better")
    champ = reg.get("champion")
    assert champ.version == v2 and champ.metrics == {"ndcg@10": 0.2} and champ.versions == {"codebook": "v1"}
    assert (champ.path / "model.safetensors").read_text() == "two"
    assert reg.rollback() == v1 and reg.get().version == v1
    with pytest.raises(LookupError):
        reg.rollback()
    events = [(h["event"], h.get("version")) for h in reg.history()]
    assert events == [("register", v1), ("register", v2), ("set_alias", v1), ("set_alias", v2), ("rollback", v1)]
    assert [h.get("reason") for h in reg.history()][2:] == ["first", "better", f"rollback from {v2}"]


def test_registry_for_settings(tiny_cfg):
    reg = registry_for(tiny_cfg)
    assert reg.root.is_absolute() and reg.root.is_relative_to(Path(tiny_cfg.resolve("{home}")))


PROMOTE = textwrap.dedent(
    """
    import sys
    from models.registry import ModelRegistry
    reg = ModelRegistry(sys.argv[1])
    new = reg.register(sys.argv[2], {"ndcg@10": 0.9}, {})
    reg.set_alias("champion", new, "promote")
    print("switched")
    """
)


@pytest.mark.parametrize("point", ["alias_temp_written", "version_copied"])
def test_kill_during_promotion_keeps_old_champion(tmp_path, point):
    reg = ModelRegistry(tmp_path / "reg")
    old = reg.register(_ckpt(tmp_path, "old", "old"), {"ndcg@10": 0.1}, {})
    reg.set_alias("champion", old, "first")
    env = {**os.environ, CRASH_ENV: point, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROMOTE, str(reg.root), str(_ckpt(tmp_path, "new", "new"))],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == -9 and "switched" not in proc.stdout  # SIGKILLed at the marked point
    fresh = ModelRegistry(reg.root)
    assert fresh.get("champion").version == old
    assert (fresh.get("champion").path / "model.safetensors").read_text() == "old"
    # Leftovers of the dead process never look like a version or an alias, and the next promotion works.
    assert fresh._version_names() == ([old] if point == "version_copied" else [old, "v0002"])
    new = fresh.register(_ckpt(tmp_path, "newer", "newer"), {}, {})
    fresh.set_alias("champion", new, "after crash")
    assert fresh.get().version == new and fresh.rollback() == old

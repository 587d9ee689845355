"""Model registry on MLflow: versions, aliases, rollback, history; a kill mid-promotion keeps the old
champion; serving finds the champion by alias. One SQLite tracking store for the module (MLflow
builds its tables once), a registered model per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from models.registry import CRASH_ENV, ModelRegistry, registry_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root}/mlflow.db", str(root / "artifacts")


def _registry(store, name: str) -> ModelRegistry:
    return ModelRegistry(name, store[0], store[1], cache_dir=Path(store[1]).parent / "cache")


def _ckpt(tmp_path: Path, name: str, payload: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "model.safetensors").write_text(payload)
    (d / "config.json").write_text(json.dumps({"created_at": name}))  # a timestamp: ignored by the digest
    return d


def test_register_alias_rollback_history(store, tmp_path, capfd):
    reg = _registry(store, "gen_basic")  # the module's first use: MLflow creates its tables here
    assert reg.get() is None and reg.history() == [] and reg.versions() == []
    v1 = reg.register(_ckpt(tmp_path, "a", "one"), {"ndcg@10": 0.1}, {"codebook": "v1", "ds": "2026-10-01"})
    v2 = reg.register(_ckpt(tmp_path, "b", "two"), {"ndcg@10": 0.2}, {"codebook": "v1", "ds": "2026-10-02"})
    assert (v1, v2) == ("1", "2")
    assert reg.register(_ckpt(tmp_path, "c", "two"), {}, {}) == v2  # same files: same version
    assert reg.versions() == [v1, v2]
    reg.set_alias("champion", v1, "first")
    reg.set_alias("champion", v2, "better")
    reg.set_alias("champion", v2, "again: no change, no history line")
    champ = reg.get("champion")
    assert champ.version == v2 and champ.metrics == {"ndcg@10": 0.2}
    assert champ.versions == {"codebook": "v1", "ds": "2026-10-02"}
    assert (champ.path / "model.safetensors").read_text() == "two"
    assert reg.rollback() == v1 and reg.get().version == v1
    with pytest.raises(LookupError):
        reg.rollback()
    events = [(h["event"], h.get("version")) for h in reg.history()]
    assert events == [("register", v1), ("register", v2), ("set_alias", v1), ("set_alias", v2), ("rollback", v1)]
    assert [h.get("reason") for h in reg.history()][2:] == ["first", "better", f"rollback from {v2}"]
    # MLflow itself names the version by alias, and its files are the checkpoint's.
    mv = reg.client.get_model_version_by_alias("gen_basic", "champion")
    assert str(mv.version) == v1 and mv.tags["ds"] == "2026-10-01"
    with pytest.raises(KeyError):
        reg.version("99")
    with pytest.raises(ValueError, match="reserved"):  # MLflow reads @latest as "the newest version"
        reg.set_alias("latest", v1, "never an alias")
    out, err = capfd.readouterr()
    assert " INFO " not in out + err, (out + err)[-2000:]  # quiet: no database set-up or "created version" lines


def test_rollback_walks_back_through_several_promotions(store, tmp_path):
    reg = _registry(store, "gen_stack")
    v = [reg.register(_ckpt(tmp_path, f"m{i}", f"w{i}"), {}, {}) for i in range(3)]
    for version in v:
        reg.set_alias("champion", version, "promote")
    assert reg.rollback() == v[1] and reg.rollback() == v[0]
    reg.set_alias("champion", v[2], "forward again")
    assert reg.rollback() == v[0]  # the stack after the two rollbacks was [v0]; v2 sat on top of it


def test_registry_for_settings(tiny_cfg):
    reg = registry_for(tiny_cfg)
    home = Path(tiny_cfg.resolve("{home}"))
    assert reg.name == tiny_cfg.mlflow.generator_model and reg.uri() == f"models:/{reg.name}@champion"
    assert reg.tracking_uri.startswith("sqlite:///") and Path(
        reg.tracking_uri.removeprefix("sqlite:///")
    ).is_relative_to(home)
    assert registry_for(tiny_cfg, "reward").name == tiny_cfg.mlflow.reward_model != reg.name


PROMOTE = textwrap.dedent(
    """
    import sys
    from models.registry import ModelRegistry
    reg = ModelRegistry(sys.argv[1], sys.argv[2], sys.argv[3])
    new = reg.register(sys.argv[4], {"ndcg@10": 0.9}, {})
    reg.set_alias("champion", new, "promote")
    print("switched")
    """
)


@pytest.mark.parametrize("point", ["artifacts_logged", "alias_recorded"])
def test_kill_during_promotion_keeps_old_champion(store, tmp_path, point):
    name = f"gen_kill_{point}"
    reg = _registry(store, name)
    old = reg.register(_ckpt(tmp_path, "old", "old"), {"ndcg@10": 0.1}, {})
    reg.set_alias("champion", old, "first")
    env = {**os.environ, CRASH_ENV: point, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROMOTE, name, *store, str(_ckpt(tmp_path, "new", "new"))],
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == -9 and "switched" not in proc.stdout, proc.stderr[-2000:]  # SIGKILLed there
    fresh = _registry(store, name)
    assert fresh.get("champion").version == old
    assert (fresh.get("champion").path / "model.safetensors").read_text() == "old"
    # What the dead process left never counts as a version (killed before it existed) or a switch.
    assert fresh.versions() == ([old] if point == "artifacts_logged" else [old, "2"])
    assert [e["event"] for e in fresh.history()] == ["register", "set_alias"] + (
        [] if point == "artifacts_logged" else ["register"]
    )
    new = fresh.register(_ckpt(tmp_path, "newer", "newer"), {}, {})
    fresh.set_alias("champion", new, "after crash")
    assert fresh.get().version == new and fresh.rollback() == old


def test_serving_reads_the_champion_by_alias(store, tiny_cfg, tmp_path, monkeypatch):
    """``serving.recommend.champion_dir`` follows the alias: move it and serving loads the other files."""
    from serving.recommend import champion_dir

    # The module's store and a model of its own: the session's registry belongs to the DAG tests.
    mlflow_cfg = tiny_cfg.mlflow.model_copy(
        update={"tracking_uri": store[0], "artifact_root": store[1], "generator_model": "gen_serving"}
    )
    tiny_cfg = tiny_cfg.model_copy(update={"mlflow": mlflow_cfg})
    reg = registry_for(tiny_cfg)
    a = reg.register(_ckpt(tmp_path, "a", "alpha"), {}, {"ds": "2026-10-01"})
    b = reg.register(_ckpt(tmp_path, "b", "beta"), {}, {"ds": "2026-10-02"})
    with pytest.raises(LookupError, match="@champion is not set"):
        champion_dir(tiny_cfg, None)
    reg.set_alias("champion", a, "first")
    path, version = champion_dir(tiny_cfg, None)
    assert version == a and (path / "model.safetensors").read_text() == "alpha"
    reg.set_alias("champion", b, "second")
    path, version = champion_dir(tiny_cfg, None)
    assert version == b and (path / "model.safetensors").read_text() == "beta"
    # MLflow's own resolution of models:/<name>@champion gives the same files (it reads the process's
    # registry URI, never ./mlflow.db: point it at the store).
    import mlflow.artifacts

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", reg.tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", reg.tracking_uri)

    got = mlflow.artifacts.download_artifacts(artifact_uri=reg.uri(), dst_path=str(tmp_path / "dl"),
                                              tracking_uri=reg.tracking_uri)  # fmt: skip
    assert (Path(got) / "model.safetensors").read_text() == "beta"

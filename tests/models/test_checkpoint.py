"""models.checkpoint: save -> load round trip without pickle, RNG restore, integrity check (< 2 s)."""

from __future__ import annotations

import json
import random
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from models import checkpoint
from models.config import tiny
from models.data import synthetic_batch
from models.onerec import build
from models.sasrec import SASRec

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


pytestmark = pytest.mark.usefixtures("one_thread")


def trained_onerec():
    p = tiny()
    torch.manual_seed(0)
    codes = np.random.default_rng(0).integers(0, 8, (p.onerec.n_items + 1, p.onerec.n_levels))
    model = build(p.onerec, codes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for seed in range(2):
        loss, _ = model(synthetic_batch(p.onerec, codes, 4, seed=seed))
        loss.backward()
        opt.step()
        opt.zero_grad()
    for name, buf in model.named_buffers():
        if name.endswith("expert_bias"):
            buf.copy_(torch.arange(len(buf)) * 0.01)  # routing state must survive the round trip
    return p, model, opt


def test_round_trip_restores_model_optimizer_and_metadata(tmp_path):
    p, model, opt = trained_onerec()
    path = checkpoint.save(tmp_path / "last", model, model_config=p.onerec, optimizer=opt, train_config=p.train,
                           step=2, metrics={"ndcg@10": 0.1}, best_metric=0.1,
                           versions={"data": "d1", "codebook": "c1"})  # fmt: skip
    assert sorted(f.name for f in path.iterdir()) == ["config.json", "model.safetensors", "optimizer.safetensors"]
    cfg = checkpoint.model_config(path)
    assert cfg == p.onerec
    fresh = build(cfg)  # item codes come back from the checkpoint, not from the caller
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    manifest = checkpoint.load(path, fresh, fresh_opt)
    assert manifest["step"] == 2 and manifest["versions"] == {"data": "d1", "codebook": "c1"}
    assert checkpoint.config_from_dict(manifest["train_config"]) == p.train
    a, b = model.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = opt.state_dict(), fresh_opt.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for pid, entry in sa["state"].items():
        assert all(torch.equal(v, sb["state"][pid][k]) for k, v in entry.items())


def test_files_are_safetensors_not_pickle(tmp_path):
    p, model, opt = trained_onerec()
    path = checkpoint.save(tmp_path / "c", model, model_config=p.onerec, optimizer=opt)
    for name in (checkpoint.MODEL_FILE, checkpoint.OPTIM_FILE):
        raw = (path / name).read_bytes()
        assert raw[:2] not in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") and raw[:4] != b"PK\x03\x04"
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n])  # a safetensors file: JSON header, then raw tensor bytes only
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        assert len(raw) == 8 + n + max(ends)
        assert b"torch._utils" not in raw and b"_rebuild_tensor" not in raw and b"cnumpy" not in raw
    json.loads((path / checkpoint.CONFIG_FILE).read_text())


def test_models_never_call_torch_load_unsafely():
    for source in MODELS_DIR.glob("*.py"):
        for call in re.findall(r"torch\.load\([^)]*\)", source.read_text()):
            assert "weights_only=True" in call, f"{source.name}: {call}"
        assert "import pickle" not in source.read_text()


def test_rng_state_round_trip(tmp_path):
    model = SASRec(tiny().sasrec)
    checkpoint.save(tmp_path / "c", model, model_config=model.cfg)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.load(tmp_path / "c", restore_rng=True)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_overwrite_in_place_and_detect_corruption(tmp_path):
    model = SASRec(tiny().sasrec)
    for step in (1, 2):
        checkpoint.save(tmp_path / "c", model, model_config=model.cfg, step=step)
    assert checkpoint.read_manifest(tmp_path / "c")["step"] == 2
    assert sorted(f.name for f in tmp_path.iterdir()) == ["c"]  # no temporary leftovers
    weights = tmp_path / "c" / checkpoint.MODEL_FILE
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        checkpoint.load(tmp_path / "c", SASRec(tiny().sasrec))

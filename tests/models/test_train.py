"""models.train / data / flops: data splits and batches, LR schedule, FLOPs against a hand count
and against torch's counter, and kill-then-resume == uninterrupted (CPU, tiny preset, ~15 s)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from models import data, flops, item_codes
from models.config import SASRecConfig, tiny
from models.onerec import build
from models.sasrec import SASRec
from models.train import lr_at, main

pytestmark = pytest.mark.usefixtures("one_thread")


# --- data ---------------------------------------------------------------------------------------


def test_leave_one_out_from_text(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("a 1 2 3 4\nb 5 6\nc 7 8 9\n")
    loo = data.leave_one_out(data.read_amazon_sequences(path))
    assert loo.users == ["a", "c"] and loo.n_items == 9  # b has < 3 items
    assert loo.train[0].tolist() == [1, 2] and loo.valid_target.tolist() == [3, 8]
    assert loo.test[0].tolist() == [1, 2, 3] and loo.test_target.tolist() == [4, 9]


def test_from_training_examples_matches_the_text_path():
    rows = []
    for user, seq in {"u1": ["x", "y", "z", "w"], "u2": ["y", "x", "v"]}.items():
        for split, offset in (("train", 3), ("valid", 2), ("test", 1)):
            cut = len(seq) - offset
            rows.append({"user_id": user, "split": split, "context_item_ids": seq[:cut],
                         "context_ts": [60 * i for i in range(cut)], "target_item_id": seq[cut],
                         "target_ts": 60 * cut + 600, "protocol": "leave_one_out"})  # fmt: skip
    loo = data.from_training_examples(pd.DataFrame(rows))
    idx = {item: i for i, item in enumerate(loo.item_ids)}
    assert loo.n_items == 5 and loo.item_ids[0] == ""
    assert loo.train[0].tolist() == [idx["x"], idx["y"]]  # train context + train target
    assert loo.valid_target.tolist() == [idx["z"], idx["x"]] and loo.test_target.tolist() == [idx["w"], idx["v"]]
    # Time gaps reach the short-term pathway: the last context item is 10 min old at the test request.
    cfg = dataclasses.replace(tiny().onerec, n_items=5)
    ex = data.eval_examples(loo, "test", cfg)
    batch = data.onerec_batch(ex, [0], cfg, np.zeros((6, 2), dtype=np.int64))
    assert batch["short_gap"][0, -1] == math.floor(math.log2(1 + 10)) and batch["short_gap"][0, 0] == 0


def test_load_data_reads_one_day_of_leave_one_out_through_the_delta_log(tmp_path):
    from deltalake import write_deltalake

    from models.train import load_data

    def rows(ds: str, protocol: str, seq: list[str]) -> list[dict]:
        out = []
        for split, offset in (("train", 3), ("valid", 2), ("test", 1)):
            cut = len(seq) - offset
            out.append({"user_id": "u1", "split": split, "context_item_ids": seq[:cut],
                        "context_ts": [60 * i for i in range(cut)], "target_item_id": seq[cut],
                        "target_ts": 60 * cut, "protocol": protocol, "ds": ds})  # fmt: skip
        return out

    table = tmp_path / "training_examples"
    frame = pd.DataFrame(rows("2026-10-01", "leave_one_out", ["a", "b", "c", "d"])
                         + rows("2026-10-02", "leave_one_out", ["a", "b", "c", "d", "e"])
                         + rows("2026-10-02", "next_day", ["x", "y", "z", "w"]))  # fmt: skip
    write_deltalake(str(table), frame, partition_by=["ds"])
    with pytest.raises(ValueError, match="pick one with --ds"):
        load_data(table)
    loo, version = load_data(table, "2026-10-02")
    assert version == "delta:training_examples@v0 ds=2026-10-02"
    assert sorted(loo.item_ids[1:]) == ["a", "b", "c", "d", "e"]  # next_day rows left out
    assert loo.test_target.tolist() == [loo.item_ids.index("e")]


def test_sasrec_windows_cover_every_target_once():
    seqs = data.Ragged.from_lists([list(range(1, 13)), [5, 6]])
    w = data.sasrec_windows(seqs, max_len=5)
    targets = sorted(int(t) for t in data.sasrec_batch(w, range(len(w)))["target"].ravel() if t)
    assert targets == sorted([*range(2, 13), 6])
    batch = data.sasrec_batch(w, [0])  # the window that ends the first sequence
    assert batch["input"].shape == (1, 5) and batch["input"][0, -1] == 11 and batch["target"][0, -1] == 12


def test_onerec_training_examples_every_position_left_padded():
    loo = data.leave_one_out({"a": [1, 2, 3, 4, 5, 6], "b": [7, 8, 9]})
    cfg = dataclasses.replace(tiny().onerec, n_items=9, short_len=3)
    ex = data.training_examples(loo, cfg)
    assert ex.targets[:, 0].tolist() == [2, 3, 4]  # a's train sequence is 1..4; b's has one item
    codes = np.arange(20).reshape(10, 2) % 8
    batch = data.onerec_batch(ex, [0, 2], cfg, codes)
    assert batch["short_items"].tolist() == [[0, 0, 1], [1, 2, 3]]
    assert batch["target_codes"].tolist() == [codes[2].tolist(), codes[4].tolist()]
    session = data.training_examples(loo, dataclasses.replace(cfg, session_len=2))
    assert session.targets.tolist() == [[2, 3], [3, 4]]


def test_collaborative_codes_are_unique_tuples(sequence_file):
    loo = data.leave_one_out(data.read_amazon_sequences(sequence_file))
    codes, k, dedup = item_codes.collaborative_codes(loo.train, loo.n_items, levels=2, codes_per_level=4, dim=8)
    assert codes.shape == (41, 3) and k == 4 and (codes[0] == 0).all()
    assert len({tuple(c) for c in codes[1:].tolist()}) == 40 and codes[1:, -1].max() + 1 == dedup


# --- schedule and FLOPs ---------------------------------------------------------------------------


def test_lr_warmup_then_cosine():
    tc = dataclasses.replace(tiny().train, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, tc, 110) == pytest.approx(0.1) and lr_at(9, tc, 110) == pytest.approx(1.0)
    assert lr_at(60, tc, 110) == pytest.approx(0.55) and lr_at(110, tc, 110) == pytest.approx(0.1)


def test_sasrec_flops_match_a_hand_count_for_one_layer():
    cfg = SASRecConfig(n_items=9, max_len=5, d_model=8, n_heads=2, n_layers=1, d_ff=16, loss="ce")
    t, d, ff = 5, 8, 16
    qkvo = 4 * (2 * t * d * d)  # 2 FLOPs per multiply-add, per token, per weight
    ffn = 2 * (2 * t * d * ff)
    attn = 2 * (2 * t * t * d)  # Q K^T and A V
    head = 2 * t * d * (9 + 1)  # scores against every item (and padding)
    assert flops.sasrec_forward_flops(cfg, t) == qkvo + ffn + attn + head == 6720
    assert flops.train_flops(6720) == 3 * 6720
    bce = dataclasses.replace(cfg, loss="bce", n_negatives=3)
    assert flops.sasrec_forward_flops(bce, t) == qkvo + ffn + attn + 2 * t * d * 4


@pytest.mark.parametrize("arch", ["encoder_decoder", "lazy_decoder"])
def test_onerec_flops_match_torch_flop_counter(arch):
    cfg = dataclasses.replace(tiny().onerec, architecture=arch, session_len=2, kv_split=2, kv_sets=2)
    codes = np.zeros((cfg.n_items + 1, cfg.n_levels), dtype=np.int64)
    model = build(cfg, codes)
    # The math SDPA backend is plain matmuls, so the counter sees the attention FLOPs too.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(data.synthetic_batch(cfg, codes, 3))
    assert counter.get_total_flops() == 3 * flops.onerec_forward_flops(cfg)


def test_sasrec_flops_match_torch_flop_counter():
    model = SASRec(tiny().sasrec)
    seq = torch.randint(1, 41, (2, 10))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model({"input": seq, "target": seq})
    assert counter.get_total_flops() == 2 * flops.sasrec_forward_flops(model.cfg, 10)


def test_mfu_is_na_on_cpu():
    assert flops.device_peak_flops("cpu", "bf16") is None and flops.mfu(1e12, None) is None
    assert flops.mfu(494.5e12, flops.PEAK_BF16["H100"]) == pytest.approx(0.5)


# --- the training entrypoint -----------------------------------------------------------------------


def run(args, out, *extra):
    return main([*args, "--out", str(out), "--threads", "1", *extra])


@pytest.mark.parametrize("model,extra", [("onerec", []), ("sasrec", ["--loss", "bce"])])
def test_resume_after_a_kill_equals_an_uninterrupted_run(sequence_file, tmp_path, model, extra):
    args = ["--model", model, "--data", str(sequence_file), "--preset", "tiny", "--steps", "16",
            "--eval-every", "8", "--ckpt-every", "8", *extra]  # fmt: skip
    if model == "onerec":
        loo = data.leave_one_out(data.read_amazon_sequences(sequence_file))
        codes = np.zeros((41, 3), dtype=np.int64)
        codes[1:, 0], codes[1:, 1] = np.arange(40) // 8, np.arange(40) % 8
        np.save(tmp_path / "codes.npy", codes)
        assert loo.n_items == 40
        args += ["--codes", str(tmp_path / "codes.npy")]
    whole = run(args, tmp_path / "whole")
    assert run(args, tmp_path / "killed", "--stop-after", "8") == {"stopped_at": 8}
    assert not (tmp_path / "killed" / "metrics.json").exists()
    resumed = run(args, tmp_path / "killed", "--resume")
    a, b = (load_file(str(tmp_path / d / "last" / "model.safetensors")) for d in ("whole", "killed"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    logs = [[json.loads(x) for x in (tmp_path / d / "train_log.jsonl").read_text().splitlines()]
            for d in ("whole", "killed")]  # fmt: skip
    final = [next(r for r in log if r.get("step") == 16 and "loss" in r) for log in logs]
    assert final[0]["loss"] == pytest.approx(final[1]["loss"], rel=1e-5)
    assert whole["test"] == resumed["test"]
    # The test split was scored once, with the checkpoint that was best on validation.
    metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert metrics["valid"]["step"] in (8, 16) and "recall@10" in metrics["test"]
    assert metrics["versions"]["data"].startswith("seq.txt@sha256:")


def test_progress_bar_honours_tqdm_disable_and_other_ranks(monkeypatch):
    from models.train import progress_bar

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert not progress_bar(10, 0, rank=0).disable
    assert progress_bar(10, 0, rank=1).disable
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(10, 0, rank=0).disable

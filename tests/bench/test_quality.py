"""bench.quality --quick: the metrics file with all three models, the HTML report, and text
vs behaviour IDs side by side on an amazon_json dataset (CPU, one thread, ~30 s)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from bench import quality, train
from bench.quality_report import validation_curves

MODELS = ("onerec", "sasrec", "sasrec_bce")
KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core box: tiny matmuls are fastest on one thread
    yield
    torch.set_num_threads(before)


def sequences(n_users: int = 80, n_items: int = 60, seed: int = 0) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    return {str(u): [(int(rng.integers(0, n_items)) + 2 * i) % n_items for i in range(int(rng.integers(5, 12)))]
            for u in range(n_users)}  # fmt: skip


def test_quick_beauty_format_writes_all_three_models(tmp_path):
    seq_file = tmp_path / "data" / "Tiny.txt"
    seq_file.parent.mkdir()
    seq_file.write_text("".join(f"{u} {' '.join(str(i + 1) for i in s)}\n" for u, s in sequences().items()))
    metrics = quality.main(["--data", str(seq_file.parent), "--format", "amazon_seq", "--quick", "--threads", "1",
                            "--name", "tiny-beauty", "--out", str(tmp_path / "out")])  # fmt: skip
    path = tmp_path / "out" / "tiny-beauty" / "metrics.json"
    written = json.loads(path.read_text())
    for model in MODELS:
        assert all(0.0 <= written[model][k] <= 1.0 for k in KEYS), model
        assert written[model]["wall_s"] >= 0
    assert written["onerec"]["legal_rate"] == 1.0 and written["onerec"]["sid_source"] in ("sasrec", "ppmi")
    assert set(written["onerec_candidates"]) == {"sasrec", "ppmi"}
    # the item-head rerank is reported beside the generator's own beam order, both on test
    assert written["onerec"]["item_weight"] == 1.0
    assert all(0.0 <= written["onerec_beam_order"][k] <= 1.0 for k in KEYS)
    assert written["published"]["tiger"]["recall@10"] == 0.0648  # "beauty" in the name
    assert written["data"]["users"] == 80 and metrics["wall_s"] == written["wall_s"]
    page = (path.parent / "report.html").read_text()
    assert "<table>" in page and 'alt="validation curves" src="data:image/png;base64,' in page
    assert {"sasrec_ce", "sasrec_bce", "onerec_sasrec", "onerec_ppmi"} <= set(validation_curves(path.parent / "runs"))


def test_quick_text_and_behaviour_ids_side_by_side(tmp_path):
    root = tmp_path / "sci"
    root.mkdir()
    seqs = sequences(60, 40, seed=1)
    (root / "Sci.inter.json").write_text(json.dumps(seqs))
    words = ["relay", "capacitor", "glove", "pipette", "beaker", "resistor"]
    items = {str(i): {"title": f"{words[i % 6]} {words[(i // 6) % 6]}", "description": "lab part", "brand": "",
                      "categories": f"Science,{words[i % 3]}"} for i in range(40)}  # fmt: skip
    (root / "Sci.item.json").write_text(json.dumps(items))
    seqs_read, texts = quality.load_dataset(root, "amazon_json")
    assert len(seqs_read) == 60 and texts and all(min(s) >= 1 for s in seqs_read.values())
    plan = dataclasses.replace(quality.PLANS["quick"](), sid_sources=("sasrec",))
    metrics = quality.run(root, "amazon_json", plan, name="sci", out_root=tmp_path / "out", ids="both")
    assert {"text", "sasrec"} == set(metrics["onerec_candidates"])
    assert metrics["published"] == {} and all(m in metrics for m in MODELS)
    assert metrics["onerec_text"]["recall@10"] >= 0 and "recall@10" in metrics["onerec_sasrec"]  # side by side


def test_train_bench_quick(tmp_path):
    report = train.main(["--quick", "--threads", "1", "--steps", "2", "--requests", "3", "--out",
                         str(tmp_path / "train.json")])  # fmt: skip
    row = report["train"]["default_encoder_decoder"]
    assert row["tokens_per_s"] > 0 and row["peak_memory_gib"] > 0 and row["mfu"] is None  # no MFU on CPU
    assert set(report["latency"]["default"]) >= {"beam2", "beam5"}
    assert report["latency"]["default"]["beam5"]["p99_ms"] >= report["latency"]["default"]["beam5"]["p50_ms"]


def test_quick_without_the_item_head_reports_the_generator_alone(tmp_path):
    seq_file = tmp_path / "data" / "Tiny.txt"
    seq_file.parent.mkdir()
    seq_file.write_text("".join(f"{u} {' '.join(str(i + 1) for i in s)}\n" for u, s in sequences().items()))
    metrics = quality.main(["--data", str(seq_file.parent), "--quick", "--threads", "1", "--item-head", "0",
                            "--out", str(tmp_path / "out")])  # fmt: skip
    assert metrics["onerec"]["item_weight"] == 0.0 and "onerec_beam_order" not in metrics


def test_quick_lazy_decoder_trained_per_position(tmp_path):
    """``--arch lazy_decoder --per-position``: OneRec-V2's generator, every position a target; no item
    head (the lazy decoder has no encoder), so the row is the generator alone."""
    seq_file = tmp_path / "data" / "Tiny.txt"
    seq_file.parent.mkdir()
    seq_file.write_text("".join(f"{u} {' '.join(str(i + 1) for i in s)}\n" for u, s in sequences().items()))
    metrics = quality.main(["--data", str(seq_file.parent), "--quick", "--threads", "1", "--arch", "lazy_decoder",
                            "--per-position", "--valid-only", "--out", str(tmp_path / "out")])  # fmt: skip
    row = metrics["onerec"]
    assert row["architecture"] == "lazy_decoder" and row["per_position"] is True and row["item_weight"] == 0.0
    assert row["valid"]["legal_rate"] == 1.0 and all(0.0 <= row["valid"][k] <= 1.0 for k in KEYS)
    # --valid-only: a changed configuration is compared on validation; no model touched test
    assert metrics["valid_only"] and "onerec_beam_order" not in metrics
    assert not any(k in metrics[m] for m in MODELS for k in KEYS)
    assert "(VALIDATION" in quality.quality_report.table(quality.valid_view(metrics))
    plan = quality.with_generator(quality.PLANS["quick"](), "encoder_decoder", True, None)
    assert plan.onerec.per_position and plan.onerec.pos_len == 0 and plan.onerec.item_loss_weight == 1.0

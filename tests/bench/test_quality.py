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
    assert set(written["onerec_candidates"]) == {"sasrec", "ppmi"}
    # the headline row: the generator in its own beam order, on IDs that borrow nothing from SASRec
    assert written["onerec"]["legal_rate"] == 1.0 and written["onerec"]["sid_source"] == "ppmi"
    assert written["onerec"]["item_weight"] == 0.0 and "HYBRID" not in written["onerec"]["label"]
    # the item-head rerank of the same beam, and the generator on SASRec's IDs: labelled hybrid rows
    for hybrid in ("onerec_item_head_rerank", "onerec_sasrec_ids", "onerec_sasrec_ids_item_head_rerank"):
        assert "HYBRID" in written[hybrid]["label"] and all(0.0 <= written[hybrid][k] <= 1.0 for k in KEYS)
    assert written["onerec_item_head_rerank"]["item_weight"] == 1.0
    assert written["onerec_sasrec_ids"]["sid_source"] == "sasrec"
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
    assert metrics["onerec"]["item_weight"] == 0.0 and metrics["onerec"]["item_loss_weight"] == 0.0
    assert "onerec_item_head_rerank" not in metrics  # no head, no rerank row


def test_quick_lazy_decoder_trained_per_position(tmp_path):
    """``--arch lazy_decoder --per-position``: OneRec-V2's generator, every position a target; no item
    head (the lazy decoder has no encoder), so the row is the generator alone."""
    seq_file = tmp_path / "data" / "Tiny.txt"
    seq_file.parent.mkdir()
    seq_file.write_text("".join(f"{u} {' '.join(str(i + 1) for i in s)}\n" for u, s in sequences().items()))
    metrics = quality.main(["--data", str(seq_file.parent), "--quick", "--threads", "1", "--arch", "lazy_decoder",
                            "--per-position", "--valid-only", "--generator-only", "--ids", "ppmi",
                            "--out", str(tmp_path / "out")])  # fmt: skip
    row = metrics["onerec"]
    assert row["architecture"] == "lazy_decoder" and row["per_position"] is True and row["item_weight"] == 0.0
    assert row["valid"]["legal_rate"] == 1.0 and all(0.0 <= row["valid"][k] <= 1.0 for k in KEYS)
    # --valid-only: a changed configuration is compared on validation; no model touched test
    assert metrics["valid_only"] and "onerec_item_head_rerank" not in metrics
    assert not any(k in metrics[m] for m in MODELS if m in metrics for k in KEYS)
    assert "(VALIDATION" in quality.quality_report.table(quality.valid_view(metrics))
    assert "sasrec" not in metrics and "sasrec_bce" not in metrics  # --generator-only: no baseline trained
    with pytest.raises(SystemExit):  # a table with test figures always has SASRec-CE beside it
        quality.main(["--data", str(seq_file.parent), "--quick", "--generator-only"])
    plan = quality.with_generator(quality.PLANS["quick"](), "encoder_decoder", True, None)
    assert plan.onerec.per_position and plan.onerec.pos_len == 0 and plan.onerec.item_loss_weight == 1.0


def test_quick_pipeline_ids_through_the_pipelines_item_pairs(tmp_path, spark):
    """``--ids swing``: the generator's IDs come from the daily pipeline's Swing pairs and spectral
    behaviour vectors (Spark, the session of the suite), then its tokenizer; the rows are labelled."""
    seq_file = tmp_path / "data" / "Tiny.txt"
    seq_file.parent.mkdir()
    seq_file.write_text("".join(f"{u} {' '.join(str(i + 1) for i in s)}\n" for u, s in sequences().items()))
    metrics = quality.main(["--data", str(seq_file.parent), "--quick", "--threads", "1", "--ids", "swing",
                            "--out", str(tmp_path / "out")])  # fmt: skip
    codes = metrics["onerec_candidates"]["swing"]["codes"]
    assert set(metrics["onerec_candidates"]) == {"swing"} and codes["method"] == "swing"
    assert codes["pairs"] > 0 and 0 < codes["items_with_pairs"] <= codes["items"] == 60
    assert metrics["onerec"]["sid_source"] == "swing" and "Swing" in metrics["onerec"]["label"]
    assert metrics["onerec"]["legal_rate"] == 1.0 and "onerec_sasrec_ids" not in metrics
    assert "HYBRID" in metrics["onerec_item_head_rerank"]["label"]
    with pytest.raises(ValueError, match="unknown ID source"):
        quality._sources(quality.PLANS["quick"](), "swing,bogus", None)


def test_swing_vectors_put_co_engaged_items_together(spark):
    """Items 1 and 2 follow each other for many users, 3 and 4 too: the pipeline's behaviour vectors
    put each pair close and the two pairs apart; an item never paired gets the zero (cold) row."""
    from bench.quality_pipeline import swing_item_vectors
    from models.data import Ragged

    rows = [[1, 2, 1, 2] if u % 2 else [3, 4, 3, 4] for u in range(40)] + [[5]]
    vectors, stats = swing_item_vectors(Ragged.from_lists(rows), n_items=5)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    assert unit[0] @ unit[1] > 0.99 and unit[2] @ unit[3] > 0.99 and abs(unit[0] @ unit[2]) < 0.1
    assert not vectors[4].any() and stats["items_with_pairs"] == 4 and stats["pairs"] == 4


def test_pipeline_profiles_select_on_the_generators_own_order():
    for name in ("cpu_pipeline", "gpu_pipeline"):
        plan = quality.PLANS[name]()
        assert plan.sid_sources == ("swing",) and plan.onerec_train.item_weight == 0.0
        assert plan.test_rerank_weight == 1.0 and plan.onerec.item_loss_weight == 1.0
    no_head = quality.with_generator(quality.PLANS["cpu_pipeline"](), item_head=0.0)
    assert no_head.onerec.item_loss_weight == 0.0 and no_head.onerec_train.item_weight == 0.0

"""Promotion gates: first candidate promoted, regressions rejected with the failing gate named."""

from __future__ import annotations

import json

import pytest
import torch

from models import checkpoint, continual
from models.promote import decide, evaluate_checkpoint, record
from tests.models.sample_events import leave_one_out_rows, random_sids, sample_events

TOL = {"recall@10": 0.02, "mean_reward": 0.02, "legal_rate": 0.02, "coverage@10": 0.05}


def test_decide_rules(tmp_path):
    first = decide({"ndcg@10": 0.1}, None)
    assert first["promote"] and first["gates"] == [] and "first candidate" in first["reason"]
    champ = {"ndcg@10": 0.10, "recall@10": 0.20, "mean_reward": 0.5, "legal_rate": 1.0, "coverage@10": 0.3}
    same = decide(dict(champ), champ, tolerances=TOL)
    assert same["promote"] and all(g["passed"] for g in same["gates"])  # better *or equal* passes
    worse = decide({**champ, "ndcg@10": 0.09, "coverage@10": 0.2}, champ, tolerances=TOL)
    assert not worse["promote"]
    assert {g["metric"] for g in worse["gates"] if not g["passed"]} == {"ndcg@10", "coverage@10"}
    assert "ndcg@10 0.0900 < champion 0.1000" in worse["reason"]
    within = decide({**champ, "ndcg@10": 0.11, "recall@10": 0.19}, champ, tolerances=TOL)
    assert within["promote"]  # recall 0.01 below the champion: inside its 0.02 tolerance
    missing = decide({"ndcg@10": 0.2}, champ, tolerances=TOL)
    assert not missing["promote"] and "mean_reward missing" in missing["reason"]
    path = record(tmp_path / "runs" / "d" / "promotion.json", worse)
    assert json.loads(path.read_text())["promote"] is False and not list(path.parent.glob(".*"))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    events = sample_events(days=8)
    day = sorted(events["event_date"].unique())[-1]
    examples = leave_one_out_rows(events, day)
    space = continual.ItemSpace.from_sids(random_sids(events["item_id"].unique(), ds=day), "v20261001", 8)
    out = tmp_path_factory.mktemp("promote") / "champion"
    continual.run(examples, space, out, preset_name="tiny", steps=80)
    space.save(out / "best" / "items")
    return out / "best", examples, space


def test_degraded_candidate_is_rejected(trained, tmp_path):
    champion_dir, examples, space = trained
    model = continual.load_generator(champion_dir)
    with torch.no_grad():  # the deliberately broken candidate: every weight re-drawn at random
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    broken = checkpoint.save(tmp_path / "broken", model, model_config=model.cfg, rng=False)
    space.save(broken / "items")
    champ, cand = evaluate_checkpoint(champion_dir, examples), evaluate_checkpoint(broken, examples)
    assert champ["n_users"] == cand["n_users"] > 50
    decision = decide(cand, champ, "ndcg@10", 0.0, TOL)
    assert not decision["promote"]
    failed = {g["metric"] for g in decision["gates"] if not g["passed"]}
    assert "ndcg@10" in failed and decision["reason"].startswith("rejected: ")
    assert decide(champ, champ, "ndcg@10", 0.0, TOL)["promote"]  # the champion against itself passes


def test_default_gates_reject_a_reward_hacker_and_promote_real_gains():
    """With the configured gates, a candidate that games the learned reward (mean_reward up, users
    worse off by the ground truth and their next events) is rejected; one that serves users better
    without losing ranking quality is promoted. mean_reward is not a gate at all."""
    from conf.settings import PromoteSettings

    p = PromoteSettings()
    gate = lambda cand, champ: decide(cand, champ, p.primary, p.primary_tolerance, dict(p.tolerances),  # noqa: E731
                                      tuple(p.lower_is_better))  # fmt: skip
    champ = {"ndcg@10": 0.20, "recall@10": 0.30, "mean_reward": 0.55, "legal_rate": 1.0, "coverage@10": 0.30,
             "diversity@10": 0.5, "oracle_watch_ratio": 0.50, "oracle_like": 0.05, "oracle_dislike": 0.04}  # fmt: skip
    hacker = {**champ, "mean_reward": 0.90, "ndcg@10": 0.15, "oracle_watch_ratio": 0.40, "oracle_dislike": 0.08}
    decision = gate(hacker, champ)
    failed = {g["metric"] for g in decision["gates"] if not g["passed"]}
    assert not decision["promote"] and failed == {"ndcg@10", "oracle_watch_ratio", "oracle_dislike"}
    assert "oracle_dislike 0.0800 > champion 0.0400 + 0.01" in decision["reason"]
    assert "mean_reward" not in {g["metric"] for g in decision["gates"]}
    better = {**champ, "mean_reward": 0.50, "ndcg@10": 0.21, "oracle_watch_ratio": 0.56, "oracle_dislike": 0.03}
    assert gate(better, champ)["promote"]
    # Without an oracle (not the sample), its gates are skipped, not failed.
    plain = {k: v for k, v in champ.items() if not k.startswith("oracle_")}
    assert gate({**plain, "ndcg@10": 0.21}, plain)["promote"]

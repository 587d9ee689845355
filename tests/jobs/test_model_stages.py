"""Model stages end to end on a small sample: train -> reward_refresh -> align -> evaluate -> promote,
two days, then a re-run of the day (idempotent) and a new codebook (full retrain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conf.settings import SampleSettings, load_settings
from jobs import model_stages as stages
from models.registry import registry_for
from tests.models.sample_events import write_codebook, write_model_inputs

SAMPLE = SampleSettings(n_users=60, n_items=80, n_clusters=4, days=5)
CHAIN = ("train", "reward_refresh", "align", "evaluate", "promote")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = tmp_path_factory.mktemp("model_stages")
    sets = [f"home={home}", "model.threads=1", "model.steps_per_day=20", "model.full_retrain_steps=60",
            "model.align.steps=3", "model.align.users_per_step=16", "model.align.group_size=4",
            "model.reward.epochs=2"]  # fmt: skip
    conf = {"config": "tiny", "set": sets}
    cfg = load_settings("tiny", sets)
    days = write_model_inputs(cfg, SAMPLE)
    results = {d: {s: getattr(stages, s)(d.isoformat(), conf) for s in CHAIN} for d in days[-3:-1]}
    return cfg, conf, days, results


def test_first_day_trains_from_scratch_and_is_promoted(run):
    cfg, _, days, results = run
    first = results[days[-3]]
    assert first["train"]["mode"] == "initial" and first["train"]["steps"] == 60
    assert first["reward_refresh"]["previous"] is None and "fused" in first["reward_refresh"]["in_sample_auc"]
    assert first["promote"]["promoted"] and first["promote"]["champion_before"] is None
    # The four pathways from the feature store: rows of gold.training_features, the service in the manifest.
    train = first["train"]
    assert train["examples"] == "training_features" and train["feature_service"] == "onerec_serve_v3"
    assert {"play_ratio", "rating"} <= set(train["signals"]) and train["pathways"] == "all"
    from models.checkpoint import read_manifest

    assert read_manifest(first["align"]["checkpoint"])["versions"]["feature_service"] == "onerec_serve_v3"


def test_second_day_continues_and_reports(run):
    cfg, _, days, results = run
    day = results[days[-2]]
    assert day["train"]["mode"] == "continue" and day["train"]["from"] == results[days[-3]]["evaluate"]["candidate"]
    auc = day["reward_refresh"]["next_day_auc"]  # the previous version, scored on a day it never saw
    assert day["reward_refresh"]["evaluated_on"] == days[-2].isoformat() and auc["fused"] is not None
    align = day["align"]
    assert align["method"] == "ecpo" and align["steps"] == 3 and align["step_s"] > 0
    # The reward model is the first day's (trained before ds), rollouts and metrics on users it never saw.
    assert align["reward_version"] == first_reward(results, days) and align["reward_trained_through"] < align["ds"]
    assert 0 < align["heldout_users"] < SAMPLE.n_users and align["feedback_samples"] > 0
    for when in ("before", "after"):
        assert {"recall@10", "ndcg@10", "mean_reward", "legal_rate", "coverage@10", "diversity@10", "recall@10_se",
                "oracle_watch_ratio", "oracle_like", "oracle_dislike"} <= set(align[when])  # fmt: skip
        assert 0 < align[when]["oracle_watch_ratio"] < 2 and 0 <= align[when]["oracle_dislike"] < 0.3
    # The run report's promotion record.
    path = Path(cfg.resolve(cfg.reports_dir)) / "runs" / days[-2].isoformat() / "promotion.json"
    decision = json.loads(path.read_text())
    assert decision["champion_before"] == results[days[-3]]["evaluate"]["candidate"]
    gated = {g["metric"] for g in decision["gates"]}
    assert gated >= {"ndcg@10", "recall@10", "legal_rate", "oracle_watch_ratio", "oracle_dislike"}
    assert "mean_reward" not in gated  # the policy is never judged by the reward it was optimised on
    assert decision["metrics"]["candidate"]["mean_reward"] is not None
    assert decision["promoted"] == all(g["passed"] for g in decision["gates"])
    champion = decision["candidate"] if decision["promoted"] else decision["champion_before"]
    assert decision["champion_after"] == champion
    reg = registry_for(cfg)
    assert decision["registry"] == f"models:/{cfg.mlflow.generator_model}@champion"
    assert reg.get("champion").version == champion and reg.get("candidate").version == decision["candidate"]


def first_reward(results, days) -> str:
    return results[days[-3]]["reward_refresh"]["version"]


def test_first_day_has_no_earlier_reward_model_so_no_alignment(run):
    _, _, days, results = run
    align = results[days[-3]]["align"]
    assert align["method"] == "none" and align["reward_version"] is None and align["steps"] == 0


def test_no_heldout_target_reaches_the_reward_models_training_data(run):
    """The held-out targets align and evaluate use on day D are after the reward model's last training
    day, and none of their events is among the rows that model was trained on; the reward trained
    through D itself (the old behaviour) would have seen them."""
    from jobs.model_inputs import heldout_examples, read_events, read_examples, reward_model
    from models import data, leakage
    from models.continual import ItemSpace, load_generator

    cfg, _, days, results = run
    day = days[-2]
    _, _, version, through = reward_model(cfg, day)
    assert version == first_reward(results, days) and through == days[-3]
    # Every row any reward version up to `through` was trained on: events through that day.
    trained_on = read_events(cfg, through, cfg.model.reward.history_days)
    assert trained_on["event_date"].max() == through and len(trained_on) > 100
    space = ItemSpace.load(Path(results[day]["align"]["checkpoint"]) / "items")
    loo = data.from_training_examples(read_examples(cfg, day), space.index)
    model_cfg = load_generator(Path(results[day]["align"]["checkpoint"])).cfg
    test, contexts = heldout_examples(loo, model_cfg, through)
    assert len(test) == results[day]["align"]["heldout_users"] > 0 and len(contexts) > 0
    for held_out in (test, contexts):
        leakage.check_unseen(held_out, leakage.cutoff(through), trained_on, loo.users, space.item_ids)
    # Control: the day's own reward (trained through D, holding D's targets) is caught.
    all_test = data.eval_examples(loo, "test", model_cfg)
    through_day = read_events(cfg, day, cfg.model.reward.history_days)
    with pytest.raises(leakage.LeakageError, match="training data"):
        leakage.check_unseen(all_test, 0, through_day, loo.users, space.item_ids)
    with pytest.raises(leakage.LeakageError, match="before the reward"):
        leakage.check_unseen(all_test, leakage.cutoff(day))


def test_stages_are_mlflow_runs(run):
    """train, reward_refresh, align and evaluate of each day are MLflow runs with params, metrics and
    curves; the candidate's model version links to its evaluate run, the checkpoint its artifacts."""
    cfg, _, days, results = run
    reg = registry_for(cfg)
    exp = reg.client.get_experiment_by_name(cfg.mlflow.experiment)
    found = reg.client.search_runs([exp.experiment_id], f"tags.`onerec.ds` = '{days[-2].isoformat()}'")
    by_stage = {r.data.tags["onerec.stage"]: r for r in found}
    assert {"train", "reward_refresh", "align", "evaluate"} <= set(by_stage)
    train = by_stage["train"]
    assert train.data.params["mode"] == "continue" and train.data.params["steps"] == "20"
    assert train.data.metrics["test.recall_at_10"] == pytest.approx(results[days[-2]]["train"]["test"]["recall@10"])
    curve = reg.client.get_metric_history(train.info.run_id, "loss")
    assert len(curve) >= 2 and len({m.step for m in curve}) == len(curve)  # one point per logged step
    align = by_stage["align"]
    assert align.data.metrics["after.ndcg_at_10"] == pytest.approx(results[days[-2]]["align"]["after"]["ndcg@10"])
    assert [a.path for a in reg.client.list_artifacts(align.info.run_id)] == ["align.json"]
    version = reg.version(results[days[-2]]["evaluate"]["candidate"])
    assert version.run_id == by_stage["evaluate"].info.run_id
    assert {a.path for a in reg.client.list_artifacts(version.run_id, "checkpoint")} >= {
        "checkpoint/model.safetensors", "checkpoint/config.json", "checkpoint/items"}  # fmt: skip
    latest = registry_for(cfg, "reward").get("current")
    assert latest.version == results[days[-2]]["reward_refresh"]["version"]
    assert latest.run_id == by_stage["reward_refresh"].info.run_id


def test_rerun_of_a_day_is_idempotent(run):
    cfg, conf, days, results = run
    reg = registry_for(cfg)
    before, champion = reg.versions(), reg.get("champion").version
    again = {s: getattr(stages, s)(days[-2].isoformat(), conf) for s in CHAIN}
    assert again["train"]["mode"] == "continue" and again["train"]["from"] == results[days[-2]]["train"]["from"]
    assert again["evaluate"]["candidate"] == results[days[-2]]["evaluate"]["candidate"]
    assert again["promote"] == results[days[-2]]["promote"]
    assert reg.versions() == before
    # A re-run of an earlier day never moves the champion back: with day 2's candidate as champion,
    # promoting day 1 again (its evaluation beat "no champion") keeps it.
    later = results[days[-2]]["evaluate"]["candidate"]
    reg.set_alias("champion", later, "test: the champion of a later day")
    earlier = stages.promote(days[-3].isoformat(), conf)
    assert not earlier["promoted"] and earlier["reason"].startswith(f"kept {later}, the champion of a later day")
    assert reg.get("champion").version == later == earlier["champion_after"]
    if champion != later:  # put the day's real decision back (rollback is what an operator would run)
        assert reg.rollback() == champion
    assert reg.get("champion").version == champion


def new_codebook_on(cfg, day) -> None:
    """A new codebook version on ``day`` (once: the tests that need it may run in any order)."""
    from jobs.semantic_ids import codebook_root, version_for

    if not (codebook_root(cfg) / version_for(day)).exists():
        write_codebook(cfg, SAMPLE, [f"i{k}" for k in range(SAMPLE.n_items)], day, seed=1)


def test_new_codebook_means_full_retrain(run):
    cfg, conf, days, _ = run
    new_codebook_on(cfg, days[-1])
    out = stages.train(days[-1].isoformat(), conf)
    assert out["mode"] == "full_retrain" and out["codebook_version"] == f"v{days[-1]:%Y%m%d}"
    assert out["steps"] == 60 and out["from"] is None


def test_dpo_switch_and_launcher_command(run):
    """``model.align.method=dpo`` aligns by DPO; ``model.launcher`` runs training as a separate command
    (torchrun on a cluster; plain ``python -m models.continual`` here)."""
    import sys

    cfg, conf, days, _ = run
    new_codebook_on(cfg, days[-1])  # training that day is then a full retrain, whatever ran before
    dpo = stages.align(days[-2].isoformat(), {**conf, "set": [*conf["set"], "model.align.method=dpo"]})
    assert dpo["method"] == "dpo" and dpo["steps"] >= 1 and dpo["after"]["legal_rate"] >= 0
    launched = {**conf, "set": [*conf["set"], f"model.launcher={sys.executable} -m models.continual"]}
    out = stages.train(days[-1].isoformat(), launched)
    assert out["mode"] == "full_retrain" and Path(out["checkpoint"], "model.safetensors").is_file()
    assert out["test"]["n_users"] > 0


def test_a_day_without_examples_is_skipped_with_a_reason(run):
    from datetime import timedelta

    cfg, conf, days, _ = run
    day = (days[0] - timedelta(days=1)).isoformat()
    out = {s: getattr(stages, s)(day, conf) for s in CHAIN}
    assert "skipped" in out["train"] and "skipped" in out["reward_refresh"] and "skipped" in out["align"]
    assert out["promote"]["promoted"] is False and out["promote"]["reason"].startswith("no candidate (train skipped")
    assert json.loads((Path(cfg.resolve(cfg.reports_dir)) / "runs" / day / "promotion.json").read_text())["gates"] == []

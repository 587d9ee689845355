"""The model half of the daily DAG: ``train -> reward_refresh -> align -> evaluate -> promote``.

Each function is one Airflow task body, ``(ds, run_conf) -> small JSON-able dict`` like
``jobs.stages``; the run conf picks the config (``settings_for_run``). They talk through files
under ``model.work_dir/<ds>/`` and two registered models in MLflow (``models/registry.py``): the
generator's (aliases ``candidate`` and ``champion``) and the reward model's (alias ``current``).
Each stage but promote is also an MLflow run (``models/tracking.py``: params, metrics, curves).
Tables are read through the Delta log with ``deltalake`` (no Spark session is needed for model work).

    python -m jobs.model_stages all --ds 2026-10-05 [--config tiny] [--set model.align.method=dpo]

Re-running a day is idempotent: a stage continues from the champion / reward version of an
*earlier* day (never from the one the same day produced), the registry returns the existing
version for identical files, and outputs of the day are replaced.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
from pathlib import Path

from jobs.model_inputs import (
    business_values,
    examples_table,
    feature_versions,
    feedback_events,
    heldout_examples,
    item_space,
    pathway_fields,
    read_events,
    read_examples,
    registries,
    reward_model,
    run_dir,
    sample_oracle,
    set_threads,
    version_before,
    write_json,
)
from jobs.stage_report import day_report_dir
from jobs.stages import _day, settings_for_run
from models.tracking import read_jsonl, tracker

log = logging.getLogger(__name__)


# ---- stages -----------------------------------------------------------------------------------
def train(ds: str, run_conf: dict | None = None) -> dict:
    """gold.training_features[leave_one_out, ds] + gold.item_sids[current codebook] -> the day's SFT candidate.

    The rows carry the four pathways' features as the server had them at each target's time (point-in-time
    from the feature store, ``jobs.training_features``); the checkpoint's manifest names the feature
    service (``versions.feature_service``) serving must read. ``model.pathways.from_feature_store=false``
    trains on gold.training_examples' sequences instead (the benchmarks' input).

    Continues from the champion (of an earlier day) for ``model.steps_per_day`` steps when it was
    trained on the same codebook version, preset and architecture; with a new codebook version (or
    no champion) trains from scratch for ``model.full_retrain_steps``. Writes
    ``<work_dir>/<ds>/sft/best`` (checkpoint + ``items/``) and ``train.json``. With
    ``model.launcher`` set (e.g. torchrun) the training runs as that command (models.continual).
    """
    from models import checkpoint, continual, data
    from models.registry import registry_for

    cfg, day = settings_for_run(run_conf), _day(ds)
    m, run = cfg.model, run_dir(cfg, _day(ds))
    examples = read_examples(cfg, day)
    if examples.empty:
        return write_json(run / "train.json", {"ds": day.isoformat(), "skipped": "no leave_one_out examples"})
    space = item_space(cfg, day)
    version = space.codebook_version
    champion = version_before(registry_for(cfg), "champion", day)
    features = feature_versions(cfg)
    inputs = {**features, "pathways": ",".join(m.pathways.masked) or "all"} if features else {}
    same = champion is not None and all(
        champion.versions.get(key) == value
        for key, value in (
            ("codebook", version),
            ("preset", m.preset),
            ("architecture", m.architecture),
            *inputs.items(),
        )  # fmt: skip
    )
    mode = "continue" if same else ("full_retrain" if champion else "initial")
    steps = m.steps_per_day if same else m.full_retrain_steps
    out = run / "sft"
    shutil.rmtree(out, ignore_errors=True)
    users = len(data.from_training_examples(examples, space.index).users)
    if users < 2:  # a first day with almost nobody: nothing to learn or to evaluate on yet
        return write_json(run / "train.json", {"ds": day.isoformat(), "skipped": f"{users} leave_one_out users"})
    overrides = {"device": m.device, "dtype": m.dtype, "beam_size": m.beam_size, "seed": m.seed}
    if m.batch_size:
        overrides["batch_size"] = m.batch_size
    init = champion.path if same else None
    fields = pathway_fields(cfg, examples, checkpoint.model_config(init) if init else None)
    if m.launcher:
        space.save(run / "items")
        cmd = [*shlex.split(m.launcher), "--examples", cfg.table_path(examples_table(cfg)), "--ds", day.isoformat(),
               "--items", str(run / "items"), "--out", str(out), "--preset", m.preset, "--steps", str(steps),
               "--overrides", json.dumps(overrides), "--threads", str(m.threads), "--pathways", json.dumps(fields),
               "--versions", json.dumps({"ds": day.isoformat(), "codebook": version, **inputs})]  # fmt: skip
        cmd += (["--init", str(init)] if init else []) + (["--architecture", m.architecture] if m.architecture else [])
        cmd += [] if m.score_test else ["--no-test"]
        subprocess.run(cmd, check=True)
        result = json.loads((out / "continual.json").read_text())
    else:
        set_threads(cfg)
        result = continual.run(examples, space, out, preset_name=m.preset, steps=steps, init_dir=init,
                               architecture=m.architecture, overrides=overrides, eval_users=m.eval_users,
                               versions={"ds": day.isoformat(), "codebook": version, **inputs},
                               pathways=fields, score_test=m.score_test)  # fmt: skip
    space.save(out / "best" / "items")  # the checkpoint carries its item space into the registry
    done = write_json(run / "train.json", {
        "ds": day.isoformat(), "mode": mode, "from": champion.version if same else None, "steps": steps,
        "codebook_version": version, "n_items": len(space.item_ids) - 1, "checkpoint": str(out / "best"),
        "valid": result.get("valid"), "test": result.get("test"), "n_users": result.get("n_users"),
        "train": result.get("train"), "examples": examples_table(cfg), **inputs,
        "signals": list(fields.get("signals", ())),
    })  # fmt: skip
    tracker(cfg)("train", day.isoformat(), params={**overrides, "mode": mode, "steps": steps, "preset": m.preset,
                 "architecture": m.architecture, "codebook": version, "from": done["from"], "n_items": done["n_items"]},
                 metrics={"valid": done["valid"], "test": done["test"], "n_users": done["n_users"]},
                 steps=read_jsonl(out / "train_log.jsonl"), artifacts=[run / "train.json"])  # fmt: skip
    return done


def _no_candidate(cfg, day) -> str | None:
    """Why there is no SFT candidate for ``day`` (train skipped it), or None."""
    train_json = run_dir(cfg, day) / "train.json"
    if train_json.is_file() and "skipped" in (done := json.loads(train_json.read_text())):
        return f"train skipped: {done['skipped']}"
    return None


def reward_refresh(ds: str, run_conf: dict | None = None) -> dict:
    """bronze.events (``model.reward.history_days`` up to ds) -> a P-Score version for ds (alias ``current``).

    The previous version (an earlier day's) is first scored on ds's interactions -- its next-day AUC
    per task and fused, the honest held-out number -- then trained further on ds. The first version
    trains on every day read. ``reward_refresh.json`` holds both AUC sets.
    """
    import tempfile

    import torch

    from models import reward

    cfg, day = settings_for_run(run_conf), _day(ds)
    r, run = cfg.model.reward, run_dir(cfg, _day(ds))
    set_threads(cfg)
    torch.manual_seed(cfg.model.seed)  # new vocabulary rows and a first model start the same on a re-run
    events = read_events(cfg, day, r.history_days)
    is_day = (events["event_date"] == day).to_numpy()
    if not is_day.any():
        return write_json(run / "reward_refresh.json", {"ds": day.isoformat(), "skipped": "no events on ds"})
    _, rewards = registries(cfg)
    prev = version_before(rewards, "current", day)
    if prev is not None:
        model, manifest = reward.load(prev.path)
        item_ids = manifest["item_ids"]
        item_ids += sorted(set(events["item_id"].astype(str)) - set(item_ids))  # new items appended
        model = reward.grow_vocab(model, len(item_ids))
    else:
        item_ids = sorted(set(events["item_id"].astype(str)))
        tasks = reward.usable_tasks(reward.derive_labels(events), r.min_positives)
        rcfg = reward.RewardConfig(n_items=len(item_ids), tasks=tasks, history_len=r.history_len, d_model=r.d_model,
                                   hidden=r.hidden, duration_buckets=r.duration_buckets,
                                   long_view_quantile=r.long_view_quantile)  # fmt: skip
        model = reward.PScore(rcfg)
    vocab = {item: i + 1 for i, item in enumerate(item_ids)}
    today = reward.build_interactions(events, vocab, model.cfg, keep=is_day)
    next_day_auc = reward.auc_report(model, today) if prev is not None else None
    train_rows = today if prev is not None else reward.build_interactions(events, vocab, model.cfg)
    epochs = r.epochs if prev is not None else r.epochs * r.first_version_epoch_factor
    loss = reward.fit(model, train_rows, epochs=epochs, batch_size=r.batch_size, lr=r.lr, seed=cfg.model.seed,
                      balance_cap=r.balance_cap)  # fmt: skip
    metrics = {"next_day_auc": next_day_auc, "evaluated_on": day.isoformat() if prev else None,
               "in_sample_auc": reward.auc_report(model, today), "loss": loss, "rows": len(train_rows)}  # fmt: skip
    run_id = tracker(cfg)("reward_refresh", day.isoformat(), metrics=metrics, params={
        **r.model_dump(), "previous": prev.version if prev else None, "tasks": list(model.cfg.tasks)})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        saved = reward.save(Path(tmp) / "reward", model, item_ids, metrics, {"ds": day.isoformat()})
        version = rewards.register(saved, metrics, {"ds": day.isoformat(), "previous": prev.version if prev else None},
                                   run_id=run_id)  # fmt: skip
    rewards.set_alias("current", version, f"trained through {day}")
    return write_json(run / "reward_refresh.json", {"ds": day.isoformat(), "version": version, "tasks": list(model.cfg.tasks),
                                                "previous": prev.version if prev else None, **metrics})  # fmt: skip


def align(ds: str, run_conf: dict | None = None) -> dict:
    """The day's SFT candidate + a reward model that never saw ds -> ``<work_dir>/<ds>/aligned``.

    Method ``model.align.method`` (GBPO, ECPO or DPO, models/align.py). No leakage
    (models/leakage.py): the reward model is the newest version trained on days *before* ds; rollouts
    run on the valid contexts, and metrics on the test targets, of the users whose targets are after
    its last training day; the logged exposures (V2's real-feedback advantages) are those of that
    last training day. Reports the generation metrics before and after alignment -- with the
    simulator oracle's expected engagement when the data is the sample -- and the time per step, in
    ``align.json``. ``model.align.method=none``, or no earlier reward model (the first day), copies
    the SFT candidate unchanged.
    """
    import dataclasses

    import numpy as np

    from models import checkpoint, continual, data
    from models import train as trainer
    from models.align import AlignConfig
    from models.align import align as run_align
    from models.beam import SemanticIdTrie
    from models.config import preset
    from models.feedback import logged_feedback
    from models.policy_eval import PolicyReward, generation_metrics

    cfg, day = settings_for_run(run_conf), _day(ds)
    a, run = cfg.model.align, run_dir(cfg, _day(ds))
    if why := _no_candidate(cfg, day):
        return write_json(run / "align.json", {"ds": day.isoformat(), "skipped": why})
    set_threads(cfg)
    sft = run / "sft" / "best"
    space = continual.ItemSpace.load(sft / "items")
    model = continual.load_generator(sft)
    pscore, reward_ids, reward_version, through = reward_model(cfg, day)
    loo = data.from_training_examples(read_examples(cfg, day), space.index)
    test, contexts = heldout_examples(loo, model.cfg, through)
    policy_reward, method, note = None, a.method, None
    if pscore is None:
        method, note = "none", f"no reward model trained before {day}: the SFT candidate is kept as is"
    else:
        policy_reward = PolicyReward(pscore, reward_ids, space.item_ids, a.illegal_reward,
                                     business_values(cfg, day, space) if a.business_weight else None,
                                     a.business_weight)  # fmt: skip
        if len(test) == 0 or len(contexts) == 0:
            method, note = "none", f"no held-out user with targets after {through}"
    trie = SemanticIdTrie.from_item_codes(space.codes, model.cfg.level_sizes)
    oracle = sample_oracle(cfg)
    metrics = lambda: generation_metrics(model, test, space.codes, trie, policy_reward, cfg.model.beam_size,  # noqa: E731
                                         oracle=oracle, user_ids=loo.users, item_ids=space.item_ids)  # fmt: skip
    before, log, n_feedback = metrics() if len(test) else {}, [], 0
    if method != "none":
        task = trainer.OneRecTask(loo, model.cfg, preset(cfg.model.preset).train, space.codes)
        batch = min(task.tc.batch_size, task.n_examples)
        sft_batch = lambda rng: task.batch(rng.choice(task.n_examples, batch, replace=False).tolist())  # noqa: E731
        fields = {f.name for f in dataclasses.fields(AlignConfig)}
        acfg = AlignConfig(**{k: v for k, v in a.model_dump().items() if k in fields},
                           constrained=a.constrained_rollouts)  # fmt: skip
        feedback = None
        if method != "dpo" and a.feedback_per_step:
            events, exposure = feedback_events(cfg, through)
            feedback = logged_feedback(events, exposure, space.index, model.cfg, a.duration_log_base)
            n_feedback = len(feedback)
        log = run_align(model, contexts, space.codes, trie, policy_reward, acfg, sft_batch, feedback=feedback)
    after = metrics() if log else before
    out = run / "aligned"
    inputs = {k: v for k, v in (checkpoint.read_manifest(sft).get("versions") or {}).items()
              if k in ("feature_service", "training_service", "pathways")}  # fmt: skip
    checkpoint.save(out, model, model_config=model.cfg, metrics=after, rng=False,
                    versions={"ds": day.isoformat(), "codebook": space.codebook_version, "reward": reward_version,
                              **inputs})  # fmt: skip
    space.save(out / "items")
    steps = [row for row in log if "loss" in row]
    timing = {k: float(np.mean([row[k] for row in steps])) if steps else None for k in ("rollout_s", "update_s")}
    done = write_json(run / "align.json", {
        "ds": day.isoformat(), "method": method, "steps": len(steps), "reward_version": reward_version,
        "reward_trained_through": through.isoformat() if through else None, "note": note,
        "heldout_users": len(test), "rollout_users": len(contexts), "feedback_samples": n_feedback,
        "oracle": oracle is not None, "before": before, "after": after, "checkpoint": str(out), "log": log,
        "step_s": (timing["rollout_s"] or 0) + (timing["update_s"] or 0) if steps else None, **timing,
    })  # fmt: skip
    tracker(cfg)("align", day.isoformat(), params={**a.model_dump(), "reward_version": reward_version},
                 metrics={"before": before, "after": after, "step_s": done["step_s"]}, steps=log,
                 artifacts=[run / "align.json"])  # fmt: skip
    return done


def evaluate(ds: str, run_conf: dict | None = None) -> dict:
    """The aligned candidate and the champion (of an earlier day) on the same held-out users.

    Both score the leave_one_out test targets of ds: the users whose targets both models can name
    and -- when there is a reward model from before ds -- whose test target is after its last
    training day, so ``mean_reward`` never scores an answer the reward saw (it is reported, not
    gated: the candidate was optimised on it). The gates read Recall/NDCG@10 against those users'
    real next events, and on the sample the simulator oracle's expected engagement of the top 10
    (``oracle_*``); other data says "no oracle". Registers the candidate (alias ``candidate``) and
    writes ``evaluation.json``.
    """
    from models import leakage
    from models.continual import ItemSpace
    from models.promote import evaluate_checkpoint, shared_users
    from models.registry import registry_for

    cfg, day = settings_for_run(run_conf), _day(ds)
    run, reg = run_dir(cfg, day), registry_for(cfg)
    if why := _no_candidate(cfg, day):
        return write_json(run / "evaluation.json", {"ds": day.isoformat(), "skipped": why})
    set_threads(cfg)
    candidate_dir = run / "aligned"
    champion = version_before(reg, "champion", day)
    wanted = feature_versions(cfg).get("feature_service")
    if champion is not None and champion.versions.get("feature_service") != wanted:
        # Trained on other features (e.g. sequences, before onerec_train_v3): it cannot read these rows,
        # so it is not a comparable baseline; the candidate is judged alone (the reason says so).
        log.warning("champion %s was trained on %s, not %s: not scored", champion.version,
                    champion.versions.get("feature_service") or "sequences", wanted)  # fmt: skip
        champion = None
    spaces = [ItemSpace.load(candidate_dir / "items")] + ([ItemSpace.load(champion.path / "items")] if champion else [])
    examples = shared_users(read_examples(cfg, day), spaces)
    pscore, reward_ids, reward_version, through = reward_model(cfg, day)
    if pscore is not None:
        test = examples[examples["split"] == "test"]
        unseen = test.loc[test["target_ts"].astype("int64") >= leakage.cutoff(through), "user_id"]
        if len(unseen):
            examples = examples[examples["user_id"].isin(set(unseen))]
        else:  # nobody new since the reward's last day: rank on everyone, without the reward
            pscore = None
    oracle = sample_oracle(cfg)
    score = lambda d: evaluate_checkpoint(d, examples, pscore, reward_ids, cfg.model.beam_size, cfg.model.device,  # noqa: E731
                                          oracle=oracle)  # fmt: skip
    metrics = {"candidate": score(candidate_dir), "champion": score(champion.path) if champion else None}
    m = cfg.model
    run_id = tracker(cfg)("evaluate", day.isoformat(), metrics=metrics, params={
        "champion": champion.version if champion else None, "users": int(examples["user_id"].nunique()),
        "reward_version": reward_version, "beam_size": m.beam_size})  # fmt: skip
    version = reg.register(candidate_dir, metrics["candidate"], {
        "ds": day.isoformat(), "codebook": spaces[0].codebook_version, "preset": m.preset,
        "architecture": m.architecture, "reward": reward_version, "align": m.align.method,
        **({**feature_versions(cfg), "pathways": ",".join(m.pathways.masked) or "all"} if feature_versions(cfg) else {}),
    }, run_id=run_id)  # fmt: skip
    reg.set_alias("candidate", version, f"trained on {day}")
    return write_json(run / "evaluation.json", {"ds": day.isoformat(), "candidate": version,
                                            "champion": champion.version if champion else None,
                                            "reward_version": reward_version if pscore is not None else None,
                                            "reward_trained_through": through.isoformat() if through else None,
                                            "oracle": "sample simulator" if oracle is not None else "no oracle",
                                            "users": int(examples["user_id"].nunique()), "metrics": metrics})  # fmt: skip


def promote(ds: str, run_conf: dict | None = None) -> dict:
    """Gates of ``model.promote`` on ``evaluation.json`` -> atomic ``champion`` switch, or a rejection.

    The decision (which gates passed or failed, with values) goes to
    ``<reports_dir>/runs/<ds>/promotion.json`` for the run report.
    """
    from models.promote import decide, record
    from models.registry import registry_for

    cfg, day = settings_for_run(run_conf), _day(ds)
    p, reg = cfg.model.promote, registry_for(cfg)
    ev = json.loads((run_dir(cfg, day) / "evaluation.json").read_text())
    if "skipped" in ev:
        champion = reg.get("champion")
        payload = {"ds": day.isoformat(), "candidate": None, "champion_before": champion.version if champion else None,
                   "champion_after": champion.version if champion else None, "promoted": False,
                   "reason": f"no candidate ({ev['skipped']})", "gates": [], "registry": reg.uri()}  # fmt: skip
        record(day_report_dir(cfg, day) / "promotion.json", payload)
        return {k: payload[k] for k in ("ds", "candidate", "champion_before", "champion_after", "promoted", "reason")}
    decision = decide(ev["metrics"]["candidate"], ev["metrics"]["champion"], p.primary, p.primary_tolerance,
                      dict(p.tolerances), tuple(p.lower_is_better))  # fmt: skip
    current = reg.get("champion")
    if decision["promote"] and current is not None and str(current.versions.get("ds", "")) > day.isoformat():
        # A backfill or re-run of an earlier day never moves the champion back in time.
        decision = {**decision, "promote": False,
                    "reason": f"kept {current.version}, the champion of a later day ({current.versions['ds']})"}  # fmt: skip
    if decision["promote"]:
        reg.set_alias("champion", ev["candidate"], f"{day}: {decision['reason']}")
    champion = reg.get("champion")
    payload = {"ds": day.isoformat(), "candidate": ev["candidate"], "champion_before": ev["champion"],
               "champion_after": champion.version if champion else None, "promoted": decision["promote"],
               "reason": decision["reason"], "primary": p.primary, "gates": decision["gates"],
               "metrics": ev["metrics"], "users": ev["users"], "registry": reg.uri()}  # fmt: skip
    record(day_report_dir(cfg, day) / "promotion.json", payload)
    return {k: payload[k] for k in ("ds", "candidate", "champion_before", "champion_after", "promoted", "reason")}


STAGES = ("train", "reward_refresh", "align", "evaluate", "promote")


def main(argv: list[str] | None = None) -> None:
    """``python -m jobs.model_stages <stage|all> --ds D [--config tiny] [--set model.align.method=dpo]``."""
    from jobs.cli import base_parser, setup_logging

    parser = base_parser(__doc__)
    parser.add_argument("stage", choices=(*STAGES, "all"))
    parser.add_argument("--ds", required=True, help="day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    conf = {"config": args.config, "set": list(args.set)}
    for stage in STAGES if args.stage == "all" else (args.stage,):
        print(json.dumps({stage: globals()[stage](args.ds, conf)}, indent=2, default=str))


if __name__ == "__main__":
    main()

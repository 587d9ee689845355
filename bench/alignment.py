"""Figures of the reward / alignment issue on the bundled sample (CPU): reward-model AUC per task,
generation metrics before and after alignment (ECPO and DPO), and alignment step time.

``python -m bench.alignment [--days 30] [--sft-steps 300] [--align-steps 20] [--threads 2] [--out DIR]``

1. Reward: the P-Score model is refreshed day by day as ``jobs.model_stages.reward_refresh`` does
   (first version on the first ``--bootstrap-days`` days, then: score the next day with the current
   version -- the held-out, next-day AUC -- and train on it). AUC per task and fused, mean over days.
2. Alignment: a tiny OneRec generator is trained on the leave_one_out split of the last day
   (semantic IDs from RQ-KMeans over cluster-shaped item vectors), then aligned with ECPO and,
   from the same checkpoint, with DPO, each against the last reward version; the test users'
   Recall/NDCG@10, mean P-Score of the top 10, greedy legal rate, coverage and diversity are
   measured before and after, and the wall time of every alignment step (rollout vs update).

Writes ``alignment.json`` and three PNGs under ``var/reports/bench/alignment/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from conf.settings import SampleSettings
from models import data, reward
from models import train as trainer
from models.align import AlignConfig, align
from models.beam import SemanticIdTrie
from models.config import preset
from models.continual import ItemSpace, load_generator, run
from models.policy_eval import PolicyReward, generation_metrics
from tests.models.sample_events import leave_one_out_rows, sample_events


def reward_daily(events, bootstrap_days: int, epochs: int) -> tuple[reward.PScore, list[str], list[dict]]:
    """Day-by-day refresh; returns the last model, its vocabulary and one AUC row per scored day."""
    days = sorted(events["event_date"].unique())
    items = sorted(events["item_id"].unique())
    vocab = {item: i + 1 for i, item in enumerate(items)}
    tasks = reward.usable_tasks(reward.derive_labels(events[events["event_date"] < days[bootstrap_days]]))
    cfg = reward.RewardConfig(n_items=len(items), tasks=tasks)
    torch.manual_seed(0)
    model = reward.PScore(cfg)
    date = events["event_date"].to_numpy()
    reward.fit(
        model, reward.build_interactions(events, vocab, cfg, keep=date < days[bootstrap_days]), epochs=2 * epochs
    )
    rows = []
    for day in days[bootstrap_days:]:
        today = reward.build_interactions(events, vocab, cfg, keep=date == day)
        rows.append({"day": str(day), **reward.auc_report(model, today)})
        reward.fit(model, today, epochs=epochs, seed=len(rows))
    return model, items, rows


def item_space(events, settings: SampleSettings, levels: int = 2, k: int = 16) -> ItemSpace:
    from jobs.sample_data import build_world
    from models import rq_kmeans

    items = sorted(events["item_id"].unique())
    world = build_world(settings)
    dim = max(8, settings.n_clusters)
    x = np.eye(dim)[world.item_cluster[[int(i[1:]) for i in items]]]
    x = (x + 0.3 * np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)
    book = rq_kmeans.fit(x, rq_kmeans.RQKMeansConfig(levels=levels, codes_per_level=k, seed=0))
    codes = np.vstack([np.zeros((1, levels + 1), np.int64), rq_kmeans.resolve_collisions(book.train_codes, items)])
    return ItemSpace(["", *items], codes.astype(np.int64), k, "bench")


def alignment(events, space: ItemSpace, pscore, reward_ids, out: Path, sft_steps: int, align_steps: int) -> dict:
    day = sorted(events["event_date"].unique())[-1]
    examples = leave_one_out_rows(events, day)
    t0 = time.perf_counter()
    run(examples, space, out / "sft", preset_name="tiny", steps=sft_steps)
    sft_s = time.perf_counter() - t0
    base = load_generator(out / "sft" / "best")
    loo = data.from_training_examples(examples, space.index)
    test, contexts = data.eval_examples(loo, "test", base.cfg), data.eval_examples(loo, "valid", base.cfg)
    trie = SemanticIdTrie.from_item_codes(space.codes, base.cfg.level_sizes)
    policy_reward = PolicyReward(pscore, reward_ids, space.item_ids)
    task = trainer.OneRecTask(loo, base.cfg, preset("tiny").train, space.codes)

    def sft_batch(rng):
        return task.batch(rng.choice(task.n_examples, 16, replace=False).tolist())

    result = {"sft_steps": sft_steps, "sft_s": sft_s, "users": len(test),
              "before": generation_metrics(base, test, space.codes, trie, policy_reward)}  # fmt: skip
    for method in ("ecpo", "dpo"):
        model = copy.deepcopy(base)
        cfg = AlignConfig(method=method, steps=align_steps, users_per_step=32, group_size=8)
        log = align(model, contexts, space.codes, trie, policy_reward, cfg, sft_batch)
        steps = [row for row in log if "loss" in row]
        result[method] = {
            "after": generation_metrics(model, test, space.codes, trie, policy_reward),
            "rollout_s": float(np.mean([r["rollout_s"] for r in steps])),
            "update_s": float(np.mean([r["update_s"] for r in steps])),
            "rollout_reward_first": steps[0]["rollout_reward"], "rollout_reward_last": steps[-1]["rollout_reward"],
            "config": {"users_per_step": 32, "group_size": 8, "ppo_epochs": cfg.ppo_epochs, "steps": align_steps},
        }  # fmt: skip
    return result


def plots(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    auc = report["reward"]["mean_next_day_auc"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(list(auc), [v or 0 for v in auc.values()], color="tab:blue")
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set(ylim=(0.4, 0.9), ylabel="next-day AUC", title="P-Score reward model: AUC per task (mean over days)")
    fig.tight_layout()
    fig.savefig(out / "reward_auc.png", dpi=120)
    metrics = ["recall@10", "ndcg@10", "mean_reward", "coverage@10", "diversity@10", "legal_rate"]
    a = report["alignment"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = np.arange(len(metrics))
    for j, (name, vals) in enumerate(
        (("before", a["before"]), ("ECPO", a["ecpo"]["after"]), ("DPO", a["dpo"]["after"]))
    ):
        ax.bar(x + (j - 1) * 0.27, [vals[m] for m in metrics], 0.27, label=name)
    ax.set_xticks(x, metrics)
    ax.set(title="Generation metrics on held-out users, before / after alignment")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "align_metrics.png", dpi=120)
    fig, ax = plt.subplots(figsize=(5, 3))
    for j, method in enumerate(("ecpo", "dpo")):
        ax.bar(j, a[method]["rollout_s"], color="tab:orange", label="rollout" if j == 0 else None)
        ax.bar(j, a[method]["update_s"], bottom=a[method]["rollout_s"], color="tab:green",
               label="update" if j == 0 else None)  # fmt: skip
    ax.set_xticks([0, 1], ["ECPO", "DPO"])
    ax.set(ylabel="seconds per step", title="Alignment step time (CPU, 32 users x 8)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "align_step_time.png", dpi=120)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--bootstrap-days", type=int, default=10)
    p.add_argument("--reward-epochs", type=int, default=3)
    p.add_argument("--sft-steps", type=int, default=300)
    p.add_argument("--align-steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="var/reports/bench/alignment")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = SampleSettings(days=args.days)
    events = sample_events(settings)
    t0 = time.perf_counter()
    pscore, reward_ids, auc_rows = reward_daily(events, args.bootstrap_days, args.reward_epochs)
    names = [k for k in auc_rows[0] if k != "day"]
    mean = {k: float(np.mean([r[k] for r in auc_rows if r[k] is not None])) for k in names}
    report = {"events": len(events), "load_before": os.getloadavg(), "threads": args.threads,
              "reward": {"days_scored": len(auc_rows), "mean_next_day_auc": mean, "daily": auc_rows,
                         "wall_s": time.perf_counter() - t0},
              "alignment": alignment(events, item_space(events, settings), pscore, reward_ids, out, args.sft_steps,
                                     args.align_steps)}  # fmt: skip
    report["load_after"] = os.getloadavg()
    (out / "alignment.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    plots(report, out)
    summary = {"mean_next_day_auc": mean, "before": report["alignment"]["before"],
               **{m: report["alignment"][m] for m in ("ecpo", "dpo")}}  # fmt: skip
    print(json.dumps(summary, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()

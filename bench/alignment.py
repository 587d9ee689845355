"""Figures of the reward / alignment issue on the bundled sample (CPU), graded by the simulator.

``python -m bench.alignment [--days 30] [--heldout-days 3] [--sft-steps 200] [--align-steps 20]
[--methods gbpo,ecpo,dpo] [--threads 1] [--reuse-sft] [--out DIR]``

Nothing the grading uses is seen by what is graded (models/leakage.py): the last ``--heldout-days``
days hold the held-out targets; the reward model is refreshed only on the days before them.

1. Reward: the P-Score model is refreshed day by day as ``jobs.model_stages.reward_refresh`` does
   (a first version on ``--bootstrap-days`` days, then each day: score it with the current version
   -- the next-day AUC -- and train on it), through the last day before the held-out days. AUC per
   tower and fused, mean over the scored days, beside the *oracle's ceiling*: the AUC of the
   simulator's true expected engagement (jobs/sample_oracle.py) on the same rows.
2. Alignment: a tiny OneRec generator is trained on the leave_one_out split of the last day, then
   aligned from the same checkpoint with each method (GBPO, ECPO, DPO; models/align.py) against
   that reward, rollouts on the valid contexts of the held-out users, plus -- GBPO and ECPO --
   V2's real-feedback samples from the reward's last day's logged exposures. Before and after, on
   the held-out users' test targets: the oracle's expected watch ratio / like / dislike rate of the
   top 10, Recall/NDCG@10 against the real next events, the greedy legal rate, coverage, the
   learned reward of the top 10 (what was optimised; a diagnostic), each with standard errors.

Writes ``alignment.json`` under ``var/reports/bench/alignment/`` (or ``--out``) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from conf.settings import RewardSettings, SampleSettings
from jobs.model_inputs import heldout_examples
from jobs.sample_oracle import SampleOracle
from models import data, reward
from models import train as trainer
from models.align import AlignConfig, align
from models.beam import SemanticIdTrie
from models.config import preset
from models.continual import ItemSpace, load_generator, run
from models.feedback import logged_feedback
from models.policy_eval import PolicyReward, generation_metrics
from tests.models.sample_events import leave_one_out_rows, sample_events

# Oracle signal behind each tower's ceiling (long_view: the expected watch ratio, a monotone stand-in).
CEILING = {"like": "like", "follow": "follow", "comment": "comment", "share": "share", "dislike": "dislike",
           "rating_4plus": "rating_4plus", "long_view": "watch_ratio", "fused": "engaged"}  # fmt: skip
COLUMNS = ("oracle_watch_ratio", "oracle_like", "oracle_dislike", "recall@10", "ndcg@10", "legal_rate",
           "coverage@10", "mean_reward")  # fmt: skip


def reward_daily(events: pd.DataFrame, bootstrap_days: int, last_day, oracle: SampleOracle,
                 r: RewardSettings) -> tuple[reward.PScore, list[str], list[dict]]:  # fmt: skip
    """Day-by-day refresh through ``last_day``; the last model, its vocabulary, one AUC row per scored day."""
    from sklearn.metrics import roc_auc_score

    events = events[events["event_date"] <= last_day].reset_index(drop=True)
    days = sorted(events["event_date"].unique())
    items = sorted(events["item_id"].unique())
    vocab = {item: i + 1 for i, item in enumerate(items)}
    date = events["event_date"].to_numpy()
    tasks = reward.usable_tasks(reward.derive_labels(events[date < days[bootstrap_days]]), r.min_positives)
    cfg = reward.RewardConfig(n_items=len(items), tasks=tasks, history_len=r.history_len, d_model=r.d_model,
                              hidden=r.hidden)  # fmt: skip
    torch.manual_seed(0)
    model = reward.PScore(cfg)
    fit = dict(batch_size=r.batch_size, lr=r.lr, balance_cap=r.balance_cap)
    first = reward.build_interactions(events, vocab, cfg, keep=date < days[bootstrap_days])
    reward.fit(model, first, epochs=r.epochs * r.first_version_epoch_factor, **fit)
    rows = []
    for day in days[bootstrap_days:]:
        keep = date == day
        today = reward.build_interactions(events, vocab, cfg, keep=keep)
        row = {"day": str(day), **reward.auc_report(model, today)}
        # The ceiling: the simulator's expected signal for the same rows (build_interactions' order).
        ev = events[keep].sort_values(["user_id", "ts", "item_id"], kind="stable")
        truth, labels = oracle.expected(ev["user_id"].to_numpy(), ev["item_id"].to_numpy()), reward.derive_labels(ev)
        for task in (*tasks, reward.FUSED):
            y = labels[task].to_numpy(float) if task in labels else np.full(len(ev), np.nan)
            ok = ~np.isnan(y)
            both = ok.any() and 0 < y[ok].sum() < ok.sum()
            row[f"ceiling_{task}"] = float(roc_auc_score(y[ok], truth[CEILING[task]][ok])) if both else None
        rows.append(row)
        reward.fit(model, today, epochs=r.epochs, seed=len(rows), **fit)
    return model, items, rows


def item_space(events, settings: SampleSettings, levels: int = 2, k: int = 16) -> ItemSpace:
    """Semantic IDs from RQ-KMeans over cluster-shaped item vectors (the sample has no text embeddings here)."""
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


def alignment(events, space: ItemSpace, pscore, reward_ids, through, oracle: SampleOracle, out: Path,
              args: argparse.Namespace) -> dict:  # fmt: skip
    day = sorted(events["event_date"].unique())[-1]
    examples = leave_one_out_rows(events, day)
    t0 = time.perf_counter()
    if not (args.reuse_sft and (out / "sft" / "best").is_dir()):
        run(examples, space, out / "sft", preset_name="tiny", steps=args.sft_steps)
    sft_s = time.perf_counter() - t0
    base = load_generator(out / "sft" / "best")
    loo = data.from_training_examples(examples, space.index)
    test, contexts = heldout_examples(loo, base.cfg, through)
    trie = SemanticIdTrie.from_item_codes(space.codes, base.cfg.level_sizes)
    policy_reward = PolicyReward(pscore, reward_ids, space.item_ids)
    task = trainer.OneRecTask(loo, base.cfg, preset("tiny").train, space.codes)
    past = events[events["event_date"] <= through].reset_index(drop=True)
    first = sorted(past["event_date"].unique())[-args.feedback_days]
    feedback = logged_feedback(past, (past["event_date"] >= first).to_numpy(), space.index, base.cfg)

    def sft_batch(rng):
        return task.batch(rng.choice(task.n_examples, 16, replace=False).tolist())

    def metrics(model):
        return generation_metrics(model, test, space.codes, trie, policy_reward, oracle=oracle, user_ids=loo.users,
                                  item_ids=space.item_ids, per_user=True)  # fmt: skip

    result = {"sft_steps": args.sft_steps, "sft_s": sft_s, "heldout_users": len(test), "rollout_users": len(contexts),
              "feedback_samples": len(feedback), "feedback_positive": int((feedback.adv > 0).sum()),
              "reward_trained_through": str(through), "before": metrics(base)}  # fmt: skip
    for spec in args.methods.split(","):
        # "gbpo" or a variant "gbpo:reward_weight=0:format_samples=0" (AlignConfig fields).
        method, *sets = spec.split(":")
        model = copy.deepcopy(base)
        fields = dict(
            steps=args.align_steps,
            users_per_step=args.users_per_step,
            group_size=args.group_size,
            lr=args.lr,
            feedback_per_step=args.feedback_per_step,
            reward_weight=args.reward_weight,
        )
        fields.update({k: type(getattr(AlignConfig(), k))(v) for k, v in (x.split("=") for x in sets)})
        cfg = AlignConfig(method=method, **fields)
        t0 = time.perf_counter()
        log = align(model, contexts, space.codes, trie, policy_reward, cfg, sft_batch,
                    feedback=feedback if method != "dpo" else None)  # fmt: skip
        steps = [r for r in log if "loss" in r]
        after = metrics(model)
        result[spec] = {
            "after": after, "align_s": time.perf_counter() - t0, "paired_delta": paired(result["before"], after),
            "rollout_s": float(np.mean([r["rollout_s"] for r in steps])) if steps else None,
            "update_s": float(np.mean([r["update_s"] for r in steps])) if steps else None,
            "rollout_reward_first": steps[0]["rollout_reward"] if steps else None,
            "rollout_reward_last": steps[-1]["rollout_reward"] if steps else None,
            "config": {k: getattr(cfg, k) for k in ("users_per_step", "group_size", "ppo_epochs", "steps", "lr",
                                                   "format_samples", "feedback_per_step", "reward_weight")},
        }  # fmt: skip
    return result


def paired(before: dict, after: dict) -> dict[str, list[float]]:
    """``metric: [mean after - before, its standard error]`` over the same users (a paired difference)."""
    out = {}
    for name, b in before["per_user"].items():
        d = np.asarray(after["per_user"][name], float) - np.asarray(b, float)
        d = d[np.isfinite(d)]
        out[name] = [float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))] if len(d) > 1 else [float("nan")] * 2
    return out


def table(a: dict, methods: list[str]) -> str:
    """The before / after table: value (standard error) per metric, one row per model."""
    head = f"{'model':<10}" + "".join(f"{c:>22}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    width = max(10, *(len(m) + 1 for m in methods))
    head = f"{'model':<{width}}" + head[10:]
    lines = [head, "-" * len(head)]
    for name, m in [("sft", a["before"]), *((k, a[k]["after"]) for k in methods)]:
        cells = []
        for c in COLUMNS:
            v, se = m.get(c), m.get(f"{c}_se")
            cells.append("n/a" if v is None else f"{v:.4f}" + (f" ({se:.4f})" if se is not None else ""))
        lines.append(f"{name:<{width}}" + "".join(f"{x:>22}" for x in cells))
    lines.append("paired change vs sft, mean (standard error) over the same users:")
    for name in methods:
        d = a[name]["paired_delta"]
        cells = [f"{d[c][0]:+.4f} ({d[c][1]:.4f})" if c in d else "" for c in COLUMNS]
        lines.append(f"{name:<{width}}" + "".join(f"{x:>22}" for x in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--heldout-days", type=int, default=3)
    p.add_argument("--bootstrap-days", type=int, default=10)
    p.add_argument("--sft-steps", type=int, default=200)
    p.add_argument("--align-steps", type=int, default=20)
    p.add_argument("--users-per-step", type=int, default=32)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--feedback-per-step", type=int, default=32)
    p.add_argument("--feedback-days", type=int, default=1)
    p.add_argument("--reward-weight", type=float, default=1.0)
    p.add_argument("--methods", default="gbpo,ecpo,dpo")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reuse-sft", action="store_true", help="keep <out>/sft from an earlier run")
    p.add_argument("--out", default="var/reports/bench/alignment")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = SampleSettings(days=args.days)
    events = sample_events(settings)
    days = sorted(events["event_date"].unique())
    through = days[-1 - args.heldout_days]
    oracle = SampleOracle(settings)
    t0 = time.perf_counter()
    pscore, reward_ids, auc_rows = reward_daily(events, args.bootstrap_days, through, oracle, RewardSettings())
    names = [k for k in auc_rows[0] if k != "day"]
    mean = {k: float(np.mean([r[k] for r in auc_rows if r[k] is not None])) for k in names}
    report = {"events": len(events), "load_before": os.getloadavg(), "threads": args.threads,
              "reward": {"days_scored": len(auc_rows), "trained_through": str(through), "mean_next_day_auc": mean,
                         "daily": auc_rows, "wall_s": time.perf_counter() - t0},
              "alignment": alignment(events, item_space(events, settings), pscore, reward_ids, through, oracle, out,
                                     args)}  # fmt: skip
    report["load_after"] = os.getloadavg()
    (out / "alignment.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    towers = [k for k in mean if not k.startswith("ceiling_")]
    print("reward next-day AUC (oracle ceiling):",
          ", ".join(f"{k} {mean[k]:.3f} ({mean.get(f'ceiling_{k}', float('nan')):.3f})" for k in towers))  # fmt: skip
    a = report["alignment"]
    print(f"held-out users {a['heldout_users']}, rollout users {a['rollout_users']}, feedback samples "
          f"{a['feedback_samples']} ({a['feedback_positive']} positive), reward through {through}")  # fmt: skip
    print(table(a, args.methods.split(",")))
    return report


if __name__ == "__main__":
    main()

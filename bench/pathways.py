"""Pathway ablations, validation only: the daily ``train`` stage with each of OneRec's four pathways off.

    python -m bench.pathways                                                    # the bundled sample, all its days
    python -m bench.pathways --data ../shared/data/ml-100k --format movielens_atomic
    python -m bench.pathways --lake DIR --seeds 0,1,2    # reuse a lake a previous run kept (--keep)

The lake is built the way a user builds theirs: ``dags.runner run --days 0 --bulk`` in a child
process with its own ``ONEREC_HOME`` (the bulk backfill of every day, then ``onerec_daily`` once on
the last day: item side, lifelong compression, Feast, ``gold.training_features``). Then the DAG's own
stage, ``jobs.model_stages.train``, runs on that last day once per variant and seed, reading the
same ``gold.training_features`` rows the server's features came from:

* ``all``: the four pathways (static, short-term, positive feedback, lifelong);
* ``-static``, ``-short``, ``-positive``, ``-lifelong``: that pathway fed as padding only
  (``model.pathways.<name>=false``, what ``models.pathways`` masks).

Every variant is a full retrain from scratch (no champion: each variant has its own model
directory) for ``--steps`` steps of the config's preset, same seed set. Only **validation** is
read: each leave-one-out user's second-to-last event, ranked by the generator's constrained beam.
The stage runs with ``model.score_test=false``: the test split is never scored, so no ablation
figure can steer a choice on test.

Printed: the lake (users, items, which engagement signals the training rows carry), then per
variant valid Recall@10 / NDCG@10 mean and standard deviation over seeds and the change against
``all``. JSON -> ``--out`` (default ``$ONEREC_HOME/reports/bench/pathways-<dataset>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHWAYS = ("static", "short", "positive", "lifelong")
METRICS = ("recall@10", "ndcg@10", "recall@5", "ndcg@5")


# ---------------------------------------------------------------------------------------------
# Pure helpers (tests/bench/test_pathways.py)
# ---------------------------------------------------------------------------------------------
def variants(names: tuple[str, ...] = PATHWAYS) -> dict[str, list[str]]:
    """Variant name -> the overrides that switch its pathway off (``all`` switches none)."""
    unknown = sorted(set(names) - set(PATHWAYS))
    if unknown:
        raise ValueError(f"unknown pathway(s) {unknown}; known: {', '.join(PATHWAYS)}")
    return {"all": [], **{f"-{name}": [f"model.pathways.{name}=false"] for name in names}}


def summarise(valid_by_variant: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean / std over seeds of each validation metric, and the mean's change against ``all``.

    ``valid_by_variant`` maps a variant to one ``train.json`` ``valid`` dict per seed; the std of
    a single seed is 0.
    """
    summary: dict[str, dict] = {}
    for name, runs in valid_by_variant.items():
        row: dict[str, float | int] = {"seeds": len(runs), "users": int(runs[0]["n_users"])}
        for metric in METRICS:
            values = [float(r[metric]) for r in runs]
            row[metric] = statistics.fmean(values)
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[name] = row
    if "all" in summary:
        base = summary["all"]
        for row in summary.values():
            for metric in METRICS:
                row[f"{metric}_delta"] = row[metric] - base[metric]
    return summary


def format_table(summary: dict[str, dict]) -> str:
    """The printed table: variant, valid R@10 and N@10 (mean ± std), their change against ``all``."""
    lines = [
        f"{'variant':<10} {'seeds':>5} {'users':>6} {'valid R@10':>17} {'vs all':>8} {'valid N@10':>17} {'vs all':>8}"
    ]
    for name, row in summary.items():
        lines.append(
            f"{name:<10} {row['seeds']:>5} {row['users']:>6} "
            f"{row['recall@10']:>9.4f} ± {row['recall@10_std']:.4f} {row.get('recall@10_delta', 0.0):>+8.4f} "
            f"{row['ndcg@10']:>9.4f} ± {row['ndcg@10_std']:.4f} {row.get('ndcg@10_delta', 0.0):>+8.4f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------
def build_lake(lake: Path, config: str, data: str | None, fmt: str | None) -> float:
    """``dags.runner run --days 0 --bulk`` into ``lake`` (a child process: its own JVM and Airflow DB)."""
    cmd = [sys.executable, "-m", "dags.runner", "run", "--days", "0", "--bulk", "--config", config]
    cmd += (["--data", os.path.abspath(data)] if data else []) + (["--format", fmt] if fmt else [])
    print(f"[bench.pathways] building the lake: {' '.join(cmd[1:])} (ONEREC_HOME={lake})", flush=True)
    t0 = time.time()
    subprocess.run(cmd, env={**os.environ, "ONEREC_HOME": str(lake)}, check=True)
    return time.time() - t0


def lake_overrides(lake: Path, data: str | None, fmt: str | None) -> list[str]:
    """The overrides that point settings at ``lake`` and its dataset."""
    out = [f"home={lake}"]
    out += ([f"source.path={os.path.abspath(data)}"] if data else []) + ([f"source.format={fmt}"] if fmt else [])
    return out


def last_day(cfg):
    """The day the lake's onerec_daily ran on: the dataset's last replayable day."""
    from jobs.ingest import replay_days

    return replay_days(cfg)[-1]


# The training-row column that carries each pathway's items (gold.training_features, onerec_train_v3).
PATHWAY_COLUMNS = {"static": "attributes", "short": "short_item_ids", "positive": "positive_item_ids",
                   "lifelong": "item_ids"}  # fmt: skip


def pathway_coverage(examples) -> dict[str, float]:
    """Share of the validation rows whose pathway has anything in it (static: any user attribute).

    An ablation of a pathway that is empty for most rows says little: this is printed beside it.
    """
    from models.pathways import as_list, attributes_of  # the model's own readers of these columns

    valid = examples[examples["split"] == "valid"]
    coverage = {}
    for name, col in PATHWAY_COLUMNS.items():
        read = attributes_of if name == "static" else as_list
        filled = valid[col].map(lambda value, read=read: len(read(value)) > 0) if col in valid else []
        coverage[name] = round(float(filled.mean()), 4) if len(filled) else 0.0
    return coverage


def train_variant(ds: str, config: str, overrides: list[str], work_dir: Path, seed: int, steps: int) -> dict:
    """One full retrain by the DAG's train stage (test never scored); its train.json."""
    from jobs import model_stages

    run_conf = {"config": config, "set": [*overrides, f"model.work_dir={work_dir}", f"model.seed={seed}",
                                          f"model.full_retrain_steps={steps}", "model.score_test=false"]}  # fmt: skip
    done = model_stages.train(ds, run_conf)
    if "skipped" in done:
        raise RuntimeError(f"train skipped on {ds}: {done['skipped']}")
    if done.get("test"):
        raise RuntimeError("the train stage scored test: this bench reads validation only")
    return done


def train_summary(train: dict) -> dict:
    """What the JSON keeps of a run's last training log line: step, loss, steps/s and wall seconds."""
    return {key: train[key] for key in ("step", "loss", "steps_per_s", "wall_s") if key in train}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="local", help="config name or path (default local)")
    parser.add_argument("--data", help="dataset folder (default: the bundled sample)")
    parser.add_argument("--format", help="loader of --data (e.g. movielens_atomic)")
    parser.add_argument("--lake", help="an ONEREC_HOME a previous run built (skips the build)")
    parser.add_argument("--keep", action="store_true", help="keep the lake built here (printed)")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of training seeds (default 0,1,2)")
    parser.add_argument("--steps", type=int, default=600, help="training steps per variant (default 600)")
    parser.add_argument("--pathways", default=",".join(PATHWAYS), help="pathways to ablate one at a time")
    parser.add_argument("--out", help="JSON path (default $ONEREC_HOME/reports/bench/pathways-<dataset>.json)")
    args = parser.parse_args(argv)
    from conf.settings import load_settings
    from jobs.cli import setup_logging
    from jobs.model_inputs import read_examples

    setup_logging()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    plan = variants(tuple(p.strip() for p in args.pathways.split(",") if p.strip()))
    dataset = Path(args.data).name if args.data else "sample"
    lake = Path(args.lake) if args.lake else Path(tempfile.mkdtemp(prefix=f"pathways-{dataset}-"))
    build_s = None if args.lake else build_lake(lake, args.config, args.data, args.format)
    overrides = lake_overrides(lake, args.data, args.format)
    cfg = load_settings(args.config, overrides)
    day = last_day(cfg)
    ds = day.isoformat()
    coverage = pathway_coverage(read_examples(cfg, day))
    print(f"[bench.pathways] validation rows with a non-empty pathway: {coverage}", flush=True)
    print(f"[bench.pathways] {dataset}: training on {ds}, variants {', '.join(plan)}, seeds {seeds}, "
          f"{args.steps} steps each", flush=True)  # fmt: skip
    runs: dict[str, list[dict]] = {name: [] for name in plan}
    t0 = time.time()
    for name, switches in plan.items():
        for seed in seeds:
            t = time.time()
            done = train_variant(ds, args.config, [*overrides, *switches], lake / "ablation" / f"{name}-s{seed}",
                                 seed, args.steps)  # fmt: skip
            runs[name].append(done)
            valid = done["valid"]
            print(f"[bench.pathways] {name:<10} seed {seed}: valid R@10 {valid['recall@10']:.4f} "
                  f"N@10 {valid['ndcg@10']:.4f} ({valid['n_users']} users, {time.time() - t:.0f} s)", flush=True)  # fmt: skip
    summary = summarise({name: [r["valid"] for r in done] for name, done in runs.items()})
    first = runs["all"][0]
    result = {
        "dataset": dataset, "data": args.data, "format": args.format, "config": args.config, "ds": ds,
        "steps": args.steps, "seeds": seeds, "lake_build_s": round(build_s, 1) if build_s else None,
        "train_s": round(time.time() - t0, 1), "n_items": first["n_items"], "signals": first["signals"],
        "feature_service": first.get("feature_service"), "coverage": coverage, "summary": summary,
        "runs": {name: [{"seed": s, "pathways": r["pathways"], "valid": r["valid"], "train": train_summary(r["train"])}
                        for s, r in zip(seeds, done, strict=True)] for name, done in runs.items()},
    }  # fmt: skip
    print(f"\n{dataset}: {first['n_items']} items, signals {', '.join(first['signals']) or 'none'}; "
          f"validation only, mean ± std over {len(seeds)} seed(s)\n"
          f"validation rows with the pathway non-empty: {coverage}\n{format_table(summary)}")  # fmt: skip
    home = Path(os.environ.get("ONEREC_HOME", "var"))
    out = Path(args.out) if args.out else home / "reports" / "bench" / f"pathways-{dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"figures -> {out}")
    if args.lake or args.keep:
        print(f"lake: {lake}")
    else:
        shutil.rmtree(lake, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()

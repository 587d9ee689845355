"""Offline quality against TIGER's table: OneRec vs SASRec-CE vs SASRec-BCE, leave-one-out.

    python -m bench.quality --data ../shared/data/amazon-beauty --format amazon_seq [--profile cpu_pipeline|gpu_pipeline|cpu|cpu_long|gpu|gpu_long|quick]
    make bench-quality DATA=../shared/data/amazon-beauty FORMAT=amazon_seq [QUALITY_ARGS="--device cuda"]
    python -m bench.quality --data ../shared/data/amazon-scientific --format amazon_json --ids both

``--ids both`` trains a generator on text IDs and on each behaviour source and reports every one
on test side by side (``onerec_<source>``); ``--ids swing,ppmi`` names the sources. On a shared
CPU ``--threads 1`` is several times faster than 2 (thread oversubscription), and
``--time-scale`` shrinks every model's time box.

Stages, each timed: ingest (the dataset's own files, ``amazon_seq`` or ``amazon_json``) ->
sequences (leave-one-out: last item test, the one before valid, the rest train) -> SASRec-CE ->
item vectors of the train split (the default ``swing``: the daily pipeline's Swing item pairs
and spectral behaviour vectors, bench/quality_pipeline.py) -> semantic IDs (``models.rq_kmeans``,
the daily stage's tokenizer, + dedup) -> OneRec (one generator per ID source, best on valid kept)
-> SASRec-BCE -> test scoring once per model -> ``metrics.json`` + ``report.html`` under
``var/reports/quality/<dataset>/``.

What the rows mean (the issue "the model that is served is the model that is measured"):

* ``onerec``: the generator, constrained beam search, items ranked by its own beam
  probabilities, on IDs that borrow nothing from a baseline model (best such source on valid).
* ``onerec_item_head_rerank``: a labelled hybrid -- the same beam reranked with the dense item
  head's scores.
* ``onerec_sasrec_ids`` (only when ``sasrec`` is a source): a labelled hybrid -- a generator on
  IDs made from SASRec-CE's item table.

Why the sequences are read here and not from ``gold.training_examples``: the Amazon files
carry order, not time (the loaders place item k on day k), and the leave-one-out split must be
per user, not per day. Reading the file through ``models.data`` gives exactly the split of
SASRec/TIGER's code (same users, same targets, full ranking over all items); the Spark path's
``leave_one_out`` rows are the same split (``models.data.from_training_examples`` reads them,
tested in tests/models). The item vectors and semantic IDs are fit on the training split only.
Spark is started only for the ``swing`` source (and stopped before training).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import quality_report
from bench.quality_plans import PLANS, Plan, with_generator
from models import data, item_codes
from models.onerec import build
from models.sasrec import SASRec
from models.tasks import OneRecTask, SASRecTask
from models.train import train

KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")
PROTOCOL = ("leave-one-out (last = test, second to last = valid), full ranking over all items, no history "
            "filtering; selection on valid only, test scored once")  # fmt: skip


# --- ingest and sequences ------------------------------------------------------------------------


def load_dataset(root: str | Path, fmt: str) -> tuple[dict[str, list[int]], dict[int, str] | None]:
    """``({user: [item 1..n, ...]}, {item: text} or None)`` from a dataset folder (or one file)."""
    root = Path(root)
    if fmt == "amazon_seq":
        files = [root] if root.is_file() else sorted(root.glob("*.txt"))
        if not files:
            raise FileNotFoundError(f"no *.txt sequence file in {root}")
        return data.read_amazon_sequences(files[0]), None
    if fmt == "amazon_json":
        inter = json.loads(next(root.glob("*.inter.json")).read_text())
        raw_items = sorted({i for seq in inter.values() for i in seq})
        index = {item: n + 1 for n, item in enumerate(raw_items)}  # 0-based ids -> 1..n, 0 = padding
        seqs = {user: [index[i] for i in seq] for user, seq in inter.items()}
        texts = None
        item_files = sorted(root.glob("*.item.json"))
        if item_files:
            meta = json.loads(item_files[0].read_text())
            texts = {index[int(k)]: _item_text(v) for k, v in meta.items() if int(k) in index}
        return seqs, texts
    raise ValueError(f"bench-quality reads amazon_seq or amazon_json, not {fmt!r}")


def _item_text(meta: dict[str, Any]) -> str:
    return ". ".join(str(meta.get(k) or "") for k in ("title", "brand", "categories", "description"))


def subset(seqs: dict[str, list[int]], max_users: int | None,
           texts: dict[int, str] | None = None) -> tuple[dict[str, list[int]], dict[int, str] | None]:  # fmt: skip
    """The first ``max_users`` users, items re-indexed 1..n over what they touch (quick mode)."""
    if not max_users:
        return seqs, texts
    kept = dict(list(seqs.items())[:max_users])
    index = {item: n + 1 for n, item in enumerate(sorted({i for s in kept.values() for i in s}))}
    texts = None if texts is None else {new: texts[old] for old, new in index.items() if old in texts}
    return {u: [index[i] for i in s] for u, s in kept.items()}, texts


# --- item embeddings and semantic IDs ----------------------------------------------------------------


def text_vectors(texts: dict[int, str], n_items: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """TF-IDF of word unigrams -> rank-``dim`` SVD: a dependency-free text embedding (torch only)."""
    import re
    from collections import Counter

    docs = [Counter(re.findall(r"[a-z0-9]+", texts.get(i, "").lower())) for i in range(1, n_items + 1)]
    df = Counter(w for d in docs for w in d)
    vocab = {w: j for j, w in enumerate(w for w, c in df.items() if 2 <= c <= 0.5 * n_items)}
    rows, cols, vals = [], [], []
    for r, d in enumerate(docs):
        for w, c in d.items():
            if w in vocab:
                rows.append(r), cols.append(vocab[w]), vals.append((1 + np.log(c)) * np.log(n_items / df[w]))
    m = torch.sparse_coo_tensor(np.array([rows, cols]), np.array(vals, dtype=np.float32), (n_items, len(vocab)),
                                check_invariants=True)  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(m.coalesce(), q=min(dim, len(vocab) - 1), niter=4)
    return (u * s).numpy()


# Where each ID source's item vectors come from. Only ``sasrec`` borrows from a baseline model: a
# generator on its IDs is reported as a labelled hybrid row, never as the headline OneRec row.
SOURCES = {
    "swing": "the pipeline's behaviour vectors (Swing item pairs -> spectral basis, train split)",
    "ppmi": "PPMI co-occurrence SVD of the train split",
    "text": "item text (TF-IDF SVD)",
    "sasrec": "SASRec-CE's item table (borrowed from a baseline: hybrid)",
}
BORROWED = frozenset({"sasrec"})


def make_codes(source: str, loo: data.LeaveOneOut, plan: Plan, sasrec: SASRec | None,
               texts: dict[int, str] | None) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Semantic IDs ``(n_items + 1, L + 1)`` from one vector source, all fit on train only."""
    extra: dict[str, Any] = {}
    if source == "sasrec":
        if sasrec is None:
            raise ValueError("the sasrec ID source needs SASRec-CE: run without --generator-only")
        vectors = item_codes.sasrec_item_vectors(sasrec)
    elif source == "ppmi":
        vectors = item_codes.ppmi_item_vectors(loo.train, loo.n_items)
    elif source == "text":
        vectors = text_vectors(texts or {}, loo.n_items)
    elif source == "swing":
        from bench.quality_pipeline import swing_item_vectors  # pyspark: only for this source

        vectors, extra = swing_item_vectors(loo.train, loo.n_items)
    else:
        raise ValueError(f"unknown ID source {source!r} (one of {sorted(SOURCES)})")
    codes, _, _ = item_codes.semantic_ids(vectors, plan.sid_levels, plan.sid_codes)
    return codes, {**item_codes.code_stats(codes), **extra}


# --- training --------------------------------------------------------------------------------------


def _row(test: dict[str, Any], wall_s: float, **extra: Any) -> dict[str, Any]:
    keep = {k: v for k, v in test.items() if k in KEYS or k.startswith(("coverage", "legal"))}
    return {**keep, "wall_s": round(wall_s, 1), **extra}


def run_sasrec(loo, plan: Plan, loss: str, out: Path, device: str,
               score_test: bool = True) -> tuple[SASRec, dict[str, Any]]:  # fmt: skip
    tc = dataclasses.replace(plan.sasrec_train if loss == "ce" else plan.bce_train, device=device,
                             out_dir=str(out / f"sasrec_{loss}"))  # fmt: skip
    cfg = dataclasses.replace(plan.sasrec, n_items=loo.n_items, loss=loss)
    torch.manual_seed(tc.seed)
    model = SASRec(cfg).to(device)
    Path(tc.out_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = train(model, SASRecTask(loo, cfg, tc), tc, cfg, {"data": "bench"}, eval_limit=plan.eval_users,
                   score_test=score_test)  # fmt: skip
    return model, _row(result["test"], time.perf_counter() - t0, valid=result["valid"],
                       params=sum(p.numel() for p in model.parameters()))  # fmt: skip


def run_onerec(loo, plan: Plan, codes: np.ndarray, source: str, out: Path, device: str) -> tuple[Any, Any, dict]:
    """Train one generator on ``codes``; returns (model, task, valid result) -- test left alone."""
    tc = dataclasses.replace(plan.onerec_train, device=device, out_dir=str(out / f"onerec_{source}"))
    cfg = dataclasses.replace(plan.onerec, n_items=loo.n_items, levels=codes.shape[1] - 1,
                              codes_per_level=int(codes[:, :-1].max()) + 1,
                              dedup_codes=int(codes[:, -1].max()) + 1)  # fmt: skip
    torch.manual_seed(tc.seed)
    model = build(cfg, codes).to(device)
    task = OneRecTask(loo, cfg, tc, codes)
    Path(tc.out_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = train(model, task, tc, cfg, {"data": "bench", "codebook": source}, eval_limit=plan.eval_users,
                   score_test=False)  # fmt: skip
    return model, task, {"valid": result["valid"], "wall_s": time.perf_counter() - t0, "train": result["train"],
                         "params": sum(p.numel() for p in model.parameters())}  # fmt: skip


def _autocast(device: str, plan: Plan):
    import contextlib

    if torch.device(device).type == "cuda" and plan.onerec_train.dtype == "bf16":
        return torch.autocast("cuda", torch.bfloat16)
    return contextlib.nullcontext()


def _score_test(task: OneRecTask, model: Any, plan: Plan, device: str) -> dict[str, Any]:
    """Test metrics from one beam search: the generator's own order, and (under ``"generative"``
    moved to the top by :func:`_generator_rows`) the item-head rerank where the plan asks for it."""
    weight = plan.onerec_train.item_weight if plan.test_rerank_weight is None else plan.test_rerank_weight
    if weight > 0 and plan.onerec.item_loss_weight > 0:
        task.tc = dataclasses.replace(task.tc, item_weight=weight)
    with _autocast(device, plan):
        return task.evaluate(model, "test", beam_size=plan.onerec_train.test_beam_size or None)


def _generator_rows(name: str, test: dict[str, Any], result: dict[str, Any], source: str,
                    plan: Plan) -> dict[str, dict[str, Any]]:  # fmt: skip
    """``{name: the generator ranked by its own beam probabilities}``, plus
    ``{name}_item_head_rerank`` (a labelled hybrid) when the same beam was also reranked."""
    own = {**{k: v for k, v in test.items() if k.startswith("legal")}, **test.get("generative", test)}
    borrowed = " [HYBRID: IDs borrowed from SASRec-CE]" if source in BORROWED else ""
    common = {"valid": result["valid"], "sid_source": source, "ids_from": SOURCES[source],
              "params": result["params"], "beam_size": plan.onerec_train.test_beam_size,
              "architecture": plan.onerec.architecture, "per_position": plan.onerec.per_position,
              "item_loss_weight": plan.onerec.item_loss_weight}  # fmt: skip
    rows = {name: _row(own, result["wall_s"], **common, item_weight=0.0, _test=test,
                       label=f"OneRec generator, constrained beam, own order; IDs: {SOURCES[source]}{borrowed}")}  # fmt: skip
    if "generative" in test:
        rows[f"{name}_item_head_rerank"] = _row(
            test, result["wall_s"], **common, item_weight=test.get("item_weight"),
            label=f"HYBRID: the same beam reranked by the dense item head (x{test.get('item_weight')}){borrowed}",
        )  # fmt: skip
    return rows


# --- the benchmark ------------------------------------------------------------------------------------


def run(root: str | Path, fmt: str, plan: Plan, device: str = "cpu", name: str | None = None,
        out_root: str | Path = "var/reports/quality", ids: str = "behaviour",
        valid_only: bool = False, baselines: bool = True) -> dict[str, Any]:  # fmt: skip
    """All stages; returns (and writes) the metrics dict. ``valid_only`` never scores the test
    split (A/B of a changed configuration: its rows carry ``valid`` only). ``baselines=False``
    (only with ``valid_only``) trains no SASRec: an A/B of the generator's own inputs."""
    if not baselines and not valid_only:
        raise ValueError("skipping the baselines is for validation A/Bs only: a test table needs SASRec-CE beside it")
    name = name or Path(root).name
    out = Path(out_root) / name
    runs = out / "runs"
    stages: dict[str, float] = {}
    t_all = time.perf_counter()

    def stage(label: str, t0: float) -> None:
        stages[label] = round(time.perf_counter() - t0, 1)
        print(f"[bench.quality] {label}: {stages[label]} s", flush=True)

    t0 = time.perf_counter()
    seqs, texts = load_dataset(root, fmt)
    seqs, texts = subset(seqs, plan.max_users, texts)
    stage("ingest", t0)
    t0 = time.perf_counter()
    loo = data.leave_one_out(seqs)
    stage("sequences", t0)

    metrics: dict[str, Any] = {"dataset": name, "profile": plan.name, "device": _device_name(device)}
    metrics.update(stages=stages, published=quality_report.published(name), protocol=PROTOCOL)
    t0 = time.perf_counter()
    metrics["valid_only"] = valid_only
    sasrec = None
    if baselines:
        sasrec, metrics["sasrec"] = run_sasrec(loo, plan, "ce", runs, device, score_test=not valid_only)
        stage("train_sasrec_ce", t0)
    quality_report.write(out, metrics)  # partial results survive a killed run

    sources = _sources(plan, ids, texts)
    candidates: dict[str, Any] = {}
    best: dict[bool, tuple] = {}  # borrowed? -> (valid R@10, source, model, task, result)
    for source in sources:
        t0 = time.perf_counter()
        codes, stats = make_codes(source, loo, plan, sasrec, texts)
        stage(f"semantic_ids_{source}", t0)
        t0 = time.perf_counter()
        model, task, result = run_onerec(loo, plan, codes, source, runs, device)
        stage(f"train_onerec_{source}", t0)
        candidates[source] = {"valid": result["valid"], "codes": stats, "wall_s": round(result["wall_s"], 1)}
        score = result["valid"].get("recall@10", -1.0)
        kind = source in BORROWED
        if kind not in best or score > best[kind][0]:
            best[kind] = (score, source, model, task, result)
        if ids == "both" and not valid_only:  # side by side: each ID source's generator is reported on test too
            t0 = time.perf_counter()
            test = _score_test(task, model, plan, device)
            stage(f"test_onerec_{source}", t0)
            metrics.update(_generator_rows(f"onerec_{source}", test, result, source, plan))
    metrics["onerec_candidates"] = candidates
    # The headline ``onerec`` row: the best on valid among IDs that borrow nothing from a baseline;
    # a generator on borrowed IDs is its own labelled row (``onerec_<source>_ids``).
    for borrowed, (_, source, model, task, result) in sorted(best.items()):
        name = f"onerec_{source}_ids" if borrowed and False in best else "onerec"
        t0 = time.perf_counter()
        if valid_only:
            test = {}
        elif ids == "both":  # already scored side by side
            test = metrics[f"onerec_{source}"]["_test"]
        else:  # the generator chosen on valid (the choice never sees test)
            test = _score_test(task, model, plan, device)
            stage(f"test_{name}", t0)
        metrics.update(_generator_rows(name, test, result, source, plan))
    for row in metrics.values():
        if isinstance(row, dict):
            row.pop("_test", None)
    quality_report.write(out, metrics)

    t0 = time.perf_counter()
    if baselines:
        _, metrics["sasrec_bce"] = run_sasrec(loo, plan, "bce", runs, device, score_test=not valid_only)
        stage("train_sasrec_bce", t0)

    metrics.update(
        wall_s=round(time.perf_counter() - t_all, 1), host=platform.node(), data={"users": len(loo.users),
        "items": loo.n_items, "interactions": int(sum(len(s) for s in seqs.values()))},
    )  # fmt: skip
    quality_report.write(out, metrics)
    return metrics


def valid_view(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics with each model's validation figures in place of test (for the table)."""
    view = {k: {**v, **v["valid"]} if isinstance(v, dict) and "valid" in v else v for k, v in metrics.items()}
    return {**view, "published": {}, "profile": f"{metrics['profile']} (VALIDATION, test not scored)"}


def scale_time(plan: Plan, factor: float) -> Plan:
    """The plan with every training time box multiplied by ``factor`` (1 = as planned)."""
    if factor == 1.0:
        return plan
    boxed = {k: dataclasses.replace(getattr(plan, k), time_limit_s=getattr(plan, k).time_limit_s * factor)
             for k in ("onerec_train", "sasrec_train", "bce_train")}  # fmt: skip
    return dataclasses.replace(plan, **boxed)


def _sources(plan: Plan, ids: str, texts: dict[int, str] | None) -> tuple[str, ...]:
    """``behaviour``: the plan's sources; ``text``; ``both`` (text first, where items have text);
    or a comma-separated list of source names (``swing,ppmi``)."""
    if ids == "behaviour":
        return plan.sid_sources
    if ids == "text":
        return ("text",)
    if ids == "both":
        return ("text", *plan.sid_sources) if texts else plan.sid_sources
    named = tuple(s.strip() for s in ids.split(",") if s.strip())
    unknown = sorted(set(named) - set(SOURCES))
    if unknown or not named:
        raise ValueError(f"--ids {ids!r}: unknown ID source(s) {unknown}; use behaviour, text, both or a "
                         f"comma-separated list of {sorted(SOURCES)}")  # fmt: skip
    if "text" in named and not texts:
        raise ValueError(f"--ids {ids!r}: this dataset has no item text (amazon_json's *.item.json has)")
    return named


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu x{torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (or the sequence file)")
    p.add_argument("--format", default="amazon_seq", choices=["amazon_seq", "amazon_json"])
    p.add_argument("--profile", choices=sorted(PLANS),
                   help="default: gpu_pipeline with --device cuda, else cpu_pipeline (bench/quality_plans.py)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="the quick profile (tests: seconds, tiny models)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--name", help="dataset name in the output path (default: the folder's name)")
    p.add_argument("--ids", default="behaviour", metavar="behaviour|text|both|SOURCE[,SOURCE]",
                   help="semantic-ID sources: behaviour (the profile's), text, both side by side, or named: "
                   "swing (the pipeline's Swing pairs -> behaviour vectors), ppmi, text, sasrec (borrowed "
                   "from SASRec-CE: reported as a hybrid row)")  # fmt: skip
    p.add_argument("--out", default="var/reports/quality")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply every model's time box (busy machines)")
    p.add_argument("--item-head", type=float, metavar="W",
                   help="item-head loss and rerank weight (default: the profile's, 1; 0 = the generator alone)")  # fmt: skip
    p.add_argument("--arch", choices=["encoder_decoder", "lazy_decoder"],
                   help="generator architecture (default: the profile's; lazy_decoder = OneRec-V2, no item head)")  # fmt: skip
    p.add_argument("--valid-only", action="store_true",
                   help="never score the test split: the table shows validation (A/B of a changed configuration)")  # fmt: skip
    p.add_argument("--generator-only", action="store_true",
                   help="with --valid-only: train no SASRec baseline (an A/B of the generator's inputs)")  # fmt: skip
    p.add_argument("--per-position", action="store_true",
                   help="train the generator on every position of a window in one pass (models/per_position.py)")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if torch.device(args.device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    default = "gpu_pipeline" if args.device.startswith("cuda") else "cpu_pipeline"
    profile = "quick" if args.quick else args.profile or default
    # The generator's A/B switches on the same plan: item head W, architecture, per-position.
    plan = with_generator(scale_time(PLANS[profile](), args.time_scale), args.arch, args.per_position, args.item_head)
    if args.generator_only and not args.valid_only:
        p.error("--generator-only needs --valid-only: a test table always has SASRec-CE beside it")
    metrics = run(args.data, args.format, plan, args.device, args.name, args.out, args.ids, args.valid_only,
                  baselines=not args.generator_only)  # fmt: skip
    print(quality_report.table(valid_view(metrics) if args.valid_only else metrics))
    return metrics


if __name__ == "__main__":
    main()

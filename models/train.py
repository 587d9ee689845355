"""Train a OneRec generator (either architecture) or SASRec on leave-one-out data.

    python -m models.train --model onerec --data Beauty.txt --preset small --device cuda --dtype bf16
    python -m models.train --model sasrec --data var/lake/gold/training_examples --ds 2025-01-31 --steps 5000
    torchrun --nproc_per_node 8 -m models.train --model onerec ...      # DDP, one process per GPU

AdamW (decay on matrices only), linear warmup then cosine decay, gradient clipping, bf16
autocast on CUDA; periodic validation picks the best checkpoint on the *valid* split only, and
the test split is scored once, at the end, with that checkpoint. ``--resume`` continues a
killed run from ``<out>/last`` (model, optimizer, step, RNG states, best metric); the data order
is a function of (seed, epoch), so a resumed run sees the batches it would have seen.
Outputs in ``--out``: ``last/``, ``best/`` (see checkpoint.py), ``train_log.jsonl``,
``metrics.json``, and ``item_codes.npy`` when the semantic IDs were derived here.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import inspect
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from models import checkpoint, data, evaluate, flops
from models import item_codes as sid_tables
from models.config import OneRecConfig, TrainConfig, preset
from models.moe import update_moe_biases
from models.onerec import build
from models.sasrec import SASRec
from models.tasks import OneRecTask, SASRecTask  # noqa: F401  (re-exported: callers import them from here)


def configure_optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings only (nanoGPT), never on norms or biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": tc.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]  # fmt: skip
    fused = torch.device(tc.device).type == "cuda"
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.98), fused=fused)


def lr_at(step: int, tc: TrainConfig, total: int) -> float:
    """Linear warmup to ``lr``, then cosine to ``lr * min_lr_ratio`` at ``total`` steps."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    progress = min(1.0, (step - tc.warmup_steps) / max(1, total - tc.warmup_steps))
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def progress_bar(total: int, step: int, rank: int) -> tqdm:
    """Rank 0's bar. ``TQDM_DISABLE=1`` turns it off (tqdm ignores its environment when ``disable``
    is passed, as here); into a log file rather than a terminal it redraws every 30 s, not 10
    times a second (a benchmark's log was megabytes of bar frames)."""
    off = rank != 0 or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")
    tty = sys.stderr.isatty()
    return tqdm(total=total, initial=step, disable=off, dynamic_ncols=tty, mininterval=0.1 if tty else 30.0)


def train(model: nn.Module, task: Any, tc: TrainConfig, model_config: Any, versions: dict[str, Any],
          rank: int = 0, world: int = 1, stop_after: int | None = None, eval_limit: int | None = None,
          score_test: bool = True) -> dict:  # fmt: skip
    """The loop. Returns the final metrics (also written to ``<out>/metrics.json`` by rank 0).

    ``score_test=False`` leaves the test split alone (the model ends with its best-on-valid
    weights): a caller choosing among several candidates on valid scores only the winner.
    """
    out, device = Path(tc.out_dir), torch.device(tc.device)
    out.mkdir(parents=True, exist_ok=True)
    opt = configure_optimizer(model, tc)
    step, best, best_valid = 0, -math.inf, {}
    if tc.resume and (out / "last" / checkpoint.CONFIG_FILE).exists():
        manifest = checkpoint.load(out / "last", model, opt, restore_rng=True)
        step, best, best_valid = manifest["step"], manifest["best_metric"] or -math.inf, manifest["metrics"]
        if world > 1:  # one saved RNG stream: give each rank its own again
            torch.manual_seed(tc.seed + 1000 * rank + step)
    ddp = _wrap_ddp(model) if world > 1 else model
    sampler = DistributedSampler(range(task.n_examples), world, rank, shuffle=True, seed=tc.seed, drop_last=True)
    per_epoch = len(sampler) // tc.batch_size
    if per_epoch < 1:
        raise ValueError(f"{task.n_examples} examples: fewer than one batch of {tc.batch_size} per rank")
    total = tc.epochs * per_epoch if tc.epochs else tc.steps
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" and tc.dtype == "bf16" \
        else contextlib.nullcontext()  # fmt: skip
    peak = flops.device_peak_flops(device, tc.dtype)
    log_file = out / "train_log.jsonl"
    bar = progress_bar(total, step, rank)
    window = {"loss": 0.0, "n": 0, "tokens": 0, "flops": 0.0, "t0": time.perf_counter()}
    start_wall, last_log = time.perf_counter(), {}
    model.train()
    while step < total and (stop_after is None or step < stop_after):
        epoch, offset = divmod(step, per_epoch)
        sampler.set_epoch(epoch)
        order = list(sampler)
        for b in range(offset, per_epoch):
            batch = task.batch(order[b * tc.batch_size : (b + 1) * tc.batch_size])
            window["tokens"] += task.tokens(batch)
            window["flops"] += task.flops(batch)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            for group in opt.param_groups:
                group["lr"] = lr_at(step, tc, total)
            with autocast:
                loss, _ = ddp(batch)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            moe = update_moe_biases(model)
            step += 1
            window["loss"] += float(loss.detach())  # syncs the device: timings below are real
            window["n"] += 1
            if tc.time_limit_s and world == 1 and time.perf_counter() - start_wall > tc.time_limit_s:
                total = step  # out of time: validate, save and finish here, as if scheduled
            if rank == 0 and (step % tc.log_every == 0 or step == total):
                seconds = time.perf_counter() - window["t0"]
                achieved = flops.mfu(window["flops"] / seconds, peak)
                last_log = {"step": step, "loss": window["loss"] / window["n"], "lr": opt.param_groups[0]["lr"],
                            "grad_norm": float(grad_norm), "tokens_per_s": window["tokens"] / seconds,
                            "steps_per_s": window["n"] / seconds,
                            "mfu": achieved, **moe}  # fmt: skip
                with open(log_file, "a") as f:
                    f.write(json.dumps(last_log) + "\n")
                bar.set_postfix(loss=f"{last_log['loss']:.4f}", tok_s=f"{last_log['tokens_per_s']:.0f}",
                                mfu="n/a" if achieved is None else f"{100 * achieved:.1f}%")  # fmt: skip
                window = {"loss": 0.0, "n": 0, "tokens": 0, "flops": 0.0, "t0": time.perf_counter()}
            bar.update(1)
            if step % tc.eval_every == 0 or step % tc.ckpt_every == 0 or step == total:
                paused = time.perf_counter()
                best, best_valid = _evaluate_and_save(model, opt, task, tc, model_config, versions, step, best,
                                                      best_valid, rank, world, autocast, eval_limit, step == total)  # fmt: skip
                window["t0"] += time.perf_counter() - paused  # throughput counts training time only
            if step >= total or (stop_after is not None and step >= stop_after):
                break
            if _patience_spent(tc, step, best_valid):
                total = step  # early stop: finish (test on the best checkpoint) as if scheduled
                break
    bar.close()
    if step < total:  # stopped early on purpose (tests): like a kill, leave the checkpoints as they are
        return {"stopped_at": step}
    return _finish(model, task, tc, versions, best_valid, last_log, rank, autocast, time.perf_counter() - start_wall,
                   score_test)  # fmt: skip


def _patience_spent(tc: TrainConfig, step: int, best_valid: dict) -> bool:
    """``patience`` validations since the best one (a function of the step: survives a resume)."""
    if not tc.patience or step % tc.eval_every or "step" not in best_valid:
        return False
    return (step - best_valid["step"]) // tc.eval_every >= tc.patience


def _wrap_ddp(model: nn.Module) -> nn.Module:
    """DDP that never overwrites buffers from rank 0 in forward: the MoE load counters are rank-local
    until ``update_bias`` all-reduces them. Unused parameters happen (idle experts, absent signals)."""
    ddp = nn.parallel.DistributedDataParallel
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters \
        else {"broadcast_buffers": False}  # fmt: skip
    return ddp(model, find_unused_parameters=True, **no_sync)


def _evaluate_and_save(model, opt, task, tc, model_config, versions, step, best, best_valid, rank, world,
                       autocast, eval_limit, final):  # fmt: skip
    """Rank 0 validates (on ``eval_every``), keeps ``best/`` by ``tc.select_by`` and refreshes ``last/``;
    under DDP every rank leaves with rank 0's ``(best, best_valid)``."""
    out = Path(tc.out_dir)
    if rank == 0:
        if step % tc.eval_every == 0 or final:
            with autocast:
                valid = task.evaluate(model, "valid", eval_limit)
            with open(out / "train_log.jsonl", "a") as f:
                f.write(json.dumps({"step": step, "valid": valid}) + "\n")
            if valid[tc.select_by] > best:
                best, best_valid = valid[tc.select_by], {**valid, "step": step}
                checkpoint.save(out / "best", model, model_config=model_config, train_config=tc, step=step,
                                metrics=best_valid, best_metric=best, versions=versions, rng=False)  # fmt: skip
        checkpoint.save(out / "last", model, model_config=model_config, optimizer=opt, train_config=tc, step=step,
                        metrics=best_valid, best_metric=best, versions=versions)  # fmt: skip
    if world > 1:
        # Every rank must stop on the same step (early stopping reads ``best_valid``), or the ranks
        # that go on wait forever in the next gradient all-reduce: share rank 0's view. The
        # broadcast is also the barrier that keeps the others from running ahead of the save.
        shared = [best, best_valid]
        dist.broadcast_object_list(shared, src=0)
        best, best_valid = shared
    return best, best_valid


def _finish(model, task, tc, versions, best_valid, last_log, rank, autocast, wall_s, score_test=True) -> dict:
    """Score the test split once, with the best-on-valid weights; write ``metrics.json``."""
    out = Path(tc.out_dir)
    if rank != 0:
        return {}
    if (out / "best" / checkpoint.CONFIG_FILE).exists():
        checkpoint.load(out / "best", model)
    test = {}
    if score_test:
        with autocast:
            test = task.evaluate(model, "test", beam_size=tc.test_beam_size or None)
    result = {"valid": best_valid, "test": test, "train": {**last_log, "wall_s": wall_s}, "versions": versions,
              "selected_by": f"valid {tc.select_by}"}  # fmt: skip
    evaluate.write_metrics(out / "metrics.json", result)
    return result


def load_data(path: str | Path, ds: str | None = None, storage_options: dict | None = None
              ) -> tuple[data.LeaveOneOut, str]:  # fmt: skip
    """A Beauty-style text file, or a ``gold.training_examples`` table (Delta, else parquet) -> data, version.

    An object-store URI (``s3a://...``) is a Delta table, read with ``storage_options``."""
    uri = str(path) if "://" in str(path) else None  # pathlib would fold an URI's "//"
    path = Path(path)
    if uri is None and path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return data.leave_one_out(data.read_amazon_sequences(path)), f"{path.name}@sha256:{digest}"
    filters = [("protocol", "=", "leave_one_out")]
    if uri or (path / "_delta_log").is_dir():  # read through the Delta log, never the raw parquet files
        from deltalake import DeltaTable

        from models.delta_read import read_delta  # DataFusion: honours Spark's deletion vectors

        version = f"delta:{path.name}@v{DeltaTable(uri or str(path), storage_options=storage_options).version()}"
        df = read_delta(uri or path, "protocol = 'leave_one_out'", storage_options)
    else:
        import pyarrow.parquet as pq

        df = pq.read_table(path, filters=filters).to_pandas()
        version = f"parquet:{path.name}"
    if "ds" in df.columns:
        days = sorted({str(d) for d in df["ds"]})
        if ds is None and len(days) > 1:
            raise ValueError(f"{path} holds days {days[0]}..{days[-1]}: pick one with --ds (never 'latest')")
        df = df[df["ds"].astype(str) == (ds or days[0])]
        version += f" ds={ds or days[0]}"
    return data.from_training_examples(df), version


def item_codes(codes_path: str | None, loo: data.LeaveOneOut, cfg: OneRecConfig, out: Path, rank: int,
               world: int) -> tuple[np.ndarray, int, int, str]:  # fmt: skip
    """``(codes (n_items + 1, L + 1), K, dedup size, version)``: from ``--codes`` (an .npy whose last
    column is the dedup level) or derived from the training sequences once and kept in ``out``."""
    path = Path(codes_path) if codes_path else out / "item_codes.npy"
    if not codes_path and rank == 0 and not path.exists():
        codes, _, _ = sid_tables.collaborative_codes(loo.train, loo.n_items, cfg.levels, cfg.codes_per_level, seed=0)
        np.save(path, codes)
    if world > 1:
        dist.barrier()
    codes = np.load(path, allow_pickle=False).astype(np.int64)
    if codes.shape[0] != loo.n_items + 1:
        raise ValueError(f"{path}: {codes.shape[0]} rows, expected n_items + 1 = {loo.n_items + 1}")
    version = f"{path.name}@sha256:{hashlib.sha256(codes.tobytes()).hexdigest()[:16]}"
    return codes, int(codes[:, :-1].max()) + 1, int(codes[:, -1].max()) + 1, version


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["onerec", "sasrec"], required=True)
    p.add_argument("--data", required=True, help="Amazon sequence file or gold.training_examples table dir")
    p.add_argument("--ds", help="day of the table partition to train on")
    p.add_argument("--preset", default="small")
    p.add_argument("--architecture", choices=["encoder_decoder", "lazy_decoder"])
    p.add_argument("--per-position", action="store_true",
                   help="every position of a window is a target (short-term pathway only; models/per_position.py)")  # fmt: skip
    p.add_argument("--loss", choices=["ce", "bce"], help="SASRec loss (default: the preset's)")
    p.add_argument("--codes", help=".npy semantic IDs (n_items + 1, L + 1); default: derived from behaviour")
    p.add_argument("--out", help="output dir (default: the preset's out_dir)")
    p.add_argument("--eval-users", type=int, help="validate on a fixed random N users (test always uses all)")
    p.add_argument("--stop-after", type=int, help="stop after this step without finishing (simulates a kill)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    for name, kind in (
        ("steps", int),
        ("epochs", int),
        ("batch-size", int),
        ("lr", float),
        ("eval-every", int),
        ("ckpt-every", int),
        ("beam-size", int),
        ("test-beam-size", int),
        ("patience", int),
        ("select-by", str),
        ("seed", int),
        ("device", str),
        ("dtype", str),
    ):
        p.add_argument(f"--{name}", type=kind)  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from <out>/last if it exists")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if args.threads:
        torch.set_num_threads(args.threads)
    p = preset(args.preset)
    keys = ("steps", "epochs", "batch_size", "lr", "eval_every", "ckpt_every", "beam_size", "seed", "device", "dtype",
            "test_beam_size", "patience", "select_by")  # fmt: skip
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    tc = dataclasses.replace(p.train, **overrides, resume=args.resume, out_dir=args.out or p.train.out_dir)
    if world > 1:
        dist.init_process_group("nccl" if tc.device.startswith("cuda") else "gloo")
        if tc.device.startswith("cuda"):
            tc = dataclasses.replace(tc, device=f"cuda:{local}")
            torch.cuda.set_device(local)
    if torch.device(tc.device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    out = Path(tc.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loo, data_version = load_data(args.data, args.ds)
    random.seed(tc.seed)
    np.random.seed(tc.seed)
    torch.manual_seed(tc.seed)  # same initial weights on every rank
    if args.model == "sasrec":
        cfg: Any = dataclasses.replace(p.sasrec, n_items=loo.n_items, loss=args.loss or p.sasrec.loss)
        model, task, versions = SASRec(cfg), SASRecTask(loo, cfg, tc), {"data": data_version}
    else:
        codes, k, dedup, codes_version = item_codes(args.codes, loo, p.onerec, out, rank, world)
        cfg = dataclasses.replace(p.onerec, n_items=loo.n_items, levels=codes.shape[1] - 1, codes_per_level=k,
                                  dedup_codes=dedup, architecture=args.architecture or p.onerec.architecture)  # fmt: skip
        if args.per_position:  # the pathways that summarise the whole history would see the future
            cfg = dataclasses.replace(cfg, per_position=True, pos_len=0, lifelong_len=0)
        model, task = build(cfg, codes), OneRecTask(loo, cfg, tc, codes)
        versions = {"data": data_version, "codebook": codes_version}
    torch.manual_seed(tc.seed + rank)  # different dropout masks per rank
    model.to(tc.device)
    if rank == 0:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{type(model).__name__}: {n_params / 1e6:.2f}M parameters, {task.n_examples} training examples")
    result = train(model, task, tc, cfg, versions, rank, world, args.stop_after, args.eval_users)
    if rank == 0 and "test" in result:
        print(json.dumps({"valid": result["valid"], "test": result["test"]}, indent=2))
    if world > 1:
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()

"""Training throughput, peak memory, MFU and generation latency of the generators.

    python -m bench.train                       # CPU: tokens/s and peak RSS of the default (beauty) shape
    python -m bench.train --device cuda         # + MFU of the ~100M config in bf16, beam latency p50/p99

Training: ``--steps`` optimizer steps on synthetic batches of the right shapes (``models.data.
synthetic_batch``: every pathway full, so the numbers are an upper bound on per-sample cost),
after ``--warmup`` untimed steps. Tokens are target semantic-ID tokens (what the decoder
predicts), MFU is ``models.flops`` analytic training FLOPs over the device's dense bf16 peak
(the OneRec Technical Report's definition; it reports 23.7%). Peak memory: max RSS of the
process on CPU (a high-water mark: configs run smallest first), ``max_memory_allocated`` on
CUDA (reset per config).

Latency: one user per request (batch 1), constrained beam search over a 12,101-item trie
(Beauty's size) at beam 10 and 50, ``--requests`` timed requests after warm-up; p50/p99 in ms.
Only torch/numpy/stdlib are imported: the GPU box runs this as is.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.quality_plans import cpu as cpu_plan
from bench.quality_plans import gpu as gpu_plan
from models import flops
from models.beam import SemanticIdTrie, beam_search
from models.config import OneRecConfig, preset
from models.data import synthetic_batch
from models.onerec import build
from models.train import configure_optimizer


def catalogue_codes(cfg: OneRecConfig, seed: int = 0) -> np.ndarray:
    """Random unique ``(n_items + 1, L)`` tuples over ``cfg.level_sizes`` (row 0 = padding)."""
    rng = np.random.default_rng(seed)
    sizes = np.array(cfg.level_sizes)
    codes = rng.integers(0, sizes[:-1], size=(cfg.n_items, len(sizes) - 1)) if cfg.dedup_codes else \
        rng.integers(0, sizes, size=(cfg.n_items, len(sizes)))  # fmt: skip
    if cfg.dedup_codes:  # number items sharing a prefix, as the dedup level does
        from models.item_codes import with_dedup_level

        codes = with_dedup_level(codes)
        codes[:, -1] = np.minimum(codes[:, -1], cfg.dedup_codes - 1)
    _, first = np.unique(codes, axis=0, return_index=True)
    codes = codes[np.sort(first)]  # drop the rare duplicate left by the clip
    out = np.zeros((len(codes) + 1, codes.shape[1]), dtype=np.int64)
    out[1:] = codes
    return out


def bench_training(cfg: OneRecConfig, batch_size: int, steps: int, warmup: int, device: str,
                   dtype: str) -> dict[str, Any]:  # fmt: skip
    """Tokens/s, samples/s, MFU and peak memory of ``steps`` AdamW steps."""
    codes = catalogue_codes(cfg)
    cfg = dataclasses.replace(cfg, n_items=len(codes) - 1)
    torch.manual_seed(0)
    model = build(cfg, codes).to(device)
    opt = configure_optimizer(model, dataclasses.replace(preset("tiny").train, device=device))
    batches = [{k: v.to(device) for k, v in synthetic_batch(cfg, codes, batch_size, seed=s).items()} for s in range(4)]
    cuda = torch.device(device).type == "cuda"
    autocast = torch.autocast("cuda", torch.bfloat16) if cuda and dtype == "bf16" else contextlib.nullcontext()
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def step(i: int) -> float:
        with autocast:
            loss, _ = model(batches[i % len(batches)])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for i in range(warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    float(loss.detach())  # sync
    seconds = time.perf_counter() - t0
    tokens = steps * batch_size * cfg.target_len
    achieved = steps * batch_size * flops.train_flops(flops.onerec_forward_flops(cfg)) / seconds
    peak = flops.device_peak_flops(device, dtype)
    memory = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "architecture": cfg.architecture, "batch_size": batch_size, "steps": steps, "dtype": dtype,
        "tokens_per_s": round(tokens / seconds, 1), "samples_per_s": round(steps * batch_size / seconds, 1),
        "tflops_per_s": round(achieved / 1e12, 3), "mfu": None if peak is None else round(achieved / peak, 4),
        "peak_memory_gib": round(memory / 2**30, 3), "memory_kind": "cuda max allocated" if cuda else "max RSS",
    }  # fmt: skip


def bench_latency(cfg: OneRecConfig, beams: tuple[int, ...], requests: int, device: str,
                  dtype: str) -> dict[str, Any]:  # fmt: skip
    """Per-user (batch 1) beam-search latency percentiles, in milliseconds."""
    codes = catalogue_codes(cfg)
    cfg = dataclasses.replace(cfg, n_items=len(codes) - 1)
    torch.manual_seed(0)
    model = build(cfg, codes).to(device).eval()
    trie = SemanticIdTrie.from_item_codes(codes, cfg.level_sizes).to(device)
    cuda = torch.device(device).type == "cuda"
    autocast = torch.autocast("cuda", torch.bfloat16) if cuda and dtype == "bf16" else contextlib.nullcontext()
    users = [{k: v.to(device) for k, v in synthetic_batch(cfg, codes, 1, seed=s).items()} for s in range(requests)]
    out: dict[str, Any] = {"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                           "catalogue": cfg.n_items, "requests": requests}  # fmt: skip
    for beam in beams:
        times = []
        for i, batch in enumerate([*users[:3], *users]):  # three warm-up requests
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with autocast:
                result = beam_search(model, batch, trie, beam, top_k=min(10, beam))
            result.items.cpu()  # sync: the caller needs the items
            if i >= 3:
                times.append(1000 * (time.perf_counter() - t0))
        out[f"beam{beam}"] = {"p50_ms": round(float(np.percentile(times, 50)), 2),
                              "p99_ms": round(float(np.percentile(times, 99)), 2)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, help="timed steps (default 10 on CPU, 30 on CUDA)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--requests", type=int, help="latency requests per beam (default 20 CPU, 200 CUDA)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny shapes (tests)")
    p.add_argument("--probes", default="onerec_100m,onerec_0_121b", help="presets for the CUDA MFU probe")
    p.add_argument("--skip-default", action="store_true", help="only the CUDA probes (no default shape)")
    p.add_argument("--out", default="var/reports/bench/train.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    steps, requests = args.steps or (30 if cuda else 10), args.requests or (200 if cuda else 20)
    # The default config: the benchmark's shape for the device (slim on CPU, the full pathways on GPU).
    default = preset("tiny").onerec if args.quick else (gpu_plan() if cuda else cpu_plan()).onerec
    dtype = "bf16" if cuda else "fp32"
    report: dict[str, Any] = {"device": torch.cuda.get_device_name() if cuda else f"cpu x{args.threads} threads"}
    train = {}
    for arch in () if args.skip_default else ("encoder_decoder", "lazy_decoder"):
        cfg = dataclasses.replace(default, architecture=arch)
        train[f"default_{arch}"] = bench_training(cfg, 64 if args.quick else 256, steps, args.warmup, args.device,
                                                  dtype)  # fmt: skip
    probes = [name for name in args.probes.split(",") if name] if cuda else []
    for name in probes:  # ~100M+ parameters, where matrix units (not launches) bound the step
        big = preset(name)
        for arch in ("encoder_decoder", "lazy_decoder"):
            cfg = dataclasses.replace(big.onerec, architecture=arch)
            train[f"{name}_{arch}"] = bench_training(cfg, big.train.batch_size, steps, args.warmup, args.device,
                                                     dtype)  # fmt: skip
    report["train"] = train
    report["latency"] = {}
    if not args.skip_default:
        beams = (2, 5) if args.quick else (10, 50)
        report["latency"]["default"] = bench_latency(default, beams, requests, args.device, dtype)
    for name in probes:
        report["latency"][name] = bench_latency(preset(name).onerec, (10, 50), requests, args.device, dtype)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()

"""Benchmark of RQ-KMeans semantic IDs: speed, memory and balanced vs plain quality in one run.

``python -m bench.semantic_ids [--sizes 10000,100000,1000000] [--dims 64,384] [--levels 3] [--codes 256]``

For each (size, dim) it draws synthetic item embeddings -- a mixture of Gaussians whose component
weights follow a power law (a few huge topics, a long tail: the imbalance real catalogues have),
L2-normalised -- then fits both balanced (OneRec) and plain residual k-means on the same vectors
and reports fit / encode / collision-resolution time, peak RSS so far (``getrusage``; a
process-wide high-water mark, so it only grows through the run) and the quality metrics of
``models.rq_kmeans.metrics``. JSON goes to ``var/reports/bench/semantic_ids.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path("var/reports/bench/semantic_ids.json")


def synthetic_embeddings(
    n: int, dim: int, seed: int = 0, components: int | None = None, alpha: float = 1.1, spread: float = 0.6
) -> np.ndarray:
    """``n`` unit vectors (float32) from a power-law-weighted mixture of isotropic Gaussians.

    Component ``r`` (1-based rank) has weight ``r ** -alpha``; means are random unit vectors,
    noise per item has expected norm ``spread``. Generated in chunks: memory is the output only.
    """
    rng = np.random.default_rng(seed)
    components = components or max(8, min(2_000, n // 50))
    weights = np.arange(1, components + 1, dtype=np.float64) ** -alpha
    means = rng.standard_normal((components, dim)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    comp = rng.choice(components, size=n, p=weights / weights.sum())
    out = np.empty((n, dim), dtype=np.float32)
    scale = np.float32(spread / np.sqrt(dim))
    for start in range(0, n, 65_536):
        stop = min(n, start + 65_536)
        block = rng.standard_normal((stop - start, dim), dtype=np.float32)
        block *= scale
        block += means[comp[start:stop]]
        out[start:stop] = block
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _run_mode(x: np.ndarray, ids: list[str], cfg: Any, rq: Any) -> dict[str, Any]:
    """Fit, encode, resolve collisions and measure one configuration."""
    t0 = time.perf_counter()
    codebook = rq.fit(x, cfg)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoded = rq.encode(x, codebook)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rq.resolve_collisions(codebook.train_codes, ids)
    resolve_s = time.perf_counter() - t0
    quality = rq.metrics(x, codebook.train_codes, codebook)
    return {
        "balanced": cfg.balanced,
        "fit_s": fit_s,
        "encode_s": encode_s,
        "resolve_s": resolve_s,
        "peak_rss_mib": _peak_rss_mib(),
        "info": dict(codebook.info),
        # How many training items nearest-centroid encoding puts where the fit put them (per level);
        # 1.0 for plain k-means, lower for balanced (the fit moved items off their nearest centroid).
        "encode_agreement": [float(a) for a in (encoded == codebook.train_codes).mean(axis=0)],
        "metrics": quality,
    }


def _fmt(values: list[Any], spec: str = ".2f") -> str:
    return "/".join("-" if v is None else format(v, spec) for v in values)


_HEADER = (
    f"{'n':>9} {'dim':>4} {'mode':<8} {'fit s':>7} {'enc s':>6} {'rss MiB':>8} {'util':>14} {'parent util':>11} "
    f"{'coll bef/aft':>12} {'max size':>14} {'mean':>6} {'cv':>14} {'recon':>6}"
)


def _row(n: int, dim: int, r: dict[str, Any]) -> str:
    m = r["metrics"]
    return (
        f"{n:>9} {dim:>4} {'balanced' if r['balanced'] else 'plain':<8} {r['fit_s']:>7.2f} {r['encode_s']:>6.2f} "
        f"{r['peak_rss_mib']:>8.0f} {_fmt(m['utilisation']):>14} {_fmt(m['per_parent_utilisation_mean'][1:]):>11} "
        f"{m['collision_rate_before']:>6.3f}/{m['collision_rate_after']:<5.3f} {_fmt(m['cluster_size_max'], 'd'):>14} "
        f"{m['cluster_size_mean'][0]:>6.0f} {_fmt(m['cluster_size_cv']):>14} {m['reconstruction_error']:>6.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.semantic_ids", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="catalogue sizes, comma-separated")
    parser.add_argument("--dims", default="64,384", help="embedding widths, comma-separated")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codes", type=int, default=256, help="codes per level (OneRec: 8192)")
    parser.add_argument("--iterations", type=int, default=20, help="faiss k-means iterations per level")
    parser.add_argument("--balance-iterations", type=int, default=20, help="max balanced passes per level")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="OpenMP threads for faiss (default: faiss's own)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    # Idle OpenMP workers sleep instead of spinning: on a shared machine spinning workers fight
    # the other jobs for cores (faiss k-means ran 8x slower here under load). Only takes effect
    # before the OpenMP runtime loads, hence the late imports below; an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss

    from models import rq_kmeans as rq

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    dims = [int(d) for d in args.dims.split(",") if d]
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores", flush=True)
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(),
        "command": " ".join(["python -m bench.semantic_ids", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "loadavg_start": load, "python": platform.python_version()},
        "faiss": {"version": faiss.__version__, "omp_threads": faiss.omp_get_max_threads()},
        "runs": [],
    }
    rows = []
    for n in sizes:
        for dim in dims:
            t0 = time.perf_counter()
            x = synthetic_embeddings(n, dim, seed=args.seed)
            ids = [f"item{i:09d}" for i in range(n)]
            print(f"[n={n} dim={dim}] generated in {time.perf_counter() - t0:.1f}s", flush=True)
            for balanced in (True, False):
                cfg = rq.RQKMeansConfig(
                    levels=args.levels,
                    codes_per_level=args.codes,
                    iterations=args.iterations,
                    balanced=balanced,
                    seed=args.seed,
                    balance_iterations=args.balance_iterations,
                )
                print(f"[n={n} dim={dim}] fitting {'balanced' if balanced else 'plain'}...", flush=True)
                result = _run_mode(x, ids, cfg, rq)
                result.update(n=n, dim=dim, config=dataclasses.asdict(cfg))
                report["runs"].append(result)
                rows.append(_row(n, dim, result))
                print(rows[-1], flush=True)
            del x, ids
    report["machine"]["loadavg_end"] = os.getloadavg()
    print()
    print(_HEADER)
    print("\n".join(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

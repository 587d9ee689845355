"""DDP that has run: ``torchrun --nproc_per_node 2`` (gloo, CPU) of the real training entry
(``models.train``) equals one process with the same global batch, through a kill, a resume from
the DDP checkpoint and an early stop that both ranks must agree on (tiny preset, ~30 s idle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.train import main

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


def torchrun(args: list[str]) -> None:
    """Two CPU processes on one node; a hang (ranks disagreeing on when to stop) fails, not blocks."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "models.train", *args]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_two_ranks_equal_one_process_with_the_same_global_batch_and_resume(sequence_file, tmp_path):
    codes = np.zeros((41, 3), dtype=np.int64)
    codes[1:, 0], codes[1:, 1] = np.arange(40) // 8, np.arange(40) % 8
    np.save(tmp_path / "codes.npy", codes)
    # Patience 1 with validation every 2 steps: on this data valid Recall@10 peaks early (step 4 with
    # the four pathways' inputs), so the run stops before step 12 -- rank 1 never validates and must
    # learn it from rank 0.
    args = ["--model", "onerec", "--data", str(sequence_file), "--preset", "tiny", "--steps", "12",
            "--eval-every", "2", "--ckpt-every", "2", "--patience", "1", "--codes", str(tmp_path / "codes.npy"),
            "--threads", "1"]  # fmt: skip
    single = main([*args, "--batch-size", "16", "--out", str(tmp_path / "single")])
    ddp = [*args, "--batch-size", "8", "--out", str(tmp_path / "ddp")]  # per rank: 2 x 8 = 16
    torchrun([*ddp, "--stop-after", "2"])  # a kill after step 2
    killed = json.loads((tmp_path / "ddp" / "last" / "config.json").read_text())
    assert killed["step"] == 2 and not (tmp_path / "ddp" / "metrics.json").exists()
    torchrun([*ddp, "--resume"])

    a, b = (load_file(str(tmp_path / d / "last" / "model.safetensors")) for d in ("single", "ddp"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4, msg=name)
    ran = [json.loads((tmp_path / d / "last" / "config.json").read_text())["step"] for d in ("single", "ddp")]
    # stopped early (before 12), on the same step in both: one validation (2 steps) after the best
    assert ran[0] == ran[1] < 12
    result = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert result["valid"]["step"] == single["valid"]["step"] == ran[0] - 2
    assert result["test"]["recall@10"] == pytest.approx(single["test"]["recall@10"])

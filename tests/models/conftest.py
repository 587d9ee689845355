"""Fixtures shared by the model tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def one_thread():
    """Torch on one thread for the test. The box is shared: two threads on two busy cores run
    tiny matmuls ~20x slower than one. Modules opt in with ``pytestmark``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def sequence_file(tmp_path):
    """30 users on 40 items, each a chain with stride 3 (Amazon text format)."""
    rng = np.random.default_rng(0)
    lines = []
    for u in range(30):
        start, n = int(rng.integers(1, 41)), int(rng.integers(4, 12))
        lines.append(" ".join(map(str, [u + 1] + [(start + 3 * i - 1) % 40 + 1 for i in range(n)])))
    path = tmp_path / "seq.txt"
    path.write_text("\n".join(lines) + "\n")
    return path

"""Fixtures shared by the model tests."""

from __future__ import annotations

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

"""Shared fixtures."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Qt (the napari plugin's tests) draws offscreen; pytest-xvfb gives it an X display for OpenGL
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def shared_data() -> Path:
    """The real microscopy volumes beside the checkout; tests using them skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture
def torch_one_thread():
    """Run torch on one thread (tiny convolutions are faster so on a shared machine), then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

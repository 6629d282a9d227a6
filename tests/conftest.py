"""Suite-wide settings: one intra-op thread.

The suite's tensors are tiny; with two OpenMP threads on a busy 2-core machine every small op pays for
spin-waiting barriers (measured here: 60 ms vs 1200 ms per tiny-DiT chunk under load). Speed is measured in
benchmarks/, never in tests, so one thread costs nothing and keeps the suite's run time predictable.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")  # for CLI subprocesses started by tests
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def speechlike():
    """3 s of 16 kHz audio with syllable-like bursts (voiced for the energy VAD), seeded."""
    rng = np.random.default_rng(3)
    t = np.arange(48000) / 16000
    env = (np.sin(2 * np.pi * 3 * t) > -0.2).astype(np.float32)
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(t.size)
    return (env * tone).astype(np.float32)

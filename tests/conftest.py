"""Suite-wide settings: one intra-op thread.

The suite's tensors are tiny; with two OpenMP threads on a busy 2-core machine every small op pays for
spin-waiting barriers (measured here: 60 ms vs 1200 ms per tiny-DiT chunk under load). Speed is measured in
benchmarks/, never in tests, so one thread costs nothing and keeps the suite's run time predictable.
"""

from __future__ import annotations

import os

import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")  # for CLI subprocesses started by tests
torch.set_num_threads(1)

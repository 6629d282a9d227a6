"""Seeded random weights for models that have not been trained (benchmarks, tests, ``--model random-tiny``).

Wan's initialisation leaves the head and the new audio outputs at zero, which makes an untrained model output
all zeros; equivalence tests and timings need every path to carry signal, so this fills every parameter.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Overwrite every parameter with seeded noise scaled to its fan-in (norm weights stay near 1)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if name.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight", "norm.weight")):
            p.copy_(1 + 0.1 * noise)
        elif p.ndim >= 2:
            fan_in = p[0].numel() if p.ndim > 1 else p.numel()
            p.copy_(noise * scale / fan_in**0.5)
        else:
            p.copy_(0.1 * noise)
    return model

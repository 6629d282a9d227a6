"""Training state on disk: atomic checkpoints that restore model, EMA, optimiser, RNG and step exactly."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn


class EMA:
    """Exponential moving average of a module's parameters (kept in float32)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, module: nn.Module) -> None:
        """Load the averaged weights into ``module`` (e.g. an evaluation copy)."""
        module.load_state_dict({k: v.to(module.state_dict()[k].dtype) for k, v in self.shadow.items()})


def clipped_step(opt: torch.optim.Optimizer, params: list, loss: torch.Tensor, max_norm: float) -> float:
    """Backward ``loss``, clip the gradient norm of ``params`` to ``max_norm`` and step ``opt`` — unless the norm
    is not finite, in which case the gradients are dropped and nothing changes. Returns the pre-clip norm."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    return clip_and_step(opt, params, max_norm)


def clip_and_step(opt: torch.optim.Optimizer, params: list, max_norm: float) -> float:
    """Clip the gradients already on ``params`` to a global norm of ``max_norm`` and step ``opt`` (dropping the
    gradients if the norm is not finite). With FSDP-sharded (DTensor) gradients the norm is the norm over all
    ranks' shards, so every rank clips alike and takes the same decision. Returns the pre-clip norm."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    if hasattr(norm, "full_tensor"):  # a DTensor: reduce the partial norms of the shards
        norm = norm.full_tensor()
    norm = float(norm)
    if math.isfinite(norm):
        opt.step()
    else:
        opt.zero_grad(set_to_none=True)
    return norm


def rng_state() -> dict:
    """Every random generator's state (Python, NumPy, torch)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_atomic(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(p)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by :func:`save_atomic` (trusted local file: includes optimiser and RNG state)."""
    return torch.load(Path(path), map_location="cpu", weights_only=False)

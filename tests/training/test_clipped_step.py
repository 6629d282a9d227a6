"""The guarded optimiser step shared by the teacher, ODE and SiD loops."""

from __future__ import annotations

import torch

from streamavatar.training.state import clipped_step


def test_clipped_step_steps_on_finite_and_skips_nonfinite_gradients():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    norm = clipped_step(opt, [w], (w * torch.tensor([3.0, 4.0])).sum(), max_norm=1.0)
    assert norm == 5.0  # pre-clip norm; the step used the clipped gradient (0.6, 0.8)
    assert torch.allclose(w.detach(), torch.tensor([0.94, 1.92]))
    norm = clipped_step(opt, [w], (w * float("nan")).sum(), max_norm=1.0)
    assert norm != norm and torch.allclose(w.detach(), torch.tensor([0.94, 1.92])) and w.grad is None

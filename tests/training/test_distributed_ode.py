"""The ODE phase of ``train distill`` with gradient accumulation and activation checkpointing equals one batch,
and SiD (not distributed yet) refuses both with a clear error."""

from __future__ import annotations

import pytest

from streamavatar.errors import UserInputError
from streamavatar.training.ode_init import train_ode
from streamavatar.training.sid_train import train_sid
from streamavatar.training.state import load_checkpoint
from tests.training.test_distill_runs import _cfg, setup  # noqa: F401 - the module fixture


def _weights(run) -> dict:
    state = load_checkpoint(run / "checkpoint.pt")
    out = {f"model.{k}": v for k, v in state["model"].items()}
    out.update({f"ema.{k}": v for k, v in state["ema_model"].items()})
    return out


def test_ode_grad_accum_and_activation_checkpointing_equal_one_batch(setup, tmp_path):  # noqa: F811
    weights, rows = {}, {}
    for name, over in {"plain": {}, "accum": {"grad_accum": 2, "activation_checkpointing": True}}.items():
        last = train_ode(_cfg(setup, tmp_path / name, batch=2, steps=2, lr=1e-4, autocast="fp32", **over),
                         progress=False)
        weights[name] = _weights(tmp_path / name)
        rows[name] = [float(v) for r in (tmp_path / name / "train_log.csv").read_text().splitlines()[1:]
                      for v in r.split(",")[2:]]  # loss, grad norm, per-level mse, pairs
        assert last["step"] == 2
    assert rows["accum"] == pytest.approx(rows["plain"], rel=1e-5)
    a, b = weights["plain"], weights["accum"]
    # Adam's first steps are ~lr·sign(g): rounding-level gradient differences move a weight by up to ~lr/10
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5


def test_sid_refuses_grad_accum_and_activation_checkpointing(setup, tmp_path):  # noqa: F811
    train_ode(_cfg(setup, tmp_path / "ode", steps=1), progress=False)
    for i, over in enumerate(({"grad_accum": 2}, {"activation_checkpointing": True})):
        with pytest.raises(UserInputError, match="does not support torchrun, --grad-accum or --activation"):
            train_sid(_cfg(setup, tmp_path / f"sid{i}", phase="sid", init_from=str(tmp_path / "ode"), steps=1,
                           **over), progress=False)

"""The time embedding and the modulation it feeds are computed in float32 (as Wan does), in any model dtype."""

from __future__ import annotations

import copy

import torch

from streamavatar.models.dit import sinusoidal_embedding
from tests.models.dit_helpers import make_model, small_dit_config

T = torch.tensor([[0.0, 999.0, 998.0, 500.0]])


def test_time_embedding_is_fp32_under_bf16_autocast():
    model = make_model().to(torch.bfloat16)
    reference = copy.deepcopy(model).float()  # the same bf16-rounded weights, computed in fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        e, e0 = model._time(T)
    assert e.dtype == torch.float32 and e0.dtype == torch.float32
    want_e, want_e0 = reference._time(T)
    # bf16 compute would be off by ~1e-2 here; fp32 compute agrees to rounding.
    torch.testing.assert_close(e, want_e, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(e0, want_e0, rtol=1e-5, atol=1e-6)
    # Neighbouring timesteps (999 vs 998) must still give different modulations.
    assert not torch.equal(e0[0, 1], e0[0, 2])


def test_fp32_model_time_path_is_unchanged():
    """In float32 the path is exactly the modules applied in order (what the golden test's frames were made by)."""
    model = make_model(small_dit_config(audio_modulation=False))
    e, e0 = model._time(T)
    want_e = model.time_embedding(sinusoidal_embedding(T, model.cfg.freq_dim))
    assert torch.equal(e, want_e)
    assert torch.equal(e0, model.time_projection(want_e).unflatten(-1, (6, model.cfg.dim)))

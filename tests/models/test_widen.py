"""Widening a DiT's latent channels: the widened model predicts the old channels exactly and 0 for the new ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from streamavatar.config import DiTConfig
from streamavatar.errors import UserInputError
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.random_weights import randomize_
from streamavatar.models.widen import widen_dit_state

SMALL = DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, latent_channels=4, text_dim=16, audio_dim=32,
                  audio_tokens_per_frame=2, reference_concat=True, mask_channels=1, audio_modulation=True,
                  prediction="x0")


@pytest.mark.parametrize("concat", [True, False])
def test_widened_model_matches_old_channels_and_ignores_new_inputs(concat):
    old_cfg = replace(SMALL, reference_concat=concat)
    new_cfg = replace(old_cfg, latent_channels=12)
    torch.manual_seed(0)
    old = AvatarDiT(old_cfg).eval()
    randomize_(old, seed=0)
    new = AvatarDiT(new_cfg).eval()
    new.load_state_dict(widen_dit_state(old.state_dict(), old_cfg, new_cfg))
    b, f, h, w = 1, 4, 4, 4
    g = torch.Generator().manual_seed(1)
    x_old = torch.randn(b, 4, f, h, w, generator=g)
    ref_old = torch.randn(b, 4, 1, h, w, generator=g)
    extra = lambda n: torch.randn(b, 8, n, h, w, generator=g)  # noqa: E731 - anything in the new channels
    x_new, ref_new = torch.cat([x_old, extra(f)], 1), torch.cat([ref_old, extra(1)], 1)
    t = torch.tensor([[0.0, 500.0, 500.0, 500.0]])
    talk = torch.randn(b, f - 1, 2, 32, generator=g)
    listen = torch.randn(b, f - 1, 2, 32, generator=g)
    kw = dict(talk_audio=talk, listen_audio=listen)
    with torch.no_grad():
        a = old(x_old, t, reference=ref_old if concat else None, **kw)
        c = new(x_new, t, reference=ref_new if concat else None, **kw)
    assert c.shape == (b, 12, f, h, w)
    assert (c[:, :4] - a).abs().max() <= 1e-5
    assert c[:, 4:].abs().max() == 0


def test_widen_refuses_other_changes_and_narrowing():
    state = AvatarDiT(SMALL).state_dict()
    with pytest.raises(UserInputError, match="only latent_channels"):
        widen_dit_state(state, SMALL, replace(SMALL, latent_channels=8, num_layers=3))
    with pytest.raises(UserInputError, match="narrow"):
        widen_dit_state(state, SMALL, replace(SMALL, latent_channels=2))

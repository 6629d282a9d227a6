"""The decoder's output refinement stage and the seam loss against the patch grid (issue #22)."""

from __future__ import annotations

import pytest
import torch

from streamavatar.errors import UserInputError
from streamavatar.models.random_weights import randomize_
from streamavatar.models.tiny_vae import RefineStage, TinyVAEConfig
from streamavatar.models.vae import VAEConfig, VideoVAE, vae_preset
from streamavatar.training.vae import _load_init, seam_l1


def _vae(refine_width: int, seed: int = 0) -> VideoVAE:
    cfg = VAEConfig(**{**vae_preset("tiny").__dict__,
                       "tiny": TinyVAEConfig(widths=(16, 16, 32), groups=4, refine_width=refine_width)})
    torch.manual_seed(seed)
    vae = VideoVAE(cfg)
    randomize_(vae.net, seed=seed)
    if refine_width:  # the refine stage as built, untrained
        vae.net.decoder.refine = RefineStage(12, refine_width)
    return vae.eval()


def _clip() -> torch.Tensor:
    return torch.rand(1, 3, 13, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_the_preset_for_256_has_a_refine_stage_and_the_128_presets_do_not():
    assert vae_preset("tiny64s16").tiny.refine_width > 0
    assert vae_preset("tiny48").tiny.refine_width == 0 and vae_preset("tiny").tiny.refine_width == 0
    with pytest.raises(ValueError, match="refine_width"):
        TinyVAEConfig(refine_width=-1)
    # a config written before the field existed reads as "no refine stage"
    d = vae_preset("tiny64s16").tiny.to_dict()
    d.pop("refine_width")
    assert TinyVAEConfig.from_dict(d).refine_width == 0


def test_an_untrained_refine_stage_is_the_identity_and_old_weights_load_exactly():
    old, new = _vae(0), _vae(16)
    _load_init(new, old, "old")
    new.net.decoder.refine.conv_in.weight.data.normal_()  # still identity: the output conv starts at zero
    z = old.encode(_clip())
    with torch.no_grad():
        assert torch.equal(old.decode(z), new.decode(z))


def test_a_trained_refine_stage_changes_frames_and_streaming_equals_full_decode():
    vae = _vae(16)
    randomize_(vae.net.decoder.refine, seed=3)
    with torch.no_grad():
        z = vae.encode(_clip())
        full = vae.decode(z)
        dec = vae.streaming_decoder()
        parts = [dec.decode(z[:, :, :1])] + [dec.decode(z[:, :, i:i + 1]) for i in range(1, z.shape[2])]
        streamed = torch.cat(parts, dim=2)
        plain = _vae(0)
        plain.net.load_state_dict(vae.net.state_dict(), strict=False)
        assert float((plain.decode(z) - full).abs().max()) > 1e-3  # the stage does something
    assert torch.allclose(streamed, full, atol=1e-5)


def test_init_from_a_different_layout_is_refused():
    small = _vae(0)
    other = VideoVAE(VAEConfig(**{**vae_preset("tiny").__dict__,
                                  "tiny": TinyVAEConfig(widths=(16, 16, 32), groups=4, decoder_blocks=1)}))
    with pytest.raises(UserInputError, match="does not fit"):
        _load_init(other, small, "small")


def test_seam_loss_counts_only_the_grid_lines():
    target = torch.zeros(1, 3, 2, 32, 32)
    assert float(seam_l1(target, target, 8)) == 0.0
    inside = target.clone()
    inside[..., 3:5, 3:5] = 1.0  # a patch-interior error: no neighbour pair straddles a grid line
    assert float(seam_l1(inside, target, 8)) == 0.0
    blocks = target.clone()
    blocks[..., :, 8:16] = 0.5  # a column of blocks with a step exactly on the lines 7|8 and 15|16
    assert float(seam_l1(blocks, target, 8)) > 0.0
    shifted = target.clone()
    shifted[..., :, 4:12] = 0.5  # the same step off the grid
    assert float(seam_l1(shifted, target, 8)) == 0.0

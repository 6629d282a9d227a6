"""Wan2.1 / Wan2.2 presets: checkpoint key compatibility, loading, a full-size round trip, wrong checkpoints.

``data/wan2.{1,2}_vae_original_keys.txt`` list every parameter name and shape of the original checkpoints
(``Wan2.1_VAE.pth``: 194 tensors, 126.9 M parameters; ``Wan2.2_VAE.pth``: 196 tensors, 704.7 M). They were
enumerated from the module constructors of the original sources (Wan2.1 ``wan/modules/vae.py``
``_video_vae(z_dim=16)``: dim 96; Wan2.2 ``wan/modules/vae2_2.py`` ``Wan2_2_VAE``: dim 160, dec_dim 256, z 48).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from streamavatar.errors import UserInputError
from streamavatar.hardware import resolve_dtype_name
from streamavatar.models.vae import build_vae, load_wan_vae, wan_vae_from_state
from streamavatar.models.wan_vae_keys import original_to_diffusers

DATA = Path(__file__).parent / "data"


def original_keys(family: str) -> dict[str, tuple[int, ...]]:
    rows = (line.split() for line in (DATA / f"{family}_vae_original_keys.txt").read_text().splitlines())
    return {k: tuple(int(x) for x in s.split("x")) for k, s in rows}


@pytest.mark.parametrize("family,n_keys,n_params", [("wan2.1", 194, 126_892_531), ("wan2.2", 196, 704_688_668)])
def test_meta_preset_has_exactly_the_checkpoint_keys(family, n_keys, n_params):
    vae = build_vae(family, device="meta")
    model = {k: tuple(v.shape) for k, v in vae.net.state_dict().items()}
    orig = original_keys(family)
    assert len(orig) == n_keys and sum(torch.Size(s).numel() for s in orig.values()) == n_params
    converted = original_to_diffusers(orig, family)
    assert len(converted) == len(orig)  # the renaming is one-to-one
    assert set(converted) == set(model)
    assert {k: tuple(converted[k]) for k in model} == model


def test_full_size_wan21_loads_original_names_and_round_trips():
    """diffusers' random init of the full Wan2.1 VAE, renamed to the original names, loaded back, round-trip."""
    torch.manual_seed(0)
    source = build_vae("wan2.1")
    to_original = original_to_diffusers({k: k for k in original_keys("wan2.1")}, "wan2.1")  # diffusers -> original
    state = {to_original[k]: v.to(torch.bfloat16).contiguous() for k, v in source.net.state_dict().items()}
    del source
    # bf16 storage (as released checkpoints), computed in the dtype this CPU runs fast (bf16 is emulated, tens of
    # times slower, on CPUs without bf16 instructions: streamavatar.hardware)
    dtype = torch.bfloat16 if resolve_dtype_name("auto") == "bf16" else torch.float32
    vae = wan_vae_from_state(state, "wan2.1", dtype=dtype)
    assert sum(p.numel() for p in vae.parameters()) == 126_892_531
    assert torch.equal(vae.net.decoder.conv_in.weight, state["decoder.conv1.weight"].to(dtype))
    g = torch.Generator().manual_seed(0)
    clip = torch.rand(1, 3, 5, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        z = vae.encode(clip)
        assert z.shape == (1, 16, 2, 8, 8) and torch.isfinite(z.float()).all()
        recon = vae.decode(z)
    assert recon.shape == clip.shape and torch.isfinite(recon.float()).all()
    assert recon.float().abs().max() <= 1.0 and recon.float().std() > 0


def test_wrong_preset_checkpoint_is_a_clear_error(tmp_path):
    # a Wan2.2 checkpoint (its first tensors, right names and shapes) offered as Wan2.1 and the other way round
    keys22 = original_keys("wan2.2")
    small = {k: torch.zeros(s) for k, s in list(keys22.items())[:3] if torch.Size(s).numel() < 1e6}
    save_file(small, str(tmp_path / "w22.safetensors"))
    with pytest.raises(UserInputError, match="wan2.1"):
        load_wan_vae(tmp_path / "w22.safetensors", "wan2.1")
    keys21 = original_keys("wan2.1")
    save_file({k: torch.zeros(s) for k, s in list(keys21.items())[:2]}, str(tmp_path / "w21.safetensors"))
    with pytest.raises(UserInputError, match="wan2.2"):
        load_wan_vae(tmp_path / "w21.safetensors", "wan2.2")
    with pytest.raises(UserInputError, match="tiny"):
        load_wan_vae(tmp_path / "w21.safetensors", "tiny")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match="readable"):
        load_wan_vae(tmp_path / "junk.pth", "wan2.1")
    with pytest.raises(FileNotFoundError):
        load_wan_vae(tmp_path / "missing.pth", "wan2.1")

"""Wan checkpoint compatibility: key names and shapes, strict loading, diffusers names and numerics."""

from __future__ import annotations

import pytest
import torch

from streamavatar.config import model_preset
from streamavatar.errors import UserInputError
from streamavatar.models.checkpoint import (
    diffusers_to_wan_key,
    is_new_audio_key,
    load_dit_checkpoint,
    read_state_dict,
    save_dit_checkpoint,
    wan_to_diffusers_key,
)
from streamavatar.models.dit import AvatarDiT
from tests.models.dit_helpers import make_model, small_dit_config


def original_wan21_keys(dim: int, ffn: int, layers: int, in_dim: int, out_dim: int, text_dim: int = 4096,
                        freq_dim: int = 256) -> dict[str, tuple[int, ...]]:
    """The Wan2.1 T2V state dict, written out from the published layout (anchors-models §15.2)."""
    d = dim
    keys = {
        "patch_embedding.weight": (d, in_dim, 1, 2, 2), "patch_embedding.bias": (d,),
        "text_embedding.0.weight": (d, text_dim), "text_embedding.0.bias": (d,),
        "text_embedding.2.weight": (d, d), "text_embedding.2.bias": (d,),
        "time_embedding.0.weight": (d, freq_dim), "time_embedding.0.bias": (d,),
        "time_embedding.2.weight": (d, d), "time_embedding.2.bias": (d,),
        "time_projection.1.weight": (6 * d, d), "time_projection.1.bias": (6 * d,),
        "head.head.weight": (out_dim * 4, d), "head.head.bias": (out_dim * 4,), "head.modulation": (1, 2, d),
    }
    for n in range(layers):
        b = f"blocks.{n}."
        keys[b + "modulation"] = (1, 6, d)
        for attn in ("self_attn", "cross_attn"):
            for p in "qkvo":
                keys[f"{b}{attn}.{p}.weight"] = (d, d)
                keys[f"{b}{attn}.{p}.bias"] = (d,)
            keys[f"{b}{attn}.norm_q.weight"] = (d,)
            keys[f"{b}{attn}.norm_k.weight"] = (d,)
        keys[b + "norm3.weight"] = (d,)
        keys[b + "norm3.bias"] = (d,)
        keys[b + "ffn.0.weight"] = (ffn, d)
        keys[b + "ffn.0.bias"] = (ffn,)
        keys[b + "ffn.2.weight"] = (d, ffn)
        keys[b + "ffn.2.bias"] = (d,)
    return keys


def test_wan21_13b_preset_has_exactly_the_original_keys_plus_audio():
    with torch.device("meta"):
        model = AvatarDiT(model_preset("wan2.1-1.3b").dit)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wan = original_wan21_keys(1536, 8960, 30, 16, 16)
    assert {k: v for k, v in ours.items() if not is_new_audio_key(k)} == wan
    audio = [k for k in ours if is_new_audio_key(k)]
    assert audio and all(".talk_audio_attn." in k or ".listen_audio_attn." in k for k in audio)
    # Parameter count of the Wan part matches the published 1.3B model (≈1.42 B with embeddings).
    n_wan = sum(torch.Size(s).numel() for s in wan.values())
    assert 1.3e9 < n_wan < 1.5e9


@pytest.mark.parametrize("name,dim,layers,z", [("wan2.1-14b", 5120, 40, 16), ("wan2.2-ti2v-5b", 3072, 30, 48)])
def test_other_presets_shapes(name, dim, layers, z):
    with torch.device("meta"):
        model = AvatarDiT(model_preset(name).dit)
    sd = model.state_dict()
    assert sd["patch_embedding.weight"].shape == (dim, z, 1, 2, 2)
    assert sd["head.head.weight"].shape == (4 * z, dim)
    assert f"blocks.{layers - 1}.ffn.2.weight" in sd and f"blocks.{layers}.ffn.2.weight" not in sd


def test_state_dict_with_original_names_loads_strictly(tmp_path):
    model = make_model()
    path = tmp_path / "w.safetensors"
    save_dit_checkpoint(model, path, dtype=None)
    other = AvatarDiT(small_dit_config())
    load_dit_checkpoint(other, path, allow_missing_audio=False)
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # A Wan file lacks the audio layers: they load as missing and stay zero-initialised outputs.
    wan_only = {k: v for k, v in read_state_dict(path).items() if not is_new_audio_key(k)}
    fresh = AvatarDiT(small_dit_config())
    load_dit_checkpoint(fresh, wan_only)
    assert torch.count_nonzero(fresh.blocks[0].talk_audio_attn.o.weight) == 0
    with pytest.raises(UserInputError, match="missing"):
        load_dit_checkpoint(AvatarDiT(small_dit_config()), wan_only, allow_missing_audio=False)


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    model = make_model()
    sd = dict(model.state_dict())
    missing = {k: v for k, v in sd.items() if k != "head.head.weight"}
    with pytest.raises(UserInputError, match=r"missing key.*head\.head\.weight"):
        load_dit_checkpoint(AvatarDiT(small_dit_config()), missing)
    extra = dict(sd, **{"blocks.0.surprise.weight": torch.zeros(1)})
    with pytest.raises(UserInputError, match="unexpected key.*surprise"):
        load_dit_checkpoint(AvatarDiT(small_dit_config()), extra)
    wrong = dict(sd, **{"patch_embedding.bias": torch.zeros(3)})
    with pytest.raises(UserInputError, match=r"patch_embedding\.bias: expected \(64,\), got \(3,\)"):
        load_dit_checkpoint(AvatarDiT(small_dit_config()), wrong)
    with pytest.raises(UserInputError, match="does not exist"):
        load_dit_checkpoint(AvatarDiT(small_dit_config()), tmp_path / "nope.safetensors")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserInputError, match="unsupported"):
        load_dit_checkpoint(AvatarDiT(small_dit_config()), tmp_path / "x.txt")


def test_diffusers_key_map_round_trips_and_matches_diffusers():
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        ours = list(AvatarDiT(model_preset("wan2.1-1.3b").dit).state_dict())
    mapped = [wan_to_diffusers_key(k) for k in ours]
    assert [diffusers_to_wan_key(k) for k in mapped] == ours
    cfg = small_dit_config(reference_concat=False, num_layers=2)
    ref = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=cfg.num_heads,
                                attention_head_dim=cfg.head_dim, in_channels=cfg.latent_channels,
                                out_channels=cfg.latent_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
                                ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True,
                                qk_norm="rms_norm_across_heads", eps=cfg.eps)
    wan_part = {wan_to_diffusers_key(k) for k in AvatarDiT(cfg).state_dict() if not is_new_audio_key(k)}
    assert wan_part == set(ref.state_dict())


def test_same_numbers_as_diffusers_wan_transformer():
    """Loading diffusers' WanTransformer3DModel weights gives the same output (bidirectional, uniform t, no
    audio): the layout, RoPE, modulation and head really are Wan's."""
    from diffusers import WanTransformer3DModel

    from streamavatar.models.random_weights import randomize_

    cfg = small_dit_config(reference_concat=False, num_layers=2)
    ref = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=cfg.num_heads,
                                attention_head_dim=cfg.head_dim, in_channels=cfg.latent_channels,
                                out_channels=cfg.latent_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
                                ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True,
                                qk_norm="rms_norm_across_heads", eps=cfg.eps).eval()
    randomize_(ref, seed=5)
    ours = load_dit_checkpoint(AvatarDiT(cfg), ref.state_dict()).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, cfg.latent_channels, 3, 4, 6, generator=g)
    ctx = torch.randn(1, 5, cfg.text_dim, generator=g)
    with torch.no_grad():
        want = ref(hidden_states=x, timestep=torch.tensor([420.0]), encoder_hidden_states=ctx,
                   return_dict=False)[0]
        got = ours(x, torch.full((1, 3), 420.0), context=ctx, reference_frames=0)
    assert want.abs().max() > 0.1
    assert (want - got).abs().max() < 1e-4

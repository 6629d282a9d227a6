"""Widen a DiT's latent channels (e.g. a 16-channel ``tiny`` model into a 48-channel ``tiny48`` one).

Only two tensors see the latent width: the patch embedding (input ``[latent | mask | reference latent]`` on the
channel axis when the reference is concatenated) and the output head (each token's ``ph·pw`` positions × channels,
channel fastest, see ``AvatarDiT._unpatchify``). Widening copies the old weights onto the first ``old`` channels
and zeroes everything that touches the new ones, so the widened model ignores the new input channels, predicts
the old channels exactly as before and 0 (the normalised latent mean) for the new ones. It is a starting point for
fine-tuning on a VAE whose first channels match the old latent (``tiny48`` vs ``tiny``: docs/vae.md).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from streamavatar.config import DiTConfig
from streamavatar.errors import UserInputError
from streamavatar.models.dit import AvatarDiT

PATCH_KEY = "patch_embedding.weight"
HEAD_WEIGHT = "head.head.weight"
HEAD_BIAS = "head.head.bias"


def _input_slices(cfg: DiTConfig) -> list[tuple[int, int]]:
    """``(start, length)`` of each block of the patch-embedding input: latent, mask, reference."""
    z = cfg.latent_channels
    if not cfg.reference_concat:
        return [(0, z)]
    return [(0, z), (z, cfg.mask_channels), (z + cfg.mask_channels, z)]


def widen_dit_state(state: dict[str, torch.Tensor], old: DiTConfig, new: DiTConfig) -> dict[str, torch.Tensor]:
    """The state dict of ``old`` rewritten for ``new`` (same model except a wider ``latent_channels``)."""
    if replace(old, latent_channels=new.latent_channels) != new:
        raise UserInputError("only latent_channels may differ when widening a DiT")
    if new.latent_channels < old.latent_channels:
        raise UserInputError(f"cannot narrow {old.latent_channels} latent channels to {new.latent_channels}")
    out = dict(state)
    w = state[PATCH_KEY]
    if w.shape[1] != old.in_channels:
        raise UserInputError(f"{PATCH_KEY} has {w.shape[1]} input channels, the old config expects {old.in_channels}")
    wide = torch.zeros(w.shape[0], new.in_channels, *w.shape[2:], dtype=w.dtype)
    for (o0, n), (n0, n_new) in zip(_input_slices(old), _input_slices(new), strict=True):
        wide[:, n0:n0 + min(n, n_new)] = w[:, o0:o0 + min(n, n_new)]
    out[PATCH_KEY] = wide
    positions = old.patch_size[0] * old.patch_size[1] * old.patch_size[2]
    zo, zn = old.out_channels, new.out_channels
    hw, hb = state[HEAD_WEIGHT], state[HEAD_BIAS]
    new_w = torch.zeros(positions * zn, hw.shape[1], dtype=hw.dtype)
    new_b = torch.zeros(positions * zn, dtype=hb.dtype)
    for p in range(positions):
        new_w[p * zn:p * zn + zo] = hw[p * zo:(p + 1) * zo]
        new_b[p * zn:p * zn + zo] = hb[p * zo:(p + 1) * zo]
    out[HEAD_WEIGHT], out[HEAD_BIAS] = new_w, new_b
    return out


def widen_model(model: AvatarDiT, latent_channels: int) -> AvatarDiT:
    """A new :class:`AvatarDiT` like ``model`` with ``latent_channels`` channels (see :func:`widen_dit_state`)."""
    cfg = replace(model.cfg, latent_channels=latent_channels)
    wide = AvatarDiT(cfg)
    wide.load_state_dict(widen_dit_state(model.state_dict(), model.cfg, cfg))
    return wide.to(model.dtype).train(model.training)

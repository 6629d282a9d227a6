"""Wan's 3D rotary position embedding, and RAPR (Reference-Anchored Positional Re-encoding).

RoPE follows Wan2.x (``wan/modules/model.py: rope_params, rope_apply``; anchors-models §15.3): a head of width
``d`` is ``d/2`` rotation pairs split over (time, height, width) as ``[c − 2·(c//3), c//3, c//3]`` pairs with
``c = d/2``; each axis uses frequencies ``θ^(−2i/axis_dim)``; pairs are adjacent channels ``(2i, 2i+1)``.
We compute the angles for the positions asked for instead of indexing a 1024-row table, so any position works.

RAPR (ARCHITECTURE.md §3): keys are cached *before* RoPE. When a chunk is generated, the attended sequence is
``[sink frames][window frames][current chunk]`` in temporal order, and temporal RoPE indices ``0, 1, 2, …`` are
assigned contiguously in that order. This is the only place that rule lives (:func:`temporal_positions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from streamavatar import constants as K


def rope_axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Rotation pairs given to the (time, height, width) axes for a head of width ``head_dim``."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head width, got {head_dim}")
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


def _axis_inv_freq(pairs: int, theta: float, device: torch.device) -> torch.Tensor:
    # Wan: rope_params(max_len, dim=2*pairs) -> 1 / theta ** (arange(0, dim, 2) / dim)
    dim = 2 * pairs
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)


def rope_angles(frame_positions: torch.Tensor, height: int, width: int, head_dim: int,
                theta: float = K.ROPE_THETA, device: torch.device | str | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles for every token of a (frames × height × width) grid.

    ``frame_positions`` holds the temporal RoPE index of each frame (``[F]``, integers). Returns two float32
    tensors ``[F·height·width, head_dim/2]`` ordered frame-major, then row, then column (Wan's token order), on
    ``device`` (default: the device of ``frame_positions``).
    """
    pt, ph, pw = rope_axis_pairs(head_dim)
    dev = torch.device(device) if device is not None else frame_positions.device
    fpos = frame_positions.to(dev, torch.float64).reshape(-1)
    t_ang = torch.outer(fpos, _axis_inv_freq(pt, theta, dev))  # [F, pt]
    h_ang = torch.outer(torch.arange(height, dtype=torch.float64, device=dev), _axis_inv_freq(ph, theta, dev))
    w_ang = torch.outer(torch.arange(width, dtype=torch.float64, device=dev), _axis_inv_freq(pw, theta, dev))
    n_f = fpos.numel()
    ang = torch.cat([
        t_ang[:, None, None, :].expand(n_f, height, width, pt),
        h_ang[None, :, None, :].expand(n_f, height, width, ph),
        w_ang[None, None, :, :].expand(n_f, height, width, pw),
    ], dim=-1).reshape(n_f * height * width, pt + ph + pw)
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, L, heads, head_dim]`` by per-token angles (``cos``/``sin`` ``[L, head_dim/2]``).

    Computed in float32 and returned in ``x``'s dtype.
    """
    if x.shape[1] != cos.shape[0] or x.shape[-1] != 2 * cos.shape[1]:
        raise ValueError(f"RoPE angles {tuple(cos.shape)} do not match tokens {tuple(x.shape)}")
    xf = x.float().unflatten(-1, (-1, 2))
    x1, x2 = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)
    return out.to(x.dtype)


def temporal_positions(attended_frames: Sequence[int], rapr: bool) -> list[int]:
    """Temporal RoPE indices for an attended sequence of latent frames given by their *true* indices.

    ``attended_frames`` lists the frames in attention order: ``[sink…][window…][current chunk…]``, each group
    in increasing true index. With ``rapr`` the indices are ``0, 1, 2, …`` in that order (ARCHITECTURE.md §3),
    which equals the true indices until the first eviction and is frozen afterwards, so the distance from the
    reference to the current chunk never exceeds ``sink + window + C − 1``. Without RAPR the true (absolute)
    indices are used.
    """
    frames = list(attended_frames)
    if any(b <= a for a, b in zip(frames, frames[1:], strict=False)):
        raise ValueError(f"attended frames must be in increasing temporal order, got {frames}")
    if rapr:
        return list(range(len(frames)))
    return frames

"""Block artefacts as a number: gradient energy on a patch grid against gradient energy off it.

A latent VAE with a linear patch path decodes each latent cell into one ``P x P`` patch; when the latents are
wrong the patches stop agreeing at their borders and the frame shows a ``P``-pixel grid. Natural frames have no
preferred grid, so the squared neighbour differences across grid lines (columns/rows ``P-1 | P``, ``2P-1 | 2P``…)
are as large as those anywhere else and the ratio is ~1; a block grid makes it grow (piecewise-constant 8x8 blocks
give ratios in the tens).
"""

from __future__ import annotations

import numpy as np

#: Added to both energies (8-bit units squared) so flat frames give 1 rather than 0/0.
FLOOR = 1.0


def blockiness(frames: np.ndarray, grid: int) -> float:
    """Mean squared luma difference across ``grid``-pixel patch borders over the mean elsewhere (``1`` = no grid).

    ``frames``: uint8 ``[T, H, W, 3]`` (or ``[H, W, 3]``); both axes are used."""
    x = np.asarray(frames)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got {x.shape}")
    if grid < 2 or x.shape[1] <= grid or x.shape[2] <= grid:
        raise ValueError(f"grid {grid} needs frames larger than the grid, got {x.shape[1]}x{x.shape[2]}")
    luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dx = np.diff(luma, axis=2) ** 2  # dx[..., i]: between columns i and i + 1
    dy = np.diff(luma, axis=1) ** 2
    on_x = (np.arange(dx.shape[2]) + 1) % grid == 0
    on_y = (np.arange(dy.shape[1]) + 1) % grid == 0
    on = np.concatenate([dx[:, :, on_x].ravel(), dy[:, on_y, :].ravel()])
    off = np.concatenate([dx[:, :, ~on_x].ravel(), dy[:, ~on_y, :].ravel()])
    return float((on.mean() + FLOOR) / (off.mean() + FLOOR))


def blockiness_by_grid(frames: np.ndarray, grids: tuple[int, ...] = (8, 16)) -> dict[str, float]:
    """:func:`blockiness` for each grid that fits the frames, keyed by the grid size."""
    h, w = np.asarray(frames).shape[-3:-1]
    return {str(g): round(blockiness(frames, g), 4) for g in grids if g < min(h, w)}

"""The blockiness measure: ~1 without a grid, large with one, and it sees which grid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from streamavatar.eval.blockiness import blockiness, blockiness_by_grid
from streamavatar.streaming.default_assets import bundled_inputs
from streamavatar.streaming.reference_image import load_reference


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return load_reference(bundled_inputs()[0], 128)


def _blocky(img: np.ndarray, cell: int) -> np.ndarray:
    small = Image.fromarray(img).resize((img.shape[1] // cell, img.shape[0] // cell), Image.Resampling.BOX)
    return np.asarray(small.resize((img.shape[1], img.shape[0]), Image.Resampling.NEAREST))


def test_clean_frames_have_no_grid(reference):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (8, 64, 64, 3)).astype(np.uint8)
    assert 0.85 < blockiness(noise, 8) < 1.15
    assert 0.7 < blockiness(reference, 8) < 1.3
    assert blockiness(np.full((2, 32, 32, 3), 90, np.uint8), 8) == 1.0  # flat: 1, not 0/0


def test_block_grids_are_found_at_their_size(reference):
    b8 = _blocky(reference, 8)
    assert blockiness(b8, 8) > 50 and blockiness(b8, 8) > 10 * blockiness(b8, 16)
    b16 = _blocky(reference, 16)
    assert blockiness(b16, 16) > 50 and blockiness(b16, 16) > blockiness(b16, 8)
    # A faint grid (a checkerboard of +-6 grey levels on 8x8 blocks) is still clearly above 1.
    yy, xx = np.mgrid[:128, :128]
    checker = np.where((yy // 8 + xx // 8) % 2 == 0, 6, -6)[..., None]
    faint = np.clip(reference.astype(np.int16) + checker, 0, 255).astype(np.uint8)
    assert blockiness(faint, 8) > 1.5 > blockiness(reference, 8)


def test_by_grid_and_bad_input(reference):
    d = blockiness_by_grid(reference[None])
    assert set(d) == {"8", "16"}
    assert set(blockiness_by_grid(np.zeros((1, 12, 12, 3), np.uint8))) == {"8"}
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        blockiness(np.zeros((4, 4)), 8)

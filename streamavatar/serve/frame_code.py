"""Integers written into video frames as rows of black/white blocks, so a test can read them back.

The fake generator marks every frame with its frame index, the first agent-audio sample it was generated
from (``1 + value as uint16``; 0 = no agent audio) and a hash of its reference image. Blocks are
``width // 32`` pixels square, large enough to survive lossy video coding (VP8/H.264 over WebRTC), so the
browser test can read them from a decoded frame.
"""

from __future__ import annotations

import numpy as np

CODE_BITS = 32
#: Rows of blocks used by the fake generator's marks (frame index, talk sample + 1, reference hash).
ROW_FRAME, ROW_TALK_SAMPLE, ROW_REFERENCE = 0, 1, 2
CODE_ROWS = 3


def block_size(width: int) -> int:
    """Side of one code block for a frame of this width."""
    if width < CODE_BITS:
        raise ValueError(f"frames must be at least {CODE_BITS} pixels wide to carry a code, got {width}")
    return width // CODE_BITS


def write_code(frame: np.ndarray, row: int, value: int) -> None:
    """Write ``value`` (0 <= value < 2**32, most significant bit first) into block row ``row`` of ``frame``."""
    b = block_size(frame.shape[1])
    bits = (int(value) >> np.arange(CODE_BITS - 1, -1, -1)) & 1
    frame[row * b:(row + 1) * b, :CODE_BITS * b] = np.repeat(bits.astype(np.uint8) * 255, b)[None, :, None]


def read_code(frame: np.ndarray, row: int) -> int:
    """Read the integer in block row ``row`` (threshold at mid-grey over the centre of each block)."""
    b = block_size(frame.shape[1])
    lo, hi = b // 4, max(b // 4 + 1, b - b // 4)
    band = frame[row * b + lo:row * b + hi, :CODE_BITS * b].reshape(hi - lo, CODE_BITS, b, -1)
    bits = band[:, :, lo:hi].mean(axis=(0, 2, 3)) > 127
    return int(np.dot(bits.astype(np.int64), 1 << np.arange(CODE_BITS - 1, -1, -1, dtype=np.int64)))

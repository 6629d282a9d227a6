"""Integers written into video frames as rows of black/white blocks, so a test can read them back.

The fake generator marks every frame with its frame index, the index of the agent-audio sample it was
generated from and a hash of its reference image. Blocks are ``width // 32`` pixels square, large enough to
survive lossy video coding (VP8/H.264 over WebRTC), so the browser test can read them from a decoded frame.
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
    for bit in range(CODE_BITS):
        on = (value >> (CODE_BITS - 1 - bit)) & 1
        frame[row * b:(row + 1) * b, bit * b:(bit + 1) * b] = 255 if on else 0


def read_code(frame: np.ndarray, row: int) -> int:
    """Read the integer in block row ``row`` (threshold at mid-grey on the block centre)."""
    b = block_size(frame.shape[1])
    value = 0
    for bit in range(CODE_BITS):
        y0, x0 = row * b, bit * b
        lo, hi = b // 4, max(b // 4 + 1, b - b // 4)
        patch = frame[y0 + lo:y0 + hi, x0 + lo:x0 + hi]
        value = (value << 1) | int(patch.mean() > 127)
    return value

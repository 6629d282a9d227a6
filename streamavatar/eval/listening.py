"""Listening motion: how much head and arms move while the user speaks (the paper's LBKV/LHKV/LFKV analogue).

The paper measures keypoint variance during listening phases and compares with a talking-only model fed silent
audio (Table 2). Here the judge reads head angles and arm angles off every frame; the variance over the listening
frames of each angle, in degrees squared, is summed per group (head: yaw + pitch + roll; arms: the four shoulder
and elbow angles).
"""

from __future__ import annotations

import numpy as np

from streamavatar.eval.judge import ARM_TARGETS, HEAD_TARGETS


def listening_motion(params: dict[str, np.ndarray], listening: np.ndarray) -> dict:
    """Head and arm angle variance (deg^2) over the frames where ``listening`` is true.

    Returns ``{"head_var_deg2", "arm_var_deg2", "frames"}``; variances are 0 when fewer than two frames listen."""
    n = min(len(listening), *(len(params[k]) for k in HEAD_TARGETS + ARM_TARGETS))
    m = np.asarray(listening, bool)[:n]
    out: dict = {"frames": int(m.sum())}
    for group, keys in (("head_var_deg2", HEAD_TARGETS), ("arm_var_deg2", ARM_TARGETS)):
        if m.sum() < 2:
            out[group] = 0.0
            continue
        out[group] = float(sum(np.var(np.degrees(np.asarray(params[k], np.float64)[:n][m])) for k in keys))
    return out


def listening_frames(state: np.ndarray) -> np.ndarray:
    """Frames where the avatar only listens (state 2: a user turn with no agent speech)."""
    return np.asarray(state) == 2

"""Identity sampling and the renderer: determinism, framing, measurable mouth."""

from __future__ import annotations

import numpy as np
import pytest

from streamavatar.data.avatar import MIN_FACE_HEIGHT, MIN_LIP_CONTRAST, sample_identity
from streamavatar.data.render import AvatarRenderer, Pose
from streamavatar.errors import UserInputError


def test_identity_is_seeded():
    assert sample_identity(3, 5) == sample_identity(3, 5)
    assert sample_identity(3, 5) != sample_identity(3, 6)
    assert sample_identity(3, 5) != sample_identity(4, 5)


def test_identity_distribution_is_wide():
    ids = [sample_identity(0, i) for i in range(200)]
    assert len({i.hair_style for i in ids}) >= 7
    assert len({i.background.kind for i in ids}) >= 5
    assert len({i.pattern for i in ids}) >= 6
    skins = np.array([i.skin_rgb for i in ids]).mean(axis=1)
    assert skins.max() - skins.min() > 120
    for i in ids:
        assert i.face_height >= MIN_FACE_HEIGHT
        assert np.linalg.norm(np.subtract(i.lip_rgb, i.skin_rgb)) >= MIN_LIP_CONTRAST - 1e-6


@pytest.mark.parametrize("res", [128, 256])
def test_render_shapes_and_determinism(res):
    r = AvatarRenderer(sample_identity(1, 2), res)
    a, ga = r.render(Pose(mouth_open=0.5, head_roll=0.1))
    b, gb = r.render(Pose(mouth_open=0.5, head_roll=0.1))
    assert a.shape == (res, res, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and ga == gb


def test_unknown_resolution():
    with pytest.raises(UserInputError, match="resolution"):
        AvatarRenderer(sample_identity(0, 0), 100)


def test_face_and_mouth_are_measurable_at_128():
    """Face >= 1/3 of the frame height; mouth range >= 6 px; the pixels at the mouth centre really open."""
    for k in range(12):
        r = AvatarRenderer(sample_identity(11, k), 128)
        closed, gc = r.render(Pose(mouth_open=0.0))
        opened, go = r.render(Pose(mouth_open=1.0))
        x0, y0, x1, y1 = gc.face_box
        assert y1 - y0 >= 128 / 3
        assert go.mouth_open_px - gc.mouth_open_px >= 6.0
        assert gc.mouth_open_px == 0.0
        assert 0 <= go.mouth_center_xy[0] < 128 and 0 <= go.mouth_center_xy[1] < 128
        # a vertical strip through the mouth centre changes over at least 6 rows when the mouth opens
        cx, cy = (int(round(v)) for v in go.mouth_center_xy)
        strip_c = closed[cy - 8:cy + 9, cx - 1:cx + 2].astype(int)
        strip_o = opened[cy - 8:cy + 9, cx - 1:cx + 2].astype(int)
        changed_rows = (np.abs(strip_o - strip_c).max(axis=(1, 2)) > 40).sum()
        assert changed_rows >= 6, (k, changed_rows)


def test_pose_moves_what_it_says():
    r = AvatarRenderer(sample_identity(2, 1), 128)
    base, g0 = r.render(Pose())
    _, g1 = r.render(Pose(head_pitch=0.3))
    assert g1.mouth_center_xy[1] > g0.mouth_center_xy[1]  # looking down moves the mouth down
    _, g2 = r.render(Pose(head_yaw=0.4))
    assert g2.mouth_center_xy[0] > g0.mouth_center_xy[0]  # yaw + turns the face to image right
    blink, _ = r.render(Pose(blink=1.0))
    arm, _ = r.render(Pose(arm_left_shoulder=0.5, arm_left_elbow=2.0))
    assert np.abs(blink.astype(int) - base).sum() > 0
    assert np.abs(arm.astype(int) - base)[:, :64].sum() > np.abs(arm.astype(int) - base)[:, 64:].sum()

import numpy as np
import pytest

from streamavatar.errors import UserInputError
from streamavatar.eval.mouth_measure import MouthColours, interior_fraction, measure_clip_mouth, measure_mouth
from streamavatar.eval.stats import pearson_r


def test_measurement_follows_ground_truth_opening(talk_clip):
    m = measure_clip_mouth(talk_clip.frames(), talk_clip.meta, talk_clip.annotations)
    assert m.found.all()
    assert pearson_r(m.open_px, talk_clip.annotations["mouth_open_px"]) > 0.9
    assert pearson_r(m.open, talk_clip.annotations["mouth_open"]) > 0.9
    # the located mouth (centroid of lips + opening) is where the renderer put it (the opening's centre), up to
    # the lower lip being thicker than the upper one
    err = np.linalg.norm(m.center_xy - talk_clip.annotations["mouth_center_xy"], axis=1)
    assert np.median(err) < 3.0 and err.max() < 7.0


def test_closed_mouth_measures_near_zero(listen_clip):
    m = measure_clip_mouth(listen_clip.frames(), listen_clip.meta, listen_clip.annotations)
    closed = listen_clip.annotations["mouth_open"] < 0.02
    assert closed.sum() > 10
    assert np.median(m.open[closed]) < 0.1


def test_interior_fraction_of_reference_colours():
    colours = MouthColours((200, 160, 130), (170, 80, 90))
    px = np.array([[200, 160, 130], [170, 80, 90], [62, 18, 26], [236, 232, 222]], np.uint8)
    interior, mouth = interior_fraction(px, colours)
    np.testing.assert_allclose(interior, [0, 0, 1, 1], atol=1e-6)
    np.testing.assert_allclose(mouth, [0, 1, 1, 1], atol=1e-6)


def test_bad_shapes_raise_user_input_error():
    colours = MouthColours((200, 160, 130), (170, 80, 90))
    with pytest.raises(UserInputError, match="uint8"):
        measure_mouth(np.zeros((2, 8, 8, 3), np.float32), colours, np.zeros((2, 2)), np.zeros((2, 4)))
    with pytest.raises(UserInputError, match="mouth_center_xy"):
        measure_mouth(np.zeros((2, 8, 8, 3), np.uint8), colours, np.zeros((3, 2)), np.zeros((2, 4)))
    with pytest.raises(UserInputError, match="skin_rgb"):
        MouthColours.from_meta({"lip_rgb": [1, 2, 3]})

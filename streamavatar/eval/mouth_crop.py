"""Identity-independent mouth crops for the sync model: interior / lip maps around the located mouth.

The crop is centred on the mouth found by :func:`streamavatar.eval.mouth_measure.measure_mouth`, scaled by the
face size, and stored as two colour-free channels (mouth-interior fraction and lip-or-interior fraction), so the
sync model never sees skin tone or lip colour.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from streamavatar.eval.mouth_measure import MouthColours, MouthMeasurement, interior_fraction

CROP_H = 16
CROP_W = 24
#: Crop half-extent in face heights (vertical) and face widths (horizontal).
CROP_HALF_H = 0.2
CROP_HALF_W = 0.3


def mouth_maps(frames: np.ndarray, colours: MouthColours, measurement: MouthMeasurement,
               face_box: np.ndarray) -> np.ndarray:
    """``[T, 2, CROP_H, CROP_W]`` float32 interior / lip maps of uint8 ``frames`` ``[T, H, W, 3]``."""
    T = len(frames)
    fh = float(np.median(face_box[:, 3] - face_box[:, 1]))
    fw = float(np.median(face_box[:, 2] - face_box[:, 0]))
    gy = np.linspace(-CROP_HALF_H * fh, CROP_HALF_H * fh, CROP_H, dtype=np.float32)
    gx = np.linspace(-CROP_HALF_W * fw, CROP_HALF_W * fw, CROP_W, dtype=np.float32)
    out = np.zeros((T, 2, CROP_H, CROP_W), np.float32)
    for t in range(T):
        cx, cy = measurement.center_xy[t]
        yy, xx = np.meshgrid(cy + gy, cx + gx, indexing="ij")
        img = frames[t].astype(np.float32)
        pix = np.stack([ndimage.map_coordinates(img[..., c], [yy, xx], order=1, mode="nearest")
                        for c in range(3)], -1)
        interior, mouth = interior_fraction(pix, colours)
        out[t, 0], out[t, 1] = interior, mouth
    return out

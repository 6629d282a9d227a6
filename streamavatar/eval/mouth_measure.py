"""Exact mouth-opening measurement for corpus avatars (the teacher's training gate, issue #9).

Corpus avatars have known colours: every identity's skin and lip RGB are in ``meta.json`` and the inside of the
mouth is drawn with three fixed colours (dark cavity, teeth, tongue; ``streamavatar.data.render``). So a frame's
mouth opening can be read off its pixels without any learned model:

1. every pixel near the mouth is projected onto the nearest of a few colour *segments* between those reference
   colours (skin-lip, lip-cavity, lip-teeth, lip-tongue, cavity-teeth, cavity-tongue, teeth-tongue);
   its *interior fraction* is 0 on skin, 0 on lip, 1 on any mouth-interior colour and the linear mixing weight
   along a lip-to-interior segment (anti-aliased edges count fractionally, which gives sub-pixel resolution);
2. the mouth is found as the centroid of lip + interior mass in a window around the expected mouth position
   (the clip's annotated mouth centre, so a generated head that drifts a few pixels is still found);
3. the opening in pixels is the summed interior fraction of the three columns through the mouth centre (the inner
   lip gap there, which is what ``annotations.npz``'s ``mouth_open_px`` records), counted only over the run of
   lip-or-interior rows through the mouth (so a dark collar or hair strand in the window does not add to it);
4. dividing by the face height times the renderer's gap scale, then a monotone calibration table fitted on the
   train split, gives a 0..1 value comparable with ``mouth_open``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamavatar.errors import UserInputError

#: Mouth-interior colours of the corpus renderer (``streamavatar/data/render.py``: _MOUTH_DARK, _TEETH, _TONGUE).
MOUTH_DARK_RGB = (62, 18, 26)
TEETH_RGB = (236, 232, 222)
TONGUE_RGB = (196, 86, 96)
#: mouth_open_px / (mouth_open * face height px) of the corpus renderer (MAX_MOUTH_GAP = 0.34 face half-heights
#: divided by 2 half-heights per face height, shortened slightly by the face outline's jaw drop; fitted on the
#: corpus: median 0.166).
GAP_PER_FACE_HEIGHT = 0.166
#: Piecewise-linear map from the linear estimate (open_px / (GAP_PER_FACE_HEIGHT * face height)) to mouth_open.
#: Small openings are over-drawn by the renderer (every mouth polygon covers at least one supersampled pixel), so
#: the pixel gap is not proportional to the control value near 0. Fitted by binning 16 train-split clips
#: (every 8th train clip, 3200 frames) on measured value and averaging ground truth per bin (made monotone);
#: reproduce with ``streamavatar eval mouth-check --corpus /work/data/corpus --fit``.
CALIBRATION_IN = (0.0, 0.021, 0.069, 0.106, 0.151, 0.194, 0.244, 0.284, 0.33, 0.375, 0.421, 0.461, 0.506, 0.55,
                  0.593, 0.639, 0.681, 0.728, 0.774, 0.814, 0.863, 0.901, 0.944, 0.991, 1.034)
CALIBRATION_OUT = (0.0, 0.008, 0.008, 0.017, 0.076, 0.095, 0.155, 0.187, 0.246, 0.297, 0.33, 0.357, 0.416, 0.488,
                   0.544, 0.596, 0.621, 0.676, 0.731, 0.751, 0.832, 0.871, 0.886, 0.928, 0.957)
#: Search window around the expected mouth centre, in face widths (x) and face heights (y), half sizes.
SEARCH_HALF_W = 0.34
SEARCH_HALF_H = 0.24
#: Columns either side of the mouth centre column that are averaged.
CENTRE_COLUMNS = 1


@dataclass(frozen=True)
class MouthColours:
    """The reference colours of one identity's mouth region (RGB 0-255)."""

    skin_rgb: tuple[int, int, int]
    lip_rgb: tuple[int, int, int]

    @classmethod
    def from_meta(cls, meta: dict) -> MouthColours:
        """Read ``skin_rgb`` and ``lip_rgb`` from a corpus clip's ``meta.json`` dict."""
        try:
            return cls(tuple(int(v) for v in meta["skin_rgb"]), tuple(int(v) for v in meta["lip_rgb"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserInputError(f"meta.json must hold skin_rgb and lip_rgb as three numbers each, got {exc}") from exc


@dataclass
class MouthMeasurement:
    """Per-frame results of :func:`measure_mouth`."""

    open_px: np.ndarray        # [T] inner lip gap at the mouth centre, pixels
    open: np.ndarray           # [T] open_px mapped to the corpus' 0..1 mouth_open scale (calibrated)
    open_linear: np.ndarray    # [T] open_px / (GAP_PER_FACE_HEIGHT * face height), uncalibrated
    center_xy: np.ndarray      # [T, 2] located mouth centre, pixels
    found: np.ndarray          # [T] bool: a run of lip-coloured rows found in the search window


def _segments(colours: MouthColours) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Segment start points, directions, and interior value at each end."""
    s = np.array(colours.skin_rgb, np.float32)
    lip = np.array(colours.lip_rgb, np.float32)
    d, w, g = (np.array(c, np.float32) for c in (MOUTH_DARK_RGB, TEETH_RGB, TONGUE_RGB))
    pairs = [(s, lip, 0, 0), (lip, d, 0, 1), (lip, w, 0, 1), (lip, g, 0, 1), (d, w, 1, 1), (d, g, 1, 1),
             (w, g, 1, 1)]
    a = np.stack([p[0] for p in pairs])
    b = np.stack([p[1] for p in pairs])
    va = np.array([p[2] for p in pairs], np.float32)
    vb = np.array([p[3] for p in pairs], np.float32)
    return a, b - a, va, vb


def interior_fraction(pixels: np.ndarray, colours: MouthColours) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mouth-interior fraction and lip-or-interior fraction (both 0..1) of ``pixels`` ``[..., 3]``."""
    a, d, va, vb = _segments(colours)
    p = pixels.astype(np.float32)[..., None, :]                      # [..., 1, 3]
    t = np.clip(((p - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-6), 0.0, 1.0)  # [..., S]
    dist = (((a + t[..., None] * d) - p) ** 2).sum(-1)
    k = dist.argmin(-1)
    tk = np.take_along_axis(t, k[..., None], -1)[..., 0]
    interior = va[k] + (vb[k] - va[k]) * tk
    mouthness = np.where(k == 0, tk, 1.0)  # skin-lip segment: lip weight; every other segment touches the mouth
    return interior, mouthness


def _validate(frames: np.ndarray, centre_xy: np.ndarray, face_box: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UserInputError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    T = frames.shape[0]
    if centre_xy.shape != (T, 2) or face_box.shape != (T, 4):
        raise UserInputError(f"mouth_center_xy must be [T, 2] and face_box [T, 4] with T = {T} frames, got "
                             f"{tuple(centre_xy.shape)} and {tuple(face_box.shape)}")


def _mouth_rows(profile: np.ndarray, near: int) -> tuple[int | None, int | None]:
    """The run of rows (or columns) whose lip-or-interior fraction exceeds 1/2 that lies nearest to index ``near``
    (the mouth, not a lip-coloured collar or dark hair elsewhere in the window)."""
    on = np.flatnonzero(profile > 0.5)
    if not len(on):
        return None, None
    start = int(on[np.abs(on - near).argmin()])
    top = bottom = start
    while top - 1 >= 0 and profile[top - 1] > 0.5:
        top -= 1
    while bottom + 1 < len(profile) and profile[bottom + 1] > 0.5:
        bottom += 1
    return top, bottom


def measure_mouth(frames: np.ndarray, colours: MouthColours, mouth_center_xy: np.ndarray,
                  face_box: np.ndarray, face_height: float | None = None) -> MouthMeasurement:
    """Measure the mouth opening in each frame of ``frames`` (uint8 ``[T, H, W, 3]``).

    ``mouth_center_xy`` ``[T, 2]`` and ``face_box`` ``[T, 4]`` (from the clip's ``annotations.npz``) give where
    the mouth is expected; the mouth is searched for around that point, so small pose differences of a generated
    video do not matter. ``face_height`` (pixels) normalises the gap to the 0..1 ``mouth_open`` scale; by default
    the median face-box height of the clip (the jaw drop of open mouths stretches single frames)."""
    frames = np.asarray(frames)
    centre_xy = np.asarray(mouth_center_xy, np.float32)
    face_box = np.asarray(face_box, np.float32)
    _validate(frames, centre_xy, face_box)
    T, H, W, _ = frames.shape
    fw = np.maximum(face_box[:, 2] - face_box[:, 0], 4.0)
    fh = np.maximum(face_box[:, 3] - face_box[:, 1], 4.0)
    if face_height is None:
        face_height = float(np.median(fh))
    open_px = np.zeros(T, np.float32)
    centres = np.array(centre_xy, np.float32)
    found = np.zeros(T, bool)
    for t in range(T):
        hx, hy = SEARCH_HALF_W * fw[t], SEARCH_HALF_H * fh[t]
        x0 = int(np.clip(np.floor(centre_xy[t, 0] - hx), 0, W - 1))
        x1 = int(np.clip(np.ceil(centre_xy[t, 0] + hx) + 1, x0 + 1, W))
        y0 = int(np.clip(np.floor(centre_xy[t, 1] - hy), 0, H - 1))
        y1 = int(np.clip(np.ceil(centre_xy[t, 1] + hy) + 1, y0 + 1, H))
        interior, mouth = interior_fraction(frames[t, y0:y1, x0:x1], colours)
        mass = mouth.sum()
        if mass < 2.0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        cx = float((mouth * xs).sum() / mass)
        cy = float((mouth * ys).sum() / mass)
        c = int(round(cx)) - x0
        band = slice(max(c - CENTRE_COLUMNS, 0), c + CENTRE_COLUMNS + 1)
        top, bottom = _mouth_rows(mouth[:, band].mean(1), int(round(cy)) - y0)
        if top is None:
            centres[t] = (cx + 0.5, cy + 0.5)
            continue
        found[t] = True
        rows = slice(max(top - 1, 0), bottom + 2)
        left, right = _mouth_rows(mouth[top:bottom + 1].mean(0), c)  # the same run search along the mouth's rows
        if left is not None:
            cx = x0 + 0.5 * (left + right)
            c = int(round(cx)) - x0
            band = slice(max(c - CENTRE_COLUMNS, 0), c + CENTRE_COLUMNS + 1)
        centres[t] = (cx + 0.5, y0 + 0.5 * (top + bottom) + 0.5)  # pixel i spans [i, i + 1) in annotation units
        open_px[t] = float(interior[rows, band].sum(0).mean())
    linear = open_px / (GAP_PER_FACE_HEIGHT * face_height)
    return MouthMeasurement(open_px=open_px, open=calibrate_open(linear), open_linear=linear, center_xy=centres,
                            found=found)


def calibrate_open(linear: np.ndarray) -> np.ndarray:
    """Map the linear gap estimate to the 0..1 ``mouth_open`` scale (:data:`CALIBRATION_IN` -> ``_OUT``; values
    beyond the table extend with slope 1 from its last point)."""
    linear = np.asarray(linear, np.float32)
    out = np.interp(linear, CALIBRATION_IN, CALIBRATION_OUT).astype(np.float32)
    beyond = linear > CALIBRATION_IN[-1]
    out[beyond] = CALIBRATION_OUT[-1] + (linear[beyond] - CALIBRATION_IN[-1])
    return out


def measure_clip_mouth(frames: np.ndarray, meta: dict, annotations: dict) -> MouthMeasurement:
    """:func:`measure_mouth` with a corpus clip's ``meta.json`` dict and ``annotations.npz`` arrays.

    When ``frames`` is longer than the annotations (a generated video that runs on), the last annotated mouth
    position is used for the extra frames."""
    frames = np.asarray(frames)
    for key in ("mouth_center_xy", "face_box"):
        if key not in annotations:
            raise UserInputError(f"annotations must hold '{key}', got keys {sorted(annotations)}")
    centre = np.asarray(annotations["mouth_center_xy"], np.float32)
    box = np.asarray(annotations["face_box"], np.float32)
    if len(centre) == 0:
        raise UserInputError("annotations hold no frames")
    face_height = float(np.median(box[:, 3] - box[:, 1]))
    idx = np.minimum(np.arange(len(frames)), len(centre) - 1)
    return measure_mouth(frames, MouthColours.from_meta(meta), centre[idx], box[idx], face_height)

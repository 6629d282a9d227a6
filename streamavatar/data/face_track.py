"""Offline face landmarks for real videos: mediapipe 0.10.21's bundled FaceMesh (468 points), nothing downloaded.

The ``[real]`` extra installs mediapipe; without it :func:`require_mediapipe` raises a one-line
:class:`~streamavatar.errors.UserInputError` saying what to install.

Landmark indices used here (mediapipe's canonical face mesh):

* inner lips: 13 (upper, centre) and 14 (lower, centre); also 82/87 and 312/317 beside the centre;
* mouth corners: 78 (image-left) and 308 (image-right), inner lip line;
* face height: 10 (top of the forehead) to 152 (chin); face width: 234 to 454 (cheek edges).

Small frames are upscaled before the mesh runs (FaceMesh wants faces of roughly 100 px or more);
landmarks are returned in the pixels of the frame passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from streamavatar.errors import UserInputError

UPPER_LIP = 13
LOWER_LIP = 14
#: pairs (upper, lower) of inner-lip points averaged for the opening: the centre and one point either side
INNER_LIP_PAIRS = ((13, 14), (82, 87), (312, 317))
MOUTH_LEFT = 78
MOUTH_RIGHT = 308
FOREHEAD = 10
CHIN = 152
CHEEK_LEFT = 234
CHEEK_RIGHT = 454
N_LANDMARKS = 468
#: frames whose shorter side is below this are upscaled (integer factor) before FaceMesh runs (the 128 px
#: corpus frames: x3); larger frames are passed as they are
MIN_DETECT_SIDE = 256


def require_mediapipe():
    """The ``mediapipe`` module, or a one-line error naming the extra to install."""
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise UserInputError("face tracking needs mediapipe 0.10.21 (bundled offline models): "
                             "pip install -e \".[real]\"") from exc
    if not hasattr(mp, "solutions"):
        raise UserInputError(f"mediapipe {getattr(mp, '__version__', '?')} has no bundled solutions; "
                             "install mediapipe==0.10.21 (pip install -e \".[real]\")")
    return mp


class FaceMeshTracker:
    """FaceMesh over a frame sequence (tracking mode: landmarks of frame ``t`` seed frame ``t + 1``).

    Use one tracker per shot (:meth:`reset` at a scene cut) so that a shot's landmarks depend only on that
    shot's frames. ``static=True`` detects afresh in every frame (slower, for stills)."""

    def __init__(self, static: bool = False, min_confidence: float = 0.5) -> None:
        self._mp = require_mediapipe()
        self.static = static
        self.min_confidence = min_confidence
        self._mesh = None
        self.reset()

    def reset(self) -> None:
        """Forget the tracked face (the next frame is detected from scratch)."""
        self.close()
        self._mesh = self._mp.solutions.face_mesh.FaceMesh(
            static_image_mode=self.static, max_num_faces=1, refine_landmarks=False,
            min_detection_confidence=self.min_confidence, min_tracking_confidence=self.min_confidence)

    def close(self) -> None:
        """Release the mediapipe graph."""
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def __enter__(self) -> FaceMeshTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """Landmarks ``[468, 2]`` float32 in pixels of ``frame`` (uint8 ``[H, W, 3]`` RGB), or None (no face)."""
        h, w = frame.shape[:2]
        scale = int(np.ceil(MIN_DETECT_SIDE / min(h, w))) if min(h, w) < MIN_DETECT_SIDE else 1
        img = frame if scale == 1 else np.asarray(Image.fromarray(frame).resize((w * scale, h * scale),
                                                                                Image.Resampling.BICUBIC))
        result = self._mesh.process(np.ascontiguousarray(img))
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        pts = np.array([(p.x, p.y) for p in lm[:N_LANDMARKS]], np.float32)
        return pts * np.array([w, h], np.float32)


def track_frames(frames: np.ndarray, static: bool = False) -> list[np.ndarray | None]:
    """Landmarks of every frame of one shot (uint8 ``[T, H, W, 3]``)."""
    with FaceMeshTracker(static=static) as tracker:
        return [tracker(f) for f in frames]


@dataclass(frozen=True)
class FaceGeometry:
    """Per-frame face measurements from landmarks (pixels of the frame the landmarks are in)."""

    center: np.ndarray        # [2] mean of all landmarks
    box: np.ndarray           # [4] x0, y0, x1, y1 of the landmarks
    height: float             # forehead (10) to chin (152)
    width: float              # cheek (234) to cheek (454)
    mouth_gap: float          # mean inner-lip distance of the three centre pairs
    mouth_center: np.ndarray  # [2] midpoint of the inner lips
    mouth_width: float        # inner corner to corner


def face_geometry(landmarks: np.ndarray) -> FaceGeometry:
    """:class:`FaceGeometry` of one frame's ``[468, 2]`` landmarks."""
    p = np.asarray(landmarks, np.float64)
    gap = float(np.mean([np.linalg.norm(p[a] - p[b]) for a, b in INNER_LIP_PAIRS]))
    return FaceGeometry(
        center=p.mean(0).astype(np.float32),
        box=np.array([*p.min(0), *p.max(0)], np.float32),
        height=float(np.linalg.norm(p[FOREHEAD] - p[CHIN])),
        width=float(np.linalg.norm(p[CHEEK_LEFT] - p[CHEEK_RIGHT])),
        mouth_gap=gap,
        mouth_center=((p[UPPER_LIP] + p[LOWER_LIP]) / 2).astype(np.float32),
        mouth_width=float(np.linalg.norm(p[MOUTH_LEFT] - p[MOUTH_RIGHT])))


def mouth_ratio(landmarks: np.ndarray) -> float:
    """Inner-lip opening over face height (scale-free; about 0 closed, 0.1-0.2 wide open)."""
    g = face_geometry(landmarks)
    return g.mouth_gap / max(g.height, 1e-6)

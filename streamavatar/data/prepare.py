"""``streamavatar data prepare``: a folder of real talking videos → a training folder in the corpus layout.

Per input video (layouts in ``docs/real_data.md``):

1. **Audio**: the avatar's voice (talk) and the partner's (listen) at 16 kHz mono, from ``<stem>.talk.wav`` +
   ``<stem>.listen.wav`` beside the video, else from the video's first two audio streams, else from its one
   (mixed) audio stream, split between the two by active-speaker detection
   (:mod:`streamavatar.data.speaker_attribution`, overridable with ``<stem>.speakers.json``).
2. **Pass 1** (analysis): the video is decoded with PyAV and resampled to 25 fps (nearest source frame in
   time); scene cuts are found from grey-level histogram jumps; FaceMesh tracks the face in every frame
   (restarted at each cut); per frame the face centre, height, box and mouth are kept.
3. **Clips**: each shot's runs of tracked face (gaps up to ``max_face_gap`` frames are interpolated) are
   filtered (face too small, too dark, too short) and split into clips of at most ``max_seconds``; every
   dropped stretch is reported with its reason.
4. **Crop**: one square upper-body crop size per clip (``crop_scale`` face heights) and a centre smoothed with
   a wide Gaussian (``smooth_seconds``), clamped inside the frame: the crop does not jitter with the landmarks.
5. **Pass 2**: the video is decoded again and each clip's crops are written as in the synthetic corpus:
   ``clips/<id>/video.mp4``, ``talk.wav``, ``listen.wav``, ``meta.json``, ``annotations.npz``.

Sharded runs (``--shard I/N`` or torchrun's ``RANK``/``WORLD_SIZE``) take every N-th input file and write
``shards/I-of-N.json``; the shard that finds all N manifests present writes the merged ``index.json``,
``{train,val,test}.txt`` and ``prepare_report.json`` (identical to a one-process run: nothing in them depends
on the sharding).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

from streamavatar.constants import VIDEO_FPS
from streamavatar.data.dataset import REAL_FORMAT_NAME, SILENCE_PEAK, VIDEO_SUFFIXES
from streamavatar.data.speaker_attribution import attribute_speakers, frame_energy, load_override
from streamavatar.data.synthetic import SPLITS
from streamavatar.data.video_io import write_mp4
from streamavatar.errors import UserInputError

SAMPLE_RATE = 16000
HOP = SAMPLE_RATE // VIDEO_FPS
#: mouth-opening ratio (inner-lip gap / face height) mapped to mouth_open 0 and 1: 0 = touching lips, 1 = the
#: synthetic corpus's widest mouth (a linear fit of the ratio against the renderer's mouth_open on 6 corpus
#: clips gives 0.174 at mouth_open 1; its drawn lips leave a 0.04 gap when "closed": docs/real_data.md)
RATIO_CLOSED = 0.0
RATIO_WIDE = 0.17
MIN_FPS, MAX_FPS = 10.0, 121.0
MIN_RATE, MAX_RATE = 8000, 192000
DROP_REASONS = ("no face", "face too small", "too dark", "cut too short")
FILE_REASONS = ("unreadable", "truncated", "no audio", "silent audio", "odd frame rate", "odd sample rate",
                "bad override")


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of one preparation run (all recorded in ``index.json``)."""

    resolution: int = 128
    fps: int = VIDEO_FPS
    min_face_px: float = 48.0        # median face height (forehead to chin) in source pixels
    dark_luma: float = 35.0          # mean luma (0..255) of the face box below this = too dark
    min_seconds: float = 2.0         # shorter face runs = cut too short
    max_seconds: float = 20.0        # longer runs are split into equal clips of at most this
    cut_threshold: float = 0.5       # L1 distance of consecutive 32-bin grey histograms (0..2) = a scene cut
    max_face_gap: int = 6            # frames without a tracked face inside a run (interpolated)
    crop_scale: float = 2.6          # crop side / face height
    crop_face_y: float = 0.36        # face centre's height in the crop (0 top .. 1 bottom)
    smooth_seconds: float = 1.0      # Gaussian sigma of the crop centre track
    split: str = "auto"              # "auto" (hash of the identity, or train/val/test subfolders) or one split

    def validate(self) -> None:
        """One-line errors for impossible settings."""
        if self.resolution < 32 or self.resolution % 16:
            raise UserInputError(f"--resolution must be a multiple of 16 and at least 32, got {self.resolution}")
        if self.split not in ("auto", *SPLITS):
            raise UserInputError(f"--split must be auto, train, val or test, got {self.split!r}")
        if self.min_seconds <= 0 or self.max_seconds < self.min_seconds:
            raise UserInputError("need 0 < --min-seconds <= --max-seconds")


# ------------------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class VideoInput:
    """One input video and where its voices come from."""

    path: Path
    rel: str
    identity: str
    split_dir: str | None
    layout: str                       # "wav-pair", "two-tracks", "mixed"
    talk_wav: Path | None = None
    listen_wav: Path | None = None
    override: Path | None = None


def find_inputs(root: Path) -> list[VideoInput]:
    """Every video under ``root`` with its layout (sorted by relative path)."""
    if not root.is_dir():
        raise UserInputError(f"--videos folder not found: {root}")
    has_split_dirs = any((root / s).is_dir() for s in SPLITS)
    out = []
    for p in sorted(q for q in root.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES):
        rel = p.relative_to(root)
        parts = rel.parts
        split_dir = parts[0] if has_split_dirs and parts[0] in SPLITS else None
        ident_parts = parts[1:-1] if split_dir else parts[:-1]
        identity = "/".join(ident_parts) if ident_parts else p.stem
        talk, listen = p.with_name(p.stem + ".talk.wav"), p.with_name(p.stem + ".listen.wav")
        override = p.with_name(p.stem + ".speakers.json")
        if talk.is_file() and listen.is_file():
            layout = "wav-pair"
        else:
            talk = listen = None
            layout = "?"  # two-tracks or mixed, decided from the streams
        out.append(VideoInput(p, str(rel), identity, split_dir, layout, talk, listen,
                              override if override.is_file() else None))
    return out


def clip_prefix(rel: str) -> str:
    """A stable, unique, readable clip-id prefix for an input file: slug of its stem + hash of its path."""
    stem = re.sub(r"[^a-z0-9]+", "-", Path(rel).stem.lower()).strip("-")[:24] or "video"
    return f"{stem}-{hashlib.sha1(rel.encode()).hexdigest()[:6]}"


def split_of(identity: str) -> str:
    """The hash split of an identity (10 % val, 10 % test), as for plain video folders."""
    h = int(hashlib.sha1(identity.encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 10 else ("val" if h < 20 else "train")


class SkipFile(Exception):  # noqa: N818 - a control-flow signal carrying the report reason
    """A whole input file is unusable; ``reason`` is one of :data:`FILE_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ------------------------------------------------------------------------------------------------ decoding
def _decode_audio_streams(path: Path, max_streams: int = 2) -> list[np.ndarray]:
    """Up to ``max_streams`` audio streams of a media file, each mono float32 at 16 kHz."""
    out = []
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)[:max_streams]
        for s in streams:
            if not (MIN_RATE <= (s.rate or 0) <= MAX_RATE):
                raise SkipFile("odd sample rate", f"audio stream {s.index} at {s.rate} Hz "
                                                  f"(supported {MIN_RATE}-{MAX_RATE})")
        for s in streams:
            c.seek(0)
            res = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks = []
            try:
                for frame in c.decode(s):
                    chunks.extend(r.to_ndarray().reshape(-1) for r in res.resample(frame))
                chunks.extend(r.to_ndarray().reshape(-1) for r in res.resample(None))
            except Exception as exc:  # noqa: BLE001 - PyAV raises many error types for broken data
                got = sum(len(x) for x in chunks) / SAMPLE_RATE
                raise SkipFile("truncated", f"audio stream {s.index} stops decoding after {got:.2f} s "
                                            f"({type(exc).__name__}: {exc})") from exc
            out.append(np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32))
    return out


def _read_wav16k(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if not (MIN_RATE <= rate <= MAX_RATE):
        raise SkipFile("odd sample rate", f"{path.name} at {rate} Hz (supported {MIN_RATE}-{MAX_RATE})")
    audio = audio.mean(1)
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = np.gcd(int(rate), SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    return audio


def video_rate(path: Path) -> tuple[float, int, int, float]:
    """``(fps, width, height, declared duration s or 0)`` of the first video stream; raises :class:`SkipFile`
    when unusable."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise SkipFile("unreadable", "no video stream")
            vs = c.streams.video[0]
            fps = float(vs.average_rate or vs.guessed_rate or 0)
            w, h = vs.codec_context.width, vs.codec_context.height
            declared = float(vs.duration * vs.time_base) if vs.duration else 0.0  # the video stream's own
    except SkipFile:
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV raises many error types for broken files
        raise SkipFile("unreadable", f"{type(exc).__name__}: {exc}") from exc
    if not (MIN_FPS <= fps <= MAX_FPS):
        raise SkipFile("odd frame rate", f"{fps:g} fps (supported {MIN_FPS:g}-{MAX_FPS:g})")
    return fps, w, h, declared


def iter_frames(path: Path, fps: int = VIDEO_FPS):
    """``(k, frame)`` on a ``fps`` grid: output frame ``k`` (time ``k / fps``) is the last source frame shown at
    that time. Source timestamps come from the stream (variable frame rates resample correctly). Raises
    :class:`SkipFile` ("truncated") when decoding fails part-way."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        tb = vs.time_base
        start = None
        k = 0
        prev = None
        prev_t = 0.0
        try:
            for i, frame in enumerate(c.decode(vs)):
                t = float(frame.pts * tb) if frame.pts is not None else i / float(vs.average_rate or fps)
                if start is None:
                    start = t
                t -= start
                if prev is not None:
                    while k / fps < t - 1e-6 and k / fps >= prev_t - 1e-6:
                        yield k, prev
                        k += 1
                prev, prev_t = frame.to_ndarray(format="rgb24"), t
        except Exception as exc:  # noqa: BLE001
            raise SkipFile("truncated", f"decoding stopped after {k / fps:.2f} s "
                                        f"({type(exc).__name__}: {exc})") from exc
        if prev is not None:
            end = prev_t + 1.0 / float(vs.average_rate or fps)
            while k / fps < end - 0.25 / fps:  # container timestamps are rounded (ms in mkv)
                yield k, prev
                k += 1


# ------------------------------------------------------------------------------------------------ analysis
@dataclass
class Track:
    """Pass-1 per-frame measurements of one video on the 25 fps grid (NaN where no face was tracked)."""

    center: np.ndarray      # [T, 2]
    height: np.ndarray      # [T]
    box: np.ndarray         # [T, 4]
    mouth_gap: np.ndarray   # [T]
    mouth_xy: np.ndarray    # [T, 2]
    mouth_w: np.ndarray     # [T]
    luma: np.ndarray        # [T] mean luma inside the face box (frame mean without a face)
    cuts: list[int]         # frames that start a new shot (0 included)
    width: int = 0
    frame_height: int = 0

    @property
    def n(self) -> int:
        return len(self.height)

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.height)

    @property
    def ratio(self) -> np.ndarray:
        """Mouth-opening ratio (inner-lip gap / face height); 0 where no face."""
        return np.where(self.found, self.mouth_gap / np.where(self.found, self.height, 1.0), 0.0)


def _grey_hist(frame: np.ndarray) -> np.ndarray:
    g = (frame[::4, ::4].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    h = np.bincount(np.clip(g, 0, 255).astype(np.int32).ravel() // 8, minlength=32).astype(np.float32)
    return h / max(h.sum(), 1.0)


def analyse_video(path: Path, cfg: PrepareConfig, progress: bool = False, total: int | None = None) -> Track:
    """Pass 1: cuts and face track of a video (see the module docstring)."""
    from streamavatar.data.face_track import FaceMeshTracker, face_geometry

    rows: list[tuple] = []
    cuts = [0]
    prev_hist = None
    w = h = 0
    with FaceMeshTracker() as tracker:
        bar = tqdm(total=total, desc=f"track {path.name}", unit="frame", file=sys.stderr, leave=False,
                   disable=not progress)
        for k, frame in iter_frames(path, cfg.fps):
            h, w = frame.shape[:2]
            hist = _grey_hist(frame)
            if prev_hist is not None and float(np.abs(hist - prev_hist).sum()) > cfg.cut_threshold:
                cuts.append(k)
                tracker.reset()
            prev_hist = hist
            lm = tracker(frame)
            if lm is None:
                luma = float(frame.mean())
                rows.append((None, luma))
            else:
                g = face_geometry(lm)
                x0, y0, x1, y1 = np.clip(g.box, 0, [w, h, w, h]).astype(int)
                patch = frame[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
                rows.append((g, float(patch.mean()) if patch.size else float(frame.mean())))
            bar.update(1)
        bar.close()
    n = len(rows)
    nan2 = np.full((n, 2), np.nan, np.float32)
    tr = Track(nan2.copy(), np.full(n, np.nan, np.float32), np.full((n, 4), np.nan, np.float32),
               np.full(n, np.nan, np.float32), nan2.copy(), np.full(n, np.nan, np.float32),
               np.array([r[1] for r in rows], np.float32), cuts, w, h)
    for k, (g, _) in enumerate(rows):
        if g is not None:
            tr.center[k], tr.height[k], tr.box[k] = g.center, g.height, g.box
            tr.mouth_gap[k], tr.mouth_xy[k], tr.mouth_w[k] = g.mouth_gap, g.mouth_center, g.mouth_width
    return tr


# ------------------------------------------------------------------------------------------------ clips
@dataclass
class ClipPlan:
    """One clip to write: frames ``[start, end)`` of the 25 fps grid and its crop per frame."""

    start: int
    end: int
    shot: int
    crop: np.ndarray        # [n, 3] centre x, centre y, side (source pixels)


@dataclass
class Drop:
    """A stretch of a video (or a whole file) that produced no clip, and why."""

    source: str
    reason: str
    start_s: float = 0.0
    end_s: float = 0.0
    detail: str = ""


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    out, t = [], 0
    while t < len(mask):
        if mask[t]:
            s = t
            while t < len(mask) and mask[t]:
                t += 1
            out.append((s, t))
        else:
            t += 1
    return out


def _interp(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linear interpolation over the frames where ``found`` is false (edges hold the nearest value)."""
    v = values.astype(np.float64).copy()
    idx = np.flatnonzero(found)
    t = np.arange(len(v))
    if v.ndim == 1:
        return np.interp(t, idx, v[idx])
    return np.stack([np.interp(t, idx, v[idx, j]) for j in range(v.shape[1])], 1)


def plan_clips(track: Track, cfg: PrepareConfig, source: str) -> tuple[list[ClipPlan], list[Drop]]:
    """Shots → face runs → filters → clips with smoothed crops (see the module docstring)."""
    fps = cfg.fps
    plans: list[ClipPlan] = []
    drops: list[Drop] = []
    bounds = [*track.cuts, track.n]
    found = track.found
    min_len = int(round(cfg.min_seconds * fps))
    max_len = int(round(cfg.max_seconds * fps))

    def drop(a: int, b: int, reason: str, detail: str = "") -> None:
        drops.append(Drop(source, reason, round(a / fps, 3), round(b / fps, 3), detail))

    for shot, (s0, s1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        f = found[s0:s1].copy()
        # close short gaps inside a run of tracked face
        for a, b in _runs(~f):
            if a > 0 and b < len(f) and b - a <= cfg.max_face_gap:
                f[a:b] = True
        covered = np.zeros(s1 - s0, bool)
        for a, b in _runs(f):
            covered[a:b] = True
            a, b = a + s0, b + s0
            ok = found[a:b]
            med_h = float(np.median(track.height[a:b][ok]))
            luma = float(np.mean(track.luma[a:b][ok]))
            if med_h < cfg.min_face_px:
                drop(a, b, "face too small", f"median face height {med_h:.0f} px < {cfg.min_face_px:g}")
                continue
            if luma < cfg.dark_luma:
                drop(a, b, "too dark", f"face luma {luma:.0f} < {cfg.dark_luma:g}")
                continue
            if b - a < min_len:
                drop(a, b, "cut too short", f"{(b - a) / fps:.2f} s < {cfg.min_seconds:g} s")
                continue
            parts = int(np.ceil((b - a) / max_len))
            edges = np.linspace(a, b, parts + 1).round().astype(int)
            for c0, c1 in zip(edges[:-1], edges[1:], strict=True):
                plans.append(ClipPlan(int(c0), int(c1), shot, _crop_track(track, int(c0), int(c1), cfg)))
        for a, b in _runs(~covered):
            drop(a + s0, b + s0, "no face")
    return plans, drops


def _crop_track(track: Track, a: int, b: int, cfg: PrepareConfig) -> np.ndarray:
    """``[n, 3]`` crop centre x, y and side (source px): one side per clip, Gaussian-smoothed centre, clamped."""
    ok = track.found[a:b]
    centre = _interp(track.center[a:b], ok)
    side = cfg.crop_scale * float(np.median(track.height[a:b][ok]))
    side = min(side, float(track.width), float(track.frame_height))
    cy = centre[:, 1] + (0.5 - cfg.crop_face_y) * side
    cx = centre[:, 0]
    sigma = cfg.smooth_seconds * cfg.fps
    if len(cx) > 1 and sigma > 0:
        cx = gaussian_filter1d(cx, sigma, mode="nearest")
        cy = gaussian_filter1d(cy, sigma, mode="nearest")
    half = side / 2
    cx = np.clip(cx, half, track.width - half)
    cy = np.clip(cy, half, track.frame_height - half)
    return np.stack([cx, cy, np.full_like(cx, side)], 1).astype(np.float64)


# ------------------------------------------------------------------------------------------------ writing
def calibrated_open(ratio: np.ndarray) -> np.ndarray:
    """Mouth-opening ratio → the corpus's 0 (closed) .. 1 (widest) scale."""
    return np.clip((np.asarray(ratio, np.float64) - RATIO_CLOSED) / (RATIO_WIDE - RATIO_CLOSED), 0, 1)


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    m = min(n, len(audio))
    out[:m] = audio[:m]
    return out


def clip_annotations(track: Track, plan: ClipPlan, talk_mask: np.ndarray, listen_mask: np.ndarray,
                     confidence: np.ndarray, talk: np.ndarray, listen: np.ndarray, resolution: int) -> dict:
    """The per-frame arrays of one clip, in output pixels (the synthetic corpus's keys where they exist)."""
    a, b = plan.start, plan.end
    ok = track.found[a:b]
    cx, cy, side = plan.crop[:, 0], plan.crop[:, 1], plan.crop[:, 2]
    scale = resolution / side
    x0, y0 = cx - side / 2, cy - side / 2

    def to_out(xy: np.ndarray) -> np.ndarray:
        return np.stack([(xy[:, 0] - x0) * scale, (xy[:, 1] - y0) * scale], 1).astype(np.float32)

    mouth_xy = to_out(_interp(track.mouth_xy[a:b], ok))
    box = _interp(track.box[a:b], ok)
    face_box = np.concatenate([to_out(box[:, :2]), to_out(box[:, 2:])], 1)
    ratio = _interp(track.ratio[a:b], ok)
    n = b - a
    state = np.zeros(n, np.int8)
    state[listen_mask[a:b]] = 2
    state[talk_mask[a:b]] = 1
    return {
        "mouth_open": calibrated_open(ratio).astype(np.float32),
        "mouth_ratio": ratio.astype(np.float32),
        "mouth_open_px": (_interp(track.mouth_gap[a:b], ok) * scale).astype(np.float32),
        "mouth_width_px": (_interp(track.mouth_w[a:b], ok) * scale).astype(np.float32),
        "mouth_center_xy": mouth_xy, "face_box": face_box.astype(np.float32),
        "face_found": ok.astype(bool),
        "talk_mask": talk_mask[a:b].copy(), "listen_mask": listen_mask[a:b].copy(), "state": state,
        "speaker_confidence": confidence[a:b].astype(np.float32),
        "nod": np.zeros(n, np.float32),
        "agent_energy": frame_energy(talk, n), "user_energy": frame_energy(listen, n),
        "crop_xy_side": plan.crop.astype(np.float32),
    }


def _crop_frame(frame: np.ndarray, crop: np.ndarray, size: int) -> np.ndarray:
    cx, cy, side = crop
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BICUBIC, box=box))


@dataclass
class FileResult:
    """What one input video produced."""

    clips: list[dict] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    seconds: float = 0.0
    attribution: dict | None = None


def _voices(inp: VideoInput) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(layout, talk, listen)``; listen is None for a mixed track (to be attributed)."""
    try:
        if inp.layout == "wav-pair":
            return "wav-pair", _read_wav16k(inp.talk_wav), _read_wav16k(inp.listen_wav)
        streams = _decode_audio_streams(inp.path)
    except SkipFile:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SkipFile("unreadable", f"audio: {type(exc).__name__}: {exc}") from exc
    if not streams:
        raise SkipFile("no audio", "no audio stream and no <stem>.talk.wav + <stem>.listen.wav")
    if len(streams) >= 2:
        return "two-tracks", streams[0], streams[1]
    return "mixed", streams[0], None


def prepare_file(inp: VideoInput, out: Path, cfg: PrepareConfig, progress: bool = False) -> FileResult:
    """Both passes for one video; raises :class:`SkipFile` for an unusable file."""
    fps_src, _, _, declared = video_rate(inp.path)
    layout, talk, listen = _voices(inp)
    peak = max(float(np.abs(talk).max(initial=0)), float(np.abs(listen).max(initial=0)) if listen is not None else 0)
    if peak < SILENCE_PEAK:
        raise SkipFile("silent audio", f"peak {peak:.1e} < {SILENCE_PEAK:g}")
    override = None
    if inp.override is not None:
        try:
            override = load_override(inp.override, cfg.fps)
        except UserInputError as exc:
            raise SkipFile("bad override", str(exc)) from exc
    track = analyse_video(inp.path, cfg, progress, total=int(declared * cfg.fps) or None)
    n = track.n
    if n == 0:
        raise SkipFile("unreadable", "no decodable frames")
    if declared > 0 and n / cfg.fps < declared - max(1.0, 0.05 * declared):
        raise SkipFile("truncated", f"{n / cfg.fps:.2f} s of video decoded, the container declares {declared:.2f} s")
    result = FileResult(seconds=n / cfg.fps)
    if listen is None:
        att = attribute_speakers(_fit(talk, n * HOP), track.ratio, track.found, override)
        mixed = _fit(talk, n * HOP)
        talk_mask, listen_mask, conf = att.talk_mask, att.listen_mask, att.confidence
        gate_t = np.repeat(talk_mask, HOP).astype(np.float32)
        gate_l = np.repeat(listen_mask & ~talk_mask, HOP).astype(np.float32)
        talk_a, listen_a = mixed * gate_t, mixed * gate_l
        result.attribution = {"segments": att.to_json()}
    else:
        from streamavatar.audio.vad import vad_mask

        talk_a, listen_a = _fit(talk, n * HOP), _fit(listen, n * HOP)
        talk_mask = np.zeros(n, bool)
        listen_mask = np.zeros(n, bool)
        talk_mask[:] = vad_mask(talk_a)[:n]
        listen_mask[:] = vad_mask(listen_a)[:n]
        conf = np.ones(n, np.float32)
        if override:
            for a, b, who in override:
                talk_mask[a:b], listen_mask[a:b] = who == "avatar", who == "partner"
    plans, drops = plan_clips(track, cfg, inp.rel)
    result.drops = drops
    prefix = clip_prefix(inp.rel)
    split = cfg.split if cfg.split != "auto" else (inp.split_dir or split_of(inp.identity))
    if plans:
        frames_of: dict[int, list[np.ndarray]] = {i: [] for i in range(len(plans))}
        owner = np.full(n, -1, np.int64)
        for i, p in enumerate(plans):
            owner[p.start:p.end] = i
        for k, frame in iter_frames(inp.path, cfg.fps):
            if k >= n:
                break
            i = int(owner[k])
            if i >= 0:
                p = plans[i]
                frames_of[i].append(_crop_frame(frame, p.crop[k - p.start], cfg.resolution))
        for i, p in enumerate(plans):
            cid = f"{prefix}-{i:03d}"
            folder = out / "clips" / cid
            folder.mkdir(parents=True, exist_ok=True)
            t_seg = talk_a[p.start * HOP:p.end * HOP]
            l_seg = listen_a[p.start * HOP:p.end * HOP]
            ann = clip_annotations(track, p, talk_mask, listen_mask, conf, t_seg, l_seg, cfg.resolution)
            frames = np.stack(frames_of[i])
            write_mp4(folder / "video.mp4", frames, cfg.fps, np.clip(t_seg + l_seg, -1, 1), SAMPLE_RATE,
                      pix_fmt="yuv444p")
            sf.write(folder / "talk.wav", t_seg, SAMPLE_RATE, subtype="PCM_16")
            sf.write(folder / "listen.wav", l_seg, SAMPLE_RATE, subtype="PCM_16")
            np.savez_compressed(folder / "annotations.npz", **ann)
            meta = {"format": REAL_FORMAT_NAME, "kind": "real", "source": inp.rel, "layout": layout,
                    "source_fps": fps_src, "fps": cfg.fps, "resolution": cfg.resolution, "n_frames": p.end - p.start,
                    "start_s": p.start / cfg.fps, "end_s": p.end / cfg.fps, "shot": p.shot,
                    "identity": inp.identity, "face_found_fraction": float(ann["face_found"].mean()),
                    "crop_side_px": float(p.crop[0, 2]),
                    "attribution": [s for s in (result.attribution or {}).get("segments", [])
                                    if s["end"] > p.start and s["start"] < p.end]}
            (folder / "meta.json").write_text(json.dumps(meta, indent=1))
            result.clips.append({"id": cid, "path": f"clips/{cid}", "identity": inp.identity, "split": split,
                                 "n_frames": p.end - p.start, "talk_frames": int(ann["talk_mask"].sum()),
                                 "listen_frames": int(ann["listen_mask"].sum()), "source": inp.rel,
                                 "layout": layout, "start_s": round(p.start / cfg.fps, 3)})
    return result


# ------------------------------------------------------------------------------------------------ driver
def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)``; None → torchrun's ``RANK``/``WORLD_SIZE`` or ``(0, 1)``."""
    if text is None:
        if "WORLD_SIZE" in os.environ:
            return int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
        return 0, 1
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or int(m[2]) < 1 or int(m[1]) >= int(m[2]):
        raise UserInputError(f"--shard must be I/N with 0 <= I < N, got {text!r}")
    return int(m[1]), int(m[2])


def _shard_path(out: Path, i: int, n: int) -> Path:
    return out / "shards" / f"{i}-of-{n}.json"


def prepare_folder(videos: str | Path, out: str | Path, cfg: PrepareConfig | None = None,
                   shard: tuple[int, int] = (0, 1), progress: bool = True) -> dict:
    """Prepare this shard's share of ``videos`` into ``out``; merge when every shard is done.

    Returns this shard's summary (and ``merged: true`` with the totals once ``index.json`` was written)."""
    cfg = cfg or PrepareConfig()
    cfg.validate()
    videos, out = Path(videos), Path(out)
    if out.resolve() == videos.resolve() or videos.resolve() in out.resolve().parents:
        raise UserInputError("--out must not be --videos or inside it (its clips would be read as input videos)")
    from streamavatar.data.face_track import require_mediapipe

    inputs = find_inputs(videos)
    if not inputs:
        raise UserInputError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) under {videos}")
    require_mediapipe()  # one line naming the extra, before any work
    si, sn = shard
    if (out / "index.json").is_file():
        raise UserInputError(f"{out} already holds a prepared folder (index.json); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    other = [p for p in (out / "shards").glob("*-of-*.json") if not p.name.endswith(f"-of-{sn}.json")]
    if other:
        raise UserInputError(f"{out} has shards of another run ({other[0].name}); use the same N or a new --out")
    mine = inputs[si::sn]
    t0 = time.monotonic()
    clips, drops, skipped, seconds = [], [], [], 0.0
    attributions = {}
    for inp in tqdm(mine, desc=f"prepare {si}/{sn}", unit="video", file=sys.stderr, disable=not progress):
        try:
            r = prepare_file(inp, out, cfg, progress)
        except SkipFile as exc:
            skipped.append(asdict(Drop(inp.rel, exc.reason, detail=exc.detail)))
            print(f"streamavatar.data: skipping {inp.path}: {exc.reason} ({exc.detail})", file=sys.stderr)
            continue
        clips.extend(r.clips)
        drops.extend(asdict(d) for d in r.drops)
        seconds += r.seconds
        if r.attribution is not None:
            attributions[inp.rel] = r.attribution
    manifest = {"shard": [si, sn], "files": [i.rel for i in mine], "clips": clips, "drops": drops,
                "skipped_files": skipped, "input_seconds": round(seconds, 3), "attribution": attributions,
                "wall_seconds": round(time.monotonic() - t0, 2)}
    path = _shard_path(out, si, sn)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(path)
    summary = {"shard": f"{si}/{sn}", "videos": len(mine), "clips": len(clips), "skipped_files": len(skipped),
               "dropped_stretches": len(drops), "input_seconds": round(seconds, 1),
               "wall_seconds": manifest["wall_seconds"]}
    if all(_shard_path(out, i, sn).is_file() for i in range(sn)):
        summary.update(merge_shards(out, sn, cfg, videos))
    return summary


def merge_shards(out: Path, n_shards: int, cfg: PrepareConfig, videos: Path | None = None) -> dict:
    """Merge ``shards/*-of-N.json`` into ``index.json``, split lists and ``prepare_report.json``."""
    clips, drops, skipped, attribution, seconds = [], [], [], {}, 0.0
    for i in range(n_shards):
        m = json.loads(_shard_path(out, i, n_shards).read_text())
        clips += m["clips"]
        drops += m["drops"]
        skipped += m["skipped_files"]
        attribution.update(m["attribution"])
        seconds += m["input_seconds"]
    clips.sort(key=lambda c: c["id"])
    drops.sort(key=lambda d: (d["source"], d["start_s"], d["reason"]))
    skipped.sort(key=lambda d: d["source"])
    splits = {s: sorted({c["identity"] for c in clips if c["split"] == s}) for s in SPLITS}
    kept = sum(c["n_frames"] for c in clips) / cfg.fps
    by_reason = {r: round(sum(d["end_s"] - d["start_s"] for d in drops if d["reason"] == r), 3)
                 for r in DROP_REASONS}
    index = {"format": REAL_FORMAT_NAME, "kind": "real", "fps": cfg.fps, "resolution": cfg.resolution,
             "settings": asdict(cfg), "n_identities": len({c["identity"] for c in clips}),
             "clips": clips, "splits": splits, "seed": "real"}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    for s in SPLITS:
        (out / f"{s}.txt").write_text("".join(f"{c['path']}\n" for c in clips if c["split"] == s))
    report = {"input_seconds": round(seconds, 3), "kept_seconds": round(kept, 3),
              "dropped_seconds_by_reason": by_reason,
              "skipped_files_by_reason": {r: sum(1 for d in skipped if d["reason"] == r) for r in FILE_REASONS},
              "dropped": drops, "skipped_files": skipped, "attribution": attribution}
    (out / "prepare_report.json").write_text(json.dumps(report, indent=1))
    return {"merged": True, "clips_total": len(clips), "kept_seconds": round(kept, 1),
            "dropped_seconds_by_reason": by_reason, "skipped_files_total": len(skipped)}

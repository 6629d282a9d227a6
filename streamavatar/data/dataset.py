"""A torch Dataset over talking-avatar clips: the synthetic corpus *and* plain folders of real talking videos.

Both layouts are first scanned into the same list of :class:`ClipSource` records; from then on one code path
reads every sample:

* synthetic corpus (``index.json`` present): ``video.mp4`` + ``talk.wav`` + ``listen.wav`` + ``annotations.npz``;
* real videos: every ``*.mp4`` (also ``.mov``, ``.mkv``, ``.webm``) under the folder. Talk audio is the file's
  own audio track (or a ``<stem>.wav`` beside it); the user track is ``<stem>.listen.wav`` if present, else
  silence; ``<stem>.masks.npz`` (``talk_mask`` and optionally ``listen_mask``, one entry per 25 fps frame)
  gives the masks, else every frame counts as talking. The identity of a real clip is its folder relative to
  the root (or its stem at the root); real clips are split into train/val/test by a hash of the identity
  unless the root has ``train/``, ``val/``, ``test/`` subfolders.

A sample is a window of ``1 + 4k`` frames (Wan's causal VAE encodes frame 0 alone, then groups of four); frame
0 of the window is the reference frame. Broken files are reported and skipped, at scan time and mid-epoch.
Expensive per-sample features (VAE latents, audio features) are computed by callables you pass and cached on
disk when a cache folder is given.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image
from torch.utils.data import Dataset

from streamavatar.constants import VAE_TEMPORAL_STRIDE, VIDEO_FPS
from streamavatar.data.behaviour import IDLE, LISTENING, TALKING
from streamavatar.data.speech import SAMPLE_RATE
from streamavatar.data.synthetic import FORMAT_NAME, SPLITS
from streamavatar.data.video_io import probe_video, read_audio, read_frames
from streamavatar.errors import UserInputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
#: ``index.json`` format of a folder written by ``streamavatar data prepare`` (real videos, corpus layout)
REAL_FORMAT_NAME = "streamavatar-real-v1"
#: ``index.json`` format of a mixture folder (``streamavatar data mix``: links to clips of several sources)
MIX_FORMAT_NAME = "streamavatar-mixture-v1"
#: Peak amplitude under which a real video's audio counts as silent (unusable for audio-driven training).
SILENCE_PEAK = 1e-4

FeatureFn = Callable[[dict], "torch.Tensor | dict[str, torch.Tensor]"]


@dataclass(frozen=True)
class ClipSource:
    """One video and where its audio tracks, masks and annotations come from."""

    key: str                          # unique, relative to the root
    video: Path
    n_frames: int                     # at the dataset frame rate
    fps: float                        # frame rate of the file
    identity: str
    split: str
    talk_audio: Path | None = None    # a wav; None = the video's own audio track
    listen_audio: Path | None = None  # a wav; None = silence
    masks: Path | None = None         # npz with talk_mask (+ listen_mask, state)
    annotations: Path | None = None   # synthetic ground truth (npz)


@dataclass
class ScanReport:
    """Usable sources and ``(path, reason)`` for every file that was skipped."""

    kind: str
    sources: list[ClipSource] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts for printing."""
        frames = sum(s.n_frames for s in self.sources)
        return {"kind": self.kind, "clips": len(self.sources), "frames": frames,
                "hours": round(frames / VIDEO_FPS / 3600, 4), "identities": len({s.identity for s in self.sources}),
                "broken": len(self.broken)}


def _hash_split(identity: str) -> str:
    h = int(hashlib.sha1(identity.encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 10 else ("val" if h < 20 else "train")


def _scan_synthetic(root: Path, min_frames: int) -> ScanReport:
    report = ScanReport("synthetic")
    try:
        index = json.loads((root / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read {root / 'index.json'}: {exc}") from exc
    if index.get("format") not in (FORMAT_NAME, REAL_FORMAT_NAME, MIX_FORMAT_NAME):
        raise UserInputError(f"{root / 'index.json'}: expected format {FORMAT_NAME!r} or {REAL_FORMAT_NAME!r}, "
                             f"got {index.get('format')!r}")
    real = index["format"] == REAL_FORMAT_NAME
    if index["format"] != FORMAT_NAME:
        report.kind = "prepared" if real else "mixture"
    for e in index["clips"]:
        folder = root / e["path"]
        needed = [folder / n for n in ("video.mp4", "talk.wav", "listen.wav", "annotations.npz")]
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            report.broken.append((str(folder), f"missing {', '.join(missing)}"))
            continue
        if e["n_frames"] < min_frames:
            report.broken.append((str(folder), f"{e['n_frames']} frames < {min_frames}"))
            continue
        report.sources.append(ClipSource(
            key=e["path"], video=needed[0], n_frames=int(e["n_frames"]), fps=float(index["fps"]),
            identity=(f"real-{e['identity']}" if real else e["identity"]) if index["format"] != FORMAT_NAME
            else f"synthetic-{index['seed']}-{e['identity']}",
            split=e["split"],
            talk_audio=needed[1], listen_audio=needed[2], masks=needed[3], annotations=needed[3]))
    return report


def _scan_real(root: Path, min_frames: int, fps: float) -> ScanReport:
    report = ScanReport("videos")
    has_split_dirs = any((root / s).is_dir() for s in SPLITS)
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()):
        rel = path.relative_to(root)
        try:
            info = probe_video(path)
        except Exception as exc:  # noqa: BLE001 - any decoder failure makes the file unusable
            report.broken.append((str(path), f"unreadable video ({type(exc).__name__}: {exc})"))
            continue
        if info.n_frames <= 0 or info.fps <= 0:
            report.broken.append((str(path), "no decodable frames"))
            continue
        n = int(np.floor(info.n_frames * fps / info.fps + 1e-6))
        if n < min_frames:
            report.broken.append((str(path), f"{n} frames < {min_frames}"))
            continue
        wav = path.with_suffix(".wav")
        talk = wav if wav.is_file() else None
        try:
            audio = sf.read(str(talk), dtype="float32", always_2d=True)[0] if talk else read_audio(path)
        except Exception as exc:  # noqa: BLE001
            report.broken.append((str(path), f"unreadable audio ({type(exc).__name__}: {exc})"))
            continue
        if audio.size == 0 or float(np.abs(audio).max()) < SILENCE_PEAK:
            report.broken.append((str(path), "silent audio"))
            continue
        listen = path.with_name(path.stem + ".listen.wav")
        masks = path.with_name(path.stem + ".masks.npz")
        parts = rel.parts
        split = parts[0] if has_split_dirs and parts[0] in SPLITS else None
        ident_parts = parts[1:-1] if split else parts[:-1]
        identity = "/".join(ident_parts) if ident_parts else path.stem
        report.sources.append(ClipSource(
            key=str(rel), video=path, n_frames=n, fps=info.fps, identity=identity,
            split=split or _hash_split(identity), talk_audio=talk,
            listen_audio=listen if listen.is_file() else None, masks=masks if masks.is_file() else None))
    return report


def scan_data_folder(root: str | Path, min_frames: int = 1, fps: float = VIDEO_FPS) -> ScanReport:
    """Find every usable clip under ``root`` (synthetic corpus or folder of videos) and every broken file."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"data folder not found: {root}")
    if (root / "index.json").is_file():
        return _scan_synthetic(root, min_frames)
    return _scan_real(root, min_frames, fps)


def _resize_square(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` (no-op when already that size)."""
    h, w = frames.shape[1:3]
    if h == w == size:
        return frames
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, f in enumerate(frames):
        img = Image.fromarray(f[y0:y0 + s, x0:x0 + s])
        out[i] = np.asarray(img.resize((size, size), Image.BICUBIC))
    return out


class AvatarClipDataset(Dataset):
    """Windows of ``frames`` (= 1 + 4k) video frames with aligned talk/listen audio, masks and ground truth.

    Items are a fixed grid of windows (``stride`` frames apart, default the window length) over every clip of
    the split; ``random_offset`` shifts each window by a seeded random amount per epoch (``set_epoch``).

    Each item is a dict: ``frames`` uint8 ``[F, H, W, 3]`` (``frames[0]`` is the reference frame),
    ``talk_audio`` / ``listen_audio`` float32 ``[(F + 2 * audio_context_frames) * 640]`` at 16 kHz,
    ``talk_mask`` / ``listen_mask`` bool ``[F]``, ``state`` int64 ``[F]`` (0 idle, 1 talking, 2 listening),
    ``annotations`` (synthetic only: every per-frame array sliced to the window), ``key``, ``start``,
    ``identity``, and one entry per feature callable.

    ``features`` maps a name to a callable taking the item dict and returning a tensor (or a dict of
    tensors), e.g. a VAE encoder for latents or an audio encoder. With ``cache_dir`` the result is stored in
    ``cache_dir/<name>/`` and read back next time (the name should identify the model that made it).
    """

    def __init__(self, root: str | Path, split: str | None = "train", frames: int = 1 + 4 * 4,
                 resolution: int | None = None, fps: int = VIDEO_FPS, stride: int | None = None,
                 random_offset: bool = False, seed: int = 0, audio_context_frames: int = 0,
                 features: dict[str, FeatureFn] | None = None, cache_dir: str | Path | None = None,
                 verbose: bool = True) -> None:
        if frames < 1 or (frames - 1) % VAE_TEMPORAL_STRIDE:
            raise UserInputError(f"frames must be 1 + {VAE_TEMPORAL_STRIDE}k (1, 5, 9, 13, 17, ...), got {frames}")
        if split is not None and split not in SPLITS:
            raise UserInputError(f"split must be one of {SPLITS} or None, got {split!r}")
        if resolution is not None and resolution <= 0:
            raise UserInputError(f"resolution must be positive, got {resolution}")
        if audio_context_frames < 0:
            raise UserInputError(f"audio_context_frames must be >= 0, got {audio_context_frames}")
        self.root = Path(root)
        self.frames = frames
        self.resolution = resolution
        self.fps = fps
        self.stride = stride or frames
        self.random_offset = random_offset
        self.seed = seed
        self.epoch = 0
        self.audio_context_frames = audio_context_frames
        self.features = dict(features or {})
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.verbose = verbose
        report = scan_data_folder(self.root, min_frames=frames, fps=fps)
        self.kind = report.kind
        self.broken: list[tuple[str, str]] = list(report.broken)
        for path, why in report.broken:
            self._warn(f"skipping {path}: {why}")
        self.sources = [s for s in report.sources if split is None or s.split == split]
        if not self.sources:
            raise UserInputError(f"no usable clips of at least {frames} frames in {self.root}"
                                 + (f" (split {split!r})" if split else "")
                                 + (f"; {len(report.broken)} broken file(s), first: {report.broken[0][0]}: "
                                    f"{report.broken[0][1]}" if report.broken else ""))
        self.has_annotations = all(s.annotations is not None for s in self.sources)
        self.items: list[tuple[int, int]] = []
        for si, s in enumerate(self.sources):
            for start in range(0, s.n_frames - frames + 1, self.stride):
                self.items.append((si, start))
        self._bad_sources: set[int] = set()
        self._audio_cache: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()

    # ------------------------------------------------------------------------------------------ bookkeeping
    def _warn(self, msg: str) -> None:
        if self.verbose:
            print(f"streamavatar.data: {msg}", file=sys.stderr)

    def set_epoch(self, epoch: int) -> None:
        """Reseeds the random window offsets (only matters with ``random_offset``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def _start(self, index: int) -> int:
        si, start = self.items[index]
        if not self.random_offset:
            return start
        room = self.sources[si].n_frames - self.frames - start
        shift = int(np.random.default_rng([self.seed, self.epoch, index]).integers(0, min(self.stride, room + 1)))
        return start + shift

    # ------------------------------------------------------------------------------------------ reading
    def _track(self, si: int, which: str) -> np.ndarray:
        """Whole audio track (``talk`` / ``listen``) of a source at 16 kHz, with a small LRU cache."""
        key = (si, which)
        if key in self._audio_cache:
            self._audio_cache.move_to_end(key)
            return self._audio_cache[key]
        s = self.sources[si]
        path = s.talk_audio if which == "talk" else s.listen_audio
        if path is None:
            audio = read_audio(s.video, SAMPLE_RATE) if which == "talk" else np.zeros(0, np.float32)
        else:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
            audio = audio.mean(axis=1)
            if rate != SAMPLE_RATE:
                from scipy.signal import resample_poly

                g = np.gcd(int(rate), SAMPLE_RATE)
                audio = resample_poly(audio, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
        self._audio_cache[key] = audio
        if len(self._audio_cache) > 16:
            self._audio_cache.popitem(last=False)
        return audio

    def _audio_window(self, si: int, which: str, start: int) -> np.ndarray:
        hop = SAMPLE_RATE // self.fps
        ctx = self.audio_context_frames
        a, b = (start - ctx) * hop, (start + self.frames + ctx) * hop
        track = self._track(si, which)
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, 0), min(b, len(track))
        if hi > lo:
            out[lo - a:hi - a] = track[lo:hi]
        return out

    def _video_window(self, s: ClipSource, start: int) -> np.ndarray:
        if abs(s.fps - self.fps) < 1e-3:
            frames = read_frames(s.video, start, self.frames)
        else:  # nearest source frame for each target frame
            src = np.round((start + np.arange(self.frames)) * s.fps / self.fps).astype(int)
            raw = read_frames(s.video, int(src[0]), int(src[-1] - src[0] + 1))
            frames = raw[np.clip(src - src[0], 0, len(raw) - 1)]
        if len(frames) < self.frames:
            raise ValueError(f"decoded {len(frames)} of {self.frames} frames from {start}")
        return _resize_square(frames, self.resolution) if self.resolution else frames

    def _masks(self, s: ClipSource, start: int) -> dict[str, np.ndarray]:
        sl = slice(start, start + self.frames)
        if s.masks is None:
            talk = np.ones(self.frames, bool)
            listen = np.zeros(self.frames, bool)
            state = None
        else:
            with np.load(s.masks) as z:
                if "talk_mask" not in z:
                    raise ValueError(f"{s.masks.name} has no talk_mask")
                talk = z["talk_mask"][sl].astype(bool)
                listen = z["listen_mask"][sl].astype(bool) if "listen_mask" in z else np.zeros_like(talk)
                state = z["state"][sl].astype(np.int64) if "state" in z else None
            if len(talk) != self.frames:
                raise ValueError(f"{s.masks.name} covers {start + len(talk)} frames, need {start + self.frames}")
        if state is None:
            state = np.full(self.frames, IDLE, np.int64)
            state[listen] = LISTENING
            state[talk] = TALKING
        return {"talk_mask": talk, "listen_mask": listen, "state": state}

    def load(self, index: int) -> dict:
        """Item ``index`` without skipping: raises on a broken file."""
        si, _ = self.items[index]
        s = self.sources[si]
        start = self._start(index)
        item: dict = {"key": s.key, "start": start, "identity": s.identity,
                      "frames": torch.from_numpy(np.ascontiguousarray(self._video_window(s, start)))}
        for which in ("talk", "listen"):
            item[f"{which}_audio"] = torch.from_numpy(self._audio_window(si, which, start))
        item.update({k: torch.from_numpy(v) for k, v in self._masks(s, start).items()})
        if self.has_annotations:
            with np.load(s.annotations) as z:
                item["annotations"] = {k: torch.from_numpy(np.ascontiguousarray(z[k][start:start + self.frames]))
                                       for k in z.files if k not in ("state", "talk_mask", "listen_mask")}
        for name, fn in self.features.items():
            item[name] = self._feature(name, fn, item)
        return item

    def _feature(self, name: str, fn: FeatureFn, item: dict):
        if self.cache_dir is None:
            return fn(item)
        from safetensors.torch import load_file, save_file

        safe = item["key"].replace("/", "__").replace("\\", "__")
        path = self.cache_dir / name / f"{safe}__{item['start']}_{self.frames}.safetensors"
        if path.is_file():
            loaded = load_file(str(path))
            return loaded["value"] if list(loaded) == ["value"] else loaded
        value = fn(item)
        tensors = {"value": value} if isinstance(value, torch.Tensor) else dict(value)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        tmp.replace(path)
        return value

    def __getitem__(self, index: int) -> dict:
        """Item ``index``; if its file turns out broken, it is reported, skipped and the next item returned."""
        n = len(self.items)
        for k in range(n):
            i = (index + k) % n
            si = self.items[i][0]
            if si in self._bad_sources:
                continue
            try:
                return self.load(i)
            except Exception as exc:  # noqa: BLE001 - a broken file must not end an epoch
                src = self.sources[si]
                self._bad_sources.add(si)
                self.broken.append((str(src.video), f"{type(exc).__name__}: {exc}"))
                self._warn(f"skipping broken clip {src.video}: {type(exc).__name__}: {exc}")
        raise RuntimeError(f"every clip in {self.root} failed to load; see dataset.broken")

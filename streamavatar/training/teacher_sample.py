"""Load a trained teacher run and sample videos from it (reference image + talk/listen audio → mp4).

The teacher is bidirectional over windows of the length it was trained on (default 9 latent frames = 1.44 s);
longer audio is generated window after window, each window anchored on the same reference. Seams between
windows are expected: smooth endless streams are the student's job.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from streamavatar import constants as K
from streamavatar.atomic import atomic_output
from streamavatar.diffusion.teacher_sampler import sample_teacher
from streamavatar.errors import UserInputError
from streamavatar.models.avatar_model import AvatarModel, find_model_files

#: Frame side of every run written before runs recorded their resolution (the 128x128 corpora of wave 1).
LEGACY_RESOLUTION = 128


def load_teacher(run: str | Path, dtype: torch.dtype = torch.float32):
    """(model, projector, run config dict) of a teacher run folder (its exported EMA weights)."""
    files = find_model_files(run)
    if files.kind != "teacher":
        raise UserInputError(f"{run} is not a teacher run (expected teacher.json and teacher.safetensors)")
    bundle = AvatarModel.from_files(files, dtype)
    return bundle.dit, bundle.projector, bundle.to_info()


def run_resolution(info: dict) -> int:
    """The frame side a teacher or student run was trained at: its ``resolution`` (written since the 256x256
    runs), else the ``resolution`` of its training corpus's ``index.json``, else 128 (every earlier run)."""
    if info.get("resolution"):
        return int(info["resolution"])
    data = info.get("train", {}).get("data")
    index = Path(data) / "index.json" if data else None
    if index is not None and index.is_file():
        try:
            return int(json.loads(index.read_text())["resolution"])
        except (ValueError, KeyError, TypeError):
            pass
    return LEGACY_RESOLUTION


def read_reference_image(path: str | Path, size: int) -> torch.Tensor:
    """An image file as a ``[1, 3, 1, size, size]`` tensor in [-1, 1] (centre-cropped to a square)."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"reference image {p} does not exist")
    try:
        img = Image.open(p)
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the same thing to the user
        raise UserInputError(f"cannot read image {p}: {exc}") from None
    img = img.convert("RGB")
    s = min(img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    img = img.crop((left, top, left + s, top + s)).resize((size, size), Image.LANCZOS)
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / K.PIXEL_HALF_RANGE - 1)
    return arr.permute(2, 0, 1)[None, :, None]


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"audio file {p} does not exist")
    try:
        pcm, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise UserInputError(f"cannot read audio {p}: {exc}") from None
    return pcm.mean(axis=1), sr


@torch.no_grad()
def sample_teacher_video(run: str | Path, image: str | Path, talk_audio: str | Path,
                         listen_audio: str | Path | None, out: str | Path, *, seconds: float | None = None,
                         steps: int = 40, talk_scale: float = 1.0, listen_scale: float = 1.0, seed: int = 0,
                         resolution: int | None = None) -> Path:
    """Generate an mp4 (video + the talk audio) from a teacher run, at ``resolution`` (default: the run's,
    :func:`run_resolution`)."""
    from streamavatar.audio import AudioConfig, AudioFrontend
    from streamavatar.data.video_io import write_mp4
    from streamavatar.models.vae import load_vae

    model, projector, info = load_teacher(run)
    train = info["train"]
    resolution = resolution or run_resolution(info)
    vae = load_vae(train["vae"])
    frontend = AudioFrontend(AudioConfig(backend=train["audio_backend"]))
    talk, sr = read_wav(talk_audio)
    listen, lsr = read_wav(listen_audio) if listen_audio else (np.zeros(1, np.float32), sr)
    seconds = seconds if seconds is not None else len(talk) / sr
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserInputError(f"seconds must be positive, got {seconds}")
    window = int(train["frames"])
    k = max(window, math.ceil(seconds * K.VIDEO_FPS / K.VAE_TEMPORAL_STRIDE / window) * window)
    talk_w = frontend.encode(talk, sr, num_latent_frames=k).windows[None].float()
    listen_w = frontend.encode(listen, lsr, num_latent_frames=k).windows[None].float()
    talk_tok, listen_tok = projector(talk_w, listen_w)
    null_t, null_l = projector(torch.zeros_like(talk_w[:, :window]), torch.zeros_like(listen_w[:, :window]))
    ref = vae.encode(read_reference_image(image, resolution).to(vae.dtype)).float()
    g = torch.Generator().manual_seed(seed)
    parts = [ref]
    for w0 in range(0, k, window):
        parts.append(sample_teacher(model, ref, window, talk_audio=talk_tok[:, w0:w0 + window],
                                    listen_audio=listen_tok[:, w0:w0 + window], steps=steps, shift=3.0,
                                    talk_scale=talk_scale, listen_scale=listen_scale, generator=g,
                                    null_talk=null_t, null_listen=null_l))
    video = vae.decode(torch.cat(parts, dim=2).to(vae.dtype)).float()
    frames = ((video[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * K.PIXEL_HALF_RANGE).round().byte().numpy()
    n = min(len(frames), 1 + round(seconds * K.VIDEO_FPS))
    audio16 = frontend_resample(talk, sr)[: n * 640]
    out = Path(out)
    with atomic_output(out) as tmp:  # an interrupted or failed write leaves an older file as it was
        write_mp4(tmp, frames[:n], K.VIDEO_FPS, audio=audio16, sample_rate=16000)
    return out


def frontend_resample(pcm: np.ndarray, sr: int) -> np.ndarray:
    """Mono float audio resampled to 16 kHz (the rate the mp4's AAC track uses)."""
    from streamavatar.audio.io import load_pcm

    return load_pcm(pcm, sr, "error")

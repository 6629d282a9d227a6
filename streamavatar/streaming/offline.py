"""Offline generation: image + audio files → mp4 (H.264 + AAC), driving a session exactly as a live stream.

Audio files are read block by block (never whole: an hour-long file costs no memory), resampled to 16 kHz with
the streaming resampler and pushed so that each chunk's audio plus its look-ahead is queued before the chunk
starts. One chunk is kept submitted ahead, so the DiT works on chunk k+1 while chunk k decodes.

The mp4's audio is the agent audio the frames were generated from (``mix_listen``: agent + user voice), the
same number of samples as frames × 640: video and audio durations are equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from streamavatar import constants as K
from streamavatar.audio.io import ENCODER_SAMPLE_RATE, StreamingResampler, check_sample_rate, to_mono_float32
from streamavatar.errors import UserInputError


def check_output_path(out: str | Path, suffix: str = ".mp4") -> Path:
    """Refuse an output path that cannot be written, before any work is done."""
    p = Path(out).expanduser()
    if p.suffix.lower() != suffix:
        raise UserInputError(f"output {p} must end in {suffix}")
    if p.is_dir():
        raise UserInputError(f"output {p} is a directory; expected a file name ending in {suffix}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserInputError(f"cannot write {p}: folder {parent} does not exist")
    existed = p.exists()
    try:  # a real open: permission bits alone say nothing for root or read-only mounts
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise UserInputError(f"cannot write {p}: {exc.strerror or exc}") from None
    if not existed:
        p.unlink()
    return p


class AudioFileStream:
    """A WAV/FLAC/OGG file read in blocks → validated mono float32 at 16 kHz."""

    BLOCK_S = 0.5

    def __init__(self, path: str | Path, what: str) -> None:
        p = Path(path).expanduser()
        self.path, self.what = p, what
        if not p.exists():
            raise UserInputError(f"{what} {p} does not exist")
        if not p.is_file():
            raise UserInputError(f"{what} {p} is not a file")
        try:
            self._file = sf.SoundFile(str(p))
        except Exception as exc:  # noqa: BLE001 - libsndfile's reasons are all "cannot read this file"
            reason = str(exc).split("\n")[0]
            raise UserInputError(f"cannot read {what} {p}: {reason}") from None
        if self._file.frames == 0:
            raise UserInputError(f"{what} {p} is empty: expected at least one audio sample")
        try:
            check_sample_rate(self._file.samplerate)
        except UserInputError as exc:
            raise UserInputError(f"{what} {p}: {exc}") from None
        self.seconds = self._file.frames / self._file.samplerate
        self._resampler = StreamingResampler(self._file.samplerate)
        self.done = False

    def read(self) -> np.ndarray:
        """The next block at 16 kHz (empty once the file is exhausted and the resampler flushed)."""
        if self.done:
            return np.zeros(0, np.float32)
        block = self._file.read(max(1, int(self.BLOCK_S * self._file.samplerate)), dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            self.done = True
            self._file.close()
            return self._resampler.flush()
        try:
            mono = to_mono_float32(block)
        except UserInputError as exc:
            raise UserInputError(f"{self.what} {self.path}: {exc}") from None
        return self._resampler.push(mono)


@dataclass
class GenerateResult:
    out: Path
    frames: int
    seconds: float
    metrics: dict
    model: str


def _feed(stream: AudioFileStream | None, push, queued: int, need: int) -> int:
    while stream is not None and not stream.done and queued < need:
        x = stream.read()
        if x.size:
            push(x, ENCODER_SAMPLE_RATE)
            queued += x.size
    return queued


def generate_video(pipe, image, out: str | Path, *, talk_audio: str | Path | None = None,
                   listen_audio: str | Path | None = None, seconds: float | None = None, seed: int = 0,
                   mix_listen: bool = False, progress: bool = True) -> GenerateResult:
    """Generate an mp4 from a reference image and talk and/or listen audio files (see the module docstring)."""
    from streamavatar.data.video_io import write_mp4

    out = check_output_path(out)
    if talk_audio is None and listen_audio is None:
        raise UserInputError("give --talk-audio and/or --listen-audio")
    talk = AudioFileStream(talk_audio, "talk audio") if talk_audio is not None else None
    listen = AudioFileStream(listen_audio, "listen audio") if listen_audio is not None else None
    if seconds is None:
        seconds = max(s.seconds for s in (talk, listen) if s is not None)
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserInputError(f"seconds must be a positive number, got {seconds}")
    n_chunks = max(1, math.ceil(round(seconds / K.CHUNK_SECONDS, 6)))
    session = pipe.session(image, seed=seed, listen_backlog_s=None)
    g = pipe.frontend.geometry
    spf = pipe.sample_rate // K.VIDEO_FPS
    audio = np.zeros(n_chunks * K.CHUNK_VIDEO_FRAMES * spf, np.float32)
    fed = {"talk": 0, "listen": 0}

    def feed(k: int) -> None:
        need = (k + 1) * g.chunk_samples + g.lookahead
        fed["talk"] = _feed(talk, session.push_talk_audio, fed["talk"], need)
        fed["listen"] = _feed(listen, session.push_listen_audio, fed["listen"], need)

    def frames():
        # disable=None: a bar on a terminal only (cleared when done or on an error, so an error stays one line)
        with tqdm(total=n_chunks, desc="generate", unit="chunk", disable=None if progress else True,
                  leave=False) as bar:
            for k, chunk in enumerate(session.run(n_chunks, feed)):
                a = chunk.audio + chunk.listen_audio if mix_listen else chunk.audio
                audio[k * chunk.audio.size:(k + 1) * chunk.audio.size] = np.clip(a, -1.0, 1.0)
                bar.update(1)
                bar.set_postfix(rtf=f"{session.metrics.rtf:.2f}", state=chunk.state)
                yield from chunk.frames

    try:
        n = write_mp4(out, frames(), K.VIDEO_FPS, audio=audio, sample_rate=pipe.sample_rate)
    except BaseException as exc:
        out.unlink(missing_ok=True)  # no half-written video left behind
        if isinstance(exc, OSError) and not isinstance(exc, UserInputError):
            raise UserInputError(f"cannot write {out}: {exc}") from None
        raise
    finally:
        session.close()
    return GenerateResult(out, n, n / K.VIDEO_FPS, session.metrics.summary(), pipe.name)

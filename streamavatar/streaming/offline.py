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
from streamavatar.atomic import atomic_output, temp_path_for
from streamavatar.audio.io import (
    ENCODER_SAMPLE_RATE,
    MAX_CHANNELS,
    MAX_FLOAT_PEAK,
    StreamingResampler,
    check_sample_rate,
)
from streamavatar.errors import UserInputError

#: Longest video ``generate``/``demo`` make (the mp4's audio track is held in memory until the end: 230 MB).
MAX_SECONDS = 3600.0


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
    probe = temp_path_for(p)  # the mp4 is written beside the target and renamed over it: the folder must take it
    try:  # a real create: permission bits alone say nothing for root or read-only mounts
        with open(probe, "xb"):
            pass
    except OSError as exc:
        raise UserInputError(f"cannot write {p}: {exc.strerror or exc}") from None
    finally:
        probe.unlink(missing_ok=True)
    return p


class AudioFileStream:
    """A WAV/FLAC/OGG file read in blocks → validated mono float32 at 16 kHz.

    The header is checked when the stream is made (exists, readable, not empty, rate, channels);
    :meth:`check_samples` reads the whole file once more to find NaN/inf or out-of-range samples before any
    work starts; errors name the absolute sample index and time in the file."""

    BLOCK_S = 0.5

    def __init__(self, path: str | Path, what: str) -> None:
        p = Path(path).expanduser()
        self.path, self.what = p, what
        if not p.exists():
            raise UserInputError(f"{what} {p} does not exist")
        if not p.is_file():
            raise UserInputError(f"{what} {p} is not a file")
        self._file = self._open()
        if self._file.frames == 0:
            raise UserInputError(f"{what} {p} is empty: expected at least one audio sample")
        try:
            check_sample_rate(self._file.samplerate)
        except UserInputError as exc:
            raise UserInputError(f"{what} {p}: {exc}") from None
        if self._file.channels > MAX_CHANNELS:
            raise UserInputError(f"{what} {p} has {self._file.channels} channels; expected at most {MAX_CHANNELS}: "
                                 "mix it down first (e.g. ffmpeg -i IN -ac 1 OUT.wav)")
        self.samplerate = self._file.samplerate
        self.seconds = self._file.frames / self._file.samplerate
        self._resampler = StreamingResampler(self._file.samplerate)
        self._position = 0  # file samples read so far
        self.done = False

    def _open(self) -> sf.SoundFile:
        try:
            return sf.SoundFile(str(self.path))
        except Exception as exc:  # noqa: BLE001 - libsndfile's reasons are all "cannot read this file"
            reason = str(exc).split("\n")[0]
            raise UserInputError(f"cannot read {self.what} {self.path}: {reason}") from None

    def _read_block(self, f: sf.SoundFile) -> np.ndarray:
        try:
            return f.read(max(1, int(self.BLOCK_S * f.samplerate)), dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001 - a file that breaks off half-way
            reason = str(exc).split("\n")[0] or type(exc).__name__
            raise UserInputError(f"cannot read {self.what} {self.path}: {reason}") from None

    def _check_block(self, block: np.ndarray, start: int) -> None:
        """Refuse NaN/inf and float samples far outside [-1, 1], naming the first bad sample of the file."""
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            i = start + int(np.flatnonzero(~finite)[0])
            raise UserInputError(f"{self.what} {self.path} has NaN/inf samples (the first at sample {i}, "
                                 f"{i / self.samplerate:.3f} s); expected finite samples: repair or re-export the file")
        loud = (np.abs(block) > MAX_FLOAT_PEAK).any(axis=1)
        if loud.any():
            i = start + int(np.flatnonzero(loud)[0])
            raise UserInputError(f"{self.what} {self.path} has float samples far outside [-1, 1] (the first at "
                                 f"sample {i}, {i / self.samplerate:.3f} s); expected a normalised file: "
                                 "re-export it as 16-bit PCM or normalise it")

    def check_samples(self) -> None:
        """Read the whole file once (block by block, no memory growth) and validate every sample."""
        with self._open() as f:
            start = 0
            while True:
                block = self._read_block(f)
                if block.shape[0] == 0:
                    return
                self._check_block(block, start)
                start += block.shape[0]

    def read(self) -> np.ndarray:
        """The next block at 16 kHz (empty once the file is exhausted and the resampler flushed)."""
        if self.done:
            return np.zeros(0, np.float32)
        block = self._read_block(self._file)
        if block.shape[0] == 0:
            self.done = True
            self._file.close()
            return self._resampler.flush()
        self._check_block(block, self._position)
        self._position += block.shape[0]
        return self._resampler.push(block.mean(axis=1, dtype=np.float32))

    def close(self) -> None:
        """Release the file."""
        self._file.close()


@dataclass(frozen=True)
class GenerateInputs:
    """Validated inputs of :func:`generate_video`: the audio streams and the exact length in frames."""

    talk: AudioFileStream | None
    listen: AudioFileStream | None
    frames: int

    @property
    def seconds(self) -> float:
        """The video's length (frames / 25)."""
        return self.frames / K.VIDEO_FPS


def frames_for_seconds(seconds: float) -> int:
    """Frames of a ``seconds``-long video: the nearest whole frame, halves up (at least one)."""
    return max(1, math.floor(seconds * K.VIDEO_FPS + 0.5 + 1e-9))


def check_inputs(talk_audio: str | Path | None, listen_audio: str | Path | None,
                 seconds: float | None = None) -> GenerateInputs:
    """Validate the audio files completely and the length (at most :data:`MAX_SECONDS`), before any model work.

    Without ``seconds`` the video is as long as the longer audio (rounded up to a whole frame)."""
    if talk_audio is None and listen_audio is None:
        raise UserInputError("give --talk-audio and/or --listen-audio")
    streams = [AudioFileStream(a, what) if a is not None else None
               for a, what in ((talk_audio, "talk audio"), (listen_audio, "listen audio"))]
    if seconds is None:
        longest = max(s.seconds for s in streams if s is not None)
        if longest > MAX_SECONDS:
            raise UserInputError(f"the audio is {longest:.0f} s long; a video is at most {MAX_SECONDS:.0f} s: pass "
                                 f"--seconds {MAX_SECONDS:.0f} (or less) or cut the audio")
        frames = max(1, math.ceil(longest * K.VIDEO_FPS - 1e-9))
    else:
        if not isinstance(seconds, int | float) or not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
            raise UserInputError(f"--seconds must be a number of seconds in (0, {MAX_SECONDS:.0f}], got {seconds}")
        frames = frames_for_seconds(seconds)
    for s in streams:
        if s is not None:
            s.check_samples()
    return GenerateInputs(streams[0], streams[1], frames)


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
                   mix_listen: bool = False, progress: bool = True,
                   inputs: GenerateInputs | None = None) -> GenerateResult:
    """Generate an mp4 from a reference image and talk and/or listen audio files (see the module docstring).

    The video has exactly ``round(seconds × 25)`` frames (the last chunk is trimmed); without ``seconds`` it is
    as long as the longer audio. It is written to a temporary file beside ``out`` and renamed into place only
    when complete: a failure, Ctrl-C or SIGTERM leaves an existing ``out`` untouched and no partial file.
    ``inputs`` (from :func:`check_inputs`) skips validating the audio a second time."""
    from streamavatar.data.video_io import write_mp4

    out = check_output_path(out)
    if inputs is None:
        inputs = check_inputs(talk_audio, listen_audio, seconds)
    talk, listen, n_frames = inputs.talk, inputs.listen, inputs.frames
    n_chunks = math.ceil(n_frames / K.CHUNK_VIDEO_FRAMES)
    session = pipe.session(image, seed=seed, listen_backlog_s=None)
    g = pipe.frontend.geometry
    spf = pipe.sample_rate // K.VIDEO_FPS
    audio = np.zeros(n_frames * spf, np.float32)
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
                keep = min(K.CHUNK_VIDEO_FRAMES, n_frames - k * K.CHUNK_VIDEO_FRAMES)  # the last chunk is trimmed
                a = chunk.audio + chunk.listen_audio if mix_listen else chunk.audio
                start = k * K.CHUNK_VIDEO_FRAMES * spf
                audio[start:start + keep * spf] = np.clip(a[:keep * spf], -1.0, 1.0)
                bar.update(1)
                bar.set_postfix(rtf=f"{session.metrics.rtf:.2f}", state=chunk.state)
                yield from chunk.frames[:keep]

    try:
        with atomic_output(out) as tmp:
            n = write_mp4(tmp, frames(), K.VIDEO_FPS, audio=audio, sample_rate=pipe.sample_rate)
    except OSError as exc:
        if isinstance(exc, UserInputError):
            raise
        raise UserInputError(f"cannot write {out}: {exc}") from None
    finally:
        session.close()
        for s in (talk, listen):
            if s is not None:
                s.close()
    return GenerateResult(out, n, n / K.VIDEO_FPS, session.metrics.summary(), pipe.name)

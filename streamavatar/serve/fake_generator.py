"""A deterministic FAKE avatar generator: a test double with the real session API, not a model.

It exists so the whole server (sessions, media clock, WebRTC, interrupt, events) can be built and tested on a
CPU without a model (the real one is :mod:`streamavatar.streaming`). Select it with ``streamavatar serve --model fake``.
Every frame is the reference image tinted by state, with a bar whose height follows the agent audio's
loudness, and three rows of code blocks (see :mod:`streamavatar.serve.frame_code`): the frame index, the
first agent-audio sample the frame was made from (as ``1 + PCM16 value``; 0 = no agent audio) and a hash of
the reference image. The chunk's audio is exactly the agent audio that was consumed, so a test that feeds
agent audio carrying its own sample index (a ramp) can check that the audio sent with a frame is the audio
the frame was made from. Its audio queues are the engine's (:class:`~streamavatar.audio.queue.AudioQueue`, PCM
read by :func:`~streamavatar.audio.io.to_mono_float32`), so it accepts, bounds and positions audio the same way.
"""

from __future__ import annotations

import hashlib
import time
from math import gcd

import numpy as np
from PIL import Image
from scipy.signal import resample_poly

from streamavatar import constants as K
from streamavatar.audio.io import to_mono_float32
from streamavatar.audio.queue import AudioQueue
from streamavatar.serve import frame_code
from streamavatar.serve.generator import GeneratedChunk, samples_per_frame

_STATE_TINT = {"talking": (40, 160, 60), "listening": (40, 90, 200), "idle": (110, 110, 110)}


def reference_hash(image: np.ndarray) -> int:
    """32-bit content hash of a reference image (what the fake writes into code row 2)."""
    return int.from_bytes(hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()[:4], "big")


def _to_rate(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    pcm = to_mono_float32(pcm)
    if rate == target:
        return pcm
    g = gcd(rate, target)
    return resample_poly(pcm, target // g, rate // g).astype(np.float32)


class FakeAvatarSession:
    """One fake stream. Steps run on one thread; audio may be pushed from another (as with the engine)."""

    def __init__(self, pipeline: FakeAvatarPipeline, reference_image: np.ndarray,
                 listen_backlog_s: float | None = 2 * K.CHUNK_SECONDS) -> None:
        self._pipe = pipeline
        h, w = pipeline.frame_size
        img = Image.fromarray(np.ascontiguousarray(reference_image, dtype=np.uint8)).convert("RGB")
        self._background = np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.uint8)
        self._ref_hash = reference_hash(reference_image)
        self._talk = AudioQueue()
        cap = None if listen_backlog_s is None else max(1, round(listen_backlog_s * pipeline.sample_rate))
        self._listen = AudioQueue(cap)
        self._peeked = 0
        self._chunk_index = 0
        #: Agent samples each step read: its chunk's plus the look-ahead it peeked (to check ``talk_until``).
        self.talk_seen_at_step: list[int] = []

    def push_talk_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Queue agent voice."""
        self._talk.push(_to_rate(pcm, sample_rate, self._pipe.sample_rate))

    def push_listen_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Queue user voice; only the newest ``listen_backlog_s`` are kept (it is heard live, not replayed)."""
        self._listen.push(_to_rate(pcm, sample_rate, self._pipe.sample_rate))

    def interrupt(self) -> None:
        """Drop queued agent audio."""
        self._talk.clear()
        self._peeked = 0

    def skip_talk_audio(self, n: int, until: int | None = None) -> int:
        """Drop up to ``n`` queued agent samples after the last step's look-ahead (see the engine's session)."""
        return self._talk.skip(n, keep=self._peeked, until=until)

    def clear_listen_audio(self) -> None:
        """Drop queued user audio."""
        self._listen.clear()

    @property
    def talk_index(self) -> int:
        return self._talk.start

    @property
    def talk_end(self) -> int:
        return self._talk.end

    @property
    def queued_talk_samples(self) -> int:
        return len(self._talk)

    @property
    def lookahead_samples(self) -> int:
        return self._pipe.lookahead_samples

    @property
    def listen_samples_dropped(self) -> int:
        return self._listen.dropped

    def step(self, talk_until: int | None = None) -> GeneratedChunk:
        """Make the next 12 frames from up to 0.48 s of queued agent audio (none at or past ``talk_until``) and
        the queued user audio."""
        if self._pipe.seconds_per_step:
            time.sleep(self._pipe.seconds_per_step)  # stands in for model compute in fall-behind tests
        sr = self._pipe.sample_rate
        spf = samples_per_frame(sr)
        n = K.CHUNK_VIDEO_FRAMES * spf
        talk = self._talk.take(n, talk_until)
        self._peeked = self._talk.peek(self._pipe.lookahead_samples, talk_until).size
        self.talk_seen_at_step.append(talk.size + self._peeked)
        listen = self._listen.take(n)
        audio = np.zeros(n, np.float32)
        audio[:talk.size] = talk
        listen_rms = float(np.sqrt(np.mean(listen ** 2))) if listen.size else 0.0
        if talk.size:
            state = "talking"
        elif listen_rms > self._pipe.listen_threshold:
            state = "listening"
        else:
            state = "idle"
        frames = np.empty((K.CHUNK_VIDEO_FRAMES, *self._pipe.frame_size, 3), np.uint8)
        tint = np.array(_STATE_TINT[state], np.float32)
        base = (0.6 * self._background + 0.4 * tint).astype(np.uint8)
        h, w = self._pipe.frame_size
        for i in range(K.CHUNK_VIDEO_FRAMES):
            f = frames[i]
            f[:] = base
            seg = audio[i * spf:(i + 1) * spf]
            bar = int(min(1.0, 4.0 * float(np.sqrt(np.mean(seg ** 2)))) * (h // 3))
            if bar:
                f[h - bar:, w // 3:2 * w // 3] = (250, 240, 60)
            talk_in_frame = min(max(talk.size - i * spf, 0), spf)
            frame_code.write_code(f, frame_code.ROW_FRAME, self._chunk_index * K.CHUNK_VIDEO_FRAMES + i)
            first_talk = 1 + (int(np.round(seg[0] * 32768.0)) & 0xFFFF) if talk_in_frame else 0
            frame_code.write_code(f, frame_code.ROW_TALK_SAMPLE, first_talk)
            frame_code.write_code(f, frame_code.ROW_REFERENCE, self._ref_hash)
        chunk = GeneratedChunk(frames=frames, audio=audio, sample_rate=sr,
                               start_time=self._chunk_index * K.CHUNK_SECONDS, state=state, talk_samples=talk.size)
        self._chunk_index += 1
        return chunk


class FakeAvatarPipeline:
    """Makes :class:`FakeAvatarSession` streams. ``seconds_per_step`` > 0 makes each step that slow (for
    testing the fall-behind policy); ``listen_threshold`` is the user-audio RMS above which it "listens";
    ``lookahead_samples`` declares a look-ahead like the real engine's (each step consumes one chunk and peeks
    that much further, so the server's ``talk_until`` bounds can be tested with it)."""

    name = "fake"
    #: Frames carry machine-readable codes (frame index, audio sample, reference hash) for tests and the page.
    frame_codes = True

    def __init__(self, height: int = 256, width: int = 256, sample_rate: int = 16000,
                 seconds_per_step: float = 0.0, listen_threshold: float = 0.01, lookahead_samples: int = 0) -> None:
        frame_code.block_size(width)
        if height < frame_code.CODE_ROWS * frame_code.block_size(width):
            raise ValueError(f"fake frames of width {width} need a height of at least "
                             f"{frame_code.CODE_ROWS * frame_code.block_size(width)}, got {height}")
        samples_per_frame(sample_rate)
        self.frame_size = (height, width)
        self.sample_rate = sample_rate
        self.seconds_per_step = seconds_per_step
        self.listen_threshold = listen_threshold
        self.lookahead_samples = lookahead_samples

    def session(self, reference_image: np.ndarray,
                listen_backlog_s: float | None = 2 * K.CHUNK_SECONDS) -> FakeAvatarSession:
        """Start a fake stream for one reference image (HxWx3 uint8)."""
        return FakeAvatarSession(self, reference_image, listen_backlog_s)

    def warmup(self) -> float:
        """One throwaway chunk, as the engine's warm-up does (the server calls it before it turns ready)."""
        t0 = time.perf_counter()
        h, w = self.frame_size
        self.session(np.full((h, w, 3), 128, np.uint8)).step()
        return time.perf_counter() - t0

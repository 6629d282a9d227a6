"""Simulated-time session driver (contract tests and ``benchmarks/bench_serve.py``).

Runs a real :class:`SessionRuntime` with the fake generator (or a real model wrapped in
:class:`CodeStampingPipeline`), drains its real WebRTC track objects the way aiortc does
(``await track.recv()``) and records what leaves the server. Run it on a
:class:`~streamavatar.serve.virtual_time.VirtualTimeLoop` to simulate minutes in seconds (a real model's
compute then takes no simulated time: the session is measured as if the model kept up).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from streamavatar import constants as K
from streamavatar.serve import frame_code
from streamavatar.serve.config import ServeConfig
from streamavatar.serve.fake_generator import FakeAvatarPipeline, reference_hash
from streamavatar.serve.generator import AvatarPipeline, GeneratedChunk, samples_per_frame
from streamavatar.serve.sessions import SessionRuntime, open_session
from streamavatar.serve.webrtc import SessionAudioTrack, SessionVideoTrack


@dataclass
class VideoOut:
    sent_at: float  # loop time recv() returned (when aiortc would encode and send it)
    pts_s: float
    frame_code: int
    talk_code: int  # 1 + index of the first agent sample the frame was made from; 0 = none
    ref_code: int


@dataclass
class AudioOut:
    sent_at: float
    pts_s: float
    pcm: np.ndarray


@dataclass
class Recording:
    video: list[VideoOut] = field(default_factory=list)
    audio: list[AudioOut] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


class _CodeStampingSession:
    def __init__(self, inner, reference_image: np.ndarray) -> None:
        self._inner = inner
        self._ref_hash = reference_hash(reference_image)
        self._frames = 0

    def __getattr__(self, name: str):  # the audio calls and queue positions are the wrapped session's
        return getattr(self._inner, name)

    def step(self, talk_until: int | None = None) -> GeneratedChunk:
        chunk = self._inner.step(talk_until)
        spf = samples_per_frame(chunk.sample_rate)
        talk = int(getattr(chunk, "talk_samples", 0))
        frames = chunk.frames.copy()
        for i, f in enumerate(frames):
            seg = chunk.audio[i * spf:(i + 1) * spf]
            first = 1 + (int(np.round(seg[0] * 32768.0)) & 0xFFFF) if talk > i * spf else 0
            frame_code.write_code(f, frame_code.ROW_FRAME, self._frames + i)
            frame_code.write_code(f, frame_code.ROW_TALK_SAMPLE, first)
            frame_code.write_code(f, frame_code.ROW_REFERENCE, self._ref_hash)
        self._frames += len(frames)
        return GeneratedChunk(frames=frames, audio=chunk.audio, sample_rate=chunk.sample_rate,
                              start_time=chunk.start_time, state=chunk.state, talk_samples=talk)


class CodeStampingPipeline:
    """Wraps a real model so its frames carry the fake generator's codes (frame index, first agent sample of
    the frame's own chunk audio, reference hash), written over the top-left blocks after generation. With it,
    :func:`av_offsets` checks a real model's chunks the way it checks the fake's: that every frame leaves the
    server with exactly the audio its chunk says it was generated from."""

    def __init__(self, inner: AvatarPipeline) -> None:
        self.inner = inner
        self.name = f"{inner.name} (frame codes stamped)"
        self.frame_codes = True
        self.frame_size = inner.frame_size
        self.sample_rate = inner.sample_rate

    def session(self, reference_image: np.ndarray, **kw) -> _CodeStampingSession:
        """A session of the wrapped model whose chunks carry frame codes."""
        return _CodeStampingSession(self.inner.session(reference_image, **kw), reference_image)


def sim_config(**kw) -> ServeConfig:
    base = dict(model="fake", generate_in_thread=False, metrics_interval_s=1.0, log_interval_s=0)
    base.update(kw)
    return ServeConfig(**base)


async def _drain_video(track: SessionVideoTrack, rec: Recording) -> None:
    loop = asyncio.get_running_loop()
    while True:
        f = await track.recv()
        img = f.to_ndarray(format="rgb24")
        rec.video.append(VideoOut(loop.time(), float(f.pts * f.time_base),
                                  frame_code.read_code(img, frame_code.ROW_FRAME),
                                  frame_code.read_code(img, frame_code.ROW_TALK_SAMPLE),
                                  frame_code.read_code(img, frame_code.ROW_REFERENCE)))


async def _drain_audio(track: SessionAudioTrack, rec: Recording) -> None:
    loop = asyncio.get_running_loop()
    while True:
        f = await track.recv()
        rec.audio.append(AudioOut(loop.time(), float(f.pts * f.time_base), f.to_ndarray().reshape(-1).copy()))


async def _drain_events(q: asyncio.Queue, rec: Recording) -> None:
    while True:
        e = await q.get()
        if e is None:
            return
        rec.events.append(e)


class SimSession:
    """A runtime plus its recording; ``talk_index`` counts agent samples pushed (the ramp continues)."""

    def __init__(self, runtime: SessionRuntime, rec: Recording, tasks: list[asyncio.Task]) -> None:
        self.runtime = runtime
        self.rec = rec
        self.tasks = tasks
        self.talk_index = 0

    def say(self, seconds: float, pieces: int = 1) -> None:
        """One explicit utterance whose samples carry their global index (mod 2**15)."""
        n = int(seconds * self.runtime.sample_rate)
        self.runtime.speak_start()
        for part in np.array_split(np.arange(self.talk_index, self.talk_index + n), pieces):
            self.runtime.push_talk((part % 32768).astype(np.int16))
        self.runtime.speak_end()
        self.talk_index += n

    async def close(self) -> None:
        await self.runtime.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def start_sim_session(name: str = "s", size: int = 64, color=(200, 40, 40), config: ServeConfig | None = None,
                            pipeline: AvatarPipeline | None = None) -> SimSession:
    pipe = pipeline or FakeAvatarPipeline(size, size)
    ref = np.zeros((size, size, 3), np.uint8)
    ref[:] = color
    config = config or sim_config()
    rt = SessionRuntime(name, open_session(pipe, ref, config), pipe.frame_size, pipe.sample_rate, config)
    rec = Recording()
    video, audio = SessionVideoTrack(rt), SessionAudioTrack(rt)
    rt.add_sink(video)
    rt.add_sink(audio)
    tasks = [asyncio.create_task(_drain_video(video, rec)), asyncio.create_task(_drain_audio(audio, rec)),
             asyncio.create_task(_drain_events(rt.subscribe(), rec))]
    await rt.start()
    return SimSession(rt, rec, tasks)


def av_offsets(rec: Recording, sample_rate: int) -> tuple[np.ndarray, int]:
    """For every sent video frame made from agent audio: the larger of |audio sent at that frame's presentation
    time minus the audio the frame was made from| (from the content codes) and |audio send time minus video
    send time|, in seconds. Frames whose voice an interrupt muted (all-zero audio) are counted, not measured."""
    spf = sample_rate // K.VIDEO_FPS
    audio_by_pts = {round(a.pts_s * sample_rate): a for a in rec.audio}
    offsets, muted = [], 0
    for v in rec.video:
        if not v.talk_code:
            continue
        start = round(v.pts_s * sample_rate)
        a = audio_by_pts.get(start)
        b = audio_by_pts.get(start + spf // 2)
        if a is None or b is None:
            continue
        if not a.pcm.any() and not b.pcm.any():
            muted += 1
            continue
        expected = (v.talk_code - 1) % 32768
        got = int(a.pcm[0]) % 32768
        content = ((got - expected + 16384) % 32768 - 16384) / sample_rate
        offsets.append(max(abs(content), abs(a.sent_at - v.sent_at)))
        if not a.pcm.size == b.pcm.size == spf // 2:
            raise ValueError(f"audio packets of {a.pcm.size}/{b.pcm.size} samples, expected {spf // 2}")
    return np.array(offsets), muted

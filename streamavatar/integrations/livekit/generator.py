"""A LiveKit ``VideoGenerator`` over one streamavatar session.

LiveKit's ``AvatarRunner`` pushes the agent's voice into :meth:`StreamAvatarVideoGenerator.push_audio` (audio
frames, then ``AudioSegmentEnd`` per utterance), calls :meth:`~StreamAvatarVideoGenerator.clear_buffer` on
barge-in, and iterates the generator for what to publish: ``rtc.VideoFrame``s, each followed by the
``rtc.AudioFrame`` of the agent voice that frame was generated from, and ``AudioSegmentEnd`` once the last
sample of an utterance has been handed over (the runner then reports ``playback_finished`` with the summed
duration of the audio frames it received, so that position is the utterance's true played length).

How a stream is made:

* The engine session runs on one worker thread (a session is not thread-safe); all bookkeeping stays on the
  event loop. Each ``step()`` consumes exactly one chunk (12 frames, 0.48 s) of the queued agent and user
  audio, so video never waits for audio: without agent audio the avatar listens (user voice, pushed with
  :meth:`~StreamAvatarVideoGenerator.push_listen_audio`, e.g. by :class:`~.listen.UserAudioFeed`) or idles.
* Just in time: a step starts when the frames not yet taken by the consumer cover no more than the measured
  step time plus ``lead_margin_s``. The consumer (``AvatarRunner`` through ``rtc.AVSynchronizer``) takes
  frames at 25 fps, so the generator works about one step ahead of the wall clock, which keeps both the time
  to the first talking frame and the interrupt latency short.
* Utterances: an utterance starts at a chunk boundary once ``prebuffer`` audio is queued (one chunk plus the
  model's look-ahead), once it has ended, or ``prebuffer_timeout_s`` after its first sample; one chunk holds
  audio of one utterance only. The voice published with a frame is the agent's own audio at
  ``audio_sample_rate`` (not the model's 16 kHz copy), cut at exactly the sample positions the chunk consumed:
  the model is fed a 16 kHz resampling of the same stream, and position ``p`` of that stream is position
  ``p · audio_sample_rate / 16000`` of the published one. A frame carries only the real samples it consumed
  (a short last frame, nothing for silent frames), so the runner's playback position counts agent audio
  only.
* Barge-in (:meth:`clear_buffer`): queued utterances are dropped, the session is interrupted before its next
  step, audio and ``AudioSegmentEnd`` markers waiting in the output are dropped, and so is the synchronizer's
  queue when one is attached (:meth:`attach_av_sync`). With ``interrupt_mode="drop"`` (default) talking frames
  not yet handed over, and the chunk being generated, are discarded: the avatar listens again with the next
  chunk (the rest of the step in flight plus one step). With ``"mute"`` they play without their voice.
* A stall (generation late, or the gap after a drop) repeats the last frame at 25 fps (``fill_stalls``) with
  no audio, so the track's cadence holds and audio stays with the frame it was made from.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:
    from livekit import rtc
    from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarOptions, VideoGenerator
except ImportError as exc:  # optional extra
    raise ImportError('streamavatar.integrations.livekit needs the livekit extra: '
                      'pip install "streamavatar[livekit]"') from exc

from streamavatar import constants as K
from streamavatar.audio.io import ENCODER_SAMPLE_RATE, StreamingResampler

#: Interrupt modes (see the module docstring).
INTERRUPT_MODES = ("drop", "mute")


def frame_to_mono(frame: rtc.AudioFrame) -> np.ndarray:
    """An ``rtc.AudioFrame`` (int16, interleaved) as mono float32 in [-1, 1]."""
    pcm = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1)
    return (pcm.astype(np.float32) / 32768.0).reshape(-1)


def mono_to_frame(x: np.ndarray, sample_rate: int) -> rtc.AudioFrame:
    """Mono float32 in [-1, 1] as an int16 ``rtc.AudioFrame``."""
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    return rtc.AudioFrame(data=pcm.tobytes(), sample_rate=sample_rate, num_channels=1, samples_per_channel=pcm.size)


class Resampler:
    """Streaming mono resampler ``src`` → ``dst`` Hz (identity when equal). 16 kHz targets use the engine's own
    band-limited :class:`~streamavatar.audio.io.StreamingResampler`; other targets LiveKit's."""

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = int(src), int(dst)
        self._sa: StreamingResampler | None = None
        self._lk: rtc.AudioResampler | None = None
        if self.src != self.dst:
            if self.dst == ENCODER_SAMPLE_RATE:
                self._sa = StreamingResampler(self.src)
            else:
                self._lk = rtc.AudioResampler(self.src, self.dst, num_channels=1,
                                              quality=rtc.AudioResamplerQuality.HIGH)

    def _from_lk(self, frames: list[rtc.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, np.float32)
        return np.concatenate([frame_to_mono(f) for f in frames])

    def push(self, x: np.ndarray) -> np.ndarray:
        if self._sa is not None:
            return self._sa.push(x)
        if self._lk is not None:
            return self._from_lk(self._lk.push(mono_to_frame(x, self.src)))
        return np.asarray(x, np.float32)

    def flush(self) -> np.ndarray:
        if self._sa is not None:
            return self._sa.flush()
        if self._lk is not None:
            return self._from_lk(self._lk.flush())
        return np.zeros(0, np.float32)


class _Segment:
    """One utterance: the 16 kHz feed for the model and the tape of what is published."""

    def __init__(self, sid: int, in_rate: int, sess_rate: int, out_rate: int) -> None:
        self.id = sid
        self.sess_rate, self.out_rate = sess_rate, out_rate
        self.in_rate = in_rate
        self._feed_rs = Resampler(in_rate, sess_rate)
        self._tape_rs = Resampler(in_rate, out_rate)
        self._feed: list[np.ndarray] = []
        self.fed = 0            # session-rate samples produced for the model
        self.pushed = 0         # ... of which pushed into the session
        self.consumed = 0       # ... of which consumed by chunks
        self._tape: list[np.ndarray] = []
        self.tape_len = 0
        self.tape_pos = 0       # published samples handed over
        self.frames_in = 0
        self.first_t = time.perf_counter()
        self.ended = False
        self.started = False
        self.ttff_done = False

    def add(self, frame: rtc.AudioFrame) -> None:
        if frame.sample_rate != self.in_rate:
            self._flush_resamplers()
            self.in_rate = frame.sample_rate
            self._feed_rs = Resampler(self.in_rate, self.sess_rate)
            self._tape_rs = Resampler(self.in_rate, self.out_rate)
        x = frame_to_mono(frame)
        self._put(self._feed_rs.push(x), self._tape_rs.push(x))
        self.frames_in += 1

    def _put(self, feed: np.ndarray, tape: np.ndarray) -> None:
        if feed.size:
            self._feed.append(feed)
            self.fed += feed.size
        if tape.size:
            self._tape.append(tape)
            self.tape_len += tape.size

    def _flush_resamplers(self) -> None:
        self._put(self._feed_rs.flush(), self._tape_rs.flush())

    def end(self) -> None:
        self._flush_resamplers()
        self.ended = True

    def ready(self, need: int, timeout_s: float) -> bool:
        return self.ended or self.fed >= need or time.perf_counter() - self.first_t >= timeout_s

    def take_feed(self) -> np.ndarray:
        out = np.concatenate(self._feed) if self._feed else np.zeros(0, np.float32)
        self._feed = []
        self.pushed += out.size
        return out

    @property
    def done(self) -> bool:
        return self.ended and self.consumed >= self.fed

    def tape_until(self, session_pos: int, last: bool) -> np.ndarray:
        """Published samples up to session-rate position ``session_pos`` (all that is left when ``last``)."""
        end = self.tape_len if last else min(self.tape_len, round(session_pos * self.out_rate / self.sess_rate))
        n = max(0, end - self.tape_pos)
        parts = []
        while n > 0 and self._tape:
            head = self._tape[0]
            if head.size <= n:
                parts.append(head)
                self._tape.pop(0)
            else:
                parts.append(head[:n])
                self._tape[0] = head[n:]
            n -= parts[-1].size
            self.tape_pos += parts[-1].size
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@dataclass
class _Video:
    image: np.ndarray
    state: str
    segment: int | None
    index: int


@dataclass
class _Audio:
    samples: np.ndarray
    segment: int


@dataclass
class _End:
    segment: int


@dataclass
class GeneratorMetrics:
    """Counters and latencies of one generator (all times in seconds, wall clock)."""

    chunks: int = 0
    frames_out: int = 0
    repeated_frames: int = 0
    dropped_frames: int = 0
    muted_frames: int = 0
    segments_finished: int = 0
    segments_interrupted: int = 0
    step_s: deque = field(default_factory=lambda: deque(maxlen=256))
    ttff_s: list[float] = field(default_factory=list)
    interrupt_latency_s: list[float] = field(default_factory=list)
    started_at: float | None = None
    #: Frames handed over, by state.
    state_frames: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        steps = sorted(self.step_s)
        wall = time.perf_counter() - self.started_at if self.started_at else 0.0
        pick = (lambda q: round(1000 * steps[min(len(steps) - 1, int(q * len(steps)))], 1)) if steps else None
        return {
            "chunks": self.chunks, "frames_out": self.frames_out, "repeated_frames": self.repeated_frames,
            "dropped_frames": self.dropped_frames, "muted_frames": self.muted_frames,
            "segments_finished": self.segments_finished, "segments_interrupted": self.segments_interrupted,
            "step_ms_p50": pick(0.5) if pick else None, "step_ms_p95": pick(0.95) if pick else None,
            "rtf": round(float(np.mean(steps)) / K.CHUNK_SECONDS, 3) if steps else None,
            "out_fps": round(self.frames_out / wall, 2) if wall > 0 else None,
            "state_frames": dict(self.state_frames),
            "ttff_s": [round(t, 3) for t in self.ttff_s],
            "interrupt_latency_s": [round(t, 3) for t in self.interrupt_latency_s],
        }


class StreamAvatarVideoGenerator(VideoGenerator):
    """A LiveKit ``VideoGenerator`` driven by a streamavatar pipeline (see the module docstring).

    ``pipeline``: what :func:`streamavatar.load` returns, or any object with the same session API
    (``frame_size``, ``sample_rate``, ``session(image)`` → ``push_talk_audio`` / ``push_listen_audio`` /
    ``step`` / ``interrupt`` / optional ``close``), e.g. the test double
    :class:`streamavatar.serve.fake_generator.FakeAvatarPipeline`. ``reference_image``: what
    ``pipeline.session`` accepts (the real engine: a path, PIL image or HxWx3 uint8 array).
    ``audio_sample_rate``: the rate of the published voice (a multiple of 25; agent audio at other rates is
    resampled). Call :meth:`aclose` when done.
    """

    def __init__(self, pipeline: Any, reference_image: Any, *, audio_sample_rate: int = 24000,
                 interrupt_mode: str = "drop", lead_margin_s: float = 0.15, prebuffer_timeout_s: float = 0.5,
                 fill_stalls: bool = True, session_kwargs: dict | None = None) -> None:
        if interrupt_mode not in INTERRUPT_MODES:
            raise ValueError(f"interrupt_mode must be one of {INTERRUPT_MODES}, got {interrupt_mode!r}")
        if audio_sample_rate % K.VIDEO_FPS:
            raise ValueError(f"audio_sample_rate must be a multiple of {K.VIDEO_FPS} Hz, got {audio_sample_rate}")
        self._pipe = pipeline
        self._reference = reference_image
        self._session_kwargs = dict(session_kwargs or {})
        self._out_rate = int(audio_sample_rate)
        self._sess_rate = int(pipeline.sample_rate)
        self._spf = self._sess_rate // K.VIDEO_FPS
        self._chunk_frames = K.CHUNK_VIDEO_FRAMES
        self._prebuffer = self._chunk_frames * self._spf + int(getattr(pipeline, "lookahead_samples", 0) or 0)
        self._prebuffer_timeout_s = prebuffer_timeout_s
        self._interrupt_mode = interrupt_mode
        self._lead_margin_s = lead_margin_s
        self._fill_stalls = fill_stalls
        h, w = pipeline.frame_size
        self._size = (int(h), int(w))
        self.metrics = GeneratorMetrics()
        #: State of the last video frame handed over: "talking" (it carries agent voice), "silent" (a talking
        #: chunk's frame after the utterance's last sample), "listening", "idle", "muted" (generated talking,
        #: voice dropped by a barge-in in mute mode) or "repeat" (a stall repeated the last frame).
        self.current_state = "idle"
        self._executor: ThreadPoolExecutor | None = None
        self._session: Any = None
        self._segments: deque[_Segment] = deque()
        self._receiving: _Segment | None = None
        self._next_sid = 0
        self._out: deque[_Video | _Audio | _End] = deque()
        self._listen: list[np.ndarray] = []
        self._listen_rs: Resampler | None = None
        self._epoch = 0
        self._interrupt_pending = False
        self._interrupt_t: float | None = None
        self._step_estimate_s = 0.5 * K.CHUNK_SECONDS
        self._av_sync: rtc.AVSynchronizer | None = None
        self._have_output = asyncio.Event()
        self._taken = asyncio.Event()
        self._producer: asyncio.Task | None = None
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._failure: BaseException | None = None
        self._first_t: dict[int, float] = {}  # first-sample times of utterances not yet seen talking

    # --- what LiveKit needs to know ---------------------------------------------------------------------------
    @property
    def options(self) -> AvatarOptions:
        """The ``AvatarOptions`` matching this generator's output (frame size, 25 fps, voice rate, mono)."""
        h, w = self._size
        return AvatarOptions(video_width=w, video_height=h, video_fps=K.VIDEO_FPS,
                             audio_sample_rate=self._out_rate, audio_channels=1)

    @property
    def audio_sample_rate(self) -> int:
        return self._out_rate

    def attach_av_sync(self, av_sync: rtc.AVSynchronizer | None) -> None:
        """Let :meth:`clear_buffer` also empty the runner's synchronizer (``AvatarRunner.av_sync``), so the voice
        queued there (up to 100 ms) stops at once."""
        self._av_sync = av_sync

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the engine session (on the worker thread) and start generating. Idempotent."""
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise RuntimeError("this generator is closed")
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="streamavatar-livekit")
            loop = asyncio.get_running_loop()
            self._session = await loop.run_in_executor(
                self._executor, lambda: self._pipe.session(self._reference, **self._session_kwargs))
            self._started = True
            self.metrics.started_at = time.perf_counter()
            self._producer = asyncio.create_task(self._produce(), name="streamavatar-livekit-producer")

    async def aclose(self) -> None:
        """Stop generating, close the session and its threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._have_output.set()
        self._taken.set()
        if self._producer is not None:
            self._producer.cancel()
            try:
                await self._producer
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - a failed producer is already recorded
                pass
            self._producer = None
        if self._executor is not None:
            session, self._session = self._session, None
            close = getattr(session, "close", None)
            if close is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, close)
            self._executor.shutdown(wait=True)
            self._executor = None
        self._out.clear()
        self._segments.clear()

    # --- audio in --------------------------------------------------------------------------------------------
    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        """Agent voice from the runner: audio frames of an utterance, then ``AudioSegmentEnd``."""
        if self._closed:
            return
        if isinstance(frame, AudioSegmentEnd):
            seg = self._receiving
            self._receiving = None
            if seg is not None:  # an end with no audio since the last end or clear has nothing to finish
                seg.end()
                if seg.done:
                    self._finish(seg)
                self._taken.set()
            return
        if frame.samples_per_channel == 0:
            return
        if self._receiving is None:
            self._receiving = _Segment(self._next_sid, frame.sample_rate, self._sess_rate, self._out_rate)
            self._next_sid += 1
            self._segments.append(self._receiving)
            self._first_t[self._receiving.id] = self._receiving.first_t
        self._receiving.add(frame)

    def push_listen_audio(self, frame: rtc.AudioFrame) -> None:
        """The user's voice (drives listening). Any rate; the session keeps only the newest 2 s."""
        if self._closed or frame.samples_per_channel == 0:
            return
        if self._listen_rs is None or self._listen_rs.src != frame.sample_rate:
            self._listen_rs = Resampler(frame.sample_rate, self._sess_rate)
        x = self._listen_rs.push(frame_to_mono(frame))
        if x.size:
            self._listen.append(x)
            cap = 2 * K.VIDEO_FPS * self._spf * 2  # never more than 4 s waiting between two steps
            while sum(a.size for a in self._listen) > cap and len(self._listen) > 1:
                self._listen.pop(0)

    async def clear_buffer(self) -> None:
        """Barge-in: stop the agent's voice now and go on listening (see the module docstring)."""
        if self._closed:
            return
        self._epoch += 1
        talking = bool(self._segments) or self.current_state == "talking" or any(
            isinstance(item, _Video) and item.state == "talking" for item in self._out)
        if self._segments:
            self.metrics.segments_interrupted += 1
        self._segments.clear()
        self._first_t.clear()
        self._receiving = None
        self._interrupt_pending = True
        kept: deque[_Video | _Audio | _End] = deque()
        for item in self._out:
            if isinstance(item, _Video):
                if item.state == "talking":
                    if self._interrupt_mode == "drop":
                        self.metrics.dropped_frames += 1
                        continue
                    item.state = "muted"
                    self.metrics.muted_frames += 1
                kept.append(item)
        self._out = kept
        if talking and self._interrupt_t is None:
            self._interrupt_t = time.perf_counter()
        self._taken.set()
        if self._av_sync is not None:
            await self._av_sync.clear_queue()

    # --- generation ------------------------------------------------------------------------------------------
    def _buffered_frames(self) -> int:
        return sum(1 for item in self._out if isinstance(item, _Video))

    def _lead_frames(self) -> int:
        return max(1, math.ceil((self._step_estimate_s + self._lead_margin_s) * K.VIDEO_FPS))

    def _step_blocking(self, talk: np.ndarray | None, listen: np.ndarray | None, interrupt: bool) -> Any:
        s = self._session
        if interrupt:
            s.interrupt()
        if talk is not None and talk.size:
            s.push_talk_audio(talk, self._sess_rate)
        if listen is not None and listen.size:
            s.push_listen_audio(listen, self._sess_rate)
        return s.step()

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                while not self._closed and self._buffered_frames() > self._lead_frames():
                    self._taken.clear()
                    await self._taken.wait()
                if self._closed:
                    return
                interrupt, self._interrupt_pending = self._interrupt_pending, False
                seg = self._segments[0] if self._segments else None
                talk = None
                if seg is not None:
                    if not seg.started and seg.ready(self._prebuffer, self._prebuffer_timeout_s):
                        seg.started = True
                    if seg.started:
                        talk = seg.take_feed()
                    else:
                        seg = None
                listen = np.concatenate(self._listen) if self._listen else None
                self._listen = []
                epoch = self._epoch
                t0 = time.perf_counter()
                chunk = await loop.run_in_executor(self._executor, self._step_blocking, talk, listen, interrupt)
                dt = time.perf_counter() - t0
                self.metrics.step_s.append(dt)
                self._step_estimate_s = dt if self.metrics.chunks == 0 else 0.8 * self._step_estimate_s + 0.2 * dt
                self.metrics.chunks += 1
                self._accept(chunk, epoch, seg)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - surfaced to the consumer
            self._failure = exc
            self._have_output.set()
            raise

    def _accept(self, chunk: Any, epoch: int, seg: _Segment | None) -> None:
        frames = np.asarray(chunk.frames)
        talk_n = int(getattr(chunk, "talk_samples", 0 if chunk.state != "talking" else chunk.audio.size))
        state = str(chunk.state)
        stale = epoch != self._epoch or seg is None or seg not in self._segments
        if talk_n > 0 and stale:
            if self._interrupt_mode == "drop":
                self.metrics.dropped_frames += frames.shape[0]
                self._have_output.set()
                return
            state, talk_n = "muted", 0
            self.metrics.muted_frames += frames.shape[0]
        base = seg.consumed if (seg is not None and talk_n) else 0
        if seg is not None and talk_n:
            seg.consumed += talk_n
        last_frame = -1
        for j in range(frames.shape[0]):
            n_j = min(max(talk_n - j * self._spf, 0), self._spf)
            if n_j:
                last_frame = j
        finished = seg is not None and talk_n > 0 and seg.done
        for j in range(frames.shape[0]):
            n_j = min(max(talk_n - j * self._spf, 0), self._spf)
            # per frame: "talking" only while the frame carries agent voice; the rest of a talking chunk
            # (after the utterance's last sample) is "silent"
            frame_state = "silent" if (state == "talking" and not n_j) else state
            self._out.append(_Video(frames[j], frame_state, seg.id if (seg is not None and talk_n) else None,
                                    self.metrics.chunks * self._chunk_frames + j))
            if n_j:
                samples = seg.tape_until(base + j * self._spf + n_j, last=finished and j == last_frame)
                if samples.size:
                    self._out.append(_Audio(samples, seg.id))
            if finished and j == last_frame:
                self._finish(seg, append=True)
        self._have_output.set()

    def _finish(self, seg: _Segment, append: bool = False) -> None:
        """The utterance's last sample has been queued for output: place its ``AudioSegmentEnd``."""
        if seg in self._segments:
            self._segments.remove(seg)
        self.metrics.segments_finished += 1
        if append:
            self._out.append(_End(seg.id))
            return
        # the end arrived after its audio: right after the segment's last queued audio, else next
        for i in range(len(self._out) - 1, -1, -1):
            item = self._out[i]
            if isinstance(item, _Audio | _Video) and item.segment == seg.id:
                self._out.insert(i + 1, _End(seg.id))
                break
        else:
            self._out.appendleft(_End(seg.id))
        self._have_output.set()

    # --- frames out ------------------------------------------------------------------------------------------
    def _video_frame(self, image: np.ndarray) -> rtc.VideoFrame:
        h, w = image.shape[:2]
        rgba = np.empty((h, w, 4), np.uint8)
        rgba[..., :3] = image
        rgba[..., 3] = 255
        return rtc.VideoFrame(width=w, height=h, type=rtc.VideoBufferType.RGBA, data=rgba.tobytes())

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        await self.start()
        last: rtc.VideoFrame | None = None
        interval = 1.0 / K.VIDEO_FPS
        while not self._closed:
            if self._failure is not None:
                raise RuntimeError("the avatar session failed") from self._failure
            if not self._out:
                self._have_output.clear()
                try:
                    if self._fill_stalls and last is not None:
                        await asyncio.wait_for(self._have_output.wait(), interval)
                    else:
                        await self._have_output.wait()
                except TimeoutError:
                    self.metrics.repeated_frames += 1
                    self.metrics.frames_out += 1
                    self.current_state = "repeat"
                    self.metrics.state_frames["repeat"] = self.metrics.state_frames.get("repeat", 0) + 1
                    yield last
                continue
            item = self._out.popleft()
            if isinstance(item, _Video):
                now = time.perf_counter()
                self.current_state = item.state
                self.metrics.state_frames[item.state] = self.metrics.state_frames.get(item.state, 0) + 1
                if item.state == "talking" and item.segment is not None:
                    self._note_ttff(item.segment, now)
                elif self._interrupt_t is not None and item.state != "muted":
                    self.metrics.interrupt_latency_s.append(now - self._interrupt_t)
                    self._interrupt_t = None
                last = self._video_frame(item.image)
                self.metrics.frames_out += 1
                self._taken.set()
                yield last
            elif isinstance(item, _Audio):
                yield mono_to_frame(item.samples, self._out_rate)
            else:
                yield AudioSegmentEnd()

    def _note_ttff(self, sid: int, now: float) -> None:
        first = self._first_t.pop(sid, None)
        if first is not None:
            self.metrics.ttff_s.append(now - first)

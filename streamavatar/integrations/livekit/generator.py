"""A LiveKit ``VideoGenerator`` over one streamavatar session.

LiveKit's ``AvatarRunner`` pushes the agent's voice into :meth:`StreamAvatarVideoGenerator.push_audio` (audio
frames, then ``AudioSegmentEnd`` per utterance), calls :meth:`~StreamAvatarVideoGenerator.clear_buffer` on
barge-in, and iterates the generator for what to publish: ``rtc.VideoFrame``s, each followed by the
``rtc.AudioFrame`` of the agent voice that frame was generated from, and ``AudioSegmentEnd`` once the last
sample of an utterance has been handed over (the runner then reports ``playback_finished`` with the summed
duration of the audio frames it received, so that position is the utterance's true played length).

How a stream is made:

* One audio path (#17): agent and user samples go into the engine session's queues as they arrive (agent
  audio resampled to 16 kHz per utterance, so an utterance's last sample is queued before the next one's
  first); the generator keeps only where each utterance starts and ends in the session's agent queue, and
  bounds each step with ``talk_until`` at the playing utterance's end. The steps run on one worker thread;
  the audio calls come from the event loop (the session allows that), all bookkeeping stays there. Each
  ``step()`` consumes exactly one chunk (12 frames, 0.48 s) of the queued agent and user audio, so video
  never waits for audio: without agent audio the avatar listens (user voice, pushed with
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
  ``p · audio_sample_rate / 16000`` of the published one. So at a rate other than 16 kHz the generator keeps
  that voice (one queue, the "tape") until its frames are handed over; at 16 kHz the published samples are
  the chunk's own consumed audio and nothing is kept. A frame carries only the real samples it consumed
  (a short last frame, nothing for silent frames), so the runner's playback position counts agent audio
  only.
* Barge-in (:meth:`clear_buffer`): queued utterances are dropped, the session's agent queue (and the tape) is
  cleared at once, audio and ``AudioSegmentEnd`` markers waiting in the output are dropped, and so is the synchronizer's
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
from streamavatar.audio.queue import AudioQueue

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


class _Utterance:
    """One utterance's boundaries: ``[start, end)`` in the session's agent queue (16 kHz indices, the samples
    live there only) and where its published voice lies in the generator's tape (when that is kept, see
    :class:`StreamAvatarVideoGenerator`). Holds the incremental resamplers of the utterance being received
    (flushed at its end, so its last sample is queued before the next utterance's first)."""

    def __init__(self, uid: int, start: int, tape_start: int, in_rate: int, sess_rate: int,
                 out_rate: int | None) -> None:
        self.id = uid
        self.start = self.end = start
        self.tape_start = self.tape_end = tape_start
        self.tape_pos = 0       # published samples handed over
        self.consumed = 0       # session-rate samples consumed by chunks
        self.sess_rate, self.out_rate = sess_rate, out_rate
        self.in_rate = in_rate
        self._rs: tuple[Resampler, Resampler | None] | None = None
        self.frames_in = 0
        self.first_t = time.perf_counter()
        self.ended = False
        self.started = False

    @property
    def fed(self) -> int:
        """Session-rate samples queued for this utterance."""
        return self.end - self.start

    def resample(self, x: np.ndarray | None, rate: int) -> tuple[np.ndarray, np.ndarray]:
        """The model feed and the published tape of ``x`` (mono at ``rate``; None: flush, the utterance ended
        or its rate changed)."""
        empty = np.zeros(0, np.float32)
        if self._rs is None:
            if x is None:
                return empty, empty
            self._rs = (Resampler(rate, self.sess_rate),
                        Resampler(rate, self.out_rate) if self.out_rate is not None else None)
        feed_rs, tape_rs = self._rs
        if x is None:
            self._rs = None
            return feed_rs.flush(), tape_rs.flush() if tape_rs is not None else empty
        return feed_rs.push(x), tape_rs.push(x) if tape_rs is not None else empty

    def ready(self, need: int, timeout_s: float) -> bool:
        return self.ended or self.fed >= need or time.perf_counter() - self.first_t >= timeout_s

    @property
    def done(self) -> bool:
        return self.ended and self.consumed >= self.fed


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
    ``step(talk_until=...)`` / ``interrupt`` / ``talk_index`` / ``talk_end`` / optional ``close``; the audio
    calls may come from another thread than the steps), e.g. the test double
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
        #: Utterance boundaries, oldest first; the samples are in the session's agent queue only.
        self._utterances: deque[_Utterance] = deque()
        self._receiving: _Utterance | None = None
        self._next_sid = 0
        #: The published voice at ``audio_sample_rate``, in push order, when that is not the session's rate
        #: (at the session's rate a frame's voice is the chunk's own consumed audio, so nothing is kept).
        self._tape: AudioQueue | None = None if self._out_rate == self._sess_rate else AudioQueue()
        self._out: deque[_Video | _Audio | _End] = deque()
        self._epoch = 0
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
        self._utterances.clear()
        self._receiving = None
        if self._tape is not None:
            self._tape.clear()

    # --- audio in --------------------------------------------------------------------------------------------
    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        """Agent voice from the runner: audio frames of an utterance, then ``AudioSegmentEnd``. The samples go
        into the engine session's queue at once (the stream starts if it has not); only the utterance's
        boundaries stay here."""
        if self._closed:
            return
        if isinstance(frame, AudioSegmentEnd):
            utt = self._receiving
            self._receiving = None
            if utt is not None:  # an end with no audio since the last end or clear has nothing to finish
                self._queue_voice(utt, *utt.resample(None, utt.in_rate))
                utt.ended = True
                if utt.done:
                    self._finish(utt)
                self._taken.set()
            return
        if frame.samples_per_channel == 0:
            return
        await self.start()
        if self._closed or self._session is None:
            return
        utt = self._receiving
        if utt is None:
            tape_end = self._tape.end if self._tape is not None else 0
            utt = _Utterance(self._next_sid, self._session.talk_end, tape_end, frame.sample_rate, self._sess_rate,
                             None if self._tape is None else self._out_rate)
            self._receiving = utt
            self._next_sid += 1
            self._utterances.append(utt)
            self._first_t[utt.id] = utt.first_t
        elif frame.sample_rate != utt.in_rate:
            self._queue_voice(utt, *utt.resample(None, utt.in_rate))
            utt.in_rate = frame.sample_rate
        self._queue_voice(utt, *utt.resample(frame_to_mono(frame), frame.sample_rate))
        utt.frames_in += 1

    def _queue_voice(self, utt: _Utterance, feed: np.ndarray, tape: np.ndarray) -> None:
        """Queue an utterance's next samples: the model's feed in the session, the published voice on the tape.
        Only the event loop pushes agent audio, so the session's queue ends where this utterance ends."""
        if feed.size:
            self._session.push_talk_audio(feed, self._sess_rate)
            utt.end = self._session.talk_end
        if tape.size and self._tape is not None:
            self._tape.push(tape)
            utt.tape_end = self._tape.end

    def push_listen_audio(self, frame: rtc.AudioFrame) -> None:
        """The user's voice (drives listening), any rate, straight into the session's queue (which keeps only
        the newest 2 s). Before the stream has started there is no session: that audio is not kept."""
        if self._closed or frame.samples_per_channel == 0 or self._session is None:
            return
        self._session.push_listen_audio(frame_to_mono(frame), frame.sample_rate)

    async def clear_buffer(self) -> None:
        """Barge-in: stop the agent's voice now and go on listening (see the module docstring)."""
        if self._closed:
            return
        self._epoch += 1
        talking = bool(self._utterances) or self.current_state == "talking" or any(
            isinstance(item, _Video) and item.state == "talking" for item in self._out)
        if self._utterances:
            self.metrics.segments_interrupted += 1
        self._utterances.clear()
        self._first_t.clear()
        self._receiving = None
        if self._session is not None:
            self._session.interrupt()  # a step in flight read before this: its chunk is stale (epoch)
        if self._tape is not None:
            self._tape.clear()
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

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                while not self._closed and self._buffered_frames() > self._lead_frames():
                    self._taken.clear()
                    await self._taken.wait()
                if self._closed:
                    return
                utt = self._utterances[0] if self._utterances else None
                # the step reads the playing utterance's queued samples only: none of a later one, none of one
                # still prebuffering (they stay queued in the session)
                until = self._session.talk_index
                if utt is not None:
                    if not utt.started and utt.ready(self._prebuffer, self._prebuffer_timeout_s):
                        utt.started = True
                    if utt.started:
                        until = utt.end
                    else:
                        utt = None
                epoch = self._epoch
                t0 = time.perf_counter()
                chunk = await loop.run_in_executor(self._executor, lambda u=until: self._session.step(talk_until=u))
                dt = time.perf_counter() - t0
                self.metrics.step_s.append(dt)
                self._step_estimate_s = dt if self.metrics.chunks == 0 else 0.8 * self._step_estimate_s + 0.2 * dt
                self.metrics.chunks += 1
                self._accept(chunk, epoch, utt)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - surfaced to the consumer
            self._failure = exc
            self._have_output.set()
            raise

    def _accept(self, chunk: Any, epoch: int, utt: _Utterance | None) -> None:
        frames = np.asarray(chunk.frames)
        talk_n = int(getattr(chunk, "talk_samples", 0 if chunk.state != "talking" else chunk.audio.size))
        state = str(chunk.state)
        stale = epoch != self._epoch or utt is None or utt not in self._utterances
        if talk_n > 0 and stale:
            if self._interrupt_mode == "drop":
                self.metrics.dropped_frames += frames.shape[0]
                self._have_output.set()
                return
            state, talk_n = "muted", 0
            self.metrics.muted_frames += frames.shape[0]
        talk = utt if (utt is not None and talk_n) else None
        base = talk.consumed if talk is not None else 0
        if talk is not None:
            talk.consumed += talk_n
        last_frame = (talk_n - 1) // self._spf if talk_n else -1
        finished = talk is not None and talk.done
        audio = np.asarray(chunk.audio)
        for j in range(frames.shape[0]):
            n_j = min(max(talk_n - j * self._spf, 0), self._spf)
            # per frame: "talking" only while the frame carries agent voice; the rest of a talking chunk
            # (after the utterance's last sample) is "silent"
            frame_state = "silent" if (state == "talking" and not n_j) else state
            self._out.append(_Video(frames[j], frame_state, talk.id if talk is not None else None,
                                    self.metrics.chunks * self._chunk_frames + j))
            if n_j:
                if self._tape is None:  # published at the session's rate: the chunk's own consumed samples
                    samples = audio[j * self._spf: j * self._spf + n_j].copy()
                else:
                    samples = self._take_tape(talk, base + j * self._spf + n_j, last=finished and j == last_frame)
                if samples.size:
                    self._out.append(_Audio(samples, talk.id))
            if finished and j == last_frame:
                self._finish(talk, append=True)
        self._have_output.set()

    def _take_tape(self, utt: _Utterance, session_pos: int, last: bool) -> np.ndarray:
        """The utterance's published samples up to session-rate position ``session_pos`` of it (all that is
        left when ``last``): position ``p`` at 16 kHz is ``p · audio_sample_rate / 16000`` of the voice."""
        size = utt.tape_end - utt.tape_start
        end = size if last else min(size, round(session_pos * self._out_rate / self._sess_rate))
        n = max(0, end - utt.tape_pos)
        out = self._tape.take(n, until=utt.tape_end)
        utt.tape_pos += out.size
        return out

    def _finish(self, utt: _Utterance, append: bool = False) -> None:
        """The utterance's last sample has been queued for output: place its ``AudioSegmentEnd``."""
        if utt in self._utterances:
            self._utterances.remove(utt)
        if self._tape is not None:  # what rounding left of its voice is not published (the next starts clean)
            self._tape.take(self._tape.end, until=utt.tape_end)
        self.metrics.segments_finished += 1
        if append:
            self._out.append(_End(utt.id))
            return
        # the end arrived after its audio: right after the utterance's last queued audio, else next
        for i in range(len(self._out) - 1, -1, -1):
            item = self._out[i]
            if isinstance(item, _Audio | _Video) and item.segment == utt.id:
                self._out.insert(i + 1, _End(utt.id))
                break
        else:
            self._out.appendleft(_End(utt.id))
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

"""One live session: generation ahead of playout, the output slot loop, utterances, interrupt and events.

Two tasks run per session. Audio goes straight into the generator session's queues as it arrives (they are
its only copy); :class:`AgentVoiceQueue` keeps the utterances' ids and boundaries in it. The generation task
starts each chunk just in time (at most ``lead_chunks`` chunks ahead), bounding each ``step()`` to the agent
audio of one utterance (``talk_until``; the session consumes up to a chunk of it and looks ahead within it).
The slot task sends one frame and its audio every 1/fps s
(:class:`~streamavatar.serve.media_clock.MediaClock`) to every attached sink (the WebRTC tracks), whether or
not anyone speaks, and turns what it sends into events. When generation is slower than real time a slot
repeats the last frame with silence; ``behind_policy`` decides whether the agent's speech waits (``hold``)
or the speech of those slots is dropped to stay on time (``drop``). All timing uses the event loop's clock, so tests can
run a session in simulated time (:mod:`streamavatar.serve.virtual_time`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np

from streamavatar import constants as K
from streamavatar.serve.agent_voice import AgentVoiceQueue, QueueFull, Take
from streamavatar.serve.config import ServeConfig
from streamavatar.serve.generator import AvatarPipeline, AvatarSession, samples_per_frame, validate_chunk
from streamavatar.serve.media_clock import MediaClock, OutputFrame, split_chunk
from streamavatar.serve.metrics import SessionMetrics
from streamavatar.serve.ws_protocol import ProtocolError

log = logging.getLogger("streamavatar.serve")

ListenMode = Literal["auto", "on", "off"]
EVENT_QUEUE_SIZE = 256


class FrameSink(Protocol):
    """Receives every slot's frame (the WebRTC tracks; recorders in tests)."""

    def deliver(self, slot: int, frame: OutputFrame) -> None: ...


def open_session(pipeline: AvatarPipeline, reference_image: np.ndarray, config: ServeConfig) -> AvatarSession:
    """A generator session that keeps ``config.listen_backlog_s`` of user audio (the one cap on it)."""
    return pipeline.session(reference_image, listen_backlog_s=config.listen_backlog_s)


class SessionRuntime:
    """The running state of one session. Create it, ``await start()``, and ``await close()``."""

    def __init__(self, session_id: str, generator: AvatarSession, frame_size: tuple[int, int], sample_rate: int,
                 config: ServeConfig, generation_slots: asyncio.Semaphore | None = None,
                 reference_id: str | None = None, on_closed: Callable[[SessionRuntime], None] | None = None
                 ) -> None:
        self.id = session_id
        self.reference_id = reference_id
        self.config = config
        self.frame_size = frame_size
        self.sample_rate = sample_rate
        self.samples_per_frame = samples_per_frame(sample_rate)
        self.clock = MediaClock(K.VIDEO_FPS, sample_rate)
        self.metrics = SessionMetrics()
        self.state: str | None = None
        self.listen_mode: ListenMode = "auto"
        self.closed = False
        self.close_reason: str | None = None
        self.peers: set[Any] = set()
        self.websockets = 0
        self._generator = generator
        self._slots = generation_slots or asyncio.Semaphore(1)
        self._on_closed = on_closed
        self._voice = AgentVoiceQueue(config.prebuffer_s, sample_rate,
                                      max_samples=int(config.max_talk_queue_s * sample_rate),
                                      max_utterances=config.max_utterances)
        self._buffer: deque[OutputFrame] = deque()
        self._sinks: set[FrameSink] = set()
        self._subscribers: set[asyncio.Queue] = set()
        self._drained = asyncio.Event()
        self._first_chunk = asyncio.Event()
        self._slot = 0
        self._last_frame: OutputFrame | None = None
        self._epoch = 0
        self._inflight_uid: str | None = None
        self._interrupt_at: float | None = None
        self._debt = 0
        self._first_audio: dict[str, float] = {}
        self._played: dict[str, int] = {}
        self._started: set[str] = set()
        self._ended: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self._closing: asyncio.Task | None = None
        self._recent_generation: deque[float] = deque(maxlen=8)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.created_at = loop.time()
        self.last_activity = loop.time()

    # --- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start generating and sending."""
        self._tasks = [asyncio.create_task(self._generate_loop(), name=f"gen-{self.id}"),
                       asyncio.create_task(self._slot_loop(), name=f"slots-{self.id}"),
                       asyncio.create_task(self._metrics_loop(), name=f"metrics-{self.id}")]

    async def close(self, reason: str = "closed") -> None:
        """Stop tasks, close peers, tell subscribers; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current:
                t.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current), return_exceptions=True)
        self._publish("session_ended", reason=reason)
        for q in list(self._subscribers):
            _put_dropping(q, None)
        for pc in list(self.peers):
            with contextlib.suppress(Exception):
                await pc.close()
        self.peers.clear()
        self._sinks.clear()
        self._buffer.clear()
        if self._on_closed is not None:
            self._on_closed(self)

    @property
    def slot(self) -> int:
        """Slots sent so far (the session's frame counter)."""
        return self._slot

    @property
    def media_time(self) -> float:
        """Current media time in seconds."""
        return self.clock.media_time(self._slot)

    def touch(self) -> None:
        """Note client activity (for the idle timeout)."""
        self.last_activity = self._loop.time()

    def is_connected(self) -> bool:
        """Whether any WebSocket or WebRTC peer is attached."""
        return self.websockets > 0 or bool(self.peers)

    # --- sinks and events -----------------------------------------------------------------------------------
    def add_sink(self, sink: FrameSink) -> None:
        """Attach a receiver of every following slot."""
        self._sinks.add(sink)

    def remove_sink(self, sink: FrameSink) -> None:
        """Detach a receiver."""
        self._sinks.discard(sink)

    def subscribe(self) -> asyncio.Queue:
        """A queue of this session's events (``None`` marks the end of the session)."""
        q: asyncio.Queue = asyncio.Queue(maxsize=EVENT_QUEUE_SIZE)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        """Stop receiving events."""
        self._subscribers.discard(q)

    def _publish(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "session_id": self.id, "media_time_s": round(self.media_time, 6),
                 "frame": self._slot, **fields}
        for q in self._subscribers:
            if _put_dropping(q, event):
                self.metrics.events_dropped += 1

    def publish_error(self, code: str, message: str) -> None:
        """Report a rejected request to the session's clients."""
        self.metrics.protocol_errors += 1
        self._publish("error", code=code, message=message)

    def hello(self) -> dict[str, Any]:
        """The first event a (re)connecting client receives: where the session stands."""
        h, w = self.frame_size
        return {"type": "hello", "session_id": self.id, "media_time_s": round(self.media_time, 6),
                "frame": self._slot, "state": self.state, "listen_mode": self.listen_mode,
                "video": {"width": w, "height": h, "fps": K.VIDEO_FPS},
                "audio": {"sample_rate": self.sample_rate, "samples_per_frame": self.samples_per_frame}}

    # --- inputs ---------------------------------------------------------------------------------------------
    def speak_start(self, utterance_id: str | None = None) -> str:
        """Open an utterance of the agent's voice (ProtocolError ``queue_full`` at ``max_utterances``)."""
        try:
            return self._voice.start(utterance_id)
        except QueueFull as exc:
            self.metrics.utterances_refused += 1
            raise ProtocolError("queue_full", exc.message) from None

    def speak_end(self) -> str | None:
        """Close the open utterance (its last partial chunk is flushed)."""
        return self._voice.end()

    def push_talk(self, pcm: np.ndarray) -> str:
        """Agent voice, int16 mono at the generator's rate, into the generator's queue. Beyond
        ``max_talk_queue_s`` (or ``max_utterances``) queued, the whole piece is refused: ProtocolError
        ``queue_full``, counted in ``talk_samples_refused``."""
        self.metrics.talk_samples_in += pcm.size
        now = self._loop.time()
        gen = self._generator
        try:
            self._voice.admit(pcm.size, gen.queued_talk_samples)
        except QueueFull as exc:
            if exc.what == "samples":
                self.metrics.talk_samples_refused += pcm.size
            else:
                self.metrics.utterances_refused += 1
            raise ProtocolError("queue_full", exc.message) from None
        start = gen.talk_end
        if pcm.size:
            gen.push_talk_audio(pcm, self.sample_rate)
            if gen.talk_end != start + pcm.size:  # the utterance bounds would no longer match the samples
                raise RuntimeError(f"the generator queued {gen.talk_end - start} agent samples for {pcm.size} "
                                   "pushed at its own sample rate")
        uid = self._voice.push(pcm.size, now, start)
        self._first_audio.setdefault(uid, now)
        return uid

    def push_listen(self, pcm: np.ndarray) -> None:
        """User voice, int16 mono at the generator's rate, into the generator's queue (which keeps the newest
        ``listen_backlog_s``); ignored while listening is switched off."""
        self.metrics.listen_samples_in += pcm.size
        if self.listen_mode == "off" or pcm.size == 0:
            return
        self._generator.push_listen_audio(pcm, self.sample_rate)
        self.metrics.listen_samples_dropped = self._generator.listen_samples_dropped

    def set_listen_mode(self, mode: ListenMode) -> None:
        """``start_listening`` (on), ``stop_listening`` (off) or automatic (the model decides from the audio)."""
        self.listen_mode = mode
        if mode == "off":
            self._generator.clear_listen_audio()
        self._publish("listen_mode", mode=mode)

    def interrupt(self) -> None:
        """Drop queued agent audio, the chunk being generated from it and the frames not yet sent
        (``interrupt_mode="drop"``; ``"mute"`` keeps those frames and only silences them). The generator goes on
        from its current state with listening audio only."""
        now = self._loop.time()
        self.metrics.interrupts += 1
        uids: list[str] = []
        for u in self._voice.clear():
            uids.append(u.id)
        # A step planned before this reads nothing more: its talk_until lies before the cleared queue's start.
        self._generator.interrupt()
        self._epoch += 1
        uids += [f.utterance_id for f in self._buffer if f.utterance_id]
        if self.config.interrupt_mode == "drop":
            self.metrics.interrupt_dropped_frames += len(self._buffer)
            self._buffer.clear()
            self._drained.set()
        for f in self._buffer:
            if f.utterance_id or f.talk_samples:
                self.metrics.muted_frames += 1
            f.mute()
        if self._inflight_uid:
            uids.append(self._inflight_uid)
        uids += [u for u in self._started if u not in self._ended]
        for uid in dict.fromkeys(uids):
            self._end_utterance(uid, interrupted=True)
        self._interrupt_at = now

    # --- generation -----------------------------------------------------------------------------------------
    def _buffer_is_enough(self) -> bool:
        """Whether generation can wait: the frames still to send cover the expected generation time (the
        longest of the last few chunks, on the loop clock) plus ``lead_margin_s``, or ``lead_chunks`` are
        ready. Starting just in time keeps time-to-first-frame and interrupt latency low."""
        n = len(self._buffer)
        if n >= self.config.lead_chunks * K.CHUNK_VIDEO_FRAMES:
            return True
        expected = max(self._recent_generation, default=0.0)
        return n > 0 and n / K.VIDEO_FPS > expected + self.config.lead_margin_s

    async def _generate_loop(self) -> None:
        n = K.CHUNK_VIDEO_FRAMES * self.samples_per_frame
        try:
            while True:
                while self._buffer_is_enough():
                    self._drained.clear()
                    await self._drained.wait()
                gen = self._generator
                if self._debt:
                    end = self._voice.playing_end()
                    dropped = gen.skip_talk_audio(self._debt, until=end) if end is not None else 0
                    self._voice.skipped(dropped)
                    self.metrics.dropped_talk_frames += dropped / self.samples_per_frame
                    self._debt = 0
                talk_index = gen.talk_index
                take = self._voice.take(n, self._loop.time(), talk_index)
                until = take.until if take is not None else talk_index  # no utterance ready: read no agent audio
                epoch = self._epoch
                self._inflight_uid = take.utterance_id if take is not None else None
                started = self._loop.time()
                async with self._slots:
                    t0 = time.perf_counter()
                    if self.config.generate_in_thread:
                        chunk = await asyncio.to_thread(gen.step, until)
                    else:
                        chunk = gen.step(until)
                    elapsed = time.perf_counter() - t0
                self._inflight_uid = None
                self._recent_generation.append(self._loop.time() - started)
                validate_chunk(chunk, self.frame_size)
                if chunk.sample_rate != self.sample_rate:
                    raise ValueError(f"generator changed its sample rate to {chunk.sample_rate}")
                self._enqueue(chunk, take, epoch, elapsed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken generator ends the session, never the server
            log.exception("session %s: generation failed", self.id)
            self.publish_error("generator_failed", f"{type(exc).__name__}: {exc}")
            self._closing = asyncio.get_running_loop().create_task(self.close("generator_failed"))

    def _enqueue(self, chunk: Any, take: Take | None, epoch: int, elapsed: float) -> None:
        talk = int(getattr(chunk, "talk_samples", take.samples if take is not None else 0))
        if take is not None:
            talk = min(talk, take.samples)
        state = chunk.state
        if self.listen_mode == "on" and state == "idle":
            state = "listening"
        frames = split_chunk(chunk.frames, chunk.audio, state, talk, self.samples_per_frame)
        m = self.metrics
        m.chunks_generated += 1
        m.frames_generated += len(frames)
        m.generation_seconds += elapsed
        m.last_chunk_seconds = elapsed
        if take is not None:
            if take.underrun:
                m.talk_underrun_chunks += 1
            if epoch != self._epoch and self.config.interrupt_mode == "drop":
                m.interrupt_dropped_frames += len(frames)  # generated from audio an interrupt has dropped
                return
            if epoch != self._epoch:
                for f in frames:
                    if f.talk_samples:
                        m.muted_frames += 1
                    f.mute()
            else:
                for f in frames:
                    if f.talk_samples:
                        f.utterance_id = take.utterance_id
                if take.is_last:
                    talk_frames = [i for i, f in enumerate(frames) if f.talk_samples]
                    frames[talk_frames[-1] if talk_frames else 0].utterance_end = take.utterance_id
        self._buffer.extend(frames)
        self._first_chunk.set()

    # --- output slots ---------------------------------------------------------------------------------------
    async def _slot_loop(self) -> None:
        await self._first_chunk.wait()
        self.clock.start(self._loop.time())
        while True:
            delay = self.clock.slot_time(self._slot) - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0 / K.VIDEO_FPS:
                self.metrics.late_slots += 1
            self._emit(self._next_frame())
            self._slot += 1

    def _next_frame(self) -> OutputFrame:
        if self._buffer:
            f = self._buffer.popleft()
            self._drained.set()
            return f
        # Generation is late: the slot repeats the last frame with silence. Under "drop" the agent speech of
        # this slot is owed and skipped before the next chunk, so speech stays on the wall clock.
        self.metrics.repeated_frames += 1
        if self.config.behind_policy == "drop":
            self._debt += self.samples_per_frame
        last = self._last_frame
        return OutputFrame(image=last.image, audio=np.zeros(self.samples_per_frame, np.int16), state=last.state,
                           generated=False)

    def _emit(self, frame: OutputFrame) -> None:
        now = self._loop.time()
        self.metrics.record_emit(now)
        self.metrics.queue_output_frames = len(self._buffer)
        self.metrics.queue_talk_samples = self._generator.queued_talk_samples
        for sink in list(self._sinks):
            sink.deliver(self._slot, frame)
        if frame.state != self.state:
            previous, self.state = self.state, frame.state
            self._publish("state", state=frame.state, previous=previous)
        if self._interrupt_at is not None and frame.state != "talking":
            self.metrics.interrupt_latency_last_s = now - self._interrupt_at
            self._publish("interrupt_done", latency_s=round(now - self._interrupt_at, 6))
            self._interrupt_at = None
        self._account(frame, sent=True)
        self._last_frame = frame

    def _account(self, frame: OutputFrame, sent: bool) -> None:
        uid = frame.utterance_id
        if uid and frame.talk_samples and sent:
            if uid not in self._started:
                self._started.add(uid)
                self.metrics.utterances_started += 1
                first = self._first_audio.get(uid)
                ttff = self._loop.time() - first if first is not None else None
                self.metrics.ttff_last_s = ttff
                self._publish("speak_started", utterance_id=uid,
                              ttff_s=round(ttff, 6) if ttff is not None else None)
            self._played[uid] = self._played.get(uid, 0) + frame.talk_samples
        if frame.utterance_end:
            self._end_utterance(frame.utterance_end, interrupted=False)

    def _end_utterance(self, uid: str, interrupted: bool) -> None:
        if uid in self._ended:
            return
        self._ended.add(uid)
        self.metrics.utterances_ended += 1
        played_ms = round(1000.0 * self._played.pop(uid, 0) / self.sample_rate, 3)
        self._first_audio.pop(uid, None)
        self._started.discard(uid)
        self._publish("speak_ended", utterance_id=uid, interrupted=interrupted, played_ms=played_ms)
        if len(self._ended) > 1024:  # ids only need remembering while late frames may still mention them
            self._ended = set(list(self._ended)[-256:])

    # --- metrics --------------------------------------------------------------------------------------------
    def metrics_snapshot(self) -> dict[str, Any]:
        """Counters and gauges of this session."""
        snap = self.metrics.snapshot(K.CHUNK_SECONDS)
        snap.update(state=self.state, frame=self._slot, media_time_s=round(self.media_time, 3),
                    listen_mode=self.listen_mode, connected=self.is_connected())
        return snap

    async def _metrics_loop(self) -> None:
        interval = self.config.metrics_interval_s
        log_every = self.config.log_interval_s
        last_log = self._loop.time()
        while True:
            await asyncio.sleep(interval)
            snap = self.metrics_snapshot()
            self._publish("metrics", metrics=snap)
            now = self._loop.time()
            if log_every and now - last_log >= log_every:
                last_log = now
                log.info("session %s frame=%d state=%s fps=%.1f rtf=%.3f repeated=%d dropped_talk=%.0f", self.id,
                         snap["frame"], snap["state"], snap["fps"], snap["rtf"], snap["repeated_frames"],
                         snap["dropped_talk_frames"])


def _put_dropping(q: asyncio.Queue, item: Any) -> bool:
    """Put without blocking; when full, drop the oldest item. Returns whether something was dropped."""
    dropped = False
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
            dropped = True

"""One endless avatar stream: audio in, 12-frame chunks out (ARCHITECTURE.md §5).

A session holds only the state of its stream — the audio queues, the sampler's KV cache, the decoder's causal
cache, the noise generator and the chunks in flight; the work is the pipeline's public steps
(:meth:`Pipeline.condition` → :meth:`Pipeline.denoise` → :meth:`Pipeline.decode`).

```
sess = pipe.session(image)
sess.push_talk_audio(agent_pcm, 24000)    # agent voice, any rate; queued
sess.push_listen_audio(user_pcm, 48000)   # user voice, any rate; queued (the oldest is dropped beyond 2 s)
chunk = sess.step()                       # 12 frames + the exact agent audio they were made from
sess.interrupt()                          # drop queued agent audio: the next chunk listens
```

Every ``step()`` consumes exactly one chunk (0.48 s = 7680 samples at 16 kHz) of each voice's queue — zeros
where a queue runs short — so a stream never stalls. ``Chunk.audio`` is the consumed agent audio at
:attr:`Pipeline.sample_rate` (zeros where the agent was silent), ``Chunk.talk_samples`` how much of it came
from pushed audio. Chunk ``k`` starts at ``k × 0.48`` s on the session's media clock.

Overlap: ``step()`` is ``submit()`` + ``collect()``. ``submit()`` takes the chunk's audio, encodes it and runs
the DiT, then hands the latents to the decode thread; ``collect()`` waits for the oldest submitted chunk's
frames. A caller that keeps one chunk submitted ahead (``submit()`` once, then ``step()`` repeatedly, as
``generate``/``demo``/``bench stream`` do) gets the DiT of chunk k+1 running while chunk k decodes, at the
price of one chunk of latency. Plain ``step()`` calls return the chunk they generated (lowest latency).

Interrupt: queued agent audio is dropped; the next submitted chunk consumes no agent audio and is
"listening" or "idle". A chunk that was already submitted keeps its audio (it was generated talking).

Threads: the audio calls (``push_*``, ``interrupt``, ``skip_talk_audio``, ``clear_listen_audio`` and the queue
properties) may come from another thread than the steps — audio arrives on the network's thread while a step
runs on the compute thread (the server does this). Everything else: one thread.

Positions: agent samples are numbered in push order at 16 kHz (= :attr:`Pipeline.sample_rate`).
:attr:`Session.talk_index` is the next one a step consumes, :attr:`Session.talk_end` one past the last queued;
``step(talk_until=i)`` reads (consumes or looks ahead at) none from ``i`` on — the server bounds every chunk to
one utterance so, with the samples themselves queued here only once.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.errors import UserInputError
from streamavatar.reference_image import load_reference
from streamavatar.streaming.metrics import StreamMetrics

#: A chunk is "listening" when at least this fraction of its frames carry user voice (VAD) and no agent audio.
LISTEN_ACTIVITY = 0.25


@dataclass(frozen=True)
class Chunk:
    """One generated chunk. ``frames``: uint8 ``[12, H, W, 3]``; ``audio``: float32 ``[12 · sr / 25]`` agent
    audio these frames were generated from; ``listen_audio``: the user audio consumed with it; ``state``:
    ``talking`` | ``listening`` | ``idle``."""

    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int
    start_time: float
    state: str
    talk_samples: int
    listen_audio: np.ndarray
    index: int
    timing_ms: dict = field(default_factory=dict)
    latents: torch.Tensor | None = None


class Session:
    """See the module docstring. Not thread-safe: drive one session from one thread. After :meth:`close` every
    call that would do work raises :class:`SessionClosedError`."""

    def __init__(self, pipe, reference_image, *, seed: int = 0, listen_backlog_s: float | None = 2.0,
                 keep_latents: bool = False, nonfinite: str = "error") -> None:
        if nonfinite not in ("error", "zero"):
            raise UserInputError(f"nonfinite must be 'error' or 'zero', got {nonfinite!r}")
        self._pipe = pipe
        self._nonfinite = nonfinite
        self._keep_latents = keep_latents
        t0 = time.perf_counter()
        self.reference = load_reference(reference_image, pipe.resolution)
        self._audio = pipe.audio_stream(listen_backlog_s)
        self._generator = pipe.generator(seed)
        self.reference_latent = pipe.encode_reference(self.reference)
        self._state = pipe.start(self.reference_latent)
        self._decoder = pipe.decoder()
        # Prime the causal decoder with the reference latent (1 frame out), so each chunk gives 4C frames.
        self.reference_frame = pipe.decode(self._decoder, self.reference_latent)[0]
        self._pending: deque[Future] = deque()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="streamavatar-decode") if pipe.overlap else None
        if self._executor is not None:
            weakref.finalize(self, self._executor.shutdown, wait=False)
        self._submitted = 0
        self.closed = False
        self.metrics = StreamMetrics()
        self.setup_s = time.perf_counter() - t0

    def _check_open(self, what: str) -> None:
        if self.closed:
            from streamavatar.errors import SessionClosedError

            raise SessionClosedError(f"{what}: this session is closed; start a new one with pipe.session(image)")

    # --- audio in -----------------------------------------------------------------------------------------
    def push_talk_audio(self, pcm, sample_rate: int) -> None:
        """Queue agent voice (mono or ``[samples, channels]``, float in [-1, 1] or int16/int32/uint8, any rate
        from 8 to 192 kHz; resampled to 16 kHz incrementally, so pieces of any size join seamlessly)."""
        self._check_open("push_talk_audio")
        self._audio.talk.push(pcm, sample_rate, self._nonfinite)

    def push_listen_audio(self, pcm, sample_rate: int) -> None:
        """Queue user voice (same formats as :meth:`push_talk_audio`)."""
        self._check_open("push_listen_audio")
        self._audio.listen.push(pcm, sample_rate, self._nonfinite)

    def interrupt(self) -> None:
        """Drop queued agent audio; the next chunk continues listening."""
        self._check_open("interrupt")
        self._audio.talk.clear()

    def skip_talk_audio(self, n: int, until: int | None = None) -> int:
        """Drop up to ``n`` queued agent samples (16 kHz) after those the last chunk looked ahead at, none at or
        past index ``until``; returns how many were dropped (later indices move back by that many). Keeps speech
        on the wall clock when generation falls behind."""
        self._check_open("skip_talk_audio")
        return self._audio.talk.skip(n, until)

    def clear_listen_audio(self) -> None:
        """Drop queued user audio."""
        self._check_open("clear_listen_audio")
        self._audio.listen.clear()

    @property
    def talk_index(self) -> int:
        """Index of the next agent sample a step consumes (samples consumed, skipped or dropped so far)."""
        return self._audio.talk.queue.start

    @property
    def talk_end(self) -> int:
        """Index one past the last queued agent sample."""
        return self._audio.talk.queue.end

    @property
    def queued_talk_samples(self) -> int:
        """Agent samples (16 kHz) queued and not consumed yet."""
        return len(self._audio.talk.queue)

    @property
    def queued_talk_s(self) -> float:
        """Seconds of agent audio queued and not consumed yet."""
        return self.queued_talk_samples / self._audio.talk.geometry.chunk_samples * K.CHUNK_SECONDS

    @property
    def lookahead_samples(self) -> int:
        """Agent samples (16 kHz) a step looks at beyond its chunk without consuming them."""
        return self._audio.talk.lookahead_samples

    @property
    def listen_samples_dropped(self) -> int:
        """User samples dropped so far because more than ``listen_backlog_s`` was queued (oldest first)."""
        return self._audio.listen.queue.dropped

    @property
    def in_flight(self) -> int:
        """Chunks submitted but not collected yet."""
        return len(self._pending)

    # --- chunks out ---------------------------------------------------------------------------------------
    def step(self, talk_until: int | None = None) -> Chunk:
        """Generate the next chunk from the queued audio and return the oldest uncollected chunk (``talk_until``:
        see :meth:`submit`)."""
        self.submit(talk_until)
        return self.collect()

    @torch.no_grad()
    def submit(self, talk_until: int | None = None) -> None:
        """Take one chunk of audio from both queues, run the audio encoder and the DiT, queue the decode.
        ``talk_until``: read no agent sample at or past this index (it stays queued; the chunk sees silence)."""
        self._check_open("submit")
        pipe = self._pipe
        t0 = self.metrics.chunk_started()
        ca = self._audio.next_chunk(talk_until=talk_until)
        tokens = pipe.condition(ca)
        t1 = time.perf_counter()
        latents = pipe.denoise(self._state, tokens, self._generator)
        t2 = time.perf_counter()
        if ca.talk_samples > 0:
            state = "talking"
        elif float(ca.listen.activity().mean()) >= LISTEN_ACTIVITY:
            state = "listening"
        else:
            state = "idle"
        index = self._submitted
        self._submitted += 1
        meta = {"index": index, "state": state, "talk_audio": ca.talk_audio, "talk_samples": ca.talk_samples,
                "listen_audio": ca.listen_audio, "audio_ms": (t1 - t0) * 1000, "dit_ms": (t2 - t1) * 1000}
        if self._executor is not None:
            self._pending.append(self._executor.submit(self._decode, latents, meta))
        else:
            fut: Future = Future()
            fut.set_result(self._decode(latents, meta))
            self._pending.append(fut)

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor, meta: dict) -> Chunk:
        t0 = time.perf_counter()
        pipe = self._pipe
        frames = pipe.decode(self._decoder, latents)
        decode_ms = (time.perf_counter() - t0) * 1000
        return Chunk(frames=frames, audio=meta["talk_audio"], sample_rate=pipe.sample_rate,
                     start_time=meta["index"] * K.CHUNK_SECONDS, state=meta["state"],
                     talk_samples=meta["talk_samples"], listen_audio=meta["listen_audio"], index=meta["index"],
                     timing_ms={"audio": meta["audio_ms"], "dit": meta["dit_ms"], "decode": decode_ms},
                     latents=latents.cpu() if self._keep_latents else None)

    def collect(self) -> Chunk:
        """Wait for the oldest submitted chunk and return it."""
        self._check_open("collect")
        if not self._pending:
            raise UserInputError("no chunk in flight: call submit() (or step()) first")
        chunk = self._pending.popleft().result()
        t = chunk.timing_ms
        self.metrics.chunk_ready(t["audio"], t["dit"], t["decode"])
        return chunk

    def run(self, chunks: int, before_submit=None):
        """Yield ``chunks`` chunks, pipelined: chunk k+1 is submitted before chunk k is collected (DiT of k+1
        overlaps the decode of k), except for the very first chunk, which is collected alone so that nothing
        competes with it (the first-frame delay). ``before_submit(k)`` is called before chunk k is submitted
        (to push its audio)."""
        def submit(k: int) -> None:
            if before_submit is not None:
                before_submit(k)
            self.submit()

        self._check_open("run")
        if chunks <= 0:
            return
        submit(0)
        yield self.collect()
        if chunks > 1:
            submit(1)
        for k in range(1, chunks):
            if k + 1 < chunks and self._executor is not None:
                submit(k + 1)
            yield self.collect()
            if k + 1 < chunks and self._executor is None:
                submit(k + 1)

    def close(self) -> None:
        """Stop the decode thread (pending chunks are finished first, then dropped); idempotent. The session
        refuses further work."""
        self.closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._pending.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

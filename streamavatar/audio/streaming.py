"""The one streaming-audio path: queues of pushed PCM → exactly one chunk of talk/listen audio windows per step.

Used by the engine's sessions, the server (it pushes into a session's queues and reads their positions) and
``bench audio``. A live session is driven by
``step()``: every step must produce a chunk, whether or not enough audio has arrived. So each voice *consumes*
exactly one chunk of its queue per step (zeros where the queue runs short) and *peeks* at the look-ahead (the
next 80 ms of the queue, zeros if not there yet). A caller that would rather wait for the look-ahead (a
benchmark, a server that pushes ahead) asks :meth:`StreamTimeline.ready` first. The consumed
audio forms the stream's timeline; a chunk's encoder window is the end of that timeline plus the peek, the
same window :meth:`AudioFrontend.encode` cuts offline. When the whole audio is queued before the first step,
the windows equal the offline ones (tested); when audio arrives just in time, the look-ahead is silence.

Timeline convention (``streamavatar.audio.windows``): video frame 0 is the reference image, whose 640 samples
are silence here; chunk ``c`` plays samples ``[640 + 7680 c, 640 + 7680 (c + 1))``.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import numpy as np
import torch

from streamavatar.audio.frontend import AudioFrontend, check_mask
from streamavatar.audio.io import ENCODER_SAMPLE_RATE, StreamingResampler, check_sample_rate, to_mono_float32
from streamavatar.audio.queue import AudioQueue
from streamavatar.audio.vad import build_vad
from streamavatar.audio.windows import SAMPLES_PER_VIDEO_FRAME, FrameWindows, gather_windows
from streamavatar.errors import UserInputError


class StreamTimeline:
    """One voice (talk or listen): its queue, the consumed timeline tail and the causal VAD over it.

    :meth:`push`, :meth:`clear` and :meth:`skip` may run on another thread than :meth:`consume` (audio arrives
    on the network's thread while a step runs on the compute thread)."""

    def __init__(self, frontend: AudioFrontend, max_queue_samples: int | None = None) -> None:
        g = frontend.geometry
        self.geometry = g
        self.queue = AudioQueue(max_queue_samples)
        self._lock = threading.Lock()  # the resampler and the queue change together
        #: Queued samples the last chunk's window looked at beyond the chunk (its look-ahead).
        self.peeked = 0
        self._resampler: StreamingResampler | None = None
        self._vad = build_vad(frontend.config.vad)
        self._history = g.context - g.lookahead  # consumed samples a window needs
        # Frame 0 (the reference image) owns 640 samples of silence.
        self._tail = np.zeros(SAMPLES_PER_VIDEO_FRAME, np.float32)
        self._mask = self._vad.process(self._tail.reshape(1, -1))  # the latest VAD decisions, one per frame

    @property
    def lookahead_samples(self) -> int:
        """Samples a chunk's encoder window reaches past the chunk's end (16 kHz)."""
        return int(self.geometry.lookahead)

    @property
    def queued_samples(self) -> int:
        return len(self.queue)

    def ready(self) -> bool:
        """Whether the next chunk and its whole look-ahead are queued (a step then sees no padded silence)."""
        return len(self.queue) >= self.geometry.chunk_samples + self.geometry.lookahead

    def push(self, pcm, sample_rate: float, nonfinite: str = "error") -> int:
        """Queue audio at any rate (validated, resampled to 16 kHz); returns the 16 kHz samples this push queued.

        One incremental resampler per rate keeps pieces seamless (pushing 20 ms pieces gives the samples one
        push of the whole gives); it holds back about 1 ms until more audio comes, a rate change or an underrun
        (see :meth:`consume`) flushes it."""
        rate = check_sample_rate(sample_rate)
        x = to_mono_float32(pcm, nonfinite)
        with self._lock:
            if self._resampler is not None and self._resampler.sample_rate != rate:
                self._flush_resampler()
            if self._resampler is None:
                self._resampler = StreamingResampler(rate)
            out = self._resampler.push(x)
            if out.size:
                self.queue.push(out)
        return out.size

    def clear(self) -> None:
        """Drop everything queued (and what the resampler holds back)."""
        with self._lock:
            self.queue.clear()
            self._resampler = None
            self.peeked = 0

    def skip(self, n: int, until: int | None = None) -> int:
        """Drop up to ``n`` queued samples after those the last chunk looked at (so its look-ahead stays what
        follows it), none at or past index ``until``; returns how many were dropped."""
        with self._lock:
            return self.queue.skip(n, keep=self.peeked, until=until)

    def _flush_resampler(self) -> None:
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail.size:
                self.queue.push(tail)
            self._resampler = None

    def consume(self, mask=None, until: int | None = None) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """Take one chunk: ``(encoder window, real samples taken, chunk audio, mask row of the chunk's frames)``.

        ``mask`` (optional) replaces the VAD's row for this chunk: one value in [0, 1] for each of the
        ``frames_per_chunk`` video frames its windows cover (the VAD state still advances). ``until``
        (optional, a queue index): the chunk neither consumes nor looks ahead at samples from there on; they are
        silence to it and stay queued (the server's utterance boundary)."""
        g = self.geometry
        n = g.chunk_samples
        with self._lock:
            if len(self.queue) < n + g.lookahead:
                # The voice paused (or the audio arrives just in time): release what the resampler holds back.
                self._flush_resampler()
            taken = self.queue.take(n, until)
            peek = self.queue.peek(g.lookahead, until)
            self.peeked = peek.size
        chunk = np.zeros(n, np.float32)
        chunk[:taken.size] = taken
        ahead = np.zeros(g.lookahead, np.float32)
        ahead[:peek.size] = peek
        self._tail = np.concatenate([self._tail, chunk])[-self._history:]
        wave = np.concatenate([np.zeros(max(0, self._history - self._tail.size), np.float32), self._tail, ahead])
        # VAD: consumed frames advance the causal state; look-ahead frames are judged on a copy of it.
        decided = self._vad.process(chunk.reshape(-1, SAMPLES_PER_VIDEO_FRAME))
        r = g.radius
        ahead_mask = copy.deepcopy(self._vad).process(ahead[: r * SAMPLES_PER_VIDEO_FRAME].reshape(r, -1)) \
            if r else np.zeros(0, np.float32)
        # The chunk's frames reach r frames back (frames before 0 do not exist: mask 0) and r frames ahead.
        prev = np.concatenate([np.zeros(r, np.float32), self._mask])[-r:] if r else np.zeros(0, np.float32)
        row = np.concatenate([prev, decided, ahead_mask]).astype(np.float32)
        self._mask = np.concatenate([self._mask, decided])[-max(r, 1):]
        if mask is not None:
            m = check_mask(mask)
            if len(m) != g.frames_per_chunk:
                raise UserInputError(f"a chunk mask needs {g.frames_per_chunk} values (one per video frame of the "
                                     f"chunk's windows), got {len(m)}")
            row = m.astype(np.float32)
        return wave, int(taken.size), chunk, row


class ChunkAudioEncoder:
    """Talk + listen timelines of one session and the shared encoder pass that turns a step into windows."""

    def __init__(self, frontend: AudioFrontend, listen_backlog_s: float | None = 2.0) -> None:
        self.frontend = frontend
        self.talk = StreamTimeline(frontend)
        cap = None if listen_backlog_s is None else round(listen_backlog_s * ENCODER_SAMPLE_RATE)
        self.listen = StreamTimeline(frontend, max_queue_samples=cap)
        self.chunks_done = 0
        self._silence: torch.Tensor | None = None

    def _features(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        """Encoder features of each window; an all-zero window (a silent voice) reuses cached features, which
        are exactly what the encoder gives for it (the encoder is deterministic)."""
        silent = [not w.any() for w in waves]
        out: list[torch.Tensor | None] = [None] * len(waves)
        todo = [i for i, s in enumerate(silent) if not s or self._silence is None]
        if todo:
            feats = self.frontend.encode_windows(torch.from_numpy(np.stack([waves[i] for i in todo])))
            for j, i in enumerate(todo):
                out[i] = feats[j]
                if silent[i] and self._silence is None:
                    self._silence = feats[j].clone()
        return [o if o is not None else self._silence for o in out]

    def ready(self) -> bool:
        """Whether both voices hold the next chunk and its look-ahead."""
        return self.talk.ready() and self.listen.ready()

    def next_chunk(self, talk_mask=None, listen_mask=None, talk_until: int | None = None) -> ChunkAudio:
        """Consume one chunk of both voices and compute their windows (one batched encoder pass); masks
        optionally replace the VAD, ``talk_until`` bounds what the talk voice reads (see
        :meth:`StreamTimeline.consume`)."""
        g = self.frontend.geometry
        t_wave, t_n, t_chunk, t_row = self.talk.consume(talk_mask, talk_until)
        l_wave, l_n, l_chunk, l_row = self.listen.consume(listen_mask)
        feats = self._features([t_wave, l_wave])
        c = self.chunks_done
        talk = gather_windows(feats[0], torch.from_numpy(t_row), g, c)
        listen = gather_windows(feats[1], torch.from_numpy(l_row), g, c)
        self.chunks_done += 1
        return ChunkAudio(talk, listen, t_chunk, l_chunk, t_n, l_n)


@dataclass
class ChunkAudio:
    """What one step consumed: windows of both voices, their 16 kHz audio and how much of it was pushed audio."""

    talk: FrameWindows
    listen: FrameWindows
    talk_audio: np.ndarray
    listen_audio: np.ndarray
    talk_samples: int
    listen_samples: int

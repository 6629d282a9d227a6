"""Incremental audio encoding: push PCM in any pieces, pop per-chunk windows as soon as they are computable.

Chunk ``c`` becomes ready once the stream holds audio up to ``lookahead`` past the chunk's last sample (80 ms by
default, plus the resampler's ≤ 2 ms when the input is not 16 kHz). Its windows are then computed from the same
encoder window, pooling and causal VAD as :meth:`AudioFrontend.encode` uses offline, so a stream and a clip with
the same audio give the same windows (up to float rounding of batched matrix products).
"""

from __future__ import annotations

import numpy as np
import torch

from streamavatar.audio.frontend import AudioFrontend, check_mask
from streamavatar.audio.io import ENCODER_SAMPLE_RATE, StreamingResampler, check_sample_rate, to_mono_float32
from streamavatar.audio.vad import build_vad
from streamavatar.audio.windows import SAMPLES_PER_VIDEO_FRAME, FrameWindows, gather_windows
from streamavatar.errors import UserInputError


class StreamingAudioEncoder:
    """One audio stream (e.g. the agent's voice) → :class:`FrameWindows` per chunk, in order.

    ``push(pcm, sample_rate)`` accepts any rate in 8–192 kHz (fixed for the stream), mono or multi-channel,
    int16/int32/uint8 or float. ``pop()`` returns the next ready chunk or ``None``; ``flush()`` ends the stream
    (the rest is padded with silence, so the last partial chunk becomes ready).
    """

    def __init__(self, frontend: AudioFrontend) -> None:
        self.frontend = frontend
        self.geometry = frontend.geometry
        self._vad = build_vad(frontend.config.vad)
        self._resampler: StreamingResampler | None = None
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # absolute 16 kHz sample index of _buffer[0]
        self._total = 0  # 16 kHz samples received (after resampling)
        self._mask = np.zeros(0, dtype=np.float32)  # VAD decisions, absolute video frames from _mask_start
        self._mask_start = 0
        self._vad_frames = 0  # video frames the VAD has decided
        self._next_chunk = 0
        self._flushed_chunks: int | None = None  # chunk count fixed by flush()

    # --- facts ------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int | None:
        return None if self._resampler is None else self._resampler.sample_rate

    @property
    def lookahead_s(self) -> float:
        """Declared look-ahead: encoder windows reach this far past a chunk's end (incl. resampling delay)."""
        extra = 0.0 if self._resampler is None else self._resampler.delay_s
        return self.frontend.lookahead_s + extra

    @property
    def received_s(self) -> float:
        return self._total / ENCODER_SAMPLE_RATE

    @property
    def next_chunk(self) -> int:
        return self._next_chunk

    # --- input ------------------------------------------------------------------------------------------
    def push(self, pcm, sample_rate: float) -> None:
        """Append audio. Empty pushes, NaN/inf (unless ``nonfinite='zero'``), bad rates: UserInputError."""
        if self._flushed_chunks is not None:
            raise UserInputError("this audio stream has ended (flush was called); start a new stream")
        rate = check_sample_rate(sample_rate)
        if self._resampler is None:
            self._resampler = StreamingResampler(rate)
        elif rate != self._resampler.sample_rate:
            raise UserInputError(f"sample rate changed mid-stream from {self._resampler.sample_rate} to {rate} Hz; "
                                 "start a new stream for a new rate")
        self._append(self._resampler.push(to_mono_float32(pcm, self.frontend.config.nonfinite)))

    def flush(self) -> None:
        """End of stream: pad with silence so every chunk that holds received audio can be popped."""
        if self._flushed_chunks is not None:
            return
        if self._resampler is not None:
            self._append(self._resampler.flush())
        g = self.geometry
        n = 0
        while g.chunk_audio(n)[0] < self._total:
            n += 1
        self._flushed_chunks = max(n, self._next_chunk)
        if n:
            pad = g.window_end(n - 1) - self._total
            if pad > 0:
                self._append(np.zeros(pad, dtype=np.float32))

    def _append(self, x: np.ndarray) -> None:
        if x.size:
            self._buffer = np.concatenate([self._buffer, x])
            self._total += x.size
        done = self._total // SAMPLES_PER_VIDEO_FRAME
        if done > self._vad_frames:
            a = self._vad_frames * SAMPLES_PER_VIDEO_FRAME - self._buffer_start
            frames = self._buffer[a: a + (done - self._vad_frames) * SAMPLES_PER_VIDEO_FRAME]
            self._mask = np.concatenate([self._mask, self._vad.process(frames.reshape(-1, SAMPLES_PER_VIDEO_FRAME))])
            self._vad_frames = done

    # --- output -----------------------------------------------------------------------------------------
    def ready(self) -> int:
        """How many chunks can be popped now."""
        g = self.geometry
        n = 0
        while self._chunk_ready(self._next_chunk + n, g):
            n += 1
        return n

    def _chunk_ready(self, c: int, g) -> bool:
        if self._flushed_chunks is not None and c >= self._flushed_chunks:
            return False
        return g.window_end(c) <= self._total

    def pop(self, mask=None) -> FrameWindows | None:
        """The next chunk's windows, or ``None`` if it needs more audio.

        ``mask`` (optional) replaces the VAD for this chunk: one value in [0, 1] for each of the chunk's
        ``frames_per_chunk`` video frames, starting at ``geometry.first_video_frame(chunk)``.
        """
        g = self.geometry
        c = self._next_chunk
        if not self._chunk_ready(c, g):
            return None
        s0, s1 = g.window_start(c), g.window_end(c)
        wave = np.zeros(s1 - s0, dtype=np.float32)
        a = max(s0, self._buffer_start)
        wave[a - s0:] = self._buffer[a - self._buffer_start: s1 - self._buffer_start]
        feats = self.frontend.encode_windows(torch.from_numpy(wave)[None])[0]
        if mask is None:
            rows = self._vad_mask_row(c)
        else:
            m = check_mask(mask)
            if len(m) != g.frames_per_chunk:
                raise UserInputError(f"a chunk mask needs {g.frames_per_chunk} values (video frames "
                                     f"{g.first_video_frame(c)}…{g.first_video_frame(c) + g.frames_per_chunk - 1}), "
                                     f"got {len(m)}")
            rows = torch.from_numpy(m)
        out = gather_windows(feats, rows, g, c)
        self._next_chunk += 1
        self._forget_before(g.window_start(self._next_chunk), g.first_video_frame(self._next_chunk))
        return out

    def _vad_mask_row(self, c: int) -> torch.Tensor:
        g = self.geometry
        frames = g.first_video_frame(c) + np.arange(g.frames_per_chunk)
        local = frames - self._mask_start
        valid = (frames >= 0) & (local >= 0) & (local < len(self._mask))
        return torch.from_numpy(np.where(valid, self._mask[np.clip(local, 0, len(self._mask) - 1)], 0.0)
                                .astype(np.float32))

    def _forget_before(self, sample: int, frame: int) -> None:
        """Drop audio and VAD decisions that no later chunk can need (keeps memory constant)."""
        drop = min(max(0, sample - self._buffer_start), len(self._buffer))
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        fdrop = min(max(0, frame - self._mask_start), len(self._mask))
        self._mask = self._mask[fdrop:]
        self._mask_start += fdrop


class TalkListenAudio:
    """The two streams of an interactive session: agent voice → talk windows, user voice → listen windows.

    Both share one frontend (one set of encoder weights) and advance chunk by chunk together: a chunk is ready
    when both streams have its audio. A silent user is modelled by pushing zeros (or :meth:`push_listen_silence`).
    """

    def __init__(self, frontend: AudioFrontend) -> None:
        self.talk = StreamingAudioEncoder(frontend)
        self.listen = StreamingAudioEncoder(frontend)

    def push_talk(self, pcm, sample_rate: float) -> None:
        self.talk.push(pcm, sample_rate)

    def push_listen(self, pcm, sample_rate: float) -> None:
        self.listen.push(pcm, sample_rate)

    def push_listen_silence(self, seconds: float) -> None:
        """Silence on the user's stream (for a session without a microphone)."""
        n = round(seconds * ENCODER_SAMPLE_RATE)
        if n <= 0:
            raise UserInputError(f"seconds of silence must be positive, got {seconds}")
        self.listen.push(np.zeros(n, dtype=np.float32), ENCODER_SAMPLE_RATE)

    def ready(self) -> int:
        return min(self.talk.ready(), self.listen.ready())

    def pop(self, talk_mask=None, listen_mask=None) -> tuple[FrameWindows, FrameWindows] | None:
        """The next chunk's ``(talk, listen)`` windows, or ``None`` until both streams can produce it."""
        if self.ready() == 0:
            return None
        return self.talk.pop(talk_mask), self.listen.pop(listen_mask)

    def flush(self) -> None:
        self.talk.flush()
        self.listen.flush()

"""Timing of a stream measured inside the engine: first-frame delay, real-time factor, per-chunk times.

* **FFD** (first-frame delay): from the first chunk's start (its audio taken from the queue) to its 12 frames
  being ready (audio encoding + DiT + VAE decode of chunk 0).
* **RTF** (real-time factor): wall-clock seconds from the first chunk's start to the latest chunk being ready,
  divided by the seconds of video produced. With the decode thread, chunks overlap, so this is the stream's
  throughput, not a sum of stage times. Below 1 is faster than real time.
* Per-chunk milliseconds: the time between consecutive chunks becoming ready (the first one is the FFD),
  plus each stage's own time (audio, dit, decode). Only the most recent :data:`KEEP` chunks are kept, so an
  endless session's memory stays flat.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from streamavatar import constants as K

KEEP = 4096


class StreamMetrics:
    """Accumulates per-chunk timings of one session (see the module docstring)."""

    def __init__(self) -> None:
        self.t_first_start: float | None = None
        self.t_last_ready: float | None = None
        self.ffd_s: float | None = None
        self.chunks = 0
        self.interval_ms: deque[float] = deque(maxlen=KEEP)
        self.stage_ms: dict[str, deque[float]] = {k: deque(maxlen=KEEP) for k in ("audio", "dit", "decode")}

    def chunk_started(self) -> float:
        now = time.perf_counter()
        if self.t_first_start is None:
            self.t_first_start = now
        return now

    def chunk_ready(self, audio_ms: float, dit_ms: float, decode_ms: float) -> None:
        now = time.perf_counter()
        prev = self.t_last_ready if self.t_last_ready is not None else self.t_first_start
        self.interval_ms.append((now - prev) * 1000.0)
        if self.ffd_s is None:
            self.ffd_s = now - self.t_first_start
        self.t_last_ready = now
        self.chunks += 1
        for k, v in (("audio", audio_ms), ("dit", dit_ms), ("decode", decode_ms)):
            self.stage_ms[k].append(v)

    @property
    def rtf(self) -> float | None:
        if not self.chunks:
            return None
        return (self.t_last_ready - self.t_first_start) / (self.chunks * K.CHUNK_SECONDS)

    def summary(self) -> dict:
        """JSON-able numbers (``None`` before the first chunk)."""
        if not self.chunks:
            return {"chunks": 0, "rtf": None, "ffd_s": None}
        iv = np.asarray(self.interval_ms)

        def pct(a, q):
            return round(float(np.percentile(np.asarray(a), q)), 2) if len(a) else None

        return {
            "chunks": self.chunks,
            "stream_seconds": round(self.chunks * K.CHUNK_SECONDS, 3),
            "rtf": round(self.rtf, 4),
            "ffd_s": round(self.ffd_s, 4),
            "chunk_ms": {"p50": pct(iv, 50), "p95": pct(iv, 95), "max": round(float(iv.max()), 2)},
            "stage_ms_p50": {k: pct(v, 50) for k, v in self.stage_ms.items()},
        }

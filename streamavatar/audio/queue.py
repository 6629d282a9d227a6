"""The queue of one voice's pushed samples: a thread-safe FIFO with positions, consumed one chunk at a time.

Samples are numbered in push order: :attr:`AudioQueue.start` is the index of the first queued sample (everything
before it was consumed, skipped or dropped), :attr:`AudioQueue.end` one past the last. A reader that must not
read past a boundary (the server: one chunk takes audio from one utterance) passes ``until``, an index; samples
pushed later lie beyond every ``until`` computed earlier, and a :meth:`clear` moves ``start`` to ``end``, so a
read planned before an interrupt reads nothing. Numpy only (the server imports it without torch).
"""

from __future__ import annotations

import threading

import numpy as np


class AudioQueue:
    """A FIFO of mono samples (the engine's: float32 at 16 kHz). Every method may be called from any thread.

    ``max_samples``: beyond this many queued samples the oldest are dropped on push (live user audio is heard,
    not replayed); :attr:`dropped` counts them."""

    def __init__(self, max_samples: int | None = None) -> None:
        self._parts: list[np.ndarray] = []
        self._size = 0
        self._start = 0
        self._lock = threading.Lock()
        self.max_samples = max_samples
        #: Samples dropped so far because the queue was over ``max_samples``.
        self.dropped = 0

    def __len__(self) -> int:
        return self._size

    @property
    def start(self) -> int:
        """Index of the first queued sample (= samples consumed, skipped and dropped so far)."""
        return self._start

    @property
    def end(self) -> int:
        """Index one past the last queued sample."""
        with self._lock:
            return self._start + self._size

    def push(self, x: np.ndarray) -> None:
        with self._lock:
            self._parts.append(x)
            self._size += x.size
            if self.max_samples is not None and self._size > self.max_samples:
                over = self._size - self.max_samples
                self._cut(0, over)
                self._start += over
                self.dropped += over

    def clear(self) -> None:
        """Drop everything queued (``start`` moves to ``end``)."""
        with self._lock:
            self._start += self._size
            self._parts, self._size = [], 0

    def _joined(self) -> np.ndarray:
        if len(self._parts) != 1:
            self._parts = [np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)]
        return self._parts[0]

    def _cut(self, at: int, n: int) -> None:
        """Remove ``n`` samples starting ``at`` samples into the queue (caller holds the lock)."""
        buf = self._joined()
        self._parts = [np.concatenate([buf[:at], buf[at + n:]]) if at else buf[n:]]
        self._size = self._parts[0].size

    def _readable(self, n: int, until: int | None) -> int:
        k = min(n, self._size)
        return k if until is None else max(0, min(k, until - self._start))

    def take(self, n: int, until: int | None = None) -> np.ndarray:
        """Remove and return up to ``n`` samples from the front, none at or past index ``until``."""
        with self._lock:
            k = self._readable(n, until)
            out = self._joined()[:k].copy()
            self._cut(0, k)
            self._start += k
            return out

    def peek(self, n: int, until: int | None = None) -> np.ndarray:
        """The first ``n`` samples (or fewer, none at or past ``until``) without removing them."""
        with self._lock:
            return self._joined()[: self._readable(n, until)].copy()

    def skip(self, n: int, keep: int = 0, until: int | None = None) -> int:
        """Drop up to ``n`` samples after the first ``keep`` (a reader already looked at those), none at or past
        ``until``; returns how many were dropped. The indices of later samples move back by that many."""
        with self._lock:
            keep = self._readable(keep, until)
            k = max(0, self._readable(keep + n, until) - keep)
            if k:
                self._cut(keep, k)
            return k

"""The agent-voice queue: utterances of unknown length, consumed one chunk at a time.

``speak_start`` opens an explicit utterance and ``speak_end`` closes it; audio that arrives with no open
utterance opens an implicit one, which ends once no audio has come for ``prebuffer_s``. An utterance starts
playing once ``max(one chunk, prebuffer_s)`` of its audio is queued (the margin over one chunk absorbs the
arrival jitter of a real-time source), or it ended, or ``2 * prebuffer_s`` passed since its first sample (so
a slow text-to-speech does not hold it back for ever). Once playing, each chunk takes what is queued, up to
a chunk; a shortfall is an underrun (silence inside the utterance). One chunk takes audio from one
utterance.

Limits: at most ``max_samples`` samples and ``max_utterances`` utterances are queued; audio or a
``speak_start`` beyond them is refused with :class:`QueueFull` (nothing of it is queued), so what a client
can make the server hold is bounded whatever it sends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

#: Pieces shorter than this are joined to the previous one, so memory follows the samples, not the message count.
COALESCE_SAMPLES = 4096


@dataclass
class Utterance:
    """One reply of the agent."""

    id: str
    explicit: bool
    ended: bool = False
    parts: deque = field(default_factory=deque)
    queued: int = 0
    consumed: int = 0
    first_audio_at: float | None = None
    last_audio_at: float | None = None


@dataclass(frozen=True)
class Take:
    """Agent audio for one chunk: int16 samples (possibly fewer than a chunk), their utterance, whether the
    utterance ends with them, and whether the queue ran dry mid-utterance (an underrun)."""

    pcm: np.ndarray
    utterance_id: str
    is_last: bool
    underrun: bool


class QueueFull(Exception):
    """Audio or an utterance refused because the queue is at its limit; ``what`` is ``samples`` or
    ``utterances``."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.message = message


class AgentVoiceQueue:
    """Per-session FIFO of utterances (bounded: ``max_samples`` queued samples, ``max_utterances`` utterances;
    None = unbounded)."""

    def __init__(self, prebuffer_s: float, sample_rate: int, max_samples: int | None = None,
                 max_utterances: int | None = None) -> None:
        self.prebuffer_s = prebuffer_s
        self.sample_rate = sample_rate
        self.prebuffer_samples = int(round(prebuffer_s * sample_rate))
        self.max_samples = max_samples
        self.max_utterances = max_utterances
        self._queue: deque[Utterance] = deque()
        self._counter = 0

    def _new_id(self) -> str:
        self._counter += 1
        return f"u{self._counter}"

    @property
    def queued_samples(self) -> int:
        """Agent samples waiting to be generated from."""
        return sum(u.queued for u in self._queue)

    def open_utterance(self) -> Utterance | None:
        """The utterance that new audio joins (the last one, if it has not ended)."""
        if self._queue and not self._queue[-1].ended:
            return self._queue[-1]
        return None

    def _check_room_for_utterance(self) -> None:
        if self.max_utterances is not None and len(self._queue) >= self.max_utterances:
            raise QueueFull("utterances", f"{len(self._queue)} utterances are queued, the limit (max_utterances="
                            f"{self.max_utterances}); wait for speak_ended events or send interrupt")

    def start(self, utterance_id: str | None = None) -> str:
        """``speak_start``: end any open utterance and open a new explicit one (QueueFull at the limit)."""
        self._check_room_for_utterance()
        cur = self.open_utterance()
        if cur is not None:
            cur.ended = True
        uid = utterance_id or self._new_id()
        self._queue.append(Utterance(id=uid, explicit=True))
        return uid

    def end(self) -> str | None:
        """``speak_end``: the open utterance has no more audio."""
        cur = self.open_utterance()
        if cur is None:
            return None
        cur.ended = True
        return cur.id

    def push(self, pcm: np.ndarray, now: float) -> str:
        """Queue agent samples (int16, at the generator's rate); returns their utterance id. Raises
        :class:`QueueFull` (and queues nothing) when they would take the queue past ``max_samples``."""
        queued = self.queued_samples
        if self.max_samples is not None and queued + pcm.size > self.max_samples:
            rate = self.sample_rate
            raise QueueFull("samples", f"{pcm.size / rate:.2f} s of agent audio refused: {queued / rate:.1f} s are "
                            f"queued and the limit is {self.max_samples / rate:g} s (max_talk_queue_s); send audio "
                            "no faster than it plays, or interrupt")
        cur = self.open_utterance()
        if cur is None:
            self._check_room_for_utterance()
            cur = self._open_implicit()
        if pcm.size:
            if cur.parts and cur.parts[-1].size < COALESCE_SAMPLES:  # many tiny pieces cost more than their samples
                cur.parts[-1] = np.concatenate([cur.parts[-1], pcm])
            else:
                cur.parts.append(pcm)
            cur.queued += pcm.size
            if cur.first_audio_at is None:
                cur.first_audio_at = now
            cur.last_audio_at = now
        return cur.id

    def _open_implicit(self) -> Utterance:
        u = Utterance(id=self._new_id(), explicit=False)
        self._queue.append(u)
        return u

    def first_audio_at(self, utterance_id: str) -> float | None:
        """Loop time when the utterance's first sample arrived (for time-to-first-frame)."""
        for u in self._queue:
            if u.id == utterance_id:
                return u.first_audio_at
        return None

    def take(self, n: int, now: float) -> Take | None:
        """Up to ``n`` samples for the next chunk, or None when no utterance is ready to play."""
        if not self._queue:
            return None
        head = self._queue[0]
        if not head.explicit and not head.ended and head.last_audio_at is not None \
                and now - head.last_audio_at >= self.prebuffer_s:
            head.ended = True
        if head.queued == 0 and not head.ended:
            return None
        if head.consumed == 0 and not head.ended:
            waited = head.first_audio_at is not None and now - head.first_audio_at >= 2 * self.prebuffer_s
            if head.queued < max(n, self.prebuffer_samples) and not waited:
                return None
        pcm = self._pop_samples(head, min(n, head.queued))
        is_last = head.ended and head.queued == 0
        if is_last:
            self._queue.popleft()
        return Take(pcm=pcm, utterance_id=head.id, is_last=is_last, underrun=pcm.size < n and not is_last)

    @staticmethod
    def _pop_samples(u: Utterance, k: int) -> np.ndarray:
        out = []
        need = k
        while need:
            part = u.parts[0]
            if part.size <= need:
                out.append(u.parts.popleft())
                need -= part.size
            else:
                out.append(part[:need])
                u.parts[0] = part[need:]
                need = 0
        u.queued -= k
        u.consumed += k
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    def peek_playing(self, utterance_id: str, k: int) -> np.ndarray:
        """The next ``k`` (or fewer) queued samples of the utterance ``utterance_id`` if it is still the head,
        without taking them (the generator's look-ahead); an empty array otherwise."""
        if k <= 0 or not self._queue or self._queue[0].id != utterance_id or not self._queue[0].queued:
            return np.zeros(0, np.int16)
        out, need = [], k
        for part in self._queue[0].parts:
            out.append(part[:need])
            need -= out[-1].size
            if not need:
                break
        return np.concatenate(out)

    def skip_playing(self, k: int, keep_first: int = 0) -> int:
        """Discard up to ``k`` samples of the utterance that is playing (none if it has not started), after its
        first ``keep_first`` queued samples (those already handed to the generator as look-ahead); returns how
        many were discarded. Used to keep speech on time when generation falls behind."""
        if not self._queue or self._queue[0].consumed == 0:
            return 0
        head = self._queue[0]
        keep_first = min(keep_first, head.queued)
        k = min(k, head.queued - keep_first)
        if k:
            kept = self._pop_samples(head, keep_first) if keep_first else None
            self._pop_samples(head, k)
            if kept is not None and kept.size:
                head.parts.appendleft(kept)
                head.queued += kept.size
                head.consumed -= kept.size
        return k

    def clear(self) -> list[Utterance]:
        """Interrupt: drop every queued utterance; returns what was dropped."""
        dropped = list(self._queue)
        self._queue.clear()
        return dropped

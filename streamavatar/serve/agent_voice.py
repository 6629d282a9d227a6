"""The agent's utterances: their ids and boundaries in the session's agent-voice queue, one chunk at a time.

The samples live in the generator session's queue only (the server pushes them on arrival); this module keeps
where each utterance starts and ends in it (indices in push order, see
:class:`~streamavatar.serve.generator.AvatarSession`) and decides what the next chunk may read.

``speak_start`` opens an explicit utterance and ``speak_end`` closes it; audio that arrives with no open
utterance opens an implicit one, which ends once no audio has come for ``prebuffer_s``. An utterance starts
playing once ``max(one chunk, prebuffer_s)`` of its audio is queued (the margin over one chunk absorbs the
arrival jitter of a real-time source), or it ended, or ``2 * prebuffer_s`` passed since its first sample (so
a slow text-to-speech does not hold it back for ever). Once playing, each chunk takes what is queued, up to
a chunk; a shortfall is an underrun (silence inside the utterance). One chunk reads audio of one utterance.

Limits: at most ``max_samples`` samples and ``max_utterances`` utterances are queued; audio or a
``speak_start`` beyond them is refused with :class:`QueueFull` (nothing of it is queued), so what a client
can make the server hold is bounded whatever it sends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class Utterance:
    """One reply of the agent: ``[start, end)`` in the session's agent queue (None until its first sample)."""

    id: str
    explicit: bool
    ended: bool = False
    start: int | None = None
    end: int | None = None
    playing: bool = False
    first_audio_at: float | None = None
    last_audio_at: float | None = None

    def queued(self, talk_index: int) -> int:
        """Its samples still queued, when the session's next sample is ``talk_index``."""
        return 0 if self.end is None else self.end - max(self.start, talk_index)


@dataclass(frozen=True)
class Take:
    """What the next chunk reads: ``samples`` of the utterance (possibly fewer than a chunk), none at or past
    index ``until``; whether the utterance ends with them, and whether it ran dry mid-utterance (an underrun)."""

    utterance_id: str
    until: int
    samples: int
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

    def admit(self, n: int, queued: int) -> None:
        """Raise :class:`QueueFull` when ``n`` more agent samples (``queued`` are in the session's queue) would
        pass ``max_samples``, or would open an utterance beyond ``max_utterances``; the caller then queues
        nothing."""
        if self.max_samples is not None and queued + n > self.max_samples:
            rate = self.sample_rate
            raise QueueFull("samples", f"{n / rate:.2f} s of agent audio refused: {queued / rate:.1f} s are "
                            f"queued and the limit is {self.max_samples / rate:g} s (max_talk_queue_s); send audio "
                            "no faster than it plays, or interrupt")
        if self.open_utterance() is None:
            self._check_room_for_utterance()

    def push(self, n: int, now: float, start: int) -> str:
        """Account for ``n`` agent samples (admitted) that the session queued at index ``start``; returns their
        utterance id."""
        cur = self.open_utterance()
        if cur is None:
            cur = Utterance(id=self._new_id(), explicit=False)
            self._queue.append(cur)
        if n:
            if cur.start is None:
                cur.start, cur.first_audio_at = start, now
            cur.end = start + n
            cur.last_audio_at = now
        return cur.id

    def take(self, n: int, now: float, talk_index: int) -> Take | None:
        """What the next chunk reads (up to ``n`` samples), or None when no utterance is ready to play."""
        if not self._queue:
            return None
        head = self._queue[0]
        if not head.explicit and not head.ended and head.last_audio_at is not None \
                and now - head.last_audio_at >= self.prebuffer_s:
            head.ended = True
        queued = head.queued(talk_index)
        if queued == 0 and not head.ended:
            return None
        if not head.playing and not head.ended:
            waited = head.first_audio_at is not None and now - head.first_audio_at >= 2 * self.prebuffer_s
            if queued < max(n, self.prebuffer_samples) and not waited:
                return None
        k = min(n, queued)
        head.playing = head.playing or k > 0
        is_last = head.ended and k == queued
        if is_last:
            self._queue.popleft()
        until = talk_index if head.end is None else head.end
        return Take(utterance_id=head.id, until=until, samples=k, is_last=is_last, underrun=k < n and not is_last)

    def playing_end(self) -> int | None:
        """Where the utterance that is playing ends (None if none has started): the bound of a skip."""
        if self._queue and self._queue[0].playing:
            return self._queue[0].end
        return None

    def skipped(self, k: int) -> None:
        """``k`` samples of the playing utterance were skipped in the session's queue: move the later bounds."""
        for i, u in enumerate(self._queue):
            if u.end is not None:
                u.end -= k
                if i:
                    u.start -= k

    def clear(self) -> list[Utterance]:
        """Interrupt: drop every queued utterance; returns what was dropped."""
        dropped = list(self._queue)
        self._queue.clear()
        return dropped

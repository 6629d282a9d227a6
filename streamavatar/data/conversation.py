"""A two-party conversation laid out on a timeline: agent turns, user turns, pauses and short overlaps.

The result is two 16 kHz mono tracks of the same length (the avatar's own voice and the user's voice) plus
the sentence-level segments that make them up, from which per-frame talk and listen masks follow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from streamavatar.data.speech import SAMPLE_RATE, Voice, draw_sentence, synthesize


@dataclass(frozen=True)
class Utterance:
    """One spoken sentence: who spoke it, which turn it belongs to, when (seconds) and what."""

    speaker: str   # "agent" or "user"
    turn: int
    start_s: float
    end_s: float
    text: str

    def to_json(self) -> dict:
        """A JSON-able dict."""
        return asdict(self)


@dataclass
class Conversation:
    """Two aligned tracks (``agent``, ``user``: float32 [n_samples]) and the utterances on them."""

    agent: np.ndarray
    user: np.ndarray
    utterances: list[Utterance]
    sample_rate: int = SAMPLE_RATE

    def turn_spans(self, speaker: str) -> list[tuple[float, float]]:
        """``(start_s, end_s)`` of each turn of ``speaker`` (from its first sentence's start to its last's end)."""
        spans: dict[int, list[float]] = {}
        for u in self.utterances:
            if u.speaker == speaker:
                s = spans.setdefault(u.turn, [u.start_s, u.end_s])
                s[0], s[1] = min(s[0], u.start_s), max(s[1], u.end_s)
        return [(a, b) for a, b in spans.values()]


def _place(track: np.ndarray, audio: np.ndarray, start: int) -> int:
    """Adds ``audio`` into ``track`` at sample ``start`` (cut at the end, short fade out); returns the end sample."""
    n = min(len(audio), len(track) - start)
    if n <= 0:
        return start
    piece = audio[:n].copy()
    if n < len(audio):  # cut mid-sentence by the clip end: fade the last 20 ms
        f = min(n, SAMPLE_RATE // 50)
        piece[n - f:] *= np.linspace(1, 0, f, dtype=np.float32)
    track[start:start + n] += piece
    return start + n


def build_conversation(seconds: float, agent_voice: Voice, user_voice: Voice, rng: np.random.Generator) -> Conversation:
    """Alternating turns of one to three sentences (a turn stops growing past 1.2-4 s) until ``seconds`` are filled.

    Gaps between turns are drawn from -0.4 s (the next speaker starts early: a short overlap) to 1.3 s, and one
    turn in six is followed by an idle stretch of 1-2.5 s where nobody speaks. Sentences within a turn are
    separated by 0.15-0.6 s pauses.
    """
    n = int(round(seconds * SAMPLE_RATE))
    tracks = {"agent": np.zeros(n, np.float32), "user": np.zeros(n, np.float32)}
    voices = {"agent": agent_voice, "user": user_voice}
    cache: dict[tuple[str, Voice], np.ndarray] = {}
    utterances: list[Utterance] = []
    t = rng.uniform(0.1, 0.8)
    speaker = "agent" if rng.uniform() < 0.5 else "user"
    turn = 0
    while t < seconds - 0.3:
        turn_start, budget = t, rng.uniform(1.2, 4.0)
        for k in range(int(rng.integers(1, 4))):
            if k:
                if t - turn_start > budget:
                    break
                t += rng.uniform(0.15, 0.6)
            if t >= seconds - 0.3:
                break
            text = draw_sentence(rng)
            key = (text, voices[speaker])
            if key not in cache:
                cache[key] = synthesize(text, voices[speaker])
            audio = cache[key]
            start = int(round(t * SAMPLE_RATE))
            end = _place(tracks[speaker], audio, start)
            if end > start:
                utterances.append(Utterance(speaker, turn, start / SAMPLE_RATE, end / SAMPLE_RATE, text))
            t = end / SAMPLE_RATE
        gap = rng.uniform(-0.4, 1.3)
        if rng.uniform() < 1 / 6:
            gap = rng.uniform(1.0, 2.5)
        t = max(t + gap, turn_start + 0.3)  # an overlap never reaches back before this turn began
        speaker = "user" if speaker == "agent" else "agent"
        turn += 1
    return Conversation(tracks["agent"], tracks["user"], utterances)

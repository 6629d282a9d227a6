"""The session media clock: output slots at a fixed frame rate, and the frames that fill them.

Slot ``n`` leaves the server at ``origin + n / fps`` (absolute targets, so waiting never accumulates drift)
and carries exactly one video frame and the ``sample_rate / fps`` audio samples that belong to it; both
tracks are fed from the same slot, so audio can only ever wait for video. Slots are also the media time that
stamps every event (``media_time_s = n / fps``). When generation falls behind, a slot repeats the last frame
with silence (``hold``) and, under the ``drop`` policy, that many late frames are skipped afterwards so the
stream stays live.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

#: RTP video clock rate (RFC 3551 / WebRTC): timestamps of video frames are in 1/90000 s.
VIDEO_CLOCK_RATE = 90000


@dataclass
class OutputFrame:
    """One frame waiting for its slot, with the agent audio it was generated from (int16 mono)."""

    image: np.ndarray
    audio: np.ndarray
    state: str
    talk_samples: int = 0
    utterance_id: str | None = None
    utterance_end: str | None = None
    generated: bool = True

    def mute(self) -> None:
        """Silence the agent voice of this frame (used when an interrupt arrives after it was generated)."""
        self.audio = np.zeros_like(self.audio)
        self.talk_samples = 0
        self.utterance_id = None
        self.utterance_end = None


class MediaClock:
    """Maps slot numbers to wall-clock targets, media time and RTP timestamps."""

    def __init__(self, fps: int, sample_rate: int) -> None:
        if sample_rate % fps:
            raise ValueError(f"sample rate {sample_rate} is not a multiple of the frame rate {fps}")
        self.fps = fps
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate // fps
        self.origin: float | None = None

    def start(self, now: float) -> None:
        """Slot 0 leaves at ``now``."""
        self.origin = now

    def slot_time(self, slot: int) -> float:
        """Loop time at which ``slot`` is due."""
        if self.origin is None:
            raise RuntimeError("media clock not started")
        return self.origin + slot / self.fps

    def media_time(self, slot: int) -> float:
        """Seconds of media time at the start of ``slot``."""
        return slot / self.fps

    def video_pts(self, slot: int) -> tuple[int, Fraction]:
        """RTP-style presentation timestamp of the video frame in ``slot``."""
        return slot * VIDEO_CLOCK_RATE // self.fps, Fraction(1, VIDEO_CLOCK_RATE)

    def audio_pts(self, slot: int, offset_samples: int = 0) -> tuple[int, Fraction]:
        """Presentation timestamp (in samples) of audio ``offset_samples`` into ``slot``."""
        return slot * self.samples_per_frame + offset_samples, Fraction(1, self.sample_rate)


def split_chunk(frames: np.ndarray, audio: np.ndarray, state: str, talk_samples: int,
                samples_per_frame: int) -> list[OutputFrame]:
    """Cut a generated chunk into per-frame outputs; frame ``i`` owns audio ``[i*spf, (i+1)*spf)``."""
    pcm = np.clip(np.round(np.asarray(audio, np.float32) * 32768.0), -32768, 32767).astype(np.int16)
    out = []
    for i in range(frames.shape[0]):
        talk = min(max(talk_samples - i * samples_per_frame, 0), samples_per_frame)
        out.append(OutputFrame(image=frames[i], audio=pcm[i * samples_per_frame:(i + 1) * samples_per_frame],
                               state=state, talk_samples=talk))
    return out

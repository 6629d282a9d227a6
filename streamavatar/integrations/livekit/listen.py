"""The user's microphone in the room → the avatar's listening audio.

The model listens to the user's voice (it nods, reacts) while the agent is silent, so the avatar subscribes
to the user's microphone track and pushes it into the generator (:meth:`StreamAvatarVideoGenerator.push_listen_audio`).
Which participant is "the user": the one named by ``identity``, else the first remote participant of a human
kind (standard or SIP) that is not in ``exclude`` (the agent, the avatar itself) and publishes a microphone.
If that track goes away the feed waits for the next matching one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from livekit import rtc

logger = logging.getLogger(__name__)

_HUMAN_KINDS = (rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, rtc.ParticipantKind.PARTICIPANT_KIND_SIP)

#: Opens a stream of audio frames from a subscribed track (replaceable in tests; LiveKit's by default).
AudioStreamFactory = Callable[[Any], AsyncIterator[rtc.AudioFrame]]


def _default_stream(track: Any) -> AsyncIterator[rtc.AudioFrame]:
    return _frames(rtc.AudioStream.from_track(track=track, sample_rate=16000, num_channels=1))


async def _frames(stream: rtc.AudioStream) -> AsyncIterator[rtc.AudioFrame]:
    try:
        async for event in stream:
            yield event.frame
    finally:
        await stream.aclose()


class UserAudioFeed:
    """Feeds one room participant's microphone into a generator's listening input. ``start()`` / ``aclose()``."""

    def __init__(self, room: rtc.Room, generator: Any, *, identity: str | None = None,
                 exclude: Iterable[str] = (), stream_factory: AudioStreamFactory | None = None) -> None:
        self._room = room
        self._gen = generator
        self._identity = identity
        self._exclude = set(exclude)
        self._factory = stream_factory or _default_stream
        self._task: asyncio.Task | None = None
        self._track_sid: str | None = None
        #: Identity of the participant being listened to (None while there is none).
        self.participant: str | None = None
        self.frames = 0

    def _wanted(self, participant: Any) -> bool:
        ident = participant.identity
        if self._identity is not None:
            return ident == self._identity
        return ident not in self._exclude and participant.kind in _HUMAN_KINDS

    def start(self) -> None:
        """Listen to the matching microphone already subscribed, and to those subscribed later."""
        self._room.on("track_subscribed", self._on_subscribed)
        self._room.on("track_unsubscribed", self._on_unsubscribed)
        for participant in list(self._room.remote_participants.values()):
            for pub in list(participant.track_publications.values()):
                if pub.track is not None and pub.subscribed:
                    self._on_subscribed(pub.track, pub, participant)

    def _on_subscribed(self, track: Any, publication: Any, participant: Any) -> None:
        if self._task is not None or track.kind != rtc.TrackKind.KIND_AUDIO:
            return
        if publication.source != rtc.TrackSource.SOURCE_MICROPHONE or not self._wanted(participant):
            return
        self._track_sid = publication.sid
        self.participant = participant.identity
        self._task = asyncio.create_task(self._pump(track), name="streamavatar-livekit-listen")

    def _on_unsubscribed(self, track: Any, publication: Any, participant: Any) -> None:
        if publication.sid == self._track_sid and self._task is not None:
            self._task.cancel()
            self._task = None
            self._track_sid = None
            self.participant = None

    async def _pump(self, track: Any) -> None:
        try:
            async for frame in self._factory(track):
                self.frames += 1
                self._gen.push_listen_audio(frame)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken user track must not end the avatar
            logger.exception("the user's audio track failed; the avatar stops listening to it")

    async def aclose(self) -> None:
        self._room.off("track_subscribed", self._on_subscribed)
        self._room.off("track_unsubscribed", self._on_unsubscribed)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

"""Remote avatar, avatar side: one process per room joins with the token from ``/launch`` and publishes.

:func:`run_room` connects (unless given a connected room), waits for the agent named by the token's
``lk.publish_on_behalf`` attribute, receives its voice with ``DataStreamAudioReceiver`` and runs an
``AvatarRunner`` over a :class:`~.generator.StreamAvatarVideoGenerator`, listening to the user's microphone.
It returns when the agent leaves, the room disconnects, or the agent has not shown up within
``agent_timeout_s``; everything it started is closed on the way out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit import rtc
from livekit.agents.voice.avatar import AvatarRunner, DataStreamAudioReceiver

from streamavatar.integrations.livekit.generator import StreamAvatarVideoGenerator
from streamavatar.integrations.livekit.listen import UserAudioFeed
from streamavatar.integrations.livekit.tokens import ATTRIBUTE_PUBLISH_ON_BEHALF, token_claims

logger = logging.getLogger(__name__)


def load_pipeline(spec: str, *, fake_size: int = 256) -> Any:
    """``default`` or a model folder (the engine), or ``fake`` (the deterministic test double, no model)."""
    if spec == "fake":
        from streamavatar.serve.fake_generator import FakeAvatarPipeline

        return FakeAvatarPipeline(fake_size, fake_size)
    import streamavatar

    return streamavatar.load(spec, warmup=True)


def load_image(path: str | None) -> Any:
    """An HxWx3 uint8 reference image (the bundled one when ``path`` is None)."""
    import numpy as np
    from PIL import Image

    if path is None:
        from streamavatar.streaming.default_assets import bundled_inputs

        path = str(bundled_inputs()[0])
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


async def run_room(url: str, token: str, *, pipeline: Any, reference_image: Any, audio_sample_rate: int = 24000,
                   agent_timeout_s: float = 60.0, room: rtc.Room | None = None, listen_stream_factory=None,
                   **generator_kwargs: Any) -> str:
    """Serve one room until the agent leaves. Returns why it stopped: ``agent_left``, ``disconnected``,
    ``agent_timeout`` or ``runner_done``."""
    claims = token_claims(token)
    agent_identity = (claims.get("attributes") or {}).get(ATTRIBUTE_PUBLISH_ON_BEHALF)
    own_room = room is None
    room = room or rtc.Room()
    gen = StreamAvatarVideoGenerator(pipeline, reference_image, audio_sample_rate=audio_sample_rate,
                                     **generator_kwargs)
    runner: AvatarRunner | None = None
    feed: UserAudioFeed | None = None
    stop = asyncio.Event()
    reason = {"why": "runner_done"}

    def on_left(participant: Any) -> None:
        if participant.identity == agent_identity:
            reason["why"] = "agent_left"
            stop.set()

    def on_disconnected(*_: Any) -> None:
        reason["why"] = "disconnected"
        stop.set()

    try:
        if not room.isconnected():
            await room.connect(url, token)
        room.on("participant_disconnected", on_left)
        room.on("disconnected", on_disconnected)
        await gen.start()
        runner = AvatarRunner(room, audio_recv=DataStreamAudioReceiver(room, sender_identity=agent_identity,
                                                                       frame_size_ms=20),
                              video_gen=gen, options=gen.options)
        gen.attach_av_sync(runner.av_sync)
        try:
            await asyncio.wait_for(runner.start(), agent_timeout_s)  # the receiver waits for the agent
        except TimeoutError:
            logger.warning("agent %s did not join within %.0f s", agent_identity, agent_timeout_s)
            return "agent_timeout"
        feed = UserAudioFeed(room, gen, exclude={agent_identity, room.local_participant.identity},
                             stream_factory=listen_stream_factory)
        feed.start()
        done = asyncio.create_task(runner.wait_for_complete())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (done, stopped):
                t.cancel()
            await asyncio.gather(done, stopped, return_exceptions=True)
        return reason["why"]
    finally:
        room.off("participant_disconnected", on_left)
        room.off("disconnected", on_disconnected)
        if feed is not None:
            await feed.aclose()
        if runner is not None:
            try:
                await runner.aclose()
            except (AttributeError, KeyError):  # started only partly (the agent never came)
                await runner.av_sync.aclose()
        await gen.aclose()
        if own_room:
            await room.disconnect()

"""In-process avatar: the model runs in the agent's own process (like bitHuman's local mode).

The agent session's audio output is replaced by a ``QueueAudioOutput``; an ``AvatarRunner`` reads it, drives
a :class:`~.generator.StreamAvatarVideoGenerator` and publishes video and re-timed voice from the agent's own
participant; a :class:`~.listen.UserAudioFeed` feeds the user's microphone for listening.

```python
avatar = LocalAvatar(sa.load("default"), "face.png")
await avatar.start(session, ctx.room)      # before session.start(...)
await session.start(agent=agent, room=ctx.room)
```
"""

from __future__ import annotations

from typing import Any

from livekit import rtc
from livekit.agents.voice.avatar import AvatarRunner, QueueAudioOutput

from streamavatar.integrations.livekit.generator import StreamAvatarVideoGenerator
from streamavatar.integrations.livekit.listen import UserAudioFeed


class LocalAvatar:
    """One avatar in the agent's process. ``generator_kwargs`` go to :class:`StreamAvatarVideoGenerator`."""

    def __init__(self, pipeline: Any, reference_image: Any, *, audio_sample_rate: int = 24000,
                 user_identity: str | None = None, listen_stream_factory=None, **generator_kwargs: Any) -> None:
        self.generator = StreamAvatarVideoGenerator(pipeline, reference_image, audio_sample_rate=audio_sample_rate,
                                                    **generator_kwargs)
        #: The agent session's audio output (the runner's audio receiver).
        self.audio = QueueAudioOutput(sample_rate=audio_sample_rate)
        self.runner: AvatarRunner | None = None
        self.feed: UserAudioFeed | None = None
        self._user_identity = user_identity
        self._listen_factory = listen_stream_factory

    async def start(self, agent_session: Any, room: rtc.Room) -> None:
        """Route ``agent_session``'s voice to the avatar and start publishing in ``room`` (call before
        ``agent_session.start``). ``agent_session=None`` leaves feeding :attr:`audio` to the caller."""
        if agent_session is not None:
            agent_session.output.replace_audio_tail(self.audio)
            try:
                from livekit.agents import get_job_context

                ctx = get_job_context(required=False)
            except Exception:  # noqa: BLE001 - outside a job
                ctx = None
            if ctx is not None:
                ctx.add_shutdown_callback(self.aclose)
        await self.generator.start()
        self.runner = AvatarRunner(room, audio_recv=self.audio, video_gen=self.generator,
                                   options=self.generator.options)
        self.generator.attach_av_sync(self.runner.av_sync)
        await self.runner.start()
        self.feed = UserAudioFeed(room, self.generator, identity=self._user_identity,
                                  exclude={room.local_participant.identity}, stream_factory=self._listen_factory)
        self.feed.start()

    async def aclose(self) -> None:
        """Stop publishing and free the model session. Idempotent."""
        if self.feed is not None:
            await self.feed.aclose()
            self.feed = None
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.aclose()
        await self.generator.aclose()

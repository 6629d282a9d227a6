"""Remote avatar, agent side: an ``AvatarSession`` that asks a streamavatar dispatcher to send an avatar worker
into the agent's room, then streams the agent's voice to it.

```python
avatar = StreamAvatarSession(dispatcher_url="http://avatar-host:8089")
await avatar.start(session, room=ctx.room)      # before session.start(...)
```

:meth:`StreamAvatarSession.start` mints a join token for the avatar (identity ``avatar_identity``, kind
``agent``, attribute ``lk.publish_on_behalf`` = the agent's identity; needs ``LIVEKIT_API_KEY`` /
``LIVEKIT_API_SECRET``), POSTs ``{room_name, url, token}`` to ``<dispatcher_url>/launch`` and replaces the
agent's audio output with a ``DataStreamAudioOutput``: the voice goes over the byte-stream topic
``lk.audio_stream``, barge-in is the RPC ``lk.clear_buffer``, and the worker answers ``lk.playback_started`` /
``lk.playback_finished``. The worker leaves when the agent does; :meth:`aclose` removes it at once.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
from livekit import rtc
from livekit.agents.voice.avatar import AvatarSession, DataStreamAudioOutput

from streamavatar.integrations.livekit.tokens import mint_avatar_token


class DispatcherError(RuntimeError):
    """The dispatcher refused or could not be reached (its JSON ``error`` is in the message)."""


class StreamAvatarSession(AvatarSession):
    """Agent-side handle of one remote streamavatar avatar."""

    def __init__(self, *, dispatcher_url: str, avatar_identity: str = "streamavatar-avatar",
                 avatar_name: str = "streamavatar", livekit_url: str | None = None, api_key: str | None = None,
                 api_secret: str | None = None, dispatcher_api_key: str | None = None,
                 audio_sample_rate: int = 24000, request_timeout_s: float = 10.0,
                 wait_for_video: bool = True) -> None:
        super().__init__()
        self._dispatcher_url = dispatcher_url.rstrip("/")
        self._identity = avatar_identity
        self._name = avatar_name
        self._livekit_url = livekit_url
        self._api_key, self._api_secret = api_key, api_secret
        self._dispatcher_api_key = dispatcher_api_key or os.environ.get("STREAMAVATAR_DISPATCHER_KEY")
        self._rate = audio_sample_rate
        self._timeout = request_timeout_s
        self._wait_for_video = wait_for_video
        #: What the dispatcher answered to ``/launch``.
        self.launch_response: dict[str, Any] | None = None

    @property
    def avatar_identity(self) -> str:
        return self._identity

    @property
    def provider(self) -> str:
        return "streamavatar"

    def _url(self) -> str:
        url = self._livekit_url or os.environ.get("LIVEKIT_URL")
        if not url:
            from livekit.agents import get_job_context

            ctx = get_job_context(required=False)
            url = getattr(getattr(ctx, "_info", None), "url", None) if ctx is not None else None
        if not url:
            raise DispatcherError("no LiveKit URL: pass livekit_url= or set LIVEKIT_URL")
        return url

    async def start(self, agent_session: Any, room: rtc.Room) -> None:
        """Launch the worker for ``room`` and route ``agent_session``'s voice to it."""
        await super().start(agent_session, room)
        token = mint_avatar_token(room_name=room.name, agent_identity=room.local_participant.identity,
                                  avatar_identity=self._identity, avatar_name=self._name,
                                  api_key=self._api_key, api_secret=self._api_secret)
        self.launch_response = await self.launch(room_name=room.name, url=self._url(), token=token)
        agent_session.output.replace_audio_tail(DataStreamAudioOutput(
            room, destination_identity=self._identity, sample_rate=self._rate,
            wait_remote_track=rtc.TrackKind.KIND_VIDEO if self._wait_for_video else None,
            wait_playback_start=True))

    async def launch(self, *, room_name: str, url: str, token: str) -> dict[str, Any]:
        """POST ``/launch``; returns the dispatcher's JSON or raises :class:`DispatcherError`."""
        headers = {"Authorization": f"Bearer {self._dispatcher_api_key}"} if self._dispatcher_api_key else {}
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                    f"{self._dispatcher_url}/launch", json={"room_name": room_name, "url": url, "token": token},
                    headers=headers) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = {"error": (await resp.text())[:200]}
                if resp.status >= 400:
                    raise DispatcherError(f"dispatcher refused /launch ({resp.status}): {body.get('error', body)}")
                return body
        except aiohttp.ClientError as exc:
            raise DispatcherError(f"dispatcher unreachable at {self._dispatcher_url}: {exc}") from exc

"""Remote mode without a server: the dispatcher's ``/launch`` checks, and an agent's ``DataStreamAudioOutput``
talking to the avatar worker (:func:`run_room`) through stand-in rooms joined by a hub (byte stream
``lk.audio_stream``, RPCs ``lk.clear_buffer`` / ``lk.playback_started`` / ``lk.playback_finished``).

Skipped without the ``[livekit]`` extra (CI runs them in its own environment).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
import time

import numpy as np
import pytest

pytest.importorskip("livekit.agents", reason='needs the [livekit] extra: pip install "streamavatar[livekit]"')

import httpx  # noqa: E402
from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import DataStreamAudioOutput  # noqa: E402

from streamavatar.integrations.livekit import check_avatar_token, mint_avatar_token, run_room  # noqa: E402
from streamavatar.integrations.livekit.dispatcher import TOKEN_ENV, create_dispatcher_app  # noqa: E402
from streamavatar.integrations.livekit.tokens import ATTRIBUTE_PUBLISH_ON_BEHALF, TokenError  # noqa: E402
from streamavatar.serve.fake_generator import FakeAvatarPipeline  # noqa: E402
from tests.integrations.standin_room import Hub  # noqa: E402
from tests.integrations.test_livekit_generator import frames_of, ramp  # noqa: E402

KEY, SECRET = "devkey", "a-test-secret-of-at-least-32-bytes!!"


def token(room: str = "room-1", agent: str = "agent-1", **kw) -> str:
    return mint_avatar_token(room_name=room, agent_identity=agent, avatar_identity="avatar-1", api_key=KEY,
                             api_secret=SECRET, **kw)


def _sleeper(_req) -> list[str]:
    return [sys.executable, "-c", f"import os, time; assert os.environ['{TOKEN_ENV}']; time.sleep(60)"]


async def _client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispatcher")


def test_tokens_carry_the_agent_identity_and_bad_ones_are_named():
    claims = check_avatar_token(token(), "room-1")
    assert claims["attributes"][ATTRIBUTE_PUBLISH_ON_BEHALF] == "agent-1" and claims["kind"] == "agent"
    with pytest.raises(TokenError, match="another room"):
        check_avatar_token(token(), "room-2")
    with pytest.raises(TokenError, match="expired"):
        check_avatar_token(token(ttl=datetime.timedelta(seconds=1)), "room-1", now=time.time() + 60)
    with pytest.raises(TokenError, match="JWT"):
        check_avatar_token("not-a-token", "room-1")


@pytest.mark.parametrize("body, fragment", [
    ({"room_name": "room-1", "url": "wss://lk.example.com"}, "missing field: token"),
    ({"room_name": "room-1", "url": "wss://lk.example.com", "token": ""}, "missing field: token"),
    ({"url": "wss://lk.example.com", "token": "x"}, "missing field: room_name"),
    ({"room_name": "../etc/passwd", "url": "wss://lk.example.com", "token": "x"}, "bad room_name"),
    ({"room_name": "room 1", "url": "wss://lk.example.com", "token": "x"}, "bad room_name"),
    ({"room_name": "x" * 200, "url": "wss://lk.example.com", "token": "x"}, "bad room_name"),
    ({"room_name": "room-1", "url": "file:///etc/passwd", "token": "x"}, "bad url"),
    ({"room_name": "room-1", "url": "wss://lk.example.com", "token": 5}, "must be a string"),
    ({"room_name": "room-1", "url": "wss://lk.example.com", "token": "a.b.c"}, "bad token"),
    ("[1, 2]", "JSON object"),
    ("{not json", "JSON object"),
])
def test_dispatcher_refuses_bad_launch_requests_with_one_json_error(body, fragment):
    async def main():
        app = create_dispatcher_app(worker_command=_sleeper)
        async with await _client(app) as c:
            content = body if isinstance(body, str) else json.dumps(body)
            r = await c.post("/launch", content=content, headers={"content-type": "application/json"})
            rooms = (await c.get("/rooms")).json()
        return r, rooms

    r, rooms = asyncio.run(main())
    assert r.status_code == 400
    assert list(r.json()) == ["error"] and fragment in r.json()["error"]
    assert rooms["rooms"] == []  # nothing was started


def test_dispatcher_refuses_tokens_for_another_room_without_agent_or_expired():
    async def main():
        app = create_dispatcher_app(worker_command=_sleeper)
        from livekit import api
        no_agent = (api.AccessToken(KEY, SECRET).with_identity("avatar-1")
                    .with_grants(api.VideoGrants(room_join=True, room="room-1")).to_jwt())
        out = []
        async with await _client(app) as c:
            for tok in (token(room="room-2"), no_agent):
                r = await c.post("/launch", json={"room_name": "room-1", "url": "wss://lk", "token": tok})
                out.append((r.status_code, r.json()))
        return out

    (s1, b1), (s2, b2) = asyncio.run(main())
    assert s1 == 400 and "another room" in b1["error"]
    assert s2 == 400 and ATTRIBUTE_PUBLISH_ON_BEHALF in b2["error"]


def test_dispatcher_starts_one_worker_per_room_and_enforces_key_conflicts_and_capacity():
    async def main():
        app = create_dispatcher_app(worker_command=_sleeper, max_rooms=2, api_key="k" * 20)
        auth = {"Authorization": "Bearer " + "k" * 20}
        res = {}
        async with await _client(app) as c:
            body = {"room_name": "room-1", "url": "wss://lk.example.com", "token": token()}
            res["nokey"] = await c.post("/launch", json=body)
            res["badkey"] = await c.post("/launch", json=body, headers={"Authorization": "Bearer nope"})
            res["ok"] = await c.post("/launch", json=body, headers=auth)
            res["again"] = await c.post("/launch", json=body, headers=auth)
            res["ok2"] = await c.post("/launch", json={**body, "room_name": "room-2", "token": token("room-2")},
                                      headers=auth)
            res["full"] = await c.post("/launch", json={**body, "room_name": "room-3", "token": token("room-3")},
                                       headers=auth)
            res["big"] = await c.post("/launch", content=b"{" + b" " * 20000 + b"}", headers=auth)
            res["rooms"] = await c.get("/rooms", headers=auth)
            procs = [w.process for w in app.state.workers.values()]
            await app.state.stop_all()
        return res, procs

    res, procs = asyncio.run(main())
    assert res["nokey"].status_code == 401 and list(res["nokey"].json()) == ["error"]
    assert res["badkey"].status_code == 401
    assert res["ok"].status_code == 202 and res["ok"].json()["pid"] > 0
    assert res["again"].status_code == 409 and "already" in res["again"].json()["error"]
    assert res["ok2"].status_code == 202
    assert res["full"].status_code == 429
    assert res["big"].status_code == 413
    assert sorted(r["room_name"] for r in res["rooms"].json()["rooms"]) == ["room-1", "room-2"]
    assert len(procs) == 2 and all(p.returncode is not None for p in procs)  # stopped with the dispatcher


def test_remote_worker_plays_the_agents_stream_reports_playback_and_leaves_with_the_agent():
    """Agent side: LiveKit's DataStreamAudioOutput. Avatar side: run_room. Between them: the stand-in hub."""
    async def main():
        hub = Hub()
        agent_room = hub.room("agent-1")
        avatar_room = hub.room("avatar-1", attributes={ATTRIBUTE_PUBLISH_ON_BEHALF: "agent-1"})
        worker = asyncio.create_task(run_room("wss://unused", token(), pipeline=FakeAvatarPipeline(64, 64),
                                              reference_image=np.full((64, 64, 3), 90, np.uint8),
                                              audio_sample_rate=16000, room=avatar_room))
        out = DataStreamAudioOutput(agent_room, destination_identity="avatar-1", sample_rate=16000,
                                    wait_remote_track=rtc.TrackKind.KIND_VIDEO, wait_playback_start=True)
        events: list = []
        out.on("playback_started", lambda ev: events.append("started"))
        out.on("playback_finished", lambda ev: events.append(ev))
        for f in frames_of(ramp(0, 2 * 16000 + 320), 16000):   # 2.02 s
            await out.capture_frame(f)
        out.flush()
        first = await asyncio.wait_for(out.wait_for_playout(), 30)
        for f in frames_of(ramp(0, 5 * 16000), 16000):          # 5 s, cut by a barge-in
            await out.capture_frame(f)
        out.flush()
        await asyncio.sleep(1.5)
        out.clear_buffer()
        second = await asyncio.wait_for(out.wait_for_playout(), 30)
        avatar_tracks = sorted(p.track.kind for p in avatar_room.local_participant.published)
        await agent_room.disconnect()  # the agent leaves: the worker must stop on its own
        why = await asyncio.wait_for(worker, 30)
        return first, second, events, avatar_tracks, why

    first, second, events, tracks, why = asyncio.run(main())
    assert first.interrupted is False and abs(first.playback_position - 2.02) <= 1 / 25
    assert second.interrupted is True and 0.5 < second.playback_position < 5.0
    assert events.count("started") == 2
    assert tracks == sorted([rtc.TrackKind.KIND_AUDIO, rtc.TrackKind.KIND_VIDEO])
    assert why == "agent_left"


def test_worker_gives_up_when_the_agent_never_comes():
    async def main():
        hub = Hub()
        avatar_room = hub.room("avatar-1")
        return await run_room("wss://unused", token(), pipeline=FakeAvatarPipeline(64, 64),
                              reference_image=np.full((64, 64, 3), 90, np.uint8), room=avatar_room,
                              agent_timeout_s=0.5)
    assert asyncio.run(main()) == "agent_timeout"


def test_agent_side_session_launches_through_the_dispatcher_and_routes_the_voice(monkeypatch):
    """StreamAvatarSession.start: token for this room and agent, POST /launch over HTTP, DataStreamAudioOutput
    as the agent's audio tail; a refusal becomes a DispatcherError carrying the dispatcher's message."""
    import socket

    import uvicorn

    from streamavatar.integrations.livekit import DispatcherError, StreamAvatarSession

    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    launched = []

    def command(req):
        launched.append(req)
        return _sleeper(req)

    class Output:
        tail = None

        def replace_audio_tail(self, sink):
            self.tail = sink

    class AgentSessionStandIn(rtc.EventEmitter):
        def __init__(self):
            super().__init__()
            self.output = Output()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        app = create_dispatcher_app(worker_command=command, api_key="k" * 20)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        serve = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        try:
            hub = Hub()
            room = hub.room("agent-1")
            agent = AgentSessionStandIn()
            avatar = StreamAvatarSession(dispatcher_url=f"http://127.0.0.1:{port}", avatar_identity="avatar-1",
                                         livekit_url="wss://lk.example.com", dispatcher_api_key="k" * 20)
            await avatar.start(agent, room)
            refused = StreamAvatarSession(dispatcher_url=f"http://127.0.0.1:{port}", avatar_identity="avatar-2",
                                          livekit_url="wss://lk.example.com", dispatcher_api_key="k" * 20)
            with pytest.raises(DispatcherError, match="409"):
                await refused.start(AgentSessionStandIn(), room)  # same room: already has a worker
            unauthorized = StreamAvatarSession(dispatcher_url=f"http://127.0.0.1:{port}",
                                               livekit_url="wss://lk.example.com", dispatcher_api_key="wrong")
            with pytest.raises(DispatcherError, match="401"):
                await unauthorized.launch(room_name="room-9", url="wss://x", token=token("room-9"))
            await avatar.aclose()
            await refused.aclose()
            await app.state.stop_all()
            return avatar, agent
        finally:
            server.should_exit = True
            await serve

    avatar, agent = asyncio.run(main())
    assert avatar.launch_response["room_name"] == "room-1" and len(launched) == 1
    claims = check_avatar_token(launched[0].token, "room-1")
    assert claims["sub"] == "avatar-1" and claims["attributes"][ATTRIBUTE_PUBLISH_ON_BEHALF] == "agent-1"
    assert launched[0].url == "wss://lk.example.com"
    assert isinstance(agent.output.tail, DataStreamAudioOutput)

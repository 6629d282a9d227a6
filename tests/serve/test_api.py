"""The HTTP/WebSocket/WebRTC server on 127.0.0.1 with the fake generator: readiness, admission, auth, tokens,
reconnect, per-session events, the fall-behind policies."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import numpy as np
import pytest
import websockets

from streamavatar import constants as K
from streamavatar.serve import frame_code
from streamavatar.serve.fake_generator import FakeAvatarPipeline
from streamavatar.serve.sessions import SessionRuntime
from streamavatar.serve.ws_protocol import encode_audio
from tests.serve.helpers import (
    API_KEY,
    Noise,
    connect_rtc,
    create_session,
    fake_config,
    next_event,
    png_bytes,
    ramp,
    running_server,
    wait_for,
)

KEY = {"Authorization": f"Bearer {API_KEY}"}


def ws_url(base: str, session: dict, token: str | None = None) -> str:
    return f"ws://{base}/v1/sessions/{session['session_id']}/ws?token={token or session['token']}"


class GatedPipeline(FakeAvatarPipeline):
    """A fake whose first session (the warm-up) waits until the test opens the gate."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(64, 64)
        self.gate = gate

    def session(self, reference_image, **kw):
        self.gate.wait(10)
        return super().session(reference_image, **kw)


def test_readyz_only_after_warm_up_and_503_before():
    async def main():
        gate = threading.Event()
        async with running_server(fake_config(), pipeline=GatedPipeline(gate)) as (base, _):
            async with httpx.AsyncClient() as c:
                assert (await c.get(f"http://{base}/healthz")).status_code == 200
                r = await c.get(f"http://{base}/readyz")
                assert r.status_code == 503 and "warming up" in r.json()["reason"]
                r = await c.post(f"http://{base}/v1/sessions", content=png_bytes((1, 2, 3)),
                                 headers={**KEY, "Content-Type": "image/png"})
                assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
                gate.set()
                for _ in range(200):
                    if (await c.get(f"http://{base}/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.02)
                assert (await c.get(f"http://{base}/readyz")).json() == {"ready": True, "model": "fake"}
                await create_session(c, base)

    asyncio.run(main())


class CountingPipeline(FakeAvatarPipeline):
    """A fake that counts its warm-ups and sessions."""

    def __init__(self) -> None:
        super().__init__(64, 64)
        self.warmups = self.sessions = 0

    def warmup(self) -> float:
        self.warmups += 1
        return super().warmup()

    def session(self, reference_image, **kw):
        self.sessions += 1
        return super().session(reference_image, **kw)


def test_the_server_warms_the_model_up_once_with_its_own_warm_up():
    async def main():
        pipe = CountingPipeline()
        async with running_server(fake_config(), pipeline=pipe) as (base, _):
            async with httpx.AsyncClient() as c:
                for _ in range(200):
                    if (await c.get(f"http://{base}/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.02)
                assert (pipe.warmups, pipe.sessions) == (1, 1)
                await create_session(c, base)
                assert (pipe.warmups, pipe.sessions) == (1, 2)

    asyncio.run(main())


def test_the_loader_leaves_the_warm_up_to_the_server(monkeypatch):
    import streamavatar
    from streamavatar.serve.loader import load_generator

    seen = {}

    def fake_load(spec, **kw):
        seen.update(kw, spec=spec)
        return FakeAvatarPipeline(64, 64)

    monkeypatch.setattr(streamavatar, "load", fake_load, raising=False)
    load_generator("some/dir", dtype="fp32")
    assert seen == {"spec": "some/dir", "dtype": "fp32", "warmup": False}


def test_429_beyond_max_sessions_with_a_clear_message():
    async def main():
        async with running_server(fake_config(max_sessions=2)) as (base, _):
            async with httpx.AsyncClient() as c:
                a = await create_session(c, base)
                await create_session(c, base, color=(0, 0, 255))
                r = await c.post(f"http://{base}/v1/sessions", content=png_bytes((0, 255, 0)),
                                 headers={**KEY, "Content-Type": "image/png"})
                assert r.status_code == 429
                assert "max_sessions=2" in r.json()["error"]["message"]
                listed = (await c.get(f"http://{base}/v1/sessions", headers=KEY)).json()
                assert len(listed["sessions"]) == 2 and listed["max_sessions"] == 2
                r = await c.delete(f"http://{base}/v1/sessions/{a['session_id']}",
                                   headers={"Authorization": f"Bearer {a['token']}"})
                assert r.status_code == 200
                await create_session(c, base, color=(0, 255, 0))

    asyncio.run(main())


def test_requests_without_valid_key_or_token_are_refused_and_tokens_expire():
    clock = [1000.0]

    async def main():
        config = fake_config(token_ttl_s=60)
        async with running_server(config, token_clock=lambda: clock[0]) as (base, _):
            async with httpx.AsyncClient() as c:
                url = f"http://{base}"
                img = {"Content-Type": "image/png"}
                assert (await c.post(f"{url}/v1/sessions", content=png_bytes((9, 9, 9)), headers=img)).status_code \
                    == 401
                r = await c.post(f"{url}/v1/sessions", content=png_bytes((9, 9, 9)),
                                 headers={**img, "Authorization": "Bearer wrong-key-000"})
                assert r.status_code == 401
                for path in ("/v1/sessions", "/v1/avatars", "/v1/config"):
                    assert (await c.get(url + path)).status_code == 401
                assert (await c.get(url + "/v1/config", headers=KEY)).json()["api_key"] == "***"
                a = await create_session(c, base)
                assert a["frame_codes"] is True  # the fake generator stamps codes; the page shows them
                b = await create_session(c, base, color=(0, 0, 200))
                tok_a = {"Authorization": f"Bearer {a['token']}"}
                assert (await c.get(f"{url}/v1/sessions/{a['session_id']}", headers=tok_a)).status_code == 200
                # a token opens only its own session
                assert (await c.get(f"{url}/v1/sessions/{b['session_id']}", headers=tok_a)).status_code == 401
                assert (await c.delete(f"{url}/v1/sessions/{b['session_id']}", headers=tok_a)).status_code == 401
                with pytest.raises(websockets.InvalidStatus):
                    async with websockets.connect(ws_url(base, b, a["token"])):
                        pass
                # session tokens cannot create sessions
                r = await c.post(f"{url}/v1/sessions", content=png_bytes((9, 9, 9)), headers={**img, **tok_a})
                assert r.status_code == 401
                # expiry
                clock[0] += 61
                assert (await c.get(f"{url}/v1/sessions/{a['session_id']}", headers=tok_a)).status_code == 401
                r = await c.post(f"{url}/v1/sessions/{a['session_id']}/offer", json={"sdp": "v=0", "type": "offer"},
                                 headers=tok_a)
                assert r.status_code == 401
                with pytest.raises(websockets.InvalidStatus):
                    async with websockets.connect(ws_url(base, a)):
                        pass
                # the API key refreshes it
                r = await c.post(f"{url}/v1/sessions/{a['session_id']}/token", headers=KEY)
                fresh = r.json()["token"]
                async with websockets.connect(ws_url(base, a, fresh)) as ws:
                    hello = json.loads(await ws.recv())
                    assert hello["type"] == "hello" and hello["session_id"] == a["session_id"]

    asyncio.run(main())


def test_reconnect_keeps_session_state_and_frame_counter():
    async def main():
        async with running_server(fake_config()) as (base, app):
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                first = await connect_rtc(c, base, s)
                await wait_for(lambda: len(first.frames) >= 20, 15)
                async with websockets.connect(ws_url(base, s)) as ws:
                    await ws.send(json.dumps({"type": "start_listening"}))
                    await next_event(ws, "listen_mode")
                seen = max(code for code, _ in first.frames)
                ref = first.frames[0][1]
                await first.close()
                await asyncio.sleep(0.3)
                second = await connect_rtc(c, base, s)
                await wait_for(lambda: len(second.frames) >= 10, 15)
                codes = [code for code, _ in second.frames]
                assert min(codes) > seen  # the same stream continued; nothing restarted at frame 0
                assert {r for _, r in second.frames} == {ref}
                async with websockets.connect(ws_url(base, s)) as ws:
                    hello = json.loads(await ws.recv())
                assert hello["listen_mode"] == "on" and hello["frame"] > seen
                assert len(app.state.manager.sessions) == 1
                await second.close()

    asyncio.run(main())


def test_events_and_media_reach_only_their_own_session():
    async def main():
        async with running_server(fake_config()) as (base, _):
            async with httpx.AsyncClient() as c:
                a = await create_session(c, base, color=(250, 0, 0))
                b = await create_session(c, base, color=(0, 0, 250))
                rtc_b = await connect_rtc(c, base, b, mic=Noise())
                async with websockets.connect(ws_url(base, a)) as wa, websockets.connect(ws_url(base, b)) as wb:
                    b_events: list[dict] = []

                    async def collect():
                        async for m in wb:
                            b_events.append(json.loads(m))

                    task = asyncio.create_task(collect())
                    await wa.send(json.dumps({"type": "speak_start", "sample_rate": 16000}))
                    await wa.send(encode_audio("talk", ramp(0, 16000)))
                    await wa.send(json.dumps({"type": "speak_end"}))
                    started = await next_event(wa, "speak_started")
                    ended = await next_event(wa, "speak_ended")
                    assert started["session_id"] == ended["session_id"] == a["session_id"]
                    assert ended["played_ms"] == 1000.0 and not ended["interrupted"]
                    await wait_for(lambda: any(e.get("state") == "listening" for e in b_events), 10)
                    task.cancel()
                assert b_events and {e["session_id"] for e in b_events} == {b["session_id"]}
                assert not any(e["type"].startswith("speak") for e in b_events)
                assert len({r for _, r in rtc_b.frames}) == 1  # B's frames all show B's reference
                await rtc_b.close()

    asyncio.run(main())


class _Recorder:
    def __init__(self) -> None:
        self.frames: list = []

    def deliver(self, slot, frame) -> None:
        self.frames.append((slot, frame.generated, frame_code.read_code(frame.image, frame_code.ROW_FRAME),
                            frame_code.read_code(frame.image, frame_code.ROW_TALK_SAMPLE), frame.audio.copy()))


def test_fall_behind_policies_count_repeated_frames_and_dropped_speech():
    """A fake that needs 0.6 s per 0.48 s chunk (real-time factor 1.25). Late slots repeat the last frame with
    silence under both policies; 'hold' delays the agent's speech, 'drop' skips the speech of late slots so
    it stays on time. Every frame still carries exactly its own audio."""

    async def run(policy: str):
        pipe = FakeAvatarPipeline(64, 64, seconds_per_step=0.6)
        rt = SessionRuntime(policy, pipe.session(np.zeros((64, 64, 3), np.uint8)), pipe.frame_size,
                            pipe.sample_rate, fake_config(behind_policy=policy))
        rec = _Recorder()
        rt.add_sink(rec)
        await rt.start()
        rt.speak_start()
        rt.push_talk(ramp(0, 16000 * 10))
        await asyncio.sleep(3.6)
        await rt.close()
        return rt.metrics, rec.frames

    async def main():
        return await asyncio.gather(run("hold"), run("drop"))

    (hold, hold_frames), (drop, drop_frames) = asyncio.run(main())
    assert hold.repeated_frames > 0 and hold.dropped_talk_frames == 0
    assert drop.repeated_frames > 0 and drop.dropped_talk_frames > 0
    spf = 16000 // K.VIDEO_FPS
    for frames in (hold_frames, drop_frames):
        assert [f[0] for f in frames] == list(range(len(frames)))  # one frame per slot, no gap
        for _slot, generated, _code, talk, audio in frames:
            if generated and talk:
                assert int(audio[0]) % 32768 == (talk - 1) % 32768  # the frame's own audio
            if not generated:
                assert not audio.any()  # repeated frames carry silence, never someone else's audio
        codes = [f[2] for f in frames if f[1]]
        assert codes == list(range(len(codes)))  # generated frames are all sent, in order

    def speech_steps(frames):
        firsts = [int(f[4][0]) for f in frames if f[1] and f[3]]
        return [(b - a) % 32768 for a, b in zip(firsts, firsts[1:], strict=False)]

    assert set(speech_steps(hold_frames)) == {spf}  # hold: speech continues where it paused
    assert max(speech_steps(drop_frames)) > spf  # drop: the speech of late slots was skipped
    # so after the same wall time, 'drop' has reached further into the utterance than 'hold'
    assert sum(speech_steps(drop_frames)) > sum(speech_steps(hold_frames))


def test_idle_timeout_and_max_duration_close_sessions_and_say_why():
    async def main():
        async with running_server(fake_config(idle_timeout_s=0.4, max_duration_s=1.5)) as (base, app):
            async with httpx.AsyncClient() as c:
                idle = await create_session(c, base)
                busy = await create_session(c, base, color=(0, 90, 0))
                async with websockets.connect(ws_url(base, busy)) as ws:
                    await wait_for(lambda: idle["session_id"] not in app.state.manager.sessions, 5)
                    assert busy["session_id"] in app.state.manager.sessions  # connected: not idle
                    ended = await next_event(ws, "session_ended", timeout=5)
                    assert ended["reason"] == "max_duration"
                r = await c.get(f"http://{base}/v1/sessions/{busy['session_id']}", headers=KEY)
                assert r.status_code == 404

    asyncio.run(main())


class BrokenPipeline(FakeAvatarPipeline):
    """A fake whose sessions fail on their third chunk (the warm-up session only makes one)."""

    def session(self, reference_image, **kw):
        inner = super().session(reference_image, **kw)
        calls = [0]
        step = inner.step

        def failing_step(talk_until=None):
            calls[0] += 1
            if calls[0] == 3:
                raise RuntimeError("simulated model failure")
            return step(talk_until)

        inner.step = failing_step
        return inner


def test_a_failing_generator_ends_only_its_session():
    async def main():
        async with running_server(fake_config(), pipeline=BrokenPipeline(64, 64)) as (base, app):
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                async with websockets.connect(ws_url(base, s)) as ws:
                    err = await next_event(ws, "error")
                    assert err["code"] == "generator_failed" and "simulated model failure" in err["message"]
                    assert (await next_event(ws, "session_ended"))["reason"] == "generator_failed"
                await wait_for(lambda: not app.state.manager.sessions, 5)
                assert (await c.get(f"http://{base}/readyz")).status_code == 200
                await create_session(c, base)  # the server goes on

    asyncio.run(main())

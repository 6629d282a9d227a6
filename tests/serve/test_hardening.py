"""The server as an attacker calls it (real HTTP and WebSocket on 127.0.0.1, fake generator): one error shape for
every non-2xx answer, no 500 for malformed input, every queue that input can grow bounded (with a clear error or
a counter at /metrics), uploads decoded off the event loop and stored at the model's frame size, and no session
token in the server's log."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import websockets
from PIL import Image

from streamavatar.serve import app as app_module
from streamavatar.serve.ws_protocol import encode_audio
from tests.serve.helpers import API_KEY, create_session, fake_config, next_event, png_bytes, running_server, wait_for

KEY = {"Authorization": f"Bearer {API_KEY}"}


def big_png(seed: int, side: int = 4096) -> bytes:
    """A compressible ``side``² PNG (small upload, costly decode), distinct per ``seed`` (no cache hit)."""
    img = np.zeros((side, side, 3), np.uint8)
    img[:, :, 0] = seed % 256
    img[seed % side, :, 1] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def assert_error_shape(r: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> dict:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def test_every_non_2xx_answer_has_the_error_shape():
    async def main():
        async with running_server(fake_config()) as (base, _):
            url = f"http://{base}"
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                tok = {"Authorization": f"Bearer {s['token']}", "Content-Type": "application/json"}
                offer = f"{url}/v1/sessions/{s['session_id']}/offer"
                json_key = {**KEY, "Content-Type": "application/json"}
                assert_error_shape(await c.get(url + "/nope"), 404, "not_found")
                assert_error_shape(await c.get(url + "/static/nope.js"), 404, "not_found")
                assert_error_shape(await c.put(url + "/v1/sessions", headers=KEY), 405, "method_not_allowed")
                assert_error_shape(await c.patch(url + "/healthz"), 405, "method_not_allowed")
                assert_error_shape(await c.get(url + "/v1/sessions/x/offer", headers=KEY), 405)
                for body in (b"\xff\xfe{\"avatar_id\": 1}", b"{\"avatar_id\": \"\xc3\x28\"}",
                             b"[" * 2000 + b"]" * 2000):
                    assert_error_shape(await c.post(url + "/v1/sessions", content=body, headers=json_key), 400,
                                       "bad_json")
                body = b"{\"avatar_id\": " + b"9" * 4000 + b"}"  # parses (under 4300 digits), wrong type
                assert_error_shape(await c.post(url + "/v1/sessions", content=body, headers=json_key), 400)
                assert_error_shape(await c.post(url + "/v1/sessions", content=b"{" * 5000, headers=json_key), 413)
                for body in (b"\xff\xfe\x00", b"{\"sdp\": " + b"1" * 5000 + b", \"type\": \"offer\"}",
                             b"{\"sdp\": \"v=0\", \"type\": \"\xed\xa0\x80\"}", b"[" * 20000 + b"]" * 20000):
                    assert_error_shape(await c.post(offer, content=body, headers=tok), 400, "bad_offer")
                assert_error_shape(await c.get(url + "/v1/config"), 401, "unauthorized")
                assert (await c.get(url + "/healthz")).status_code == 200

    asyncio.run(main())


def test_websocket_errors_keep_the_handler_alive_and_refusals_have_the_error_shape():
    async def main():
        async with running_server(fake_config()) as (base, app):
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                url = f"ws://{base}/v1/sessions/{s['session_id']}/ws?token={s['token']}"
                async with websockets.connect(url, max_size=None) as ws:
                    await ws.send('{"type": "ping", "id": ' + "9" * 5000 + "}")
                    e = await next_event(ws, "error")
                    assert e["code"] == "bad_json" and e["message"]
                    await ws.send(json.dumps({"type": "ping", "id": 2**60}))
                    assert (await next_event(ws, "error"))["code"] == "bad_message"
                    await ws.send(json.dumps({"type": "ping", "id": "alive"}))
                    assert (await next_event(ws, "pong"))["id"] == "alive"
                with pytest.raises(websockets.InvalidStatus) as refused:
                    async with websockets.connect(url.replace(s["token"], "wrong")):
                        pass
                response = refused.value.response
                assert response.status_code == 403
                body = json.loads(response.body)
                assert body["error"]["code"] == "unauthorized" and "token" in body["error"]["message"]
                assert not app.state.manager.get(s["session_id"]).closed

    asyncio.run(main())


def test_agent_audio_and_utterances_are_bounded_and_refusals_are_counted():
    async def main():
        config = fake_config(max_talk_queue_s=2.0, max_utterances=2)
        async with running_server(config) as (base, app):
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                rt = app.state.manager.get(s["session_id"])
                url = f"ws://{base}/v1/sessions/{s['session_id']}/ws?token={s['token']}"
                async with websockets.connect(url) as ws:
                    await ws.send(json.dumps({"type": "speak_start"}))
                    second = np.zeros(16000, np.int16) + 1000
                    for _ in range(20):  # 20 s offered at once, 2 s allowed
                        await ws.send(encode_audio("talk", second))
                    e = await next_event(ws, "error")
                    assert e["code"] == "queue_full" and "max_talk_queue_s" in e["message"]
                    await wait_for(lambda: rt.metrics.talk_samples_in == 20 * 16000)
                    assert rt._generator.queued_talk_samples <= 2 * 16000
                    assert rt.metrics.talk_samples_refused >= 17 * 16000
                    metrics = (await c.get(f"http://{base}/metrics")).text
                    assert f'streamavatar_session_talk_samples_refused_total{{session="{rt.id}"}}' in metrics
                    await ws.send(json.dumps({"type": "interrupt"}))
                    await wait_for(lambda: rt._generator.queued_talk_samples == 0)
                    for k in range(10):  # speak_start floods: at most max_utterances queued
                        await ws.send(json.dumps({"type": "speak_start", "utterance_id": f"u{k}"}))
                    await ws.send(json.dumps({"type": "ping", "id": 1}))
                    await next_event(ws, "pong")
                    assert len(rt._voice._queue) <= 2 and rt.metrics.utterances_refused >= 5

    asyncio.run(main())


def test_listen_backlog_tokens_and_websockets_per_session_are_bounded():
    async def main():
        config = fake_config(max_tokens_per_session=3, max_websockets_per_session=2, listen_backlog_s=0.5)
        async with running_server(config) as (base, app):
            manager = app.state.manager
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                sid = s["session_id"]
                rt = manager.get(sid)
                tokens = [s["token"]]
                for _ in range(10):
                    r = await c.post(f"http://{base}/v1/sessions/{sid}/token", headers=KEY)
                    tokens.append(r.json()["token"])
                assert sum(t.session_id == sid for t in manager._tokens.values()) == 3
                old = await c.get(f"http://{base}/v1/sessions/{sid}", headers={"Authorization": f"Bearer {tokens[0]}"})
                assert_error_shape(old, 401, "unauthorized")  # the oldest were revoked
                newest = {"Authorization": f"Bearer {tokens[-1]}"}
                assert (await c.get(f"http://{base}/v1/sessions/{sid}", headers=newest)).status_code == 200
                url = f"ws://{base}/v1/sessions/{sid}/ws?token={tokens[-1]}"
                async with websockets.connect(url) as a, websockets.connect(url):
                    with pytest.raises(websockets.InvalidStatus) as refused:
                        async with websockets.connect(url):
                            pass
                    assert refused.value.response.status_code == 429
                    assert json.loads(refused.value.response.body)["error"]["code"] == "too_many_websockets"
                    await a.send(encode_audio("listen", np.ones(5 * 16000, np.int16)))  # 5 s at once
                    await wait_for(lambda: rt.metrics.listen_samples_in >= 5 * 16000)
                    assert len(rt._generator._listen) <= 8000  # the session keeps listen_backlog_s
                    assert rt.metrics.listen_samples_dropped >= 5 * 16000 - 8000
                metrics = (await c.get(f"http://{base}/metrics")).text
                assert "streamavatar_websockets_refused_total 1.0" in metrics
                assert "streamavatar_tokens_revoked_total 8.0" in metrics

    asyncio.run(main())


def test_avatars_are_stored_at_the_model_size_and_mpo_jpegs_are_accepted():
    async def main():
        async with running_server(fake_config(max_avatars=3)) as (base, app):
            url = f"http://{base}"
            async with httpx.AsyncClient(timeout=60) as c:
                r = await c.post(url + "/v1/avatars", content=big_png(1), headers={**KEY, "Content-Type": "image/png"})
                assert r.status_code == 200, r.text
                assert (r.json()["width"], r.json()["height"]) == (4096, 4096)  # what was uploaded
                avatar = app.state.avatars.get(r.json()["avatar_id"])
                assert avatar.image.shape == (64, 64, 3)  # what is kept: the fake model's frame size
                a, b = Image.new("RGB", (80, 60), (200, 10, 10)), Image.new("RGB", (80, 60), (10, 200, 10))
                buf = io.BytesIO()
                a.save(buf, format="MPO", save_all=True, append_images=[b])
                assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
                r = await c.post(url + "/v1/sessions", content=buf.getvalue(),
                                 headers={**KEY, "Content-Type": "image/jpeg"})
                assert r.status_code == 201, r.text
                first = app.state.avatars.get(r.json()["avatar_id"]).image
                assert first.shape == (64, 64, 3) and first[..., 0].mean() > 150  # the first picture is used
                for k in range(5):
                    await c.post(url + "/v1/avatars", content=png_bytes((k, 0, 0), 200),
                                 headers={**KEY, "Content-Type": "image/png"})
                metrics = (await c.get(url + "/metrics")).text
                assert "streamavatar_avatars_cached 3.0" in metrics
                assert f"streamavatar_avatar_cache_bytes {3 * 64 * 64 * 3}.0" in metrics
                assert "streamavatar_avatars_evicted_total 4.0" in metrics

    asyncio.run(main())


def test_uploads_beyond_max_concurrent_uploads_get_429(monkeypatch):
    gate = threading.Event()
    real = app_module.prepare_avatar

    def slow_prepare(*args):
        gate.wait(10)
        return real(*args)

    monkeypatch.setattr(app_module, "prepare_avatar", slow_prepare)

    async def main():
        async with running_server(fake_config(max_concurrent_uploads=1)) as (base, _):
            async with httpx.AsyncClient(timeout=30) as c:
                def upload(k):
                    return c.post(f"http://{base}/v1/avatars", content=png_bytes((k, 1, 1)),
                                  headers={**KEY, "Content-Type": "image/png"})
                first = asyncio.create_task(upload(1))
                await asyncio.sleep(0.3)  # the first upload now waits inside prepare_avatar
                busy = await upload(2)
                gate.set()
                assert (await first).status_code == 200
                assert_error_shape(busy, 429, "busy")
                assert (await upload(3)).status_code == 200
                assert "streamavatar_uploads_refused_busy_total 1.0" in (await c.get(f"http://{base}/metrics")).text

    asyncio.run(main())


def test_a_live_session_keeps_its_frame_slots_while_big_images_are_uploaded():
    """Six 4096² uploads (≈ 0.2 s of decoding each, which used to block the event loop and make slots late)
    while a session streams: the slot loop stays on time (a tolerant bound, the machine is shared)."""
    uploads = [big_png(10 + k) for k in range(6)]

    async def main():
        async with running_server(fake_config()) as (base, app):
            async with httpx.AsyncClient(timeout=60) as c:
                s = await create_session(c, base)
                rt = app.state.manager.get(s["session_id"])
                await wait_for(lambda: rt.slot > 25, 10)
                late0, slot0 = rt.metrics.late_slots, rt.slot
                for data in uploads:
                    r = await c.post(f"http://{base}/v1/avatars", content=data,
                                     headers={**KEY, "Content-Type": "image/png"})
                    assert r.status_code == 200, r.text
                await asyncio.sleep(0.2)
                return rt.metrics.late_slots - late0, rt.slot - slot0

    late, slots = asyncio.run(main())
    assert slots > 10
    assert late <= max(3, 0.1 * slots), (late, slots)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_session_tokens_never_reach_the_server_log():
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamavatar", "serve", "--model", "fake", "--fake-size", "64",
                             "--port", str(port), "--api-key", API_KEY, "--no-warmup", "--log-interval-s", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        base = f"127.0.0.1:{port}"
        end = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end and proc.poll() is None, "server did not become ready"
            time.sleep(0.2)
        s = httpx.post(f"http://{base}/v1/sessions", content=png_bytes((1, 2, 3)),
                       headers={**KEY, "Content-Type": "image/png"}).json()

        async def touch_ws():
            url = f"ws://{base}/v1/sessions/{s['session_id']}/ws?token={s['token']}"
            async with websockets.connect(url) as ws:
                await ws.recv()
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(url.replace(s["token"], "a-wrong-token-value")):
                    pass

        asyncio.run(touch_ws())
    finally:
        proc.terminate()
        log, _ = proc.communicate(timeout=30)
    assert "WebSocket" in log and "token=***" in log, log[-2000:]
    assert s["token"] not in log and "a-wrong-token-value" not in log and API_KEY not in log


def test_a_failing_websocket_handler_says_so_and_closes_properly(monkeypatch):
    """A bug in message handling (simulated) must not kill the handler silently: an ``internal_error`` event,
    then close 1011; the session goes on and a new socket works."""
    real = app_module.parse_text

    def broken(text):
        if "boom" in text:
            raise RuntimeError("simulated bug")
        return real(text)

    monkeypatch.setattr(app_module, "parse_text", broken)

    async def main():
        async with running_server(fake_config()) as (base, app):
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                url = f"ws://{base}/v1/sessions/{s['session_id']}/ws?token={s['token']}"
                async with websockets.connect(url) as ws:
                    await ws.send(json.dumps({"type": "ping", "id": "boom"}))
                    e = await next_event(ws, "error")
                    assert e["code"] == "internal_error" and "reconnect" in e["message"]
                    with pytest.raises(websockets.ConnectionClosed):
                        while True:
                            await asyncio.wait_for(ws.recv(), 10)
                    assert ws.close_code == 1011
                assert not app.state.manager.get(s["session_id"]).closed
                async with websockets.connect(url) as ws:
                    await ws.send(json.dumps({"type": "ping", "id": 5}))
                    assert (await next_event(ws, "pong"))["id"] == 5

    asyncio.run(main())
